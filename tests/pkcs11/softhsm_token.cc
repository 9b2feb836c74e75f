#include "tests/pkcs11/softhsm_token.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"

namespace certstore::testing {
namespace {

std::string Quote(absl::string_view arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

pid_t g_owner_pid = 0;

// Only in the process that made the directory: a forked child that exits
// must not remove its parent's tokens.
void RemoveDirAtExit() {
  if (getpid() != g_owner_pid) {
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(SoftHsmToken::Dir(), ignored);
}

// On tmpfs when there is one: SoftHSM rewrites an object file and its
// token's generation file on every change, and waits for writeback on a
// busy disk (hundreds of ms per object on this VM).
std::string BaseDir() {
  return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

std::string MakeDir() {
  std::string templ = BaseDir() + "/certstore-softhsm-XXXXXX";
  const char* dir = mkdtemp(templ.data());
  if (dir == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  const std::string path(dir);
  std::filesystem::create_directory(path + "/tokens");
  std::ofstream(path + "/softhsm2.conf")
      << "directories.tokendir = " << path << "/tokens\n"
      << "objectstore.backend = file\n"
      << "log.level = ERROR\n"
      << "slots.removable = false\n";
  setenv("SOFTHSM2_CONF", (path + "/softhsm2.conf").c_str(), 1);
  g_owner_pid = getpid();
  std::atexit(&RemoveDirAtExit);
  return path;
}

// The raw function list of the SoftHSM module (the same mapping a store
// uses: dlopen is refcounted).
absl::StatusOr<CK_FUNCTION_LIST*> Functions() {
  void* handle =
      dlopen(std::string(kSoftHsmModule).c_str(), RTLD_NOW | RTLD_LOCAL);
  auto get = handle != nullptr ? reinterpret_cast<CK_C_GetFunctionList>(
                                     dlsym(handle, "C_GetFunctionList"))
                               : nullptr;
  CK_FUNCTION_LIST* f = nullptr;
  if (get == nullptr || get(&f) != CKR_OK) {
    return absl::InternalError("cannot load the SoftHSM module");
  }
  return f;
}

class PublicKey final : public Key {
 public:
  PublicKey(UniqueEvpPkey pkey, std::string der)
      : pkey_(std::move(pkey)), der_(std::move(der)) {}
  absl::StatusOr<std::string> Sign(absl::string_view) const override {
    return absl::FailedPreconditionError("public key only");
  }
  const std::string& public_key_der() const override { return der_; }
  EVP_PKEY* evp_pkey() const override { return pkey_.get(); }
  std::string algorithm() const override { return "public"; }
  std::string location() const override { return "public-only-test-key"; }
  absl::StatusOr<std::string> ExportPkcs8Der() const override {
    return absl::FailedPreconditionError("public key only");
  }

 private:
  UniqueEvpPkey pkey_;
  std::string der_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<const Key>> PublicOnlyKey(
    absl::string_view spki_der) {
  const auto* p = reinterpret_cast<const unsigned char*>(spki_der.data());
  UniqueEvpPkey pkey(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError("not a SubjectPublicKeyInfo");
  }
  return std::make_shared<PublicKey>(std::move(pkey), std::string(spki_der));
}

std::string KeyIdHex(const Key& key) {
  const std::string location = key.location();
  const size_t begin = location.find(";id=");
  if (begin == std::string::npos) {
    return "";
  }
  const size_t end = location.find(';', begin + 4);
  // RFC 7512: every id byte as %XX; pkcs11-tool --id takes plain hex.
  std::string hex =
      location.substr(begin + 4, end == std::string::npos ? std::string::npos
                                                          : end - begin - 4);
  hex.erase(std::remove(hex.begin(), hex.end(), '%'), hex.end());
  return absl::AsciiStrToLower(hex);  // as pkcs11-tool prints it
}

std::string WriteTempFile(absl::string_view name, absl::string_view bytes) {
  const std::string path = absl::StrCat(SoftHsmToken::Dir(), "/", name);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

const std::string& SoftHsmToken::Dir() {
  static const std::string* const dir = new std::string(MakeDir());
  return *dir;
}

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    return absl::InternalError(absl::StrCat("popen: ", command));
  }
  std::string output;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  const int status = pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` exited with ", status, ": ", output));
  }
  return output;
}

SoftHsmToken::SoftHsmToken(std::string label, std::string pin_file)
    : label_(std::move(label)), pin_file_(std::move(pin_file)) {}

absl::StatusOr<std::unique_ptr<SoftHsmToken>> SoftHsmToken::Create(
    std::string label) {
  const std::string pin_file = absl::StrCat(Dir(), "/pin-", label);
  std::unique_ptr<SoftHsmToken> token(
      new SoftHsmToken(std::move(label), pin_file));
  const int fd = open(pin_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, "1234\n", 5) != 5 || close(fd) != 0) {
    return absl::InternalError(absl::StrCat("cannot write ", pin_file));
  }
  CERTSTORE_RETURN_IF_ERROR(token->Reinitialize());
  return token;
}

SoftHsmToken::~SoftHsmToken() {
  DeleteToken().IgnoreError();
  unlink(pin_file_.c_str());
}

std::string SoftHsmToken::LockDir() { return absl::StrCat(Dir(), "/locks"); }

Pkcs11StoreOptions SoftHsmToken::Options() const {
  Pkcs11StoreOptions options;
  options.module_path = std::string(kSoftHsmModule);
  options.token_label = label_;
  options.pin_file = pin_file_;
  options.lock_dir = LockDir();
  return options;
}

std::string SoftHsmToken::Uri() const {
  return absl::StrCat("pkcs11:token=", label_, "?module-path=", kSoftHsmModule,
                      "&pin-source=file:", pin_file_,
                      "&x-lock-dir=", LockDir());
}

absl::StatusOr<std::string> SoftHsmToken::Pkcs11Tool(
    const std::string& args) const {
  return RunCommand(absl::StrCat("pkcs11-tool --module ", kSoftHsmModule,
                                 " --token-label ", Quote(label_),
                                 " --login --pin ", pin_, " ", args));
}

absl::Status SoftHsmToken::DeleteToken() const {
  return RunCommand(absl::StrCat("softhsm2-util --delete-token --token ",
                                 Quote(label_)))
      .status();
}

absl::Status SoftHsmToken::Reinitialize() const {
  return RunCommand(absl::StrCat("softhsm2-util --init-token --free --label ",
                                 Quote(label_), " --so-pin ", so_pin_,
                                 " --pin ", pin_))
      .status();
}

absl::Status SoftHsmToken::DestroyAllObjects() const {
  CERTSTORE_ASSIGN_OR_RETURN(CK_FUNCTION_LIST * f, Functions());
  CK_INFO info;
  if (f->C_GetInfo(&info) != CKR_OK) {
    return absl::FailedPreconditionError(
        "DestroyAllObjects needs an open store on SoftHSM");
  }
  CK_SLOT_ID slots[64];
  CK_ULONG count = 64;
  if (f->C_GetSlotList(CK_TRUE, slots, &count) != CKR_OK) {
    return absl::InternalError("C_GetSlotList");
  }
  for (CK_ULONG i = 0; i < count; ++i) {
    CK_TOKEN_INFO token;
    if (f->C_GetTokenInfo(slots[i], &token) != CKR_OK ||
        absl::StripTrailingAsciiWhitespace(absl::string_view(
            reinterpret_cast<char*>(token.label), sizeof(token.label))) !=
            label_) {
      continue;
    }
    CK_SESSION_HANDLE session;
    if (f->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                         nullptr, &session) != CKR_OK) {
      return absl::InternalError("C_OpenSession");
    }
    f->C_Login(session, CKU_USER,
               reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin_.data())),
               pin_.size());
    CK_RV rv = f->C_FindObjectsInit(session, nullptr, 0);
    std::vector<CK_OBJECT_HANDLE> all;
    CK_OBJECT_HANDLE batch[64];
    CK_ULONG n = 0;
    while (rv == CKR_OK &&
           (rv = f->C_FindObjects(session, batch, 64, &n)) == CKR_OK && n > 0) {
      all.insert(all.end(), batch, batch + n);
    }
    f->C_FindObjectsFinal(session);
    for (CK_OBJECT_HANDLE h : all) {
      f->C_DestroyObject(session, h);
    }
    f->C_CloseSession(session);
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("token ", label_, " not found"));
}

}  // namespace certstore::testing

namespace certstore::testing {

void SoftHsmStoreTest::SetUp() {
  static auto* tokens = new std::vector<std::unique_ptr<SoftHsmToken>>();
  for (const auto& made : *tokens) {
    if (made->label() == label_) {
      token_ = made.get();
    }
  }
  if (token_ == nullptr) {
    auto created = SoftHsmToken::Create(label_);
    ASSERT_TRUE(created.ok()) << created.status();
    token_ = created->get();
    tokens->push_back(*std::move(created));
  }
  auto store = OpenPkcs11Store(Options());
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

Pkcs11StoreOptions SoftHsmStoreTest::Options() const {
  Pkcs11StoreOptions options = token_->Options();
  options.clock = &clock_;
  options.token_retry_interval = absl::ZeroDuration();
  return options;
}

const TestPki& SoftHsmStoreTest::Pki() {
  static const TestPki* const pki = new TestPki(KeyType::kEcP256);
  return *pki;
}

LeafOptions SoftHsmStoreTest::Leaf(absl::Duration extra) {
  LeafOptions leaf;
  leaf.not_before = TestNow() - absl::Hours(1);
  leaf.not_after = TestNow() + absl::Hours(24 * 7) + extra;
  return leaf;
}

std::shared_ptr<const Entry> SoftHsmStoreTest::Issue(
    const std::string& alias, std::shared_ptr<const Key> key,
    absl::Duration extra) {
  const LeafOptions leaf = Leaf(extra);
  return Pki().MakeEntry(alias, std::move(key), leaf.not_before,
                         leaf.not_after);
}

}  // namespace certstore::testing

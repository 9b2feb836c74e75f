// Pkcs11Store on a real SoftHSM2 token: configuration (URI, options, PIN
// source), refusals, and what CreateKey / Put leave on the token.
#include "certstore/pkcs11_store.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <random>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "api/internal/percent_encoding.h"
#include "certstore/errors.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "pkcs11/module_context.h"
#include "pkcs11/pkcs11_options.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/replay_seed.h"
#include "tests/support/subprocess.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

class Pkcs11StoreTest : public SoftHsmStoreTest {
 protected:
  Pkcs11StoreTest() : SoftHsmStoreTest("store-test") {}

  std::string WritePinFile(const std::string& name, const std::string& content,
                           mode_t mode) {
    const std::string path = WriteTempFile(name, content);
    chmod(path.c_str(), mode);
    return path;
  }
};

// ------------------------------------------------------------------ URI

TEST(Pkcs11UriTest, ParsesTokenModuleAndPinSource) {
  auto options = ParsePkcs11Uri(
      "pkcs11:token=my%20app;object=binding?module-path=/usr/lib/softhsm/"
      "libsofthsm2.so&pin-source=file:/etc/app/pin");
  ASSERT_OK(options);
  EXPECT_EQ(options->token_label, "my app");
  EXPECT_EQ(options->module_path, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(options->pin_file, "/etc/app/pin");
  EXPECT_FALSE(options->allow_import);
}

// Property: attribute values of random bytes, written with the project's
// encoder, parse back to the same bytes.
TEST(Pkcs11UriTest, EncodedRandomAttributeValuesParseBack) {
  std::mt19937_64 rng(ReplaySeed());
  std::uniform_int_distribution<int> byte(1, 255);  // NUL: refused, below
  std::uniform_int_distribution<int> size(1, 32);
  auto random_value = [&] {
    std::string value(size(rng), ' ');
    for (char& c : value) c = static_cast<char>(byte(rng));
    return value;
  };
  for (int round = 0; round < 1000; ++round) {
    const std::string label = random_value();
    const std::string module = "/" + random_value();
    const std::string lock_dir = "/" + random_value();
    const std::string id = random_value();
    const std::string uri = absl::StrCat(
        "pkcs11:token=", internal::PercentEncode(label),
        ";id=", internal::PercentEncodeAll(id),
        ";type=private?module-path=", internal::PercentEncode(module, "/"),
        "&x-lock-dir=", internal::PercentEncode(lock_dir, "/"),
        "&pin-source=file:/p");
    auto options = ParsePkcs11Uri(uri);
    ASSERT_OK(options) << "seed " << ReplaySeed() << " round " << round;
    ASSERT_EQ(options->token_label, label) << "seed " << ReplaySeed();
    ASSERT_EQ(options->module_path, module) << "seed " << ReplaySeed();
    ASSERT_EQ(options->lock_dir, lock_dir) << "seed " << ReplaySeed();
    ASSERT_THAT(
        pkcs11_internal::KeyUri(label, id),
        HasSubstr(absl::StrCat("token=", internal::PercentEncode(label),
                               ";id=", internal::PercentEncodeAll(id))));
  }
  // A NUL is refused in a label or a path, accepted in an id (bytes).
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:token=a%00b?module-path=/m.so"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("%00")));
  EXPECT_OK(ParsePkcs11Uri(
      "pkcs11:token=a;id=%00%01?module-path=/m.so&pin-source=file:/p"));
}

TEST(Pkcs11UriTest, AllowImportIsAVendorQueryAttribute) {
  auto options = ParsePkcs11Uri(
      "pkcs11:token=a?module-path=/m.so&pin-source=file:/"
      "p&x-allow-import=true");
  ASSERT_OK(options);
  EXPECT_TRUE(options->allow_import);
  EXPECT_THAT(ParsePkcs11Uri("pkcs11:token=a?module-path=/m.so&pin-source=file:"
                             "/p&x-allow-import=yes"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("x-allow-import must be true or false")));
}

TEST(Pkcs11UriTest, LockDirIsAVendorQueryAttribute) {
  auto options = ParsePkcs11Uri(
      "pkcs11:token=a?module-path=/m.so&pin-source=file:/p&x-lock-dir=/run/"
      "user/1000/certstore%20locks");
  ASSERT_OK(options);
  EXPECT_EQ(options->lock_dir, "/run/user/1000/certstore locks");
  EXPECT_EQ(ParsePkcs11Uri("pkcs11:token=a?module-path=/m.so")->lock_dir, "");
}

TEST(Pkcs11UriTest, TokenLeaseIsAVendorQueryAttributeInSeconds) {
  auto options = ParsePkcs11Uri(
      "pkcs11:token=a?module-path=/m.so&pin-source=file:/p&x-token-lease=45");
  ASSERT_OK(options);
  EXPECT_EQ(options->token_lease, absl::Seconds(45));
  EXPECT_EQ(ParsePkcs11Uri("pkcs11:token=a?module-path=/m.so")->token_lease,
            absl::ZeroDuration());
  for (const char* bad : {"0", "-5", "3601", "1.5", "30s", ""}) {
    EXPECT_THAT(
        ParsePkcs11Uri(absl::StrCat(
            "pkcs11:token=a?module-path=/m.so&x-token-lease=", bad)),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lease")))
        << bad;
  }
}

TEST(Pkcs11UriTest, ModuleNameIsLookedUp) {
  auto options =
      ParsePkcs11Uri("pkcs11:token=a?module-name=softhsm2&pin-source=file:/p");
  ASSERT_OK(options);
  EXPECT_EQ(options->module_path, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_THAT(
      ParsePkcs11Uri(
          "pkcs11:token=a?module-name=nosuchmodule&pin-source=file:/p"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nosuchmodule")));
}

TEST(Pkcs11UriTest, PinValueIsRefusedAndNeverEchoed) {
  auto options =
      ParsePkcs11Uri("pkcs11:token=a?module-path=/m.so&pin-value=s3cr3t-PIN");
  EXPECT_THAT(options, StatusIs(absl::StatusCode::kInvalidArgument,
                                AllOf(HasSubstr("pin-value"),
                                      Not(HasSubstr("s3cr3t-PIN")))));
}

TEST(Pkcs11UriTest, APinIsNeverQuotedWhereverItSits) {
  // A PIN inside another attribute's value, percent-encoded, in a URI that
  // is not pkcs11: at all, written as pin=, or echoing its own message.
  for (const char* uri :
       {"pkcs11:token=a?module-name=x%3Bpin-value=s3cr3t-PIN",
        "pkcs11:token=a;module-name=x%3bpin-value%3ds3cr3t-PIN;z=%zz",
        "pin-value=s3cr3t-PIN:pkcs11",
        "pkcs11:token=a?module-path=/m.so&pin=s3cr3t-PIN",
        "pkcs11:token=a?passphrase=s3cr3t-PIN&module-path=/m.so",
        "pkcs11:mod\xf4pin=s3cr3t-PIN\": attribute \"mod\xf4pin\": bad"}) {
    SCOPED_TRACE(uri);
    EXPECT_THAT(ParsePkcs11Uri(uri),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         Not(HasSubstr("s3cr3t-PIN"))));
  }
}

TEST(Pkcs11UriTest, BadUrisNameThePart) {
  const struct {
    const char* uri;
    const char* part;
  } kCases[] = {
      {"sqlite:/x", "pkcs11:"},
      {"pkcs11:?module-path=/m.so&pin-source=file:/p", "token="},
      {"pkcs11:token=a?pin-source=file:/p", "module-path"},
      {"pkcs11:token=a;color=red?module-path=/m.so", "color"},
      {"pkcs11:token=a;token=b?module-path=/m.so", "given twice"},
      {"pkcs11:token=a%zz?module-path=/m.so", "%-escape"},
      {"pkcs11:token=a?module-path=/m.so&pin-source=/p", "pin-source"},
      {"pkcs11:token=a?module-path=/m.so&frobnicate=1", "frobnicate"},
      {"pkcs11:token?module-path=/m.so", "no value"},
      {"pkcs11:token=a?module-path=/m.so&x-lock-dir=/a&x-lock-dir=/b",
       "given twice"},
  };
  for (const auto& c : kCases) {
    EXPECT_THAT(ParsePkcs11Uri(c.uri),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.part)))
        << c.uri;
  }
}

TEST_F(Pkcs11StoreTest, UriOpensTheSameToken) {
  auto options = ParsePkcs11Uri(token().Uri());
  ASSERT_OK(options);
  auto store = OpenPkcs11Store(*options);
  ASSERT_OK(store);
  EXPECT_EQ((*store)->Name(), "pkcs11:token=store-test");
}

// ------------------------------------------------------- Open refusals

TEST_F(Pkcs11StoreTest, WrongPinIsPermissionDeniedNamingTheTokenNotThePin) {
  Pkcs11StoreOptions options = Options();
  options.pin_file = WritePinFile("wrong-pin", "99887766\n", 0600);
  EXPECT_THAT(OpenPkcs11Store(options),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("store-test"), HasSubstr("PIN"),
                             Not(HasSubstr("99887766")))));
  // The right PIN still works afterwards (SoftHSM counts, never locks here).
  EXPECT_OK(OpenPkcs11Store(Options()));
}

TEST_F(Pkcs11StoreTest, PinCallbackWorksAndItsErrorsAreReported) {
  Pkcs11StoreOptions options = Options();
  options.pin_file.clear();
  options.pin_callback = [] { return std::string("1234"); };
  EXPECT_OK(OpenPkcs11Store(options));
  options.pin_callback = []() -> absl::StatusOr<std::string> {
    return absl::UnavailableError("vault sealed");
  };
  EXPECT_THAT(OpenPkcs11Store(options),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("vault")));
}

TEST_F(Pkcs11StoreTest, GroupReadablePinFileIsRefused) {
  Pkcs11StoreOptions options = Options();
  options.pin_file = WritePinFile("loose-pin", "1234\n", 0640);
  EXPECT_THAT(
      OpenPkcs11Store(options),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("loose-pin"), Not(HasSubstr("1234\n")))));
}

TEST_F(Pkcs11StoreTest, MissingOrEmptyPinFileIsRefused) {
  Pkcs11StoreOptions options = Options();
  options.pin_file = absl::StrCat(SoftHsmToken::Dir(), "/no-such-pin");
  EXPECT_THAT(OpenPkcs11Store(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-pin")));
  options.pin_file = WritePinFile("empty-pin", "\n", 0600);
  EXPECT_THAT(OpenPkcs11Store(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST_F(Pkcs11StoreTest, MissingModuleIsInvalidArgumentNamingThePath) {
  Pkcs11StoreOptions options = Options();
  options.module_path = "/usr/lib/nowhere/libmissing-pkcs11.so";
  EXPECT_THAT(OpenPkcs11Store(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("/usr/lib/nowhere/libmissing-pkcs11.so")));
  options.module_path = "/etc/hostname";  // exists, not a module
  EXPECT_THAT(
      OpenPkcs11Store(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/etc/hostname")));
}

TEST_F(Pkcs11StoreTest, MissingOptionsAreNamed) {
  Pkcs11StoreOptions options = Options();
  options.token_label.clear();
  EXPECT_THAT(
      OpenPkcs11Store(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token_label")));
  options = Options();
  options.token_label = std::string(33, 't');
  EXPECT_THAT(OpenPkcs11Store(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("32")));
  options = Options();
  options.pin_callback = [] { return std::string("1234"); };
  EXPECT_THAT(
      OpenPkcs11Store(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exactly one")));
  options = Options();
  options.token_lease = absl::Seconds(-1);
  EXPECT_THAT(
      OpenPkcs11Store(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token_lease")));
}

// The lock directory must be an absolute path to a directory only this
// user can write: anyone else could hold the mint locks hostage.
TEST_F(Pkcs11StoreTest, UnsafeOrRelativeLockDirIsRefusedNamingIt) {
  Pkcs11StoreOptions options = Options();
  options.lock_dir = "relative/locks";
  EXPECT_THAT(
      OpenPkcs11Store(options),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("x-lock-dir"), HasSubstr("relative/locks"))));
  const std::string shared = absl::StrCat(SoftHsmToken::Dir(), "/shared-locks");
  ASSERT_EQ(mkdir(shared.c_str(), 0700), 0);
  ASSERT_EQ(chmod(shared.c_str(), 0777), 0);
  options.lock_dir = shared;
  EXPECT_THAT(OpenPkcs11Store(options),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr(shared), HasSubstr("0777"))));
  options.lock_dir = WritePinFile("not-a-dir", "x", 0600);
  EXPECT_THAT(
      OpenPkcs11Store(options),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("not-a-dir"), HasSubstr("not a directory"))));
}

// One lock file per token and alias, of a fixed-length name whatever the
// alias holds (slashes, dots, 1,024 bytes).
// certstore reads the function list libp11 0.4.12 initialised from its
// private context (libp11 has no accessor) and uses it, so that modules
// that hand each caller a new instance (p11-kit-client.so) have one. On
// SoftHSM, which hands every caller one list, it must be that very list:
// a libp11 whose layout differs fails here.
TEST_F(Pkcs11StoreTest, ModuleUsesTheFunctionListLibp11Initialised) {
  auto module = pkcs11_internal::ModuleContext::Acquire(
      std::string(kSoftHsmModule), /*initialize_module=*/true);
  ASSERT_OK(module);
  void* handle = dlopen(std::string(kSoftHsmModule).c_str(),
                        RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr);
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(
      dlsym(handle, "C_GetFunctionList"));
  ASSERT_NE(get_list, nullptr);
  CK_FUNCTION_LIST* list = nullptr;
  ASSERT_EQ(get_list(&list), CKR_OK);
  EXPECT_EQ((*module)->libp11_functions(), list);
  EXPECT_EQ((*module)->functions(), list);
  dlclose(handle);
}

TEST(Pkcs11LockFileTest, NamesArePerTokenAndAlias) {
  using pkcs11_internal::MintLockFileName;
  const std::string name = MintLockFileName("token-a", "svc#att=0");
  EXPECT_THAT(name, MatchesRegex("\\.mint-[0-9a-f]{32}\\.lock"));
  EXPECT_EQ(MintLockFileName("token-a", "svc#att=0"), name);
  EXPECT_NE(MintLockFileName("token-b", "svc#att=0"), name);
  EXPECT_NE(MintLockFileName("token-a", "svc#att=1"), name);
  EXPECT_NE(MintLockFileName("token-a\nsvc", "att=0"),
            MintLockFileName("token-a", "svc\natt=0"));
  EXPECT_EQ(MintLockFileName("t", "../../" + std::string(1024, 'x')).size(),
            name.size());
}

// An absent lock directory is created, private.
TEST_F(Pkcs11StoreTest, AbsentLockDirIsCreatedPrivate) {
  Pkcs11StoreOptions options = Options();
  options.lock_dir = absl::StrCat(SoftHsmToken::Dir(), "/new/lock/dir");
  auto store = OpenPkcs11Store(options);
  ASSERT_OK(store);
  struct stat st;
  ASSERT_EQ(stat(options.lock_dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_OK((*store)->LockAlias("fresh#att=0", absl::Seconds(1)));
}

// Without lock_dir the locks go under the state directory, which needs
// XDG_STATE_HOME or HOME.
TEST_F(Pkcs11StoreTest, DefaultLockDirIsUnderTheStateDirectory) {
  const char* home = getenv("HOME");
  const std::string saved_home = home != nullptr ? home : "";
  Pkcs11StoreOptions options = Options();
  options.lock_dir.clear();
  unsetenv("XDG_STATE_HOME");
  unsetenv("HOME");
  EXPECT_THAT(
      OpenPkcs11Store(options),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("XDG_STATE_HOME"), HasSubstr("x-lock-dir"))));
  if (home != nullptr) {
    setenv("HOME", saved_home.c_str(), 1);
  }
  const std::string state = absl::StrCat(SoftHsmToken::Dir(), "/state");
  setenv("XDG_STATE_HOME", state.c_str(), 1);
  auto store = OpenPkcs11Store(options);
  unsetenv("XDG_STATE_HOME");
  ASSERT_OK(store);
  struct stat st;
  ASSERT_EQ(stat((state + "/certstore/pkcs11-locks").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(Pkcs11StoreTest, AbsentTokenIsUnavailable) {
  Pkcs11StoreOptions options = Options();
  options.token_label = "no-such-token";
  EXPECT_THAT(OpenPkcs11Store(options), StatusIs(absl::StatusCode::kUnavailable,
                                                 HasSubstr("no-such-token")));
}

// ------------------------------------------------------ keys on the token

TEST_F(Pkcs11StoreTest, KeyUrisAreRfc7512AndP11toolFindsTheKey) {
  auto key = store_->CreateKey("uri#att=0", KeySpec{KeyType::kEcP256});
  ASSERT_OK(key);
  const std::string uri = (*key)->location();
  // Every id byte percent-encoded, as RFC 7512 requires.
  EXPECT_THAT(
      uri, ::testing::MatchesRegex("pkcs11:token=store-test;id=(%[0-9A-F]{2})+;"
                                   "type=private"));
  ProcessOptions options;
  options.env = {"GNUTLS_PIN=" + token().pin()};
  ProcessResult found =
      RunProcess({"p11tool", "--provider=" + std::string(kSoftHsmModule),
                  "--login", "--list-privkeys", uri},
                 options);
  ASSERT_EQ(found.exit_code, 0) << found.err;
  EXPECT_THAT(found.out, HasSubstr("Type: Private key"));
  EXPECT_THAT(found.out, HasSubstr("uri#att=0"));
  // Exactly one object: the id selects it, not the token's whole list.
  EXPECT_EQ(found.out.find("Object 1:"), std::string::npos) << found.out;
}

TEST_F(Pkcs11StoreTest, CreatedKeysAreSensitiveAndNeverExtractable) {
  auto ec = store_->CreateKey("attrs#att=0", KeySpec{KeyType::kEcP256});
  ASSERT_OK(ec);
  EXPECT_THAT((*ec)->location(), HasSubstr("pkcs11:token=store-test;id="));
  EXPECT_THAT((*ec)->ExportPkcs8Der(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(KeyToPem(**ec), Not(IsOk()));
  auto listing = token().Pkcs11Tool("--list-objects --type privkey");
  ASSERT_OK(listing);
  EXPECT_THAT(*listing, HasSubstr("attrs#att=0"));
  EXPECT_THAT(*listing, HasSubstr("sensitive"));
  EXPECT_THAT(*listing, HasSubstr("never extractable"));
  EXPECT_THAT(store_->DeleteAllForAlias("attrs#att=0"), IsOkAndHolds(0));
  EXPECT_THAT(token().Pkcs11Tool("--list-objects --type privkey"),
              IsOkAndHolds(Not(HasSubstr("attrs#att=0"))));
}

// A spare (KeySpec::spare, what the token client makes ahead of its next
// re-mint) is a key pair on the token like any other, which the alias's
// eviction leaves; the Put that uses it makes it the alias's key; one left
// unused for a day (its process died) is listed as broken and removed by
// RemoveBroken, as `certstore gc` does.
TEST_F(Pkcs11StoreTest, SpareKeysSurviveEvictionAreAdoptedAndStaleOnesGo) {
  const std::string alias = "spare#att=0";
  KeySpec spare_spec;
  spare_spec.spare = true;
  auto spare = store_->CreateKey(alias, spare_spec);
  ASSERT_OK(spare);
  auto listing = token().Pkcs11Tool("--list-objects --type privkey");
  ASSERT_OK(listing);
  EXPECT_THAT(*listing, HasSubstr("certstore-spare:"));
  EXPECT_THAT(*listing, HasSubstr("never extractable"));
  EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(0));
  EXPECT_THAT(store_->Find(alias), StatusIs(absl::StatusCode::kNotFound));
  ListOptions all;
  all.include_broken = true;
  auto count_listed = [&] {
    auto listed = store_->List(all);
    EXPECT_OK(listed.status());
    int n = 0;
    for (const EntryInfo& info :
         listed.ok() ? *listed : std::vector<EntryInfo>{}) {
      n += info.alias == alias ? 1 : 0;
    }
    return n;
  };
  EXPECT_EQ(count_listed(), 0);  // a fresh spare is nobody's problem
  EXPECT_THAT(store_->RemoveBroken(alias, {}), IsOkAndHolds(0));

  // Adopted by the Put that uses it: the alias's key from then on.
  ASSERT_OK(store_->Put(Issue(alias, *spare)));
  auto found = store_->Find(alias);
  ASSERT_OK(found);
  EXPECT_OK(store_->ProbeKey(**found));
  EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(1));
  EXPECT_THAT(token().Pkcs11Tool("--list-objects --type privkey"),
              IsOkAndHolds(Not(HasSubstr("certstore-spare:"))));

  // Left unused for a day: listed, then removed.
  ASSERT_OK(store_->CreateKey(alias, spare_spec).status());
  clock_.Advance(absl::Hours(25));
  auto listed = store_->List(all);
  ASSERT_OK(listed);
  ASSERT_EQ(count_listed(), 1);
  for (const EntryInfo& info : *listed) {
    if (info.alias == alias) {
      EXPECT_THAT(info.problem, HasSubstr("unused spare key"));
    }
  }
  EXPECT_THAT(store_->RemoveBroken(alias, {}), IsOkAndHolds(1));
  EXPECT_EQ(count_listed(), 0);
  EXPECT_THAT(token().Pkcs11Tool("--list-objects --type privkey"),
              IsOkAndHolds(Not(HasSubstr("certstore-spare:"))));

  // A spare left by a store that went away (its process exited) is handed
  // out again by the next store's CreateKey(spare) rather than joined by
  // another; a store never hands out a spare twice (the one it gave may be
  // about to become an entry's key). An RSA spare is not an EC one.
  auto left = store_->CreateKey(alias, spare_spec);
  auto own_again = store_->CreateKey(alias, spare_spec);
  ASSERT_OK(left);
  ASSERT_OK(own_again);
  EXPECT_NE((*left)->location(), (*own_again)->location());
  clock_.Advance(absl::Seconds(1));
  auto next_store = OpenPkcs11Store(Options());
  ASSERT_OK(next_store);
  auto reused = (*next_store)->CreateKey(alias, spare_spec);
  auto reused_too = (*next_store)->CreateKey(alias, spare_spec);
  ASSERT_OK(reused);
  ASSERT_OK(reused_too);
  const std::set<std::string> waiting = {(*left)->location(),
                                         (*own_again)->location()};
  EXPECT_EQ(
      std::set<std::string>({(*reused)->location(), (*reused_too)->location()}),
      waiting);
  KeySpec rsa_spare = spare_spec;
  rsa_spare.type = KeyType::kRsa2048;
  auto rsa = (*next_store)->CreateKey(alias, rsa_spare);
  ASSERT_OK(rsa);
  EXPECT_EQ(waiting.count((*rsa)->location()), 0u);
  // Spares sign like any token key (a CSR is their first use).
  EXPECT_NE((*rsa)->evp_pkey(), nullptr);
  EXPECT_NE((*reused)->evp_pkey(), nullptr);
  EXPECT_OK((*rsa)->Sign("to be signed").status());
  clock_.Advance(absl::Hours(25));
  EXPECT_THAT(store_->RemoveBroken(alias, {}), IsOkAndHolds(3));
}

TEST_F(Pkcs11StoreTest, SoftwareKeyIsRefusedWithoutAllowImport) {
  auto entry = Issue("import#att=0", PoolKey(KeyType::kEcP256, 0));
  EXPECT_THAT(
      store_->Put(entry),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("import#att=0"), HasSubstr("allow_import"),
                     HasSubstr("store-test"))));
  EXPECT_THAT(store_->Find("import#att=0"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(Pkcs11StoreTest, ImportedKeysAreServedFromTheTokenAfterReopen) {
  Pkcs11StoreOptions options = Options();
  options.allow_import = true;
  auto importer = OpenPkcs11Store(options);
  ASSERT_OK(importer);
  for (KeyType type : {KeyType::kEcP256, KeyType::kRsa2048}) {
    const std::string alias = absl::StrCat("imported-", KeyTypeName(type));
    auto entry = Issue(alias, PoolKey(type, 0));
    ASSERT_OK((*importer)->Put(entry));
    // A new store reads it back: the key is the token copy.
    auto found = store_->Find(alias);
    ASSERT_OK(found);
    EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
    EXPECT_THAT((*found)->key()->location(), HasSubstr("pkcs11:token="));
    EXPECT_EQ((*found)->key()->algorithm(), KeyTypeName(type));
    EXPECT_EQ((*found)->chain_der(), entry->chain_der());
    EXPECT_OK(store_->ProbeKey(**found));
    EXPECT_NE((*found)->key()->evp_pkey(), nullptr);
    EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(1));
  }
}

TEST_F(Pkcs11StoreTest, TokenKeyEntryRoundTripsThroughANewStore) {
  auto key = store_->CreateKey("roundtrip#att=0", KeySpec{KeyType::kEcP256});
  ASSERT_OK(key);
  EntryParts parts;
  parts.alias = "roundtrip#att=0";
  parts.chain_der = Pki().IssueChain(**key, Leaf());
  parts.key = *key;
  parts.metadata = {"https://token.example/", "client-1", "tenant-1"};
  parts.created_at = TestNow() - absl::Minutes(5);
  auto entry = Entry::Create(std::move(parts));
  ASSERT_OK(entry);
  ASSERT_OK(store_->Put(*entry));
  auto other = OpenPkcs11Store(Options());
  ASSERT_OK(other);
  auto found = (*other)->Find("roundtrip#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->metadata(), (*entry)->metadata());
  EXPECT_EQ((*found)->created_at(), (*entry)->created_at());
  EXPECT_EQ((*found)->chain_der(), (*entry)->chain_der());
  EXPECT_EQ((*found)->key()->public_key_der(), (*key)->public_key_der());
  EXPECT_OK((*other)->ProbeKey(**found));
  auto listed = (*other)->List({"roundtrip"});
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key_location, (*key)->location());
  EXPECT_THAT((*other)->DeleteAllForAlias("roundtrip#att=0"), IsOkAndHolds(1));
}

TEST_F(Pkcs11StoreTest, DeletedTokenKeyCannotBePutEvenWithImport) {
  auto key = store_->CreateKey("elsewhere#att=0", KeySpec{KeyType::kEcP256});
  ASSERT_OK(key);
  auto entry = Issue("elsewhere#att=0", *key);
  // A store that would import: a token key cannot leave its token.
  Pkcs11StoreOptions options = Options();
  options.allow_import = true;
  auto importer = OpenPkcs11Store(options);
  ASSERT_OK(importer);
  ASSERT_OK(store_->DeleteAllForAlias("elsewhere#att=0"));
  EXPECT_THAT((*importer)->Put(entry),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no longer on the token")));
}

}  // namespace
}  // namespace certstore::testing

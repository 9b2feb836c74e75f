// Interop with the real openssl CLI: files the store writes are read by
// `openssl x509`, `openssl pkey` and `openssl verify`; a pair the CLI makes,
// put in the documented layout with the documented shell recipe, is found.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "certstore/chain.h"
#include "certstore/openssl_types.h"
#include "tests/filesystem/pem_dir_fixture.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

// The recipe of docs/filesystem-store.md ("Adding a pair by hand"), run
// with STORE, ALIAS and WORK in the environment; $1 holds the `openssl req`
// key options, $2 optionally converts the key (e.g. to a traditional or an
// encrypted form).
constexpr char kRecipe[] = R"sh(
set -eu
cd "$WORK"
openssl req -x509 $1 -nodes -keyout key.pem -out cert.pem \
  -subj "/CN=handmade" -days 30 2>&1
if [ -n "${2:-}" ]; then eval "$2"; fi
dir="$STORE/a-$(printf %s "$ALIAS" | basenc --base64url -w0 | tr -d =)"
mkdir -p -m 700 "$dir"
(umask 077 && cat cert.pem key.pem > "$dir/handmade.pem")
rm key.pem
)sh";

constexpr char kEc[] = "-newkey ec -pkeyopt ec_paramgen_curve:P-256";

class PemDirInteropTest : public PemDirTest {
 protected:
  CommandResult Openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    return RunCommand(args);
  }

  // Runs kRecipe; the certificate it made, as DER. Moves the store's clock
  // a minute past now, into the certificate's validity.
  std::string MakeByHand(const std::string& alias, const std::string& key_opt,
                         const std::string& convert = "") {
    const std::string work = PathIn(temp_, "work");
    mkdir(work.c_str(), 0700);
    CommandResult made =
        RunCommand({"sh", "-c", kRecipe, "recipe", key_opt, convert},
                   {"STORE=" + StoreDir(), "ALIAS=" + alias, "WORK=" + work});
    EXPECT_EQ(made.exit_code, 0) << made.output;
    clock_.Set(absl::Now() + absl::Minutes(1));
    auto chain = PemToDerChain(ReadFile(work + "/cert.pem"));
    EXPECT_OK(chain);
    return chain.ok() ? (*chain)[0] : "";
  }
};

// "sha256 Fingerprint=AB:CD:…" as the raw digest.
std::string FingerprintBytes(const std::string& output) {
  const size_t eq = output.find('=');
  std::string hex = absl::StrReplaceAll(
      absl::StripAsciiWhitespace(output.substr(eq + 1)), {{":", ""}});
  return absl::HexStringToBytes(hex);
}

TEST_F(PemDirInteropTest, OpensslReadsTheCertificateChainAndKeyOfAStoredFile) {
  const std::string root = PathIn(temp_, "root.pem");
  WriteFile(root, DerChainToPem({Pki().root_der()}));
  for (KeyType type : {KeyType::kEcP256, KeyType::kRsa2048}) {
    auto entry =
        Fresh(std::string(KeyTypeName(type)), 0, absl::ZeroDuration(), type);
    ASSERT_OK(store_->Put(entry));
    const std::string file = FileOf(*entry);

    CommandResult x509 =
        Openssl({"x509", "-in", file, "-noout", "-fingerprint", "-sha256"});
    ASSERT_EQ(x509.exit_code, 0) << x509.output;
    std::string digest;
    ASSERT_TRUE(absl::WebSafeBase64Unescape(entry->thumbprint(), &digest));
    EXPECT_EQ(FingerprintBytes(x509.output), digest);

    CommandResult pkey = Openssl({"pkey", "-in", file, "-pubout"});
    ASSERT_EQ(pkey.exit_code, 0) << pkey.output;
    UniqueBio bio(BIO_new_mem_buf(pkey.output.data(),
                                  static_cast<int>(pkey.output.size())));
    UniqueEvpPkey pub(
        PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    ASSERT_NE(pub, nullptr) << pkey.output;
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(pub.get(), &der);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(der), len),
              entry->key()->public_key_der());
    OPENSSL_free(der);

    // Leaf first, then the intermediate: a complete chain to the root.
    CommandResult verify = Openssl(
        {"verify", "-attime", absl::StrCat(absl::ToUnixSeconds(clock_.Now())),
         "-CAfile", root, "-untrusted", file, file});
    EXPECT_EQ(verify.exit_code, 0) << verify.output;
  }
}

TEST_F(PemDirInteropTest, PairMadeWithTheOpensslCliIsFound) {
  const std::string alias = "handmade#att=0";
  const std::string leaf = MakeByHand(alias, kEc);
  auto found = store_->Find(alias);
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), Thumbprint(leaf));
  EXPECT_EQ((*found)->key()->algorithm(), "EC-P256");
  EXPECT_OK(store_->ProbeKey(**found));
  struct stat st;
  ASSERT_EQ(stat((DirOf(alias) + "/handmade.pem").c_str(), &st), 0);
  EXPECT_EQ((*found)->created_at(), absl::TimeFromTimespec(st.st_mtim));
  auto listed = store_->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].alias, alias);
}

TEST_F(PemDirInteropTest, RsaAndTraditionalKeysFromTheCliAreFound) {
  const std::string rsa = MakeByHand("rsa", "-newkey rsa:2048");
  const std::string traditional = MakeByHand(
      "traditional", kEc,
      "openssl ec -in key.pem -out k2.pem 2>/dev/null && mv k2.pem key.pem "
      "&& grep -q 'BEGIN EC PRIVATE KEY' key.pem");
  auto found_rsa = store_->Find("rsa");
  ASSERT_OK(found_rsa);
  EXPECT_EQ((*found_rsa)->thumbprint(), Thumbprint(rsa));
  EXPECT_OK(store_->ProbeKey(**found_rsa));
  auto found_traditional = store_->Find("traditional");
  ASSERT_OK(found_traditional);
  EXPECT_EQ((*found_traditional)->thumbprint(), Thumbprint(traditional));
  EXPECT_OK(store_->ProbeKey(**found_traditional));
}

TEST_F(PemDirInteropTest, EncryptedKeyIsDataLossAndThePassphraseIsNotShown) {
  MakeByHand("encrypted", kEc,
             "openssl pkey -in key.pem -aes256 -passout pass:hunter2 "
             "-out k2.pem && mv k2.pem key.pem");
  EXPECT_THAT(store_->Find("encrypted"),
              StatusIs(absl::StatusCode::kDataLoss,
                       ::testing::AllOf(HasSubstr("encrypted"),
                                        HasSubstr("handmade.pem"),
                                        Not(HasSubstr("hunter2")))));
}

}  // namespace
}  // namespace certstore::testing

// Interop with OpenSC's pkcs11-tool, both ways, on a real SoftHSM token.
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "certstore/pkcs11_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "tests/pkcs11/softhsm_token.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;

class Pkcs11InteropTest : public SoftHsmStoreTest {
 protected:
  Pkcs11InteropTest() : SoftHsmStoreTest("interop") {}
};

// The object of `listing` (pkcs11-tool --list-objects) that carries
// `label`, as the block of lines from its header to the next header.
std::string ObjectBlock(const std::string& listing, const std::string& header,
                        const std::string& label) {
  size_t at = 0;
  while ((at = listing.find(header, at)) != std::string::npos) {
    size_t end = listing.find(" Object", at + header.size());
    const std::string block = listing.substr(at, end - at);
    if (block.find(absl::StrCat("label:      ", label)) != std::string::npos) {
      return block;
    }
    at += header.size();
  }
  return "";
}

TEST_F(Pkcs11InteropTest, StoreObjectsAreListedByPkcs11Tool) {
  const std::string alias = "listed#att=0";
  auto key = store_->CreateKey(alias, KeySpec{KeyType::kEcP256});
  ASSERT_OK(key);
  EntryParts parts;
  parts.alias = alias;
  parts.chain_der = Pki().IssueChain(**key, Leaf());
  parts.key = *key;
  auto entry = Entry::Create(std::move(parts));
  ASSERT_OK(entry);
  ASSERT_OK(store_->Put(*entry));
  const std::string id = KeyIdHex(**key);

  auto listing = token().Pkcs11Tool("--list-objects");
  ASSERT_OK(listing);
  const std::string priv =
      ObjectBlock(*listing, "Private Key Object; EC", alias);
  EXPECT_THAT(priv, HasSubstr(absl::StrCat("ID:         ", id)));
  EXPECT_THAT(priv, HasSubstr("sign"));
  EXPECT_THAT(priv, HasSubstr("never extractable"));
  EXPECT_THAT(ObjectBlock(*listing, "Public Key Object; EC", alias),
              HasSubstr(absl::StrCat("ID:         ", id)));
  const std::string cert = ObjectBlock(*listing, "Certificate Object", alias);
  EXPECT_THAT(cert, HasSubstr("X.509"));
  EXPECT_THAT(cert, HasSubstr(absl::StrCat("ID:         ", id)));
  EXPECT_THAT(*listing, HasSubstr("Data object"));
  EXPECT_THAT(*listing, HasSubstr("certstore"));
  // The certificate pkcs11-tool reads back is the leaf.
  const std::string out = absl::StrCat(SoftHsmToken::Dir(), "/listed.der");
  ASSERT_OK(token().Pkcs11Tool(absl::StrCat("--read-object --type cert --id ",
                                            id, " --output-file ", out)));
  std::ifstream in(out, std::ios::binary);
  std::stringstream der;
  der << in.rdbuf();
  EXPECT_EQ(der.str(), (*entry)->chain_der()[0]);
  EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(1));
  EXPECT_THAT(token().Pkcs11Tool("--list-objects"),
              IsOkAndHolds(::testing::Not(HasSubstr(alias))));
}

TEST_F(Pkcs11InteropTest, Pkcs11ToolKeyPairAndCertificateAreFoundAndProbe) {
  const struct {
    const char* key_type;
    const char* id;
    const char* algorithm;
  } kCases[] = {{"EC:prime256v1", "0a01", "EC-P256"},
                {"rsa:2048", "0a02", "RSA-2048"}};
  for (const auto& c : kCases) {
    const std::string alias = absl::StrCat("tool-", c.id, "#att=0");
    ASSERT_OK(
        token().Pkcs11Tool(absl::StrCat("--keypairgen --key-type ", c.key_type,
                                        " --id ", c.id, " --label ", alias)));
    const std::string pub =
        absl::StrCat(SoftHsmToken::Dir(), "/", c.id, ".pub");
    ASSERT_OK(token().Pkcs11Tool(absl::StrCat(
        "--read-object --type pubkey --id ", c.id, " --output-file ", pub)));
    std::ifstream in(pub, std::ios::binary);
    std::stringstream spki;
    spki << in.rdbuf();
    auto public_key = PublicOnlyKey(spki.str());
    ASSERT_OK(public_key);
    const std::vector<std::string> chain =
        Pki().IssueChain(**public_key, Leaf());
    const std::string cert =
        WriteTempFile(absl::StrCat(c.id, ".der"), chain[0]);
    ASSERT_OK(token().Pkcs11Tool(absl::StrCat("--write-object ", cert,
                                              " --type cert --id ", c.id,
                                              " --label ", alias)));

    auto found = store_->Find(alias);
    ASSERT_OK(found) << c.key_type;
    EXPECT_EQ((*found)->chain_der(), std::vector<std::string>{chain[0]});
    EXPECT_EQ((*found)->key()->public_key_der(), spki.str());
    EXPECT_EQ((*found)->key()->algorithm(), c.algorithm);
    EXPECT_EQ(KeyIdHex(*(*found)->key()), c.id);
    EXPECT_OK(store_->ProbeKey(**found)) << c.key_type;
    EXPECT_NE((*found)->key()->evp_pkey(), nullptr);
    auto listed = store_->List({alias});
    ASSERT_OK(listed);
    EXPECT_EQ(listed->size(), 1u);
    EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(1));
  }
}

}  // namespace
}  // namespace certstore::testing

// Keys and tokens that vanish under a live Pkcs11Store: deleted or
// re-created by another process (pkcs11-tool), the token deleted and
// re-initialised (softhsm2-util). Also built with AddressSanitizer
// (pkcs11_vanish_asan_test): entries taken before a libp11 refresh must
// keep working or fail with a status, never touch freed memory.
#include <malloc.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "certstore/pkcs11_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "tests/pkcs11/softhsm_token.h"

namespace certstore::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

// glibc fills freed memory with this byte: a use of libp11 objects after
// their slot list was released reads garbage and fails loudly even without
// AddressSanitizer (which cannot instrument libp11 itself).
[[maybe_unused]] const int kPerturb = mallopt(M_PERTURB, 0xa5);

class Pkcs11VanishTest : public SoftHsmStoreTest {
 protected:
  Pkcs11VanishTest() : SoftHsmStoreTest("vanish") {}

  // CreateKey + certificate + Put: an entry whose key is on the token.
  std::shared_ptr<const Entry> PutTokenEntry(const std::string& alias) {
    auto key = store_->CreateKey(alias, KeySpec{KeyType::kEcP256});
    EXPECT_OK(key);
    if (!key.ok()) {
      return nullptr;
    }
    auto entry = Issue(alias, *key);
    EXPECT_OK(store_->Put(entry));
    return entry;
  }

  // What another process does: delete the alias's key pair and certificate
  // (by id), generate a new pair under the same label and id, certify it
  // and write the certificate. Returns the new public key.
  std::string RecreateWithPkcs11Tool(const std::string& alias,
                                     const std::string& id) {
    for (const char* type : {"privkey", "pubkey", "cert"}) {
      EXPECT_OK(token().Pkcs11Tool(
          absl::StrCat("--delete-object --type ", type, " --id ", id)));
    }
    EXPECT_OK(token().Pkcs11Tool(
        absl::StrCat("--keypairgen --key-type EC:prime256v1 --id ", id,
                     " --label ", alias)));
    const std::string pub = absl::StrCat(SoftHsmToken::Dir(), "/", id, ".pub");
    EXPECT_OK(token().Pkcs11Tool(absl::StrCat(
        "--read-object --type pubkey --id ", id, " --output-file ", pub)));
    std::ifstream in(pub, std::ios::binary);
    std::stringstream spki;
    spki << in.rdbuf();
    auto public_key = PublicOnlyKey(spki.str());
    EXPECT_OK(public_key);
    const std::string cert =
        WriteTempFile(absl::StrCat(id, ".der"),
                      Pki().IssueChain(**public_key, Leaf(absl::Hours(1)))[0]);
    EXPECT_OK(token().Pkcs11Tool(absl::StrCat("--write-object ", cert,
                                              " --type cert --id ", id,
                                              " --label ", alias)));
    return spki.str();
  }
};

TEST_F(Pkcs11VanishTest, DeletedKeyFailsProbeIsNoLongerServedAndRecovers) {
  const std::string alias = "gone#att=0";
  auto entry = PutTokenEntry(alias);
  ASSERT_NE(entry, nullptr);
  auto found = store_->Find(alias);
  ASSERT_OK(found);
  ASSERT_OK(store_->ProbeKey(**found));

  ASSERT_OK(token().Pkcs11Tool(absl::StrCat(
      "--delete-object --type privkey --id ", KeyIdHex(*entry->key()))));

  EXPECT_THAT(store_->ProbeKey(**found),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(alias), HasSubstr("cannot sign"))));
  // The cached pair is checked on use: an unusable pair is not served.
  EXPECT_THAT(store_->Find(alias), StatusIs(absl::StatusCode::kNotFound));
  // The token client's recovery: evict, mint, put.
  EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(1));
  auto fresh = PutTokenEntry(alias);
  ASSERT_NE(fresh, nullptr);
  auto again = store_->Find(alias);
  ASSERT_OK(again);
  EXPECT_EQ((*again)->thumbprint(), fresh->thumbprint());
  EXPECT_OK(store_->ProbeKey(**again));
}

TEST_F(Pkcs11VanishTest, KeyDeletedByAnotherProcessIsNoticedByAnotherStore) {
  const std::string alias = "other-store#att=0";
  auto entry = PutTokenEntry(alias);
  ASSERT_NE(entry, nullptr);
  // A second store loads the entry from the token (its own cache).
  Pkcs11StoreOptions options = token().Options();
  options.clock = &clock_;
  auto reader = OpenPkcs11Store(options);
  ASSERT_OK(reader);
  auto loaded = (*reader)->Find(alias);
  ASSERT_OK(loaded);
  ASSERT_OK((*reader)->ProbeKey(**loaded));
  ASSERT_OK(token().Pkcs11Tool(absl::StrCat(
      "--delete-object --type privkey --id ", KeyIdHex(*entry->key()))));
  EXPECT_THAT((*reader)->ProbeKey(**loaded),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*reader)->Find(alias), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT((*reader)->DeleteAllForAlias(alias), IsOkAndHolds(1));
}

TEST_F(Pkcs11VanishTest, RecreatedKeyIsFoundAsTheNewKeyNeverTheDeadOne) {
  const std::string alias = "reborn#att=0";
  auto entry = PutTokenEntry(alias);
  ASSERT_NE(entry, nullptr);
  auto old = store_->Find(alias);
  ASSERT_OK(old);
  ASSERT_OK(store_->ProbeKey(**old));  // libp11 has listed the old key
  const std::string id = KeyIdHex(*entry->key());

  const std::string new_public_key = RecreateWithPkcs11Tool(alias, id);

  auto found = store_->Find(alias);
  ASSERT_OK(found);
  EXPECT_NE((*found)->thumbprint(), entry->thumbprint());
  EXPECT_EQ((*found)->key()->public_key_der(), new_public_key);
  EXPECT_EQ(KeyIdHex(*(*found)->key()), id);
  EXPECT_OK(store_->ProbeKey(**found));  // signs with the new key
  // The entry taken before: a status, never the new key, never a crash.
  EXPECT_THAT(store_->ProbeKey(**old),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  old->reset();
  entry.reset();
  // Generations freed by now; the new key keeps signing.
  EXPECT_OK(store_->ProbeKey(**found));
  EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(1));
}

TEST_F(Pkcs11VanishTest, EntryTakenBeforeARefreshKeepsWorking) {
  auto held = PutTokenEntry("held#att=0");
  ASSERT_NE(held, nullptr);
  auto held_found = store_->Find("held#att=0");
  ASSERT_OK(held_found);
  EVP_PKEY* held_pkey = (*held_found)->key()->evp_pkey();
  ASSERT_NE(held_pkey, nullptr);
  // Another alias's key is re-created under its id: loading it makes the
  // store enumerate a fresh libp11 slot list (a refresh).
  auto victim = PutTokenEntry("victim#att=0");
  ASSERT_NE(victim, nullptr);
  ASSERT_OK(store_->ProbeKey(*victim));
  RecreateWithPkcs11Tool("victim#att=0", KeyIdHex(*victim->key()));
  auto reborn = store_->Find("victim#att=0");
  ASSERT_OK(reborn);
  ASSERT_OK(store_->ProbeKey(**reborn));
  victim.reset();
  // The held entry's slot list is still alive: it signs, also through the
  // EVP_PKEY a TLS stack would use.
  EXPECT_OK(store_->ProbeKey(**held_found));
  EXPECT_EQ((*held_found)->key()->evp_pkey(), held_pkey);
  EXPECT_OK((*held_found)->key()->Sign("after refresh"));
  // Drop everything; later operations run on the new list only.
  held_found->reset();
  held.reset();
  EXPECT_OK(store_->ProbeKey(**reborn));
  EXPECT_OK(store_->DeleteAllForAlias("held#att=0"));
  EXPECT_OK(store_->DeleteAllForAlias("victim#att=0"));
}

TEST_F(Pkcs11VanishTest, TokenDeletedAndReinitialisedUnderALiveStore) {
  const std::string alias = "reinit#att=0";
  auto entry = PutTokenEntry(alias);
  ASSERT_NE(entry, nullptr);
  auto found = store_->Find(alias);
  ASSERT_OK(found);
  ASSERT_OK(store_->ProbeKey(**found));

  ASSERT_OK(token().DeleteToken());
  EXPECT_THAT(
      store_->Find(alias).status().code(),
      AnyOf(absl::StatusCode::kUnavailable, absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->ProbeKey(**found), Not(IsOk()));
  EXPECT_THAT(store_->CreateKey(alias, KeySpec{}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("vanish")));
  EXPECT_THAT(store_->List({}), StatusIs(absl::StatusCode::kUnavailable));

  ASSERT_OK(token().Reinitialize());
  // The re-created token is empty; the store finds it again by label.
  EXPECT_THAT(store_->Find(alias), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->ProbeKey(**found), Not(IsOk()));
  auto fresh = PutTokenEntry(alias);
  ASSERT_NE(fresh, nullptr);
  auto again = store_->Find(alias);
  ASSERT_OK(again);
  EXPECT_EQ((*again)->thumbprint(), fresh->thumbprint());
  EXPECT_OK(store_->ProbeKey(**again));
  found->reset();
  entry.reset();
  EXPECT_OK(store_->ProbeKey(**again));
  EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(1));
}

}  // namespace
}  // namespace certstore::testing

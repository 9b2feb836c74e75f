// Unit tests for certstore/entry.h: building and restoring entries, key
// checks, the servability rule and listings.
#include "certstore/entry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "certstore/backend_author.h"
#include "certstore/chain.h"
#include "certstore/key.h"
#include "certstore/testing/failing_key.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string ToDer(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  std::string out =
      len > 0 ? std::string(reinterpret_cast<char*>(der), len) : std::string();
  OPENSSL_free(der);
  return out;
}

class EntryTest : public ::testing::Test {
 protected:
  EntryTest()
      : ec_key_(GenerateSoftwareKey(KeySpec{KeyType::kEcP256})),
        not_before_(TestNow() - absl::Hours(1)),
        not_after_(TestNow() + absl::Hours(72)) {}

  void SetUp() override { ASSERT_OK(ec_key_); }

  std::vector<std::string> ChainFor(const Key& key) const {
    LeafOptions options;
    options.not_before = not_before_;
    options.not_after = not_after_;
    return pki_.IssueChain(key, options);
  }

  // Parts of a well-formed entry whose leaf certifies `key`.
  EntryParts PartsFor(std::shared_ptr<const Key> key) const {
    EntryParts parts;
    parts.alias = "app#att=0";
    parts.chain_der = ChainFor(*key);
    parts.key = std::move(key);
    parts.metadata = {"https://token.test/tenant", "client-1", "tenant-1"};
    parts.created_at = TestNow() - absl::Minutes(5);
    return parts;
  }

  EntryParts EcParts() const { return PartsFor(*ec_key_); }

  LeafFacts FactsFor(const EntryParts& parts) const {
    return {not_before_, not_after_, Thumbprint(parts.chain_der[0])};
  }

  std::shared_ptr<const Entry> CreateOrDie(EntryParts parts) const {
    absl::StatusOr<std::shared_ptr<const Entry>> entry =
        Entry::Create(std::move(parts));
    EXPECT_OK(entry);
    return entry.ok() ? *entry : nullptr;
  }

  TestPki pki_;
  absl::StatusOr<std::shared_ptr<const Key>> ec_key_;
  absl::Time not_before_;
  absl::Time not_after_;
};

TEST_F(EntryTest, CreateFillsEveryField) {
  EntryParts parts = EcParts();
  const EntryParts copy = parts;

  absl::StatusOr<std::shared_ptr<const Entry>> created =
      Entry::Create(std::move(parts));
  ASSERT_OK(created);
  const Entry& entry = **created;
  EXPECT_EQ(entry.alias(), "app#att=0");
  EXPECT_EQ(entry.chain_der(), copy.chain_der);
  EXPECT_EQ(entry.key(), copy.key);
  EXPECT_EQ(entry.thumbprint(), Thumbprint(copy.chain_der[0]));
  EXPECT_EQ(entry.not_before(), not_before_);
  EXPECT_EQ(entry.not_after(), not_after_);
  EXPECT_EQ(entry.metadata(), copy.metadata);
  EXPECT_EQ(entry.created_at(), copy.created_at);

  absl::StatusOr<absl::Span<X509* const>> chain = entry.Chain();
  ASSERT_OK(chain);
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ(ToDer((*chain)[0]), copy.chain_der[0]);
  EXPECT_EQ(ToDer((*chain)[1]), copy.chain_der[1]);

  absl::StatusOr<std::string> spki = entry.LeafPublicKeyDer();
  ASSERT_OK(spki);
  EXPECT_EQ(*spki, (*ec_key_)->public_key_der());
}

TEST_F(EntryTest, CreateWithLeafOnlyChain) {
  EntryParts parts = EcParts();
  parts.chain_der.resize(1);
  std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
  ASSERT_NE(entry, nullptr);
  absl::StatusOr<absl::Span<X509* const>> chain = entry->Chain();
  ASSERT_OK(chain);
  EXPECT_EQ(chain->size(), 1u);
}

TEST_F(EntryTest, CreateRefusesEmptyAlias) {
  EntryParts parts = EcParts();
  parts.alias.clear();
  EXPECT_THAT(Entry::Create(std::move(parts)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("alias")));
}

TEST_F(EntryTest, CreateRefusesOversizedAlias) {
  EntryParts parts = EcParts();
  parts.alias = std::string(kMaxAliasBytes + 1, 'a');
  EXPECT_THAT(
      Entry::Create(std::move(parts)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1025 bytes")));
}

TEST_F(EntryTest, CreateAcceptsAliasOfExactlyMaxBytes) {
  EntryParts parts = EcParts();
  parts.alias = std::string(kMaxAliasBytes, 'a');
  std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->alias(), std::string(kMaxAliasBytes, 'a'));
}

TEST_F(EntryTest, CreateAcceptsAliasWithNulBytes) {
  const std::string alias("a\0b\0", 4);
  EntryParts parts = EcParts();
  parts.alias = alias;
  std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->alias(), alias);
  EXPECT_EQ(entry->alias().size(), 4u);
}

TEST(ValidateAliasTest, Bounds) {
  EXPECT_THAT(ValidateAlias(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(ValidateAlias("a"));
  EXPECT_OK(ValidateAlias(std::string(kMaxAliasBytes, '\0')));
  EXPECT_THAT(ValidateAlias(std::string(kMaxAliasBytes + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EntryTest, CreateRefusesEmptyChain) {
  EntryParts parts = EcParts();
  parts.chain_der.clear();
  EXPECT_THAT(Entry::Create(std::move(parts)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("app#att=0"), HasSubstr("empty"))));
}

TEST_F(EntryTest, CreateRefusesNullKey) {
  EntryParts parts = EcParts();
  parts.key = nullptr;
  EXPECT_THAT(Entry::Create(std::move(parts)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("app#att=0"), HasSubstr("key"))));
}

TEST_F(EntryTest, CreateRefusesGarbageLeaf) {
  EntryParts parts = EcParts();
  parts.chain_der[0] = "garbage leaf";
  EXPECT_THAT(
      Entry::Create(std::move(parts)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("app#att=0"), HasSubstr("leaf certificate"))));
}

TEST_F(EntryTest, CreateRefusesGarbageIntermediate) {
  EntryParts parts = EcParts();
  parts.chain_der[1] = "garbage intermediate";
  EXPECT_THAT(Entry::Create(std::move(parts)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("chain certificate 1")));
}

TEST_F(EntryTest, CreateRefusesLeafWithTrailingBytes) {
  EntryParts parts = EcParts();
  parts.chain_der[0] += "xx";
  EXPECT_THAT(Entry::Create(std::move(parts)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("leaf certificate")));
}

TEST_F(EntryTest, CreateDoesNotCheckTheKey) {
  // A mismatch is for Put (CheckKeyMatchesLeaf) to refuse.
  EntryParts parts = EcParts();
  parts.key = PoolKey(KeyType::kRsa2048);
  EXPECT_OK(Entry::Create(std::move(parts)));
}

TEST_F(EntryTest, RestoreTrustsFactsAndDecodesLazily) {
  EntryParts parts = EcParts();
  const EntryParts copy = parts;
  // Facts deliberately differ from the certificate: Restore trusts them
  // instead of decoding.
  LeafFacts facts = FactsFor(parts);
  facts.not_before = TestNow() - absl::Hours(7);
  facts.not_after = TestNow() + absl::Hours(7);

  absl::StatusOr<std::shared_ptr<const Entry>> restored =
      RestoreEntry(std::move(parts), facts);
  ASSERT_OK(restored);
  const Entry& entry = **restored;
  EXPECT_EQ(entry.alias(), copy.alias);
  EXPECT_EQ(entry.thumbprint(), facts.thumbprint);
  EXPECT_EQ(entry.not_before(), facts.not_before);
  EXPECT_EQ(entry.not_after(), facts.not_after);
  EXPECT_EQ(entry.metadata(), copy.metadata);
  EXPECT_EQ(entry.created_at(), copy.created_at);
  EXPECT_EQ(entry.key(), copy.key);

  absl::StatusOr<absl::Span<X509* const>> chain = entry.Chain();
  ASSERT_OK(chain);
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ(ToDer((*chain)[0]), copy.chain_der[0]);
  EXPECT_EQ(ToDer((*chain)[1]), copy.chain_der[1]);
  // Decoded once: the same certificates on every call.
  absl::StatusOr<absl::Span<X509* const>> again = entry.Chain();
  ASSERT_OK(again);
  EXPECT_EQ((*again)[0], (*chain)[0]);
  EXPECT_EQ((*again)[1], (*chain)[1]);

  EXPECT_OK(CheckKeyMatchesLeaf(entry));
  EXPECT_OK(ProbeEntryKey(entry));
}

TEST_F(EntryTest, RestoreWithWrongThumbprintIsDataLoss) {
  EntryParts parts = EcParts();
  LeafFacts facts = FactsFor(parts);
  facts.thumbprint = Thumbprint(parts.chain_der[1]);
  EXPECT_THAT(RestoreEntry(std::move(parts), facts),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("thumbprint")));
}

TEST_F(EntryTest, RestoreWithEmptyChainIsDataLoss) {
  EntryParts parts = EcParts();
  const LeafFacts facts = FactsFor(parts);
  parts.chain_der.clear();
  EXPECT_THAT(RestoreEntry(std::move(parts), facts),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(EntryTest, RestoreWithBadAliasIsInvalidArgument) {
  EntryParts parts = EcParts();
  const LeafFacts facts = FactsFor(parts);
  parts.alias.clear();
  EXPECT_THAT(RestoreEntry(std::move(parts), facts),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EntryTest, RestoreWithGarbageIntermediateFailsOnFirstUse) {
  EntryParts parts = EcParts();
  parts.chain_der[1] = "corrupt stored intermediate";
  const LeafFacts facts = FactsFor(parts);

  absl::StatusOr<std::shared_ptr<const Entry>> restored =
      RestoreEntry(std::move(parts), facts);
  ASSERT_OK(restored);
  const Entry& entry = **restored;
  EXPECT_THAT(entry.Chain(), StatusIs(absl::StatusCode::kDataLoss,
                                      HasSubstr("chain certificate 1")));
  // The failure is remembered.
  EXPECT_THAT(entry.Chain(), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ProbeEntryKey(entry), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(entry.CheckWellFormed(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("chain certificate 1")));
  // The leaf's key is read from the leaf's own DER: still available.
  EXPECT_OK(entry.LeafPublicKeyDer());
  EXPECT_OK(CheckKeyMatchesLeaf(entry));
}

TEST_F(EntryTest, RestoredEntryIsCheckedWithoutDecodingIt) {
  EntryParts parts = EcParts();
  const LeafFacts facts = FactsFor(parts);
  auto restored = RestoreEntry(std::move(parts), facts);
  ASSERT_OK(restored);
  EXPECT_OK((*restored)->CheckWellFormed());
  EXPECT_OK(CheckKeyMatchesLeaf(**restored));
  EXPECT_EQ(*(*restored)->LeafPublicKeyDer(),
            (*restored)->key()->public_key_der());
}

// Nothing a caller builds can skip the key check: a restored entry whose key
// is not its leaf's is refused like any other, and so is a damaged chain.
TEST_F(EntryTest, RestoredEntryWithAnotherKeyIsRefusedByPutChecks) {
  EntryParts parts = EcParts();
  parts.key = PoolKey(KeyType::kRsa2048);
  auto restored = RestoreEntry(parts, FactsFor(parts));
  ASSERT_OK(restored);
  EXPECT_THAT(CheckKeyMatchesLeaf(**restored),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  for (ChainCheck check : {ChainCheck::kShape, ChainCheck::kDecode}) {
    EXPECT_THAT(CheckEntryForPut(restored->get(), "store:x", check),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("key does not match")));
  }
}

TEST_F(EntryTest, RestoredEntryWithADamagedCertificateFailsTheShapeCheck) {
  EntryParts parts = EcParts();
  parts.chain_der[1] = "not a certificate";
  auto restored = RestoreEntry(parts, FactsFor(parts));
  ASSERT_OK(restored);
  EXPECT_THAT((*restored)->CheckWellFormed(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("chain certificate 1")));
}

TEST_F(EntryTest, KeyCheckVerdictIsTheSameEveryTime) {
  EntryParts parts = EcParts();
  parts.key = PoolKey(KeyType::kRsa2048);
  std::shared_ptr<const Entry> mismatched = CreateOrDie(std::move(parts));
  ASSERT_NE(mismatched, nullptr);
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(CheckKeyMatchesLeaf(*mismatched),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("does not match")));
  }
  std::shared_ptr<const Entry> matching = CreateOrDie(EcParts());
  ASSERT_NE(matching, nullptr);
  EXPECT_OK(CheckKeyMatchesLeaf(*matching));
  EXPECT_OK(CheckKeyMatchesLeaf(*matching));
}

TEST_F(EntryTest, GarbageLeafHasNoPublicKey) {
  EntryParts parts = EcParts();
  parts.chain_der[0] = "not a certificate";
  LeafFacts facts = FactsFor(parts);
  facts.thumbprint = Thumbprint(parts.chain_der[0]);
  auto restored = RestoreEntry(std::move(parts), facts);
  ASSERT_OK(restored);
  EXPECT_THAT((*restored)->LeafPublicKeyDer(),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT((*restored)->CheckWellFormed(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("leaf certificate")));
}

TEST_F(EntryTest, CheckKeyMatchesLeafAcceptsTheLeafsKey) {
  std::shared_ptr<const Entry> ec = CreateOrDie(EcParts());
  ASSERT_NE(ec, nullptr);
  EXPECT_OK(CheckKeyMatchesLeaf(*ec));

  std::shared_ptr<const Entry> rsa =
      CreateOrDie(PartsFor(PoolKey(KeyType::kRsa2048)));
  ASSERT_NE(rsa, nullptr);
  EXPECT_OK(CheckKeyMatchesLeaf(*rsa));
}

TEST_F(EntryTest, CheckKeyMatchesLeafRefusesAnotherKey) {
  for (std::shared_ptr<const Key> other :
       {PoolKey(KeyType::kEcP256, 7), PoolKey(KeyType::kRsa2048)}) {
    EntryParts parts = EcParts();
    parts.key = other;
    std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
    ASSERT_NE(entry, nullptr);
    EXPECT_THAT(CheckKeyMatchesLeaf(*entry),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr(entry->thumbprint())))
        << other->algorithm();
  }
}

TEST_F(EntryTest, CheckEntryForPutAcceptsAWellFormedEntry) {
  std::shared_ptr<const Entry> entry = CreateOrDie(EcParts());
  ASSERT_NE(entry, nullptr);
  EXPECT_OK(CheckEntryForPut(entry.get(), "store:x", ChainCheck::kShape));
  EXPECT_OK(CheckEntryForPut(entry.get(), "store:x", ChainCheck::kDecode));
}

TEST_F(EntryTest, CheckEntryForPutRefusesNullNamingTheStore) {
  for (ChainCheck check : {ChainCheck::kShape, ChainCheck::kDecode}) {
    EXPECT_THAT(CheckEntryForPut(nullptr, "store:x", check),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("store:x"), HasSubstr("Put"),
                               HasSubstr("null entry"))));
  }
}

TEST_F(EntryTest, CheckEntryForPutRefusesAnotherKeyNamingTheAlias) {
  EntryParts parts = EcParts();
  parts.key = PoolKey(KeyType::kEcP256, 7);
  std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
  ASSERT_NE(entry, nullptr);
  for (ChainCheck check : {ChainCheck::kShape, ChainCheck::kDecode}) {
    EXPECT_THAT(CheckEntryForPut(entry.get(), "store:x", check),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("store:x"), HasSubstr("app#att=0"),
                               HasSubstr(entry->thumbprint()))));
  }
}

// Both levels refuse a damaged intermediate: the shape walk (a cache) as
// well as the decode (a store that writes the chain out).
TEST_F(EntryTest, CheckEntryForPutChecksTheChainAsFarAsAsked) {
  EntryParts parts = EcParts();
  parts.chain_der[1] = "corrupt stored intermediate";
  auto restored = RestoreEntry(parts, FactsFor(parts));
  ASSERT_OK(restored);

  const auto refused =
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("store:x"), HasSubstr("app#att=0"),
                     HasSubstr("chain certificate 1")));
  EXPECT_THAT(CheckEntryForPut(restored->get(), "store:x", ChainCheck::kShape),
              refused);
  EXPECT_THAT(CheckEntryForPut(restored->get(), "store:x", ChainCheck::kDecode),
              refused);
}

TEST_F(EntryTest, ProbeEntryKeyAcceptsWorkingKeys) {
  std::shared_ptr<const Entry> ec = CreateOrDie(EcParts());
  ASSERT_NE(ec, nullptr);
  EXPECT_OK(ProbeEntryKey(*ec));

  std::shared_ptr<const Entry> rsa =
      CreateOrDie(PartsFor(PoolKey(KeyType::kRsa2048)));
  ASSERT_NE(rsa, nullptr);
  EXPECT_OK(ProbeEntryKey(*rsa));
}

TEST_F(EntryTest, ProbeEntryKeyRefusesAKeyThatCannotSign) {
  auto failing = std::make_shared<FailingKey>(*ec_key_);
  EntryParts parts = EcParts();
  parts.key = failing;
  std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
  ASSERT_NE(entry, nullptr);
  // It matches: only signing proves it broken.
  EXPECT_OK(CheckKeyMatchesLeaf(*entry));

  EXPECT_THAT(ProbeEntryKey(*entry),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("injected fault"),
                             HasSubstr(entry->thumbprint()))));
  EXPECT_EQ(failing->sign_calls(), 1);
}

TEST_F(EntryTest, ProbeEntryKeyMapsAnyFailureToFailedPrecondition) {
  auto failing = std::make_shared<FailingKey>(
      *ec_key_, absl::InternalError("engine exploded"));
  EntryParts parts = EcParts();
  parts.key = failing;
  std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
  ASSERT_NE(entry, nullptr);
  EXPECT_THAT(ProbeEntryKey(*entry),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("engine exploded")));
  EXPECT_EQ(failing->sign_calls(), 1);
}

TEST_F(EntryTest, ProbeEntryKeyRefusesTheKeyOfAnotherCertificate) {
  for (std::shared_ptr<const Key> other :
       {PoolKey(KeyType::kEcP256, 7), PoolKey(KeyType::kRsa2048)}) {
    EntryParts parts = EcParts();
    parts.key = other;
    std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
    ASSERT_NE(entry, nullptr);
    EXPECT_THAT(ProbeEntryKey(*entry),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr(entry->thumbprint())))
        << other->algorithm();
  }
}

struct ServableCase {
  const char* name;
  absl::Duration not_before;  // relative to now
  absl::Duration not_after;   // relative to now
  absl::Duration min_remaining;
  bool servable;
};

class IsServableTest : public ::testing::TestWithParam<ServableCase> {};

TEST_P(IsServableTest, FollowsTheRule) {
  const ServableCase& c = GetParam();
  const absl::Time now = TestNow();
  FindOptions options;
  options.min_remaining = c.min_remaining;
  EXPECT_EQ(IsServable(now + c.not_before, now + c.not_after, now, options),
            c.servable);
}

constexpr absl::Duration kDay = absl::Hours(24);

INSTANTIATE_TEST_SUITE_P(
    Table, IsServableTest,
    ::testing::Values(
        ServableCase{"Valid", -kDay, 2 * kDay, kDay, true},
        ServableCase{"NotYetValid", absl::Seconds(1), 2 * kDay, kDay, false},
        ServableCase{"ValidFromNow", absl::ZeroDuration(), 2 * kDay, kDay,
                     true},
        ServableCase{"Expired", -2 * kDay, -absl::Seconds(1), kDay, false},
        ServableCase{"ExactlyMinRemainingLeft", -kDay, kDay, kDay, true},
        ServableCase{"OneSecondLessThanMinRemaining", -kDay,
                     kDay - absl::Seconds(1), kDay, false},
        ServableCase{"CustomMinRemainingServes", -kDay, absl::Hours(2),
                     absl::Hours(1), true},
        ServableCase{"CustomMinRemainingRefuses", -kDay, absl::Minutes(59),
                     absl::Hours(1), false},
        ServableCase{"ZeroMinRemainingAtNotAfter", -kDay, absl::ZeroDuration(),
                     absl::ZeroDuration(), true},
        ServableCase{"ZeroMinRemainingExpired", -kDay, -absl::Seconds(1),
                     absl::ZeroDuration(), false}),
    [](const ::testing::TestParamInfo<ServableCase>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(FindOptionsTest, DefaultMinRemainingIsOneDay) {
  EXPECT_EQ(FindOptions().min_remaining, absl::Hours(24));
  const absl::Time now = TestNow();
  EXPECT_TRUE(IsServable(now, now + absl::Hours(24), now, FindOptions()));
  EXPECT_FALSE(IsServable(now, now + absl::Hours(23), now, FindOptions()));
}

TEST_F(EntryTest, InfoOfSummarisesTheEntry) {
  std::shared_ptr<const Entry> entry = CreateOrDie(EcParts());
  ASSERT_NE(entry, nullptr);

  const EntryInfo info = InfoOf(*entry, "memory:");
  EXPECT_EQ(info.alias, "app#att=0");
  EXPECT_EQ(info.thumbprint, entry->thumbprint());
  EXPECT_EQ(info.not_before, not_before_);
  EXPECT_EQ(info.not_after, not_after_);
  EXPECT_EQ(info.created_at, TestNow() - absl::Minutes(5));
  EXPECT_EQ(info.chain_length, 2u);
  EXPECT_EQ(info.key_algorithm, "EC-P256");
  EXPECT_EQ(info.key_location, "software");
  EXPECT_EQ(info.store, "memory:");
}

TEST_F(EntryTest, InfoOfNamesTheKeyKindAndStore) {
  EntryParts parts = PartsFor(PoolKey(KeyType::kRsa2048));
  parts.key = std::make_shared<FailingKey>(parts.key);
  parts.chain_der.resize(1);
  std::shared_ptr<const Entry> entry = CreateOrDie(std::move(parts));
  ASSERT_NE(entry, nullptr);

  const EntryInfo info = InfoOf(*entry, "sqlite:/x.db");
  EXPECT_EQ(info.chain_length, 1u);
  EXPECT_EQ(info.key_algorithm, "RSA-2048");
  EXPECT_EQ(info.key_location, "failing-test-key");
  EXPECT_EQ(info.store, "sqlite:/x.db");
}

}  // namespace
}  // namespace certstore::testing

#include "certstore/testing/cert_store_conformance.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certstore/backend_author.h"
#include "certstore/chain.h"
#include "certstore/entry.h"
#include "certstore/testing/failing_key.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"

namespace certstore::testing {

std::string ConformanceBackendName(
    const ::testing::TestParamInfo<ConformanceBackend>& info) {
  return info.param.name;
}

namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

// ---------------------------------------------------------------- basics

TEST_P(CertStoreConformanceTest, NameIsNonEmptyUri) {
  EXPECT_THAT(store_->Name(), HasSubstr(":"));
}

TEST_P(CertStoreConformanceTest, FindOnEmptyStoreIsNotFound) {
  EXPECT_THAT(store_->Find("nobody#att=0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
}

TEST_P(CertStoreConformanceTest, PutThenFindReturnsTheEntry) {
  auto entry = Fresh("app#att=0");
  ASSERT_OK(store_->Put(entry));
  auto found = store_->Find("app#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->alias(), "app#att=0");
  EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
  EXPECT_EQ((*found)->chain_der(), entry->chain_der());
  EXPECT_EQ((*found)->not_after(), entry->not_after());
  EXPECT_EQ((*found)->key()->public_key_der(), entry->key()->public_key_der());
}

TEST_P(CertStoreConformanceTest, FoundEntryKeepsMetadataAndCreatedAt) {
  auto entry = Fresh("meta#att=0");
  ASSERT_OK(store_->Put(entry));
  auto found = store_->Find("meta#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->metadata(), entry->metadata());
  EXPECT_EQ(absl::ToUnixSeconds((*found)->created_at()),
            absl::ToUnixSeconds(entry->created_at()));
}

TEST_P(CertStoreConformanceTest, FoundEntryChainDecodesAndKeyMatches) {
  ASSERT_OK(store_->Put(Fresh("chain#att=0")));
  auto found = store_->Find("chain#att=0");
  ASSERT_OK(found);
  auto chain = (*found)->Chain();
  ASSERT_OK(chain);
  ASSERT_THAT(*chain, SizeIs(2));
  EXPECT_EQ(Thumbprint((*found)->chain_der()[0]), (*found)->thumbprint());
  EXPECT_OK(CheckKeyMatchesLeaf(**found));
  EXPECT_EQ((*found)->chain_der()[1], Pki().intermediate_der());
}

TEST_P(CertStoreConformanceTest, PutSameCertificateTwiceKeepsOneEntry) {
  auto entry = Fresh("twice#att=0");
  ASSERT_OK(store_->Put(entry));
  ASSERT_OK(store_->Put(entry));
  EXPECT_EQ(ListedCount("twice#"), 1u);
  EXPECT_THAT(store_->DeleteAllForAlias("twice#att=0"), IsOkAndHolds(1));
}

TEST_P(CertStoreConformanceTest, EntryOutlivesItsDeletion) {
  ASSERT_OK(store_->Put(Fresh("held#att=0")));
  auto found = store_->Find("held#att=0");
  ASSERT_OK(found);
  ASSERT_OK(store_->DeleteAllForAlias("held#att=0"));
  // A caller holding the entry can still use it (e.g. a handshake in flight).
  EXPECT_OK((*found)->key()->Sign("still usable"));
  EXPECT_OK(CheckKeyMatchesLeaf(**found));
}

// ------------------------------------------------------------- selection

TEST_P(CertStoreConformanceTest, ExpiredEntryIsNotServed) {
  ASSERT_OK(
      store_->Put(Window("exp#att=0", Now() - kWeek, Now() - absl::Hours(1))));
  EXPECT_THAT(store_->Find("exp#att=0"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(CertStoreConformanceTest, EntryBelowTheFloorIsNotServed) {
  ASSERT_OK(store_->Put(
      Window("floor#att=0", Now() - kWeek, Now() + absl::Hours(23))));
  EXPECT_THAT(store_->Find("floor#att=0"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(CertStoreConformanceTest, EntryExactlyAtTheFloorIsServed) {
  auto entry = Window("edge#att=0", Now() - kWeek, Now() + absl::Hours(24));
  ASSERT_OK(store_->Put(entry));
  EXPECT_EQ(FoundThumbprint("edge#att=0"), entry->thumbprint());
}

TEST_P(CertStoreConformanceTest, NotYetValidEntryIsNotServed) {
  ASSERT_OK(store_->Put(
      Window("future#att=0", Now() + absl::Hours(1), Now() + kWeek)));
  EXPECT_THAT(store_->Find("future#att=0"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(CertStoreConformanceTest, MinRemainingOptionIsHonoured) {
  auto entry = Window("opt#att=0", Now() - kWeek, Now() + absl::Hours(2));
  ASSERT_OK(store_->Put(entry));
  FindOptions one_hour;
  one_hour.min_remaining = absl::Hours(1);
  EXPECT_EQ(FoundThumbprint("opt#att=0", one_hour), entry->thumbprint());
  FindOptions three_hours;
  three_hours.min_remaining = absl::Hours(3);
  EXPECT_EQ(FoundThumbprint("opt#att=0", three_hours), "NOT_FOUND");
}

TEST_P(CertStoreConformanceTest, NewestNotAfterWins) {
  auto older = Window("many#att=0", Now() - kWeek, Now() + absl::Hours(48));
  auto newest = Window("many#att=0", Now() - absl::Hours(1), Now() + kWeek);
  auto middle =
      Window("many#att=0", Now() - absl::Hours(2), Now() + absl::Hours(72));
  ASSERT_OK(store_->Put(older));
  ASSERT_OK(store_->Put(newest));
  ASSERT_OK(store_->Put(middle));
  EXPECT_EQ(FoundThumbprint("many#att=0"), newest->thumbprint());
}

TEST_P(CertStoreConformanceTest, NewestWinsWhateverThePutOrder) {
  auto a = Window("order#att=0", Now() - kWeek, Now() + absl::Hours(30));
  auto b = Window("order#att=0", Now() - kWeek, Now() + absl::Hours(40));
  auto c = Window("order#att=0", Now() - kWeek, Now() + absl::Hours(50));
  for (const auto& e : {c, a, b}) {
    ASSERT_OK(store_->Put(e));
  }
  EXPECT_EQ(FoundThumbprint("order#att=0"), c->thumbprint());
}

TEST_P(CertStoreConformanceTest, UnservableNewestFallsBackToServableOlder) {
  auto servable = Window("fb#att=0", Now() - kWeek, Now() + absl::Hours(48));
  auto not_yet =
      Window("fb#att=0", Now() + absl::Hours(1), Now() + absl::Hours(24 * 30));
  ASSERT_OK(store_->Put(not_yet));
  ASSERT_OK(store_->Put(servable));
  EXPECT_EQ(FoundThumbprint("fb#att=0"), servable->thumbprint());
}

TEST_P(CertStoreConformanceTest, SelectionFollowsTheClock) {
  auto entry =
      Window("clock#att=0", Now() - absl::Hours(1), Now() + absl::Hours(48));
  ASSERT_OK(store_->Put(entry));
  EXPECT_EQ(FoundThumbprint("clock#att=0"), entry->thumbprint());
  clock_.Advance(absl::Hours(25));  // 23 h left: below the floor
  EXPECT_EQ(FoundThumbprint("clock#att=0"), "NOT_FOUND");
}

TEST_P(CertStoreConformanceTest, ExpiredEntriesStayListedUntilDeleted) {
  ASSERT_OK(
      store_->Put(Window("old#att=0", Now() - kWeek, Now() - absl::Hours(1))));
  EXPECT_EQ(ListedCount("old#"), 1u);
  EXPECT_THAT(store_->DeleteAllForAlias("old#att=0"), IsOkAndHolds(1));
  EXPECT_EQ(ListedCount("old#"), 0u);
}

// ------------------------------------------------------- alias isolation

TEST_P(CertStoreConformanceTest, AliasesThatDifferOnlyByCaseAreDistinct) {
  auto lower = Fresh("client#att=0", kWeek, 0);
  auto upper = Fresh("CLIENT#att=0", kWeek, 1);
  ASSERT_OK(store_->Put(lower));
  ASSERT_OK(store_->Put(upper));
  EXPECT_EQ(FoundThumbprint("client#att=0"), lower->thumbprint());
  EXPECT_EQ(FoundThumbprint("CLIENT#att=0"), upper->thumbprint());
  EXPECT_EQ(FoundThumbprint("Client#att=0"), "NOT_FOUND");
}

TEST_P(CertStoreConformanceTest, TrailingSpaceMakesADifferentAlias) {
  auto plain = Fresh("space", kWeek, 0);
  ASSERT_OK(store_->Put(plain));
  EXPECT_EQ(FoundThumbprint("space "), "NOT_FOUND");
  auto spaced = Fresh("space ", kWeek, 1);
  ASSERT_OK(store_->Put(spaced));
  EXPECT_EQ(FoundThumbprint("space"), plain->thumbprint());
  EXPECT_EQ(FoundThumbprint("space "), spaced->thumbprint());
}

TEST_P(CertStoreConformanceTest, NonAsciiAliasRoundTrips) {
  const std::string alias = "клиент-東京-ü#att=0";
  auto entry = Fresh(alias);
  ASSERT_OK(store_->Put(entry));
  EXPECT_EQ(FoundThumbprint(alias), entry->thumbprint());
  auto listed = store_->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].alias, alias);
}

TEST_P(CertStoreConformanceTest, OneKibAliasRoundTrips) {
  std::string alias(kMaxAliasBytes, 'a');
  alias[kMaxAliasBytes - 1] = 'z';
  auto entry = Fresh(alias);
  ASSERT_OK(store_->Put(entry));
  EXPECT_EQ(FoundThumbprint(alias), entry->thumbprint());
  std::string sibling = alias;
  sibling[kMaxAliasBytes - 1] = 'y';
  EXPECT_EQ(FoundThumbprint(sibling), "NOT_FOUND");
}

TEST_P(CertStoreConformanceTest, PrefixAliasesAreDistinct) {
  auto shorter = Fresh("ab", kWeek, 0);
  auto longer = Fresh("abc", kWeek, 1);
  ASSERT_OK(store_->Put(shorter));
  ASSERT_OK(store_->Put(longer));
  EXPECT_EQ(FoundThumbprint("ab"), shorter->thumbprint());
  EXPECT_EQ(FoundThumbprint("abc"), longer->thumbprint());
  EXPECT_EQ(FoundThumbprint("a"), "NOT_FOUND");
}

TEST_P(CertStoreConformanceTest, DeleteRemovesNothingOfOtherAliases) {
  auto keep_case = Fresh("Victim#att=0", kWeek, 1);
  auto keep_prefix = Fresh("victim#att=01", kWeek, 2);
  ASSERT_OK(store_->Put(Fresh("victim#att=0", kWeek, 0)));
  ASSERT_OK(store_->Put(keep_case));
  ASSERT_OK(store_->Put(keep_prefix));
  EXPECT_THAT(store_->DeleteAllForAlias("victim#att=0"), IsOkAndHolds(1));
  EXPECT_EQ(FoundThumbprint("Victim#att=0"), keep_case->thumbprint());
  EXPECT_EQ(FoundThumbprint("victim#att=01"), keep_prefix->thumbprint());
}

// ------------------------------------------------------------- bad input

TEST_P(CertStoreConformanceTest, EmptyAliasIsInvalidEverywhere) {
  EXPECT_THAT(store_->Find(""), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("alias is empty")));
  EXPECT_THAT(store_->DeleteAllForAlias(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->CreateKey("", KeySpec{}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(CertStoreConformanceTest, OversizedAliasIsInvalidEverywhere) {
  const std::string alias(kMaxAliasBytes + 1, 'x');
  EXPECT_THAT(store_->Find(alias),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrCat(kMaxAliasBytes, " bytes"))));
  EXPECT_THAT(store_->DeleteAllForAlias(alias),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->CreateKey(alias, KeySpec{}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(CertStoreConformanceTest, ErrorsNameTheStore) {
  auto status = store_->Find("").status();
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(store_->Name().substr(0, store_->Name().find(':'))));
}

TEST_P(CertStoreConformanceTest, PutNullEntryIsInvalid) {
  EXPECT_THAT(store_->Put(nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ListedCount(), 0u);
}

TEST_P(CertStoreConformanceTest, PutMismatchedKeyIsRefusedAndStoreUnchanged) {
  auto good = Fresh("mm#att=0");
  ASSERT_OK(store_->Put(good));
  auto bad = Mismatched("mm#att=0");
  EXPECT_THAT(
      store_->Put(bad),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               ::testing::AllOf(HasSubstr("mm#att=0"),
                                HasSubstr("key does not match certificate"),
                                HasSubstr(bad->thumbprint()))));
  EXPECT_EQ(FoundThumbprint("mm#att=0"), good->thumbprint());
  EXPECT_EQ(ListedCount(), 1u);
}

TEST_P(CertStoreConformanceTest, PutMismatchedKeyForNewAliasStoresNothing) {
  EXPECT_THAT(store_->Put(Mismatched("fresh-mm#att=0")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(FoundThumbprint("fresh-mm#att=0"), "NOT_FOUND");
  EXPECT_EQ(ListedCount(), 0u);
}

TEST_P(CertStoreConformanceTest, GarbageDerNeverReachesTheStore) {
  EntryParts parts;
  parts.alias = "garbage#att=0";
  parts.chain_der = {"this is not DER"};
  parts.key = PoolKey(KeyType::kEcP256, 0);
  EXPECT_THAT(Entry::Create(std::move(parts)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("leaf certificate")));
  EXPECT_EQ(ListedCount(), 0u);
}

TEST_P(CertStoreConformanceTest, EmptyChainNeverReachesTheStore) {
  EntryParts parts;
  parts.alias = "empty#att=0";
  parts.key = PoolKey(KeyType::kEcP256, 0);
  EXPECT_THAT(Entry::Create(std::move(parts)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_EQ(ListedCount(), 0u);
}

TEST_P(CertStoreConformanceTest,
       PutOfUndecodableChainIsInvalidAndStoreUnchanged) {
  auto good = Fresh("undecodable#att=0");
  ASSERT_OK(store_->Put(good));
  // A restored entry defers decoding; Put must decode and refuse it.
  EntryParts parts;
  parts.alias = "undecodable#att=0";
  parts.chain_der = {Fresh("other", kWeek, 3)->chain_der()[0],
                     "garbage intermediate"};
  parts.key = PoolKey(KeyType::kEcP256, 3);
  LeafFacts facts{Now() - absl::Hours(1), Now() + kWeek * 2,
                  Thumbprint(parts.chain_der[0])};
  auto restored = RestoreEntry(std::move(parts), facts);
  ASSERT_OK(restored);
  EXPECT_THAT(store_->Put(*restored),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("chain certificate 1")));
  EXPECT_EQ(FoundThumbprint("undecodable#att=0"), good->thumbprint());
  EXPECT_EQ(ListedCount(), 1u);
}

// ------------------------------------------------------ DeleteAllForAlias

TEST_P(CertStoreConformanceTest, DeleteCountsEveryEntryIncludingExpired) {
  ASSERT_OK(
      store_->Put(Window("cnt#att=0", Now() - kWeek, Now() - absl::Hours(1))));
  ASSERT_OK(
      store_->Put(Window("cnt#att=0", Now() - kWeek, Now() + absl::Hours(2))));
  ASSERT_OK(store_->Put(Fresh("cnt#att=0")));
  EXPECT_THAT(store_->DeleteAllForAlias("cnt#att=0"), IsOkAndHolds(3));
  EXPECT_EQ(FoundThumbprint("cnt#att=0"), "NOT_FOUND");
  EXPECT_EQ(ListedCount("cnt#"), 0u);
}

TEST_P(CertStoreConformanceTest, DeleteOfUnknownAliasReturnsZero) {
  EXPECT_THAT(store_->DeleteAllForAlias("unknown#att=0"), IsOkAndHolds(0));
}

TEST_P(CertStoreConformanceTest, SecondDeleteReturnsZero) {
  ASSERT_OK(store_->Put(Fresh("del2#att=0")));
  EXPECT_THAT(store_->DeleteAllForAlias("del2#att=0"), IsOkAndHolds(1));
  EXPECT_THAT(store_->DeleteAllForAlias("del2#att=0"), IsOkAndHolds(0));
}

TEST_P(CertStoreConformanceTest, PutAfterDeleteIsServed) {
  ASSERT_OK(store_->Put(Fresh("again#att=0", kWeek, 0)));
  ASSERT_OK(store_->DeleteAllForAlias("again#att=0"));
  auto next = Fresh("again#att=0", kWeek, 1);
  ASSERT_OK(store_->Put(next));
  EXPECT_EQ(FoundThumbprint("again#att=0"), next->thumbprint());
}

// --------------------------------------------------------------- ProbeKey

TEST_P(CertStoreConformanceTest, ProbeAcceptsAGoodEcKey) {
  ASSERT_OK(store_->Put(Fresh("probe-ec#att=0")));
  auto found = store_->Find("probe-ec#att=0");
  ASSERT_OK(found);
  EXPECT_OK(store_->ProbeKey(**found));
}

TEST_P(CertStoreConformanceTest, ProbeAcceptsAGoodRsaKey) {
  ASSERT_OK(store_->Put(Fresh("probe-rsa#att=0", kWeek, 0, KeyType::kRsa2048)));
  auto found = store_->Find("probe-rsa#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->key()->algorithm(), "RSA-2048");
  EXPECT_OK(store_->ProbeKey(**found));
}

TEST_P(CertStoreConformanceTest, ProbeRejectsAKeyThatCannotSign) {
  auto failing = std::make_shared<FailingKey>(PoolKey(KeyType::kEcP256, 0));
  LeafOptions leaf;
  leaf.not_before = Now() - absl::Hours(1);
  leaf.not_after = Now() + kWeek;
  EntryParts parts;
  parts.alias = "dead#att=0";
  parts.chain_der = Pki().IssueChain(*failing, leaf);
  parts.key = failing;
  auto entry = Entry::Create(std::move(parts));
  ASSERT_OK(entry);
  // Presence is not proof: the store accepts it (public keys match) ...
  ASSERT_OK(store_->Put(*entry));
  ASSERT_OK(store_->Find("dead#att=0"));
  // ... and only the probe tells. (The entry as Put: a store that keeps
  // key bytes serves a key decoded from them, which can sign.)
  EXPECT_THAT(store_->ProbeKey(**entry),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("dead#att=0"),
                                        HasSubstr("cannot sign"))));
  EXPECT_GE(failing->sign_calls(), 1);
}

TEST_P(CertStoreConformanceTest, ProbeRejectsTheKeyOfAnotherCertificate) {
  auto entry = Mismatched("other-key#att=0");
  EXPECT_THAT(store_->ProbeKey(*entry),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(entry->thumbprint())));
}

TEST_P(CertStoreConformanceTest, ProbeSignsAFreshChallengeEachTime) {
  auto failing = std::make_shared<FailingKey>(PoolKey(KeyType::kEcP256, 0));
  LeafOptions leaf;
  leaf.not_before = Now() - absl::Hours(1);
  leaf.not_after = Now() + kWeek;
  EntryParts parts;
  parts.alias = "twice-probed#att=0";
  parts.chain_der = Pki().IssueChain(*failing, leaf);
  parts.key = failing;
  auto entry = Entry::Create(std::move(parts));
  ASSERT_OK(entry);
  EXPECT_FALSE(store_->ProbeKey(**entry).ok());
  EXPECT_FALSE(store_->ProbeKey(**entry).ok());
  EXPECT_EQ(failing->sign_calls(), 2);  // never a cached verdict
}

// -------------------------------------------------------------- CreateKey

TEST_P(CertStoreConformanceTest, CreateKeyPutFindRoundTripEc) {
  auto key = store_->CreateKey("ck-ec#att=0", KeySpec{KeyType::kEcP256});
  ASSERT_OK(key);
  EXPECT_EQ((*key)->algorithm(), "EC-P256");
  auto entry = Pki().MakeEntry("ck-ec#att=0", *key, Now() - absl::Hours(1),
                               Now() + kWeek);
  ASSERT_OK(store_->Put(entry));
  auto found = store_->Find("ck-ec#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->key()->public_key_der(), (*key)->public_key_der());
  EXPECT_OK(store_->ProbeKey(**found));
}

TEST_P(CertStoreConformanceTest, CreateKeyPutFindRoundTripRsa) {
  auto key = store_->CreateKey("ck-rsa#att=0", KeySpec{KeyType::kRsa2048});
  ASSERT_OK(key);
  EXPECT_EQ((*key)->algorithm(), "RSA-2048");
  auto entry = Pki().MakeEntry("ck-rsa#att=0", *key, Now() - absl::Hours(1),
                               Now() + kWeek);
  ASSERT_OK(store_->Put(entry));
  auto found = store_->Find("ck-rsa#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->key()->public_key_der(), (*key)->public_key_der());
  EXPECT_OK(store_->ProbeKey(**found));
}

TEST_P(CertStoreConformanceTest, CreateKeyMakesADifferentKeyEachTime) {
  auto a = store_->CreateKey("ck2#att=0", KeySpec{KeyType::kEcP256});
  auto b = store_->CreateKey("ck2#att=0", KeySpec{KeyType::kEcP256});
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE((*a)->public_key_der(), (*b)->public_key_der());
}

TEST_P(CertStoreConformanceTest, CreateKeyStoresNothingByItself) {
  ASSERT_OK(store_->CreateKey("ck3#att=0", KeySpec{}));
  EXPECT_EQ(FoundThumbprint("ck3#att=0"), "NOT_FOUND");
  EXPECT_EQ(ListedCount(), 0u);
}

// ------------------------------------------------------------------- List

TEST_P(CertStoreConformanceTest, ListOfEmptyStoreIsEmpty) {
  EXPECT_EQ(ListedCount(), 0u);
}

TEST_P(CertStoreConformanceTest, ListDescribesEveryEntryInOrder) {
  auto b_old = Window("b#att=0", Now() - kWeek, Now() + absl::Hours(30));
  auto b_new = Window("b#att=0", Now() - kWeek, Now() + absl::Hours(60));
  auto a = Fresh("a#att=0");
  ASSERT_OK(store_->Put(b_old));
  ASSERT_OK(store_->Put(a));
  ASSERT_OK(store_->Put(b_new));
  auto listed = store_->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(3));
  EXPECT_EQ((*listed)[0].thumbprint, a->thumbprint());
  EXPECT_EQ((*listed)[1].thumbprint, b_new->thumbprint());
  EXPECT_EQ((*listed)[2].thumbprint, b_old->thumbprint());
  const EntryInfo& info = (*listed)[0];
  EXPECT_EQ(info.alias, "a#att=0");
  EXPECT_EQ(info.not_after, a->not_after());
  EXPECT_EQ(info.not_before, a->not_before());
  EXPECT_EQ(info.chain_length, 2u);
  EXPECT_EQ(info.key_algorithm, "EC-P256");
  EXPECT_FALSE(info.key_location.empty());
  EXPECT_EQ(info.store, store_->Name());
}

TEST_P(CertStoreConformanceTest, ListFiltersByAliasPrefix) {
  ASSERT_OK(store_->Put(Fresh("svc-a#att=0", kWeek, 0)));
  ASSERT_OK(store_->Put(Fresh("svc-b#att=0", kWeek, 1)));
  ASSERT_OK(store_->Put(Fresh("other#att=0", kWeek, 2)));
  EXPECT_EQ(ListedCount("svc-"), 2u);
  EXPECT_EQ(ListedCount("svc-a"), 1u);
  EXPECT_EQ(ListedCount("nothing"), 0u);
  EXPECT_EQ(ListedCount(), 3u);
}

// ------------------------------------------------------------ concurrency

// 8 threads mix Find / Put / DeleteAllForAlias on a few aliases. Whatever
// interleaving happens, a Find returns an entry of the alias asked for, whose
// key matches its certificate, and that is one of the entries ever Put.
TEST_P(CertStoreConformanceTest, ConcurrentFindPutDeleteKeepInvariants) {
  constexpr int kThreads = 8;
  constexpr int kAliases = 4;
  constexpr int kVariants = 3;
  constexpr int kOpsPerThread = 300;
  const absl::Duration kTimeLimit = absl::Seconds(60);

  std::vector<std::vector<std::shared_ptr<const Entry>>> entries(kAliases);
  for (int a = 0; a < kAliases; ++a) {
    for (int v = 0; v < kVariants; ++v) {
      entries[a].push_back(Fresh(absl::StrCat("race-", a, "#att=0"),
                                 kWeek + absl::Hours(v), a * kVariants + v));
    }
  }
  std::atomic<int> violations{0};
  std::atomic<int> unexpected_errors{0};
  std::atomic<int> hits{0};
  const absl::Time deadline = absl::Now() + kTimeLimit;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      for (int i = 0; i < kOpsPerThread && absl::Now() < deadline; ++i) {
        const int a = static_cast<int>(rng() % kAliases);
        const std::string alias = absl::StrCat("race-", a, "#att=0");
        switch (rng() % 4) {
          case 0:
            if (!store_->Put(entries[a][rng() % kVariants]).ok()) {
              unexpected_errors++;
            }
            break;
          case 1:
            if (!store_->DeleteAllForAlias(alias).ok()) {
              unexpected_errors++;
            }
            break;
          default: {
            auto found = store_->Find(alias);
            if (!found.ok()) {
              if (found.status().code() != absl::StatusCode::kNotFound) {
                unexpected_errors++;
              }
              break;
            }
            hits++;
            bool known = false;
            for (const auto& e : entries[a]) {
              known |= e->thumbprint() == (*found)->thumbprint();
            }
            if ((*found)->alias() != alias || !known ||
                !CheckKeyMatchesLeaf(**found).ok()) {
              violations++;
            }
          }
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(unexpected_errors.load(), 0);
  EXPECT_GT(hits.load(), 0);
  // Afterwards the store is consistent: each alias has 0..kVariants entries.
  for (int a = 0; a < kAliases; ++a) {
    EXPECT_LE(ListedCount(absl::StrCat("race-", a, "#")),
              static_cast<size_t>(kVariants));
  }
}

TEST_P(CertStoreConformanceTest, ConcurrentReadersSeeOldOrNewNeverNothing) {
  // One alias always has a servable entry; a writer keeps replacing it with
  // newer ones. Readers must never miss.
  constexpr int kReaders = 4;
  constexpr int kWrites = 40;
  std::vector<std::shared_ptr<const Entry>> versions;
  for (int v = 0; v < kWrites; ++v) {
    versions.push_back(Fresh("steady#att=0", kWeek + absl::Minutes(v), v % 8));
  }
  ASSERT_OK(store_->Put(versions[0]));
  std::atomic<bool> done{false};
  std::atomic<int> misses{0};
  std::atomic<int64_t> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&] {
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (!done.load() && absl::Now() < deadline) {
        if (!store_->Find("steady#att=0").ok()) {
          misses++;
        }
        reads++;
      }
    });
  }
  // Let the readers start before writing (bounded: 10 s).
  const absl::Time start_deadline = absl::Now() + absl::Seconds(10);
  while (reads.load() < kReaders && absl::Now() < start_deadline) {
    std::this_thread::yield();
  }
  for (int v = 1; v < kWrites; ++v) {
    EXPECT_OK(store_->Put(versions[v]));
  }
  done = true;
  for (auto& reader : readers) {
    reader.join();
  }
  EXPECT_EQ(misses.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(FoundThumbprint("steady#att=0"), versions.back()->thumbprint());
}

// -------------------------------------------------------------- LockAlias

TEST_P(CertStoreConformanceTest, LockAliasIsExclusiveUntilReleased) {
  auto first = store_->LockAlias("mint#att=0", absl::Seconds(1));
  ASSERT_OK(first);
  EXPECT_THAT(
      store_->LockAlias("mint#att=0", absl::Milliseconds(50)),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("mint#att=0")));
  first->reset();
  EXPECT_OK(store_->LockAlias("mint#att=0", absl::Milliseconds(50)));
}

TEST_P(CertStoreConformanceTest, LockAliasOfOtherAliasesAreIndependent) {
  auto a = store_->LockAlias("lock-a#att=0", absl::Seconds(1));
  ASSERT_OK(a);
  EXPECT_OK(store_->LockAlias("lock-b#att=0", absl::Milliseconds(50)));
  EXPECT_OK(store_->LockAlias("LOCK-A#att=0", absl::Milliseconds(50)));
}

TEST_P(CertStoreConformanceTest, LockAliasWaiterGetsTheLockOnRelease) {
  auto held = store_->LockAlias("handoff#att=0", absl::Seconds(1));
  ASSERT_OK(held);
  std::atomic<bool> acquired{false};
  std::thread waiter([&] {
    auto lock = store_->LockAlias("handoff#att=0", absl::Seconds(20));
    acquired = lock.ok();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_FALSE(acquired.load());
  held->reset();
  waiter.join();
  EXPECT_TRUE(acquired.load());
}

TEST_P(CertStoreConformanceTest, LockAliasRefusesBadAliases) {
  EXPECT_THAT(store_->LockAlias("", absl::Milliseconds(10)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->LockAlias(std::string(kMaxAliasBytes + 1, 'l'),
                                absl::Milliseconds(10)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Whatever a store can hold broken, a bad alias is refused, and a store
// with only servable entries has nothing to remove: they stay.
TEST_P(CertStoreConformanceTest,
       RemoveBrokenRefusesBadAliasesAndKeepsServable) {
  EXPECT_THAT(store_->RemoveBroken(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->RemoveBroken(std::string(kMaxAliasBytes + 1, 'r')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto entry = Fresh("rb#att=0");
  ASSERT_OK(store_->Put(entry));
  RemoveBrokenOptions everything;
  everything.include_foreign = true;
  EXPECT_THAT(store_->RemoveBroken("rb#att=0", everything), IsOkAndHolds(0));
  auto found = store_->Find("rb#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
  ListOptions all;
  all.include_broken = true;
  auto listed = store_->List(all);
  ASSERT_OK(listed);
  for (const EntryInfo& info : *listed) {
    EXPECT_EQ(info.problem, "") << info.alias;
  }
}

}  // namespace

// Each backend instantiates this suite; a binary that links the suite but
// not a backend would otherwise fail.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CertStoreConformanceTest);

}  // namespace certstore::testing

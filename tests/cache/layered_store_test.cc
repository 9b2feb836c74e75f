// LayeredStore semantics on in-process layers with fault injection. The
// same semantics over real persistent backends live beside those backends'
// tests (layered_backends_test.cc).
#include "cache/layered_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "memory/memory_store.h"
#include "tests/conformance/cert_store_conformance.h"
#include "tests/support/faulty_cert_store.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_pki.h"

namespace certstore::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

const TestPki& Pki() {
  static const TestPki* const pki = new TestPki(KeyType::kEcP256);
  return *pki;
}

// Records log lines for assertions.
class LogRecorder {
 public:
  LogCallback Callback() {
    return [this](LogLevel level, absl::string_view component,
                  absl::string_view message) {
      absl::MutexLock lock(&mu_);
      lines_.push_back(
          absl::StrCat(LogLevelName(level), " ", component, ": ", message));
    };
  }
  std::vector<std::string> Lines() const {
    absl::MutexLock lock(&mu_);
    return lines_;
  }
  int Warnings() const {
    int n = 0;
    for (const auto& line : Lines()) {
      n += absl::StartsWith(line, "warning") ? 1 : 0;
    }
    return n;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_;
};

class LayeredStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MemoryStoreOptions memory;
    memory.clock = &clock_;
    auto top = NewMemoryStore(memory);
    auto bottom = std::make_unique<FaultyCertStore>(NewMemoryStore(memory));
    top_ = top.get();
    bottom_ = bottom.get();
    std::vector<std::unique_ptr<CertStore>> layers;
    layers.push_back(std::move(top));
    layers.push_back(std::move(bottom));
    LayeredStoreOptions options;
    options.clock = &clock_;
    options.log = log_.Callback();
    options.lock_timeout = absl::Milliseconds(100);
    auto store = LayeredStore::Open(std::move(layers), options);
    ASSERT_OK(store);
    store_ = *std::move(store);
  }

  std::shared_ptr<const Entry> Fresh(const std::string& alias,
                                     int key_index = 0) {
    return Pki().MakeEntry(alias, PoolKey(KeyType::kEcP256, key_index),
                           clock_.Now() - absl::Hours(1),
                           clock_.Now() - absl::Hours(1) + kWeek);
  }

  // A mint that counts its calls and issues a fresh entry.
  MintFunction CountingMint(std::atomic<int>* calls,
                            absl::Duration delay = absl::ZeroDuration()) {
    return [this, calls, delay](absl::string_view alias)
               -> absl::StatusOr<std::shared_ptr<const Entry>> {
      int n = ++*calls;
      if (delay > absl::ZeroDuration()) {
        std::this_thread::sleep_for(absl::ToChronoNanoseconds(delay));
      }
      return Pki().MakeEntry(std::string(alias),
                             PoolKey(KeyType::kEcP256, 10 + n % 4),
                             clock_.Now() - absl::Minutes(1),
                             clock_.Now() - absl::Minutes(1) + kWeek);
    };
  }

  static MintFunction FailingMint(std::atomic<int>* calls) {
    return
        [calls](
            absl::string_view) -> absl::StatusOr<std::shared_ptr<const Entry>> {
          ++*calls;
          return absl::UnavailableError("issuer unreachable (injected)");
        };
  }

  ManualClock clock_{TestNow()};
  LogRecorder log_;
  CertStore* top_ = nullptr;
  FaultyCertStore* bottom_ = nullptr;
  std::unique_ptr<LayeredStore> store_;
};

TEST_F(LayeredStoreTest, NameJoinsTheLayers) {
  EXPECT_EQ(store_->Name(), "memory:,memory:");
  EXPECT_THAT(store_->layers(), SizeIs(2));
}

TEST_F(LayeredStoreTest, LowerLayerHitIsBackfilledAbove) {
  auto entry = Fresh("bf#att=0");
  ASSERT_OK(bottom_->Put(entry));
  EXPECT_THAT(top_->Find("bf#att=0"), StatusIs(absl::StatusCode::kNotFound));
  auto found = store_->Find("bf#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
  ASSERT_OK(top_->Find("bf#att=0"));
  ASSERT_OK(store_->Find("bf#att=0"));
  LayeredStoreMetrics m = store_->Metrics();
  EXPECT_THAT(m.hits_per_layer, ElementsAre(1, 1));
  EXPECT_EQ(m.backfills, 1);
}

TEST_F(LayeredStoreTest, UnservableLowerEntryIsNotBackfilled) {
  ASSERT_OK(bottom_->Put(
      Pki().MakeEntry("stale#att=0", PoolKey(KeyType::kEcP256, 0),
                      clock_.Now() - kWeek, clock_.Now() + absl::Hours(2))));
  EXPECT_THAT(store_->Find("stale#att=0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("any layer")));
  auto listed = top_->List({});
  ASSERT_OK(listed);
  EXPECT_THAT(*listed, SizeIs(0));
  EXPECT_EQ(store_->Metrics().misses, 1);
}

TEST_F(LayeredStoreTest, PutWritesThroughEveryLayer) {
  auto entry = Fresh("wt#att=0");
  ASSERT_OK(store_->Put(entry));
  EXPECT_OK(top_->Find("wt#att=0"));
  EXPECT_OK(bottom_->Find("wt#att=0"));
  EXPECT_EQ(store_->Metrics().puts, 1);
}

TEST_F(LayeredStoreTest, RefusedEntryChangesNoLayer) {
  LeafOptions leaf;
  leaf.not_before = clock_.Now() - absl::Hours(1);
  leaf.not_after = clock_.Now() + kWeek;
  EntryParts parts;
  parts.alias = "mm#att=0";
  parts.chain_der = Pki().IssueChain(*PoolKey(KeyType::kEcP256, 0), leaf);
  parts.key = PoolKey(KeyType::kEcP256, 1);
  auto bad = Entry::Create(std::move(parts));
  ASSERT_OK(bad);
  EXPECT_THAT(store_->Put(*bad),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(top_->Find("mm#att=0"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(bottom_->Find("mm#att=0"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(LayeredStoreTest, DeleteReachesEveryLayerAndReturnsTheTotal) {
  ASSERT_OK(store_->Put(Fresh("ev#att=0")));
  ASSERT_OK(bottom_->Put(Fresh("ev#att=0", 1)));
  // Two distinct entries; the written-through one counts once.
  EXPECT_THAT(store_->DeleteAllForAlias("ev#att=0"), IsOkAndHolds(2));
  EXPECT_THAT(top_->Find("ev#att=0"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(bottom_->Find("ev#att=0"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(store_->Metrics().evictions, 1);
}

TEST_F(LayeredStoreTest, GetOrCreateServesAnExistingEntryWithoutMinting) {
  auto entry = Fresh("have#att=0");
  ASSERT_OK(store_->Put(entry));
  std::atomic<int> mints{0};
  auto got = store_->GetOrCreate("have#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_EQ((*got)->thumbprint(), entry->thumbprint());
  EXPECT_EQ(mints.load(), 0);
}

TEST_F(LayeredStoreTest, GetOrCreateMintsOnMissAndStoresInEveryLayer) {
  std::atomic<int> mints{0};
  auto got = store_->GetOrCreate("miss#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_EQ(mints.load(), 1);
  auto in_bottom = bottom_->Find("miss#att=0");
  ASSERT_OK(in_bottom);
  EXPECT_EQ((*in_bottom)->thumbprint(), (*got)->thumbprint());
  EXPECT_OK(top_->Find("miss#att=0"));
  EXPECT_EQ(store_->Metrics().mints, 1);
}

TEST_F(LayeredStoreTest, SixtyFourColdThreadsMintOnce) {
  std::atomic<int> mints{0};
  MintFunction mint = CountingMint(&mints, absl::Milliseconds(50));
  std::vector<std::string> thumbprints(64);
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&, t] {
      auto got = store_->GetOrCreate("herd#att=0", {}, mint);
      thumbprints[t] =
          got.ok() ? (*got)->thumbprint() : got.status().ToString();
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(mints.load(), 1);
  for (const auto& thumbprint : thumbprints) {
    EXPECT_EQ(thumbprint, thumbprints[0]);
  }
}

TEST_F(LayeredStoreTest, EvictionForcesAMintWhateverTheLayersHold) {
  ASSERT_OK(store_->Put(Fresh("sticky#att=0")));
  ASSERT_OK(store_->DeleteAllForAlias("sticky#att=0"));
  EXPECT_TRUE(store_->ForceMintPending("sticky#att=0"));
  // Something puts the old binding back into a layer behind our back.
  auto stale = Fresh("sticky#att=0", 2);
  ASSERT_OK(bottom_->Put(stale));
  std::atomic<int> mints{0};
  auto got = store_->GetOrCreate("sticky#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_EQ(mints.load(), 1);
  EXPECT_NE((*got)->thumbprint(), stale->thumbprint());
  EXPECT_FALSE(store_->ForceMintPending("sticky#att=0"));
}

TEST_F(LayeredStoreTest, FailedMintLeavesForceMintSet) {
  ASSERT_OK(store_->Put(Fresh("retry#att=0")));
  ASSERT_OK(store_->DeleteAllForAlias("retry#att=0"));
  ASSERT_OK(bottom_->Put(Fresh("retry#att=0", 2)));
  std::atomic<int> failed{0};
  EXPECT_THAT(store_->GetOrCreate("retry#att=0", {}, FailingMint(&failed)),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("issuer unreachable")));
  EXPECT_TRUE(store_->ForceMintPending("retry#att=0"));
  EXPECT_THAT(store_->GetOrCreate("retry#att=0", {}, FailingMint(&failed)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(failed.load(), 2);  // never served the layers' entry meanwhile
  std::atomic<int> mints{0};
  ASSERT_OK(store_->GetOrCreate("retry#att=0", {}, CountingMint(&mints)));
  EXPECT_FALSE(store_->ForceMintPending("retry#att=0"));
  EXPECT_EQ(store_->Metrics().mint_failures, 2);
}

TEST_F(LayeredStoreTest, MintOfAnotherAliasIsRefused) {
  MintFunction wrong =
      [this](
          absl::string_view) -> absl::StatusOr<std::shared_ptr<const Entry>> {
    return Fresh("someone-else#att=0");
  };
  EXPECT_THAT(
      store_->GetOrCreate("me#att=0", {}, wrong),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("another alias")));
  EXPECT_THAT(store_->Find("someone-else#att=0"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(LayeredStoreTest, FailingPersistentFindDegradesToMemory) {
  ASSERT_OK(store_->Put(Fresh("deg#att=0")));
  bottom_->FailAlways(StoreOp::kFind, absl::UnavailableError("disk busy"));
  EXPECT_OK(store_->Find("deg#att=0"));  // top hit: bottom not consulted
  EXPECT_THAT(store_->Find("absent#att=0"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(store_->Metrics().degradations, 1);
  EXPECT_EQ(log_.Warnings(), 1);
  EXPECT_THAT(log_.Lines().back(), HasSubstr("disk busy"));
}

TEST_F(LayeredStoreTest, DamagedEntryIsEvictedBeforeMinting) {
  ASSERT_OK(bottom_->Put(Fresh("damaged#att=0")));
  bottom_->FailNext(StoreOp::kFind, 1,
                    absl::DataLossError("row 7: digest mismatch"));
  std::atomic<int> mints{0};
  auto got = store_->GetOrCreate("damaged#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_EQ(mints.load(), 1);
  EXPECT_EQ(store_->Metrics().evictions, 1);
  EXPECT_EQ(bottom_->calls(StoreOp::kDelete), 1);
  auto listed = bottom_->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(1));  // only the new entry is left
  EXPECT_EQ((*listed)[0].thumbprint, (*got)->thumbprint());
}

TEST_F(LayeredStoreTest, FailingPersistentPutStillServesTheMint) {
  bottom_->FailAlways(StoreOp::kPut,
                      absl::PermissionDeniedError("read-only store"));
  std::atomic<int> mints{0};
  auto got = store_->GetOrCreate("ro#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_OK(top_->Find("ro#att=0"));
  EXPECT_GE(log_.Warnings(), 1);
  // Served from memory afterwards, no second mint.
  ASSERT_OK(store_->GetOrCreate("ro#att=0", {}, CountingMint(&mints)));
  EXPECT_EQ(mints.load(), 1);
}

TEST_F(LayeredStoreTest, EveryLayerFailingPutIsAnError) {
  bottom_->FailAlways(StoreOp::kPut, absl::UnavailableError("busy"));
  MemoryStoreOptions memory;
  std::vector<std::unique_ptr<CertStore>> layers;
  auto only = std::make_unique<FaultyCertStore>(NewMemoryStore(memory));
  only->FailAlways(StoreOp::kPut, absl::UnavailableError("busy"));
  layers.push_back(std::move(only));
  auto single = LayeredStore::Open(std::move(layers));
  ASSERT_OK(single);
  EXPECT_THAT((*single)->Put(Fresh("nowhere#att=0")),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(LayeredStoreTest, BusyMintLockDegradesInsteadOfHanging) {
  bottom_->FailAlways(StoreOp::kLockAlias,
                      absl::UnavailableError("lock held elsewhere"));
  std::atomic<int> mints{0};
  ASSERT_OK(store_->GetOrCreate("busy#att=0", {}, CountingMint(&mints)));
  EXPECT_EQ(mints.load(), 1);
  EXPECT_THAT(log_.Lines(),
              ::testing::Contains(HasSubstr("without the mint lock")));
}

TEST_F(LayeredStoreTest, ProbeKeyCreateKeyAndLockGoToTheBottomLayer) {
  auto entry = Fresh("probe#att=0");
  EXPECT_OK(store_->ProbeKey(*entry));
  EXPECT_OK(store_->CreateKey("probe#att=0", KeySpec{}));
  EXPECT_OK(store_->LockAlias("probe#att=0", absl::Milliseconds(10)));
  EXPECT_EQ(bottom_->calls(StoreOp::kProbeKey), 1);
  EXPECT_EQ(bottom_->calls(StoreOp::kCreateKey), 1);
  EXPECT_EQ(bottom_->calls(StoreOp::kLockAlias), 1);
}

TEST_F(LayeredStoreTest, ListNamesEveryLayerThatHoldsAnEntry) {
  ASSERT_OK(store_->Put(Fresh("both#att=0")));
  ASSERT_OK(bottom_->Put(Fresh("low#att=0", 1)));
  auto listed = store_->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(2));
  EXPECT_EQ((*listed)[0].alias, "both#att=0");
  EXPECT_EQ((*listed)[0].store, "memory:,memory:");
  EXPECT_EQ((*listed)[1].alias, "low#att=0");
  EXPECT_EQ((*listed)[1].store, "memory:");
}

TEST_F(LayeredStoreTest, EntryPastItsRenewalPointIsRenewedOnceAndServed) {
  auto entry = Fresh("renew#att=0");  // one week, started an hour ago
  ASSERT_OK(store_->Put(entry));
  std::atomic<int> mints{0};
  MintFunction mint = CountingMint(&mints, absl::Milliseconds(50));
  clock_.Advance(absl::Hours(24 * 2));  // 30 % of lifetime: fresh
  ASSERT_OK(store_->GetOrCreate("renew#att=0", {}, mint));
  EXPECT_EQ(mints.load(), 0);
  clock_.Advance(absl::Hours(24 * 2 + 12));  // ~66 %: past 50 % +/- 10 %
  std::vector<std::string> served(16);
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      auto got = store_->GetOrCreate("renew#att=0", {}, mint);
      served[t] = got.ok() ? (*got)->thumbprint() : got.status().ToString();
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(mints.load(), 1);
  for (const auto& thumbprint : served) {
    EXPECT_FALSE(thumbprint.empty());
    EXPECT_THAT(thumbprint, ::testing::Not(HasSubstr("Status")));
  }
  auto now_served = store_->Find("renew#att=0");
  ASSERT_OK(now_served);
  EXPECT_NE((*now_served)->thumbprint(), entry->thumbprint());
  EXPECT_EQ(store_->Metrics().renewals, 1);
}

TEST_F(LayeredStoreTest, FailedRenewalKeepsServingTheCurrentEntry) {
  auto entry = Fresh("renew-fail#att=0");
  ASSERT_OK(store_->Put(entry));
  clock_.Advance(absl::Hours(24 * 5));
  std::atomic<int> failed{0};
  auto got = store_->GetOrCreate("renew-fail#att=0", {}, FailingMint(&failed));
  ASSERT_OK(got);
  EXPECT_EQ((*got)->thumbprint(), entry->thumbprint());
  EXPECT_EQ(failed.load(), 1);
  EXPECT_THAT(log_.Lines(), ::testing::Contains(HasSubstr("renewal failed")));
}

TEST_F(LayeredStoreTest, BadAliasIsRefusedBeforeMinting) {
  std::atomic<int> mints{0};
  EXPECT_THAT(store_->GetOrCreate("", {}, CountingMint(&mints)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->DeleteAllForAlias(std::string(kMaxAliasBytes + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(mints.load(), 0);
  EXPECT_FALSE(store_->ForceMintPending(""));
}

TEST(LayeredStoreOpenTest, RefusesBadConfigurations) {
  EXPECT_THAT(
      LayeredStore::Open({}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no layers")));
  std::vector<std::unique_ptr<CertStore>> with_null;
  with_null.push_back(nullptr);
  EXPECT_THAT(LayeredStore::Open(std::move(with_null)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  for (auto [fraction, jitter] :
       {std::pair{0.0, 0.0}, std::pair{1.0, 0.0}, std::pair{0.5, 0.5},
        std::pair{0.9, 0.2}, std::pair{0.5, -0.1}}) {
    std::vector<std::unique_ptr<CertStore>> layers;
    layers.push_back(NewMemoryStore());
    LayeredStoreOptions options;
    options.renewal_fraction = fraction;
    options.renewal_jitter = jitter;
    EXPECT_THAT(LayeredStore::Open(std::move(layers), options),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << fraction << " " << jitter;
  }
}

// The renewal point depends only on the certificate: the same in every
// process (a per-process hash seed would make processes disagree), within
// fraction +/- jitter, and spread across certificates.
TEST(RenewalTimeTest, IsFixedPerCertificateWithinTheJitterBand) {
  const absl::Time not_before = absl::FromUnixSeconds(1'700'000'000);
  const absl::Time not_after = not_before + absl::Hours(24 * 7);
  const absl::Duration lifetime = not_after - not_before;
  // FNV-1a("abc") % 2001 = 1407, so the fraction is 0.5 + 0.1 x 0.407: a
  // fixed value, the same in every process and build.
  EXPECT_LE(absl::AbsDuration(RenewalTime(not_before, not_after, "abc") -
                              (not_before + lifetime * 0.5407)),
            absl::Seconds(1));
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string thumbprint = absl::StrCat("thumbprint-", i);
    const absl::Time t = RenewalTime(not_before, not_after, thumbprint);
    EXPECT_GE(t, not_before + lifetime * 0.4) << thumbprint;
    EXPECT_LE(t, not_before + lifetime * 0.6) << thumbprint;
    seen.insert(absl::ToUnixSeconds(t));
  }
  EXPECT_GT(seen.size(), 150u);
  LayeredStoreOptions no_jitter;
  no_jitter.renewal_jitter = 0;
  EXPECT_EQ(RenewalTime(not_before, not_after, "x", no_jitter),
            not_before + lifetime / 2);
}

// The conformance suite on memory over memory.
INSTANTIATE_TEST_SUITE_P(
    Layered, CertStoreConformanceTest,
    ::testing::Values(ConformanceBackend{
        "memory_over_memory",
        [](const Clock* clock) -> absl::StatusOr<std::unique_ptr<CertStore>> {
          MemoryStoreOptions memory;
          memory.clock = clock;
          std::vector<std::unique_ptr<CertStore>> layers;
          layers.push_back(NewMemoryStore(memory));
          layers.push_back(NewMemoryStore(memory));
          LayeredStoreOptions options;
          options.clock = clock;
          auto store = LayeredStore::Open(std::move(layers), options);
          if (!store.ok()) {
            return store.status();
          }
          return std::unique_ptr<CertStore>(std::move(*store));
        }}),
    ConformanceBackendName);

}  // namespace
}  // namespace certstore::testing

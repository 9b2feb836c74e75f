// MintCoordinator on the two shapes a user hands it: a single plain store,
// and memory over a persistent layer. Every rule (single flight, sticky
// eviction, damage evicted, renewal) must hold on both, since the token
// client mints through it on whatever store it is given.
#include "certstore/mint_coordinator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "certstore/layered_store.h"
#include "certstore/memory_store.h"
#include "certstore/testing/cert_store_conformance.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "tests/support/faulty_cert_store.h"

namespace certstore::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::SizeIs;

const TestPki& Pki() {
  static const TestPki* const pki = new TestPki(KeyType::kEcP256);
  return *pki;
}

enum class Shape { kPlain, kLayered };

std::string ShapeName(const ::testing::TestParamInfo<Shape>& info) {
  return info.param == Shape::kPlain ? "plain_store" : "memory_over_store";
}

class MintCoordinatorTest : public ::testing::TestWithParam<Shape> {
 protected:
  void SetUp() override {
    MemoryStoreOptions memory;
    memory.clock = &clock_;
    auto persistent = std::make_unique<FaultyCertStore>(NewMemoryStore(memory));
    persistent_ = persistent.get();
    if (GetParam() == Shape::kPlain) {
      store_ = std::move(persistent);
    } else {
      std::vector<std::unique_ptr<CertStore>> layers;
      layers.push_back(NewMemoryStore(memory));
      layers.push_back(std::move(persistent));
      auto layered = LayeredStore::Open(std::move(layers));
      ASSERT_OK(layered);
      store_ = *std::move(layered);
    }
    MintCoordinatorOptions options;
    options.clock = &clock_;
    options.lock_timeout = absl::Milliseconds(100);
    options.log = [this](LogLevel level, absl::string_view component,
                         absl::string_view message) {
      absl::MutexLock lock(&mu_);
      log_.push_back(
          absl::StrCat(LogLevelName(level), " ", component, ": ", message));
    };
    auto minter = MintCoordinator::Create(store_.get(), options);
    ASSERT_OK(minter);
    minter_ = *std::move(minter);
  }

  std::vector<std::string> Log() {
    absl::MutexLock lock(&mu_);
    return log_;
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
  FaultyCertStore* persistent_ = nullptr;  // the store, or its bottom layer
  std::unique_ptr<CertStore> store_;
  std::unique_ptr<MintCoordinator> minter_;
  absl::Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
};

TEST_P(MintCoordinatorTest, ServesAnExistingEntryWithoutMinting) {
  auto entry = Fresh("have#att=0");
  ASSERT_OK(store_->Put(entry));
  std::atomic<int> mints{0};
  auto got = minter_->GetOrCreate("have#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_EQ((*got)->thumbprint(), entry->thumbprint());
  EXPECT_EQ(mints.load(), 0);
  EXPECT_EQ(&minter_->store(), store_.get());
}

TEST_P(MintCoordinatorTest, MintsOnMissAndStoresWhereTheStoreKeepsEntries) {
  std::atomic<int> mints{0};
  auto got = minter_->GetOrCreate("miss#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_EQ(mints.load(), 1);
  auto persisted = persistent_->Find("miss#att=0");
  ASSERT_OK(persisted);
  EXPECT_EQ((*persisted)->thumbprint(), (*got)->thumbprint());
  EXPECT_EQ(minter_->Metrics().mints, 1);
}

TEST_P(MintCoordinatorTest, SixtyFourColdThreadsMintOnce) {
  std::atomic<int> mints{0};
  MintFunction mint = CountingMint(&mints, absl::Milliseconds(50));
  std::vector<std::string> thumbprints(64);
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&, t] {
      auto got = minter_->GetOrCreate("herd#att=0", {}, mint);
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

// Two coordinators on one store (two clients, or a client and a user's
// own code) still mint once: the store's LockAlias serialises them and the
// second finds what the first stored.
TEST_P(MintCoordinatorTest, TwoCoordinatorsOnOneStoreMintOnce) {
  // Each waits for the other's lock however slow the machine is (the
  // fixture's 100 ms would let a busy one give up and mint too).
  MintCoordinatorOptions patient;
  patient.lock_timeout = absl::Seconds(60);
  auto one = MintCoordinator::Create(store_.get(), patient);
  auto second = MintCoordinator::Create(store_.get(), patient);
  ASSERT_OK(one);
  ASSERT_OK(second);
  std::atomic<int> mints{0};
  MintFunction mint = CountingMint(&mints, absl::Milliseconds(50));
  std::string a, b;
  std::thread first([&] {
    auto got = (*one)->GetOrCreate("pair#att=0", {}, mint);
    a = got.ok() ? (*got)->thumbprint() : got.status().ToString();
  });
  auto got = (*second)->GetOrCreate("pair#att=0", {}, mint);
  b = got.ok() ? (*got)->thumbprint() : got.status().ToString();
  first.join();
  EXPECT_EQ(mints.load(), 1);
  EXPECT_EQ(a, b);
}

TEST_P(MintCoordinatorTest, EvictionForcesAMintWhateverTheStoreHolds) {
  ASSERT_OK(store_->Put(Fresh("sticky#att=0")));
  EXPECT_THAT(minter_->Evict("sticky#att=0"), IsOkAndHolds(1));
  EXPECT_TRUE(minter_->ForceMintPending("sticky#att=0"));
  // Something puts the old binding back behind our back (a layer that
  // could not be cleared, another process).
  auto stale = Fresh("sticky#att=0", 2);
  ASSERT_OK(persistent_->Put(stale));
  std::atomic<int> mints{0};
  auto got = minter_->GetOrCreate("sticky#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_EQ(mints.load(), 1);
  EXPECT_NE((*got)->thumbprint(), stale->thumbprint());
  EXPECT_FALSE(minter_->ForceMintPending("sticky#att=0"));
  EXPECT_EQ(minter_->Metrics().evictions, 1);
}

TEST_P(MintCoordinatorTest, EvictionHoldsEvenWhenTheDeleteFails) {
  ASSERT_OK(store_->Put(Fresh("stuck#att=0")));
  persistent_->FailAlways(StoreOp::kDelete,
                          absl::InvalidArgumentError("cannot delete (test)"));
  EXPECT_FALSE(minter_->Evict("stuck#att=0").ok());
  EXPECT_TRUE(minter_->ForceMintPending("stuck#att=0"));
  std::atomic<int> mints{0};
  ASSERT_OK(minter_->GetOrCreate("stuck#att=0", {}, CountingMint(&mints)));
  EXPECT_EQ(mints.load(), 1);
}

TEST_P(MintCoordinatorTest, FailedMintLeavesForceMintSet) {
  ASSERT_OK(store_->Put(Fresh("retry#att=0")));
  ASSERT_OK(minter_->Evict("retry#att=0"));
  ASSERT_OK(persistent_->Put(Fresh("retry#att=0", 2)));
  std::atomic<int> failed{0};
  EXPECT_THAT(minter_->GetOrCreate("retry#att=0", {}, FailingMint(&failed)),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("issuer unreachable")));
  EXPECT_TRUE(minter_->ForceMintPending("retry#att=0"));
  EXPECT_THAT(minter_->GetOrCreate("retry#att=0", {}, FailingMint(&failed)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(failed.load(), 2);  // never served the stored entry meanwhile
  std::atomic<int> mints{0};
  ASSERT_OK(minter_->GetOrCreate("retry#att=0", {}, CountingMint(&mints)));
  EXPECT_FALSE(minter_->ForceMintPending("retry#att=0"));
  EXPECT_EQ(minter_->Metrics().mint_failures, 2);
}

TEST_P(MintCoordinatorTest, MintOfAnotherAliasIsRefused) {
  MintFunction wrong =
      [this](
          absl::string_view) -> absl::StatusOr<std::shared_ptr<const Entry>> {
    return Fresh("someone-else#att=0");
  };
  EXPECT_THAT(
      minter_->GetOrCreate("me#att=0", {}, wrong),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("another alias")));
  EXPECT_THAT(store_->Find("someone-else#att=0"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(MintCoordinatorTest, DamagedEntryIsEvictedBeforeMinting) {
  ASSERT_OK(persistent_->Put(Fresh("damaged#att=0")));
  persistent_->FailNext(StoreOp::kFind, 1,
                        absl::DataLossError("row 7: digest mismatch"));
  std::atomic<int> mints{0};
  auto got = minter_->GetOrCreate("damaged#att=0", {}, CountingMint(&mints));
  ASSERT_OK(got);
  EXPECT_EQ(mints.load(), 1);
  EXPECT_EQ(minter_->Metrics().evictions, 1);
  EXPECT_EQ(persistent_->calls(StoreOp::kDelete), 1);
  auto listed = persistent_->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(1));  // only the new entry is left
  EXPECT_EQ((*listed)[0].thumbprint, (*got)->thumbprint());
}

// An unavailable store is not a miss: a plain store's caller gets the
// error and nothing is minted; a layered store bypasses the layer (memory
// serves, a mint fills it) as LayeredStore documents.
TEST_P(MintCoordinatorTest, UnavailableStoreIsNotTakenForAMiss) {
  persistent_->FailAlways(StoreOp::kFind, absl::UnavailableError("busy"));
  std::atomic<int> mints{0};
  auto got = minter_->GetOrCreate("busy#att=0", {}, CountingMint(&mints));
  if (GetParam() == Shape::kPlain) {
    EXPECT_THAT(got, StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(mints.load(), 0);
  } else {
    EXPECT_OK(got);
    EXPECT_EQ(mints.load(), 1);
  }
}

TEST_P(MintCoordinatorTest, BusyMintLockDegradesInsteadOfHanging) {
  persistent_->FailAlways(StoreOp::kLockAlias,
                          absl::UnavailableError("lock held elsewhere"));
  std::atomic<int> mints{0};
  ASSERT_OK(minter_->GetOrCreate("busy#att=0", {}, CountingMint(&mints)));
  EXPECT_EQ(mints.load(), 1);
  EXPECT_EQ(minter_->Metrics().unlocked_mints, 1);
  EXPECT_THAT(Log(), Contains(HasSubstr("without the mint lock")));
}

TEST_P(MintCoordinatorTest, EntryPastItsRenewalPointIsRenewedOnceAndServed) {
  auto entry = Fresh("renew#att=0");  // one week, started an hour ago
  ASSERT_OK(store_->Put(entry));
  std::atomic<int> mints{0};
  MintFunction mint = CountingMint(&mints, absl::Milliseconds(50));
  clock_.Advance(absl::Hours(24 * 2));  // 30 % of lifetime: fresh
  ASSERT_OK(minter_->GetOrCreate("renew#att=0", {}, mint));
  EXPECT_EQ(mints.load(), 0);
  clock_.Advance(absl::Hours(24 * 2 + 12));  // ~66 %: past 50 % +/- 10 %
  std::vector<std::string> served(16);
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      auto got = minter_->GetOrCreate("renew#att=0", {}, mint);
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
  EXPECT_EQ(minter_->Metrics().renewals, 1);
}

TEST_P(MintCoordinatorTest, FailedRenewalKeepsServingTheCurrentEntry) {
  auto entry = Fresh("renew-fail#att=0");
  ASSERT_OK(store_->Put(entry));
  clock_.Advance(absl::Hours(24 * 5));
  std::atomic<int> failed{0};
  auto got = minter_->GetOrCreate("renew-fail#att=0", {}, FailingMint(&failed));
  ASSERT_OK(got);
  EXPECT_EQ((*got)->thumbprint(), entry->thumbprint());
  EXPECT_EQ(failed.load(), 1);
  EXPECT_THAT(Log(), Contains(HasSubstr("renewal failed")));
}

TEST_P(MintCoordinatorTest, BadAliasIsRefusedBeforeMinting) {
  std::atomic<int> mints{0};
  EXPECT_THAT(minter_->GetOrCreate("", {}, CountingMint(&mints)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(minter_->Evict(std::string(kMaxAliasBytes + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(mints.load(), 0);
  EXPECT_FALSE(minter_->ForceMintPending(""));
  EXPECT_EQ(persistent_->calls(StoreOp::kDelete), 0);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MintCoordinatorTest,
                         ::testing::Values(Shape::kPlain, Shape::kLayered),
                         ShapeName);

TEST(MintCoordinatorCreateTest, RefusesBadOptions) {
  EXPECT_THAT(MintCoordinator::Create(nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  auto store = NewMemoryStore();
  for (auto [fraction, jitter] :
       {std::pair{0.0, 0.0}, std::pair{1.0, 0.0}, std::pair{0.5, 0.5},
        std::pair{0.9, 0.2}, std::pair{0.5, -0.1}}) {
    MintCoordinatorOptions options;
    options.renewal_fraction = fraction;
    options.renewal_jitter = jitter;
    EXPECT_THAT(MintCoordinator::Create(store.get(), options),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << fraction << " " << jitter;
  }
  MintCoordinatorOptions negative;
  negative.lock_timeout = absl::Milliseconds(-1);
  EXPECT_THAT(
      MintCoordinator::Create(store.get(), negative),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lock_timeout")));
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
  MintCoordinatorOptions no_jitter;
  no_jitter.renewal_jitter = 0;
  EXPECT_EQ(RenewalTime(not_before, not_after, "x", no_jitter),
            not_before + lifetime / 2);
}

}  // namespace
}  // namespace certstore::testing

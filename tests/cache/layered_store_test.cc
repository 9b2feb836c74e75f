// LayeredStore semantics on in-process layers with fault injection. The
// same semantics over real persistent backends live beside those backends'
// tests (layered_backends_test.cc).
#include "certstore/layered_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "certstore/memory_store.h"
#include "certstore/testing/cert_store_conformance.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "tests/support/faulty_cert_store.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
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
    options.log = log_.Callback();
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

// Damage below is not hidden behind a miss: with nothing servable, Find
// says what is damaged (so that MintCoordinator evicts it); with a
// servable entry above, the damage costs nothing but a warning.
TEST_F(LayeredStoreTest, DamagedLowerLayerIsReportedWhenNothingIsServable) {
  bottom_->FailAlways(StoreOp::kFind,
                      absl::DataLossError("row 7: digest mismatch"));
  EXPECT_THAT(store_->Find("damaged#att=0"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("damaged#att=0"),
                             HasSubstr("digest mismatch"))));
  ASSERT_OK(top_->Put(Fresh("damaged#att=0")));
  EXPECT_OK(store_->Find("damaged#att=0"));
  bottom_->FailAlways(StoreOp::kFind, absl::UnavailableError("disk busy"));
  EXPECT_THAT(store_->Find("elsewhere#att=0"),
              StatusIs(absl::StatusCode::kNotFound));
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

TEST(LayeredStoreOpenTest, RefusesBadConfigurations) {
  EXPECT_THAT(
      LayeredStore::Open({}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no layers")));
  std::vector<std::unique_ptr<CertStore>> with_null;
  with_null.push_back(nullptr);
  EXPECT_THAT(LayeredStore::Open(std::move(with_null)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
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
          auto store = LayeredStore::Open(std::move(layers));
          if (!store.ok()) {
            return store.status();
          }
          return std::unique_ptr<CertStore>(std::move(*store));
        }}),
    ConformanceBackendName);

}  // namespace
}  // namespace certstore::testing

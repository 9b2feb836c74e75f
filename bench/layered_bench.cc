// LayeredStore (memory over SQLite) next to its own layers, same run:
//   BM_Layered_Find/N          warm hit, served by the memory layer
//   BM_Memory_Find/N           a bare MemoryStore with the same entries
//   BM_Layered_MissBackfill/N  the memory layer misses: SQLite hit + back-fill
//   BM_Sqlite_ColdFind/N       the SQLite store's own cold Find
//   BM_Layered_MissBackfillGrowing/N  back-fills that stay over a pass
// at N = 1,000 and 100,000 aliases. Every benchmark leaves the stores as it
// found them (a back-fill run empties the memory layer when it ends), so
// the runs may be interleaved (--benchmark_enable_random_interleaving),
// which is how scripts/bench runs them: this VM drifts by tens of percent
// between consecutive runs of the same loop.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "bench/ratio_reporter.h"
#include "certstore/layered_store.h"
#include "certstore/memory_store.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/test_pki.h"
#include "sqlite/connection_internal.h"
#include "sqlite/database_internal.h"
#include "sqlite/row_codec_internal.h"
#include "tests/support/temp_dir.h"

namespace certstore::bench {
namespace {

constexpr int64_t kAliases = 1000;
constexpr int64_t kManyAliases = 100000;
// Certificates issued for the 100,000-alias file; rows reuse them under
// other aliases (issuing 100,000 would take minutes).
constexpr int kDistinctEntries = 64;

struct Fixture {
  testing::TempDir dir;
  std::vector<std::string> aliases;
  std::unique_ptr<CertStore> memory;  // standalone, same entries
  std::unique_ptr<LayeredStore> layered;
  // A second layered store on another file whose entries nothing in this
  // process holds, so its SQLite Finds are cold (SqliteStore reuses
  // entries still held elsewhere in the process).
  std::unique_ptr<LayeredStore> cold;
  CertStore* cold_sqlite = nullptr;
};

std::unique_ptr<LayeredStore> MemoryOverSqlite(const std::string& path) {
  std::vector<std::unique_ptr<CertStore>> layers;
  layers.push_back(NewMemoryStore());
  auto sqlite = OpenSqliteStore(path);
  CheckOk(sqlite.status(), "OpenSqliteStore");
  layers.push_back(*std::move(sqlite));
  auto layered = LayeredStore::Open(std::move(layers));
  CheckOk(layered.status(), "LayeredStore::Open");
  return *std::move(layered);
}

Fixture& Get() {
  static Fixture* const f = [] {
    auto* fixture = new Fixture();
    testing::TestPki pki;
    fixture->memory = NewMemoryStore();
    fixture->layered = MemoryOverSqlite(fixture->dir.path() + "/warm.db");
    fixture->cold = MemoryOverSqlite(fixture->dir.path() + "/cold.db");
    fixture->cold_sqlite = fixture->cold->layers()[1];
    for (int64_t i = 0; i < kAliases; ++i) {
      fixture->aliases.push_back(absl::StrFormat("%08d-client#att=0", i));
      auto entry = pki.MakeEntry(
          fixture->aliases.back(), testing::PoolKey(KeyType::kEcP256, i % 16),
          absl::Now() - absl::Hours(1), absl::Now() + absl::Hours(24 * 7));
      CheckOk(fixture->layered->Put(entry), "Put");
      CheckOk(fixture->memory->Put(entry), "Put");
      // Its own entries, dropped right after the Put: nothing holds them.
      CheckOk(
          fixture->cold_sqlite->Put(pki.MakeEntry(
              fixture->aliases.back(),
              testing::PoolKey(KeyType::kEcP256, i % 16),
              absl::Now() - absl::Hours(1), absl::Now() + absl::Hours(24 * 7))),
          "Put");
    }
    return fixture;
  }();
  return *f;
}

// Each thread walks its own half of the aliases.
const std::string& Alias(const std::vector<std::string>& aliases,
                         const benchmark::State& state, int64_t i) {
  const int64_t per_thread =
      static_cast<int64_t>(aliases.size()) / state.threads();
  return aliases[state.thread_index() * per_thread + (i * 7919) % per_thread];
}

// Memory over SQLite where only SQLite holds entries, none of them held
// elsewhere in this process, so that SQLite Finds are cold.
struct ColdStores {
  std::vector<std::string> aliases;
  LayeredStore* layered = nullptr;
  CertStore* top = nullptr;
  CertStore* sqlite = nullptr;
  std::vector<std::string> backfilled;  // aliases the top layer now holds
};

ColdStores ColdOf(const std::vector<std::string>& aliases,
                  LayeredStore* layered) {
  return ColdStores{
      aliases, layered, layered->layers()[0], layered->layers()[1], {}};
}

ColdStores& Cold1000() {
  static ColdStores* const cold =
      new ColdStores(ColdOf(Get().aliases, Get().cold.get()));
  return *cold;
}

// A SQLite file of 100,000 aliases, written in one transaction through the
// store's own row codec, statement and transaction code (what Put writes,
// minus a commit and fsync per row, which would take minutes at
// synchronous=FULL).
struct ManyAliasesFile {
  testing::TempDir dir;
  std::string path;
  std::vector<std::string> aliases;
};

const ManyAliasesFile& ManyAliases() {
  static const ManyAliasesFile* const file = [] {
    auto* many = new ManyAliasesFile();
    many->path = many->dir.path() + "/many.db";
    CheckOk(OpenSqliteStore(many->path).status(),
            "OpenSqliteStore");  // creates the schema
    testing::TestPki pki;
    std::vector<sqlite_internal::StoredRow> rows;
    for (int i = 0; i < kDistinctEntries; ++i) {
      auto row = sqlite_internal::EncodeEntry(
          *pki.MakeEntry(absl::StrFormat("distinct-%d", i),
                         testing::PoolKey(KeyType::kEcP256, i),
                         absl::Now() - absl::Hours(1),
                         absl::Now() + absl::Hours(24 * 7)),
          nullptr);
      CheckOk(row.status(), "EncodeEntry");
      rows.push_back(*std::move(row));
    }
    sqlite_internal::DatabaseOptions options;
    options.path = many->path;
    options.name = "sqlite:" + many->path;
    auto db = sqlite_internal::Database::Open(options);
    CheckOk(db.status(), "Database::Open");
    auto insert_all = [&](sqlite_internal::Connection& connection) {
      for (int64_t i = 0; i < kManyAliases; ++i) {
        sqlite_internal::StoredRow& row = rows[i % kDistinctEntries];
        row.alias = absl::StrFormat("%08d-client#att=0", i);
        row.digest = sqlite_internal::RowDigest(row);
        auto insert = connection.Prepare(sqlite_internal::kInsertRowSql);
        if (!insert.ok()) {
          return insert.status();
        }
        sqlite_internal::BindRow(row, *insert);
        if (absl::Status s = insert->Run(); !s.ok()) {
          return s;
        }
        many->aliases.push_back(row.alias);
      }
      return absl::OkStatus();
    };
    CheckOk((*db)->Write("bench fill", insert_all), "Write");
    return many;
  }();
  return *file;
}

ColdStores& Cold100k() {
  static ColdStores* const cold = new ColdStores(ColdOf(
      ManyAliases().aliases, MemoryOverSqlite(ManyAliases().path).release()));
  return *cold;
}

ColdStores& ColdFor(const benchmark::State& state) {
  return state.range(0) == kAliases ? Cold1000() : Cold100k();
}

// Warm stores of one size: a layered store whose memory layer holds every
// alias, and a bare MemoryStore holding the same entries.
struct WarmStores {
  const std::vector<std::string>* aliases = nullptr;
  LayeredStore* layered = nullptr;
  CertStore* memory = nullptr;
};

WarmStores& Warm1000() {
  static WarmStores* const warm =
      new WarmStores{&Get().aliases, Get().layered.get(), Get().memory.get()};
  return *warm;
}

// Another store instance on the 100,000-alias file (the cold pair's store
// holds nothing), warmed by one Find per alias (a back-fill each).
WarmStores& Warm100k() {
  static WarmStores* const warm = [] {
    const ManyAliasesFile& many = ManyAliases();
    auto* stores =
        new WarmStores{&many.aliases, MemoryOverSqlite(many.path).release(),
                       NewMemoryStore().release()};
    // One store after the other, so that each one's nodes lie together as
    // in a process with one store (interleaved, both would be spread).
    std::vector<std::shared_ptr<const Entry>> entries;
    for (const std::string& alias : many.aliases) {
      auto entry = stores->layered->Find(alias);
      CheckOk(entry.status(), "layered Find");
      entries.push_back(*std::move(entry));
    }
    for (auto& entry : entries) {
      CheckOk(stores->memory->Put(std::move(entry)), "Put");
    }
    return stores;
  }();
  return *warm;
}

WarmStores& WarmFor(const benchmark::State& state) {
  return state.range(0) == kAliases ? Warm1000() : Warm100k();
}

void FindLoop(benchmark::State& state, const std::vector<std::string>& aliases,
              CertStore* store) {
  int64_t i = 0;
  for (auto _ : state) {
    auto entry = store->Find(Alias(aliases, state, i++));
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(entry);
  }
}

void BM_Layered_Find(benchmark::State& state) {
  WarmStores& warm = WarmFor(state);
  FindLoop(state, *warm.aliases, warm.layered);
}
void BM_Memory_Find(benchmark::State& state) {
  WarmStores& warm = WarmFor(state);
  FindLoop(state, *warm.aliases, warm.memory);
}

// Hits paired (ratio_reporter.h): blocks of kBlock Finds on the layered
// store and on the bare memory store alternate, the order swapped every
// block, each block timed alone; the ratio table reads the two means per
// Find per thread.
void BM_Paired_Find(benchmark::State& state) {
  constexpr int kBlock = 256;
  WarmStores& warm = WarmFor(state);
  double layered_ns = 0;
  double memory_ns = 0;
  int64_t i = 0;
  auto block = [&](CertStore* store, int64_t first) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t k = first; k < first + kBlock; ++k) {
      auto entry = store->Find(Alias(*warm.aliases, state, k));
      if (!entry.ok()) {
        state.SkipWithError(entry.status().ToString().c_str());
        break;
      }
      benchmark::DoNotOptimize(entry);
    }
    return std::chrono::duration<double, std::nano>(
               std::chrono::steady_clock::now() - start)
        .count();
  };
  for (auto _ : state) {
    double layered_block;
    if ((i / kBlock) % 2 == 0) {
      layered_block = block(warm.layered, i);
      memory_ns += block(warm.memory, i);
    } else {
      memory_ns += block(warm.memory, i);
      layered_block = block(warm.layered, i);
    }
    layered_ns += layered_block;
    state.SetIterationTime(layered_block / 1e9);
    i += kBlock;
  }
  state.counters["paired_ours_ns"] = benchmark::Counter(
      layered_ns / kBlock, benchmark::Counter::kAvgIterations);
  state.counters["paired_floor_ns"] = benchmark::Counter(
      memory_ns / kBlock, benchmark::Counter::kAvgIterations);
}

// The cold pair is timed by hand (SecondsOf), the Find alone: dropping its
// result and (for a back-fill) evicting the alias again follow it untimed,
// so that every iteration is one cold Find, or one miss then one
// back-fill, with the stores as they were before it.

void BM_Sqlite_ColdFind(benchmark::State& state) {
  ColdStores& cold = ColdFor(state);
  int64_t i = 0;
  for (auto _ : state) {
    absl::StatusOr<std::shared_ptr<const Entry>> entry;
    const double seconds = SecondsOf(
        [&] { entry = cold.sqlite->Find(Alias(cold.aliases, state, i++)); });
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    state.SetIterationTime(seconds);
  }
}

void BM_Layered_MissBackfill(benchmark::State& state) {
  ColdStores& cold = ColdFor(state);
  int64_t i = 0;
  for (auto _ : state) {
    const std::string& alias = Alias(cold.aliases, state, i++);
    absl::StatusOr<std::shared_ptr<const Entry>> entry;
    const double seconds =
        SecondsOf([&] { entry = cold.layered->Find(alias); });
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    entry = absl::StatusOr<std::shared_ptr<const Entry>>();
    CheckOk(cold.top->DeleteAllForAlias(alias).status(), "DeleteAllForAlias");
    state.SetIterationTime(seconds);
  }
}

// The bar's measurement: a miss-then-back-fill and a cold SQLite Find on
// the same store alternate in one loop, on aliases half the store apart
// (both cold), the order swapped every iteration, each timed alone; the
// ratio table reads the two means (ratio_reporter.h, paired runs). Run
// separately (above), the two drift apart by more than the overhead.
void BM_Paired_MissBackfill(benchmark::State& state) {
  ColdStores& cold = ColdFor(state);
  const int64_t n = static_cast<int64_t>(cold.aliases.size());
  int64_t cold_i = 0;
  int64_t backfill_i = 0;
  RunPaired(
      state,
      [&] {
        const std::string& alias =
            cold.aliases[(backfill_i++ * 7919 + n / 2) % n];
        absl::StatusOr<std::shared_ptr<const Entry>> found;
        const double seconds =
            SecondsOf([&] { found = cold.layered->Find(alias); });
        CheckOk(found.status(), "layered Find");
        found = absl::StatusOr<std::shared_ptr<const Entry>>();
        CheckOk(cold.top->DeleteAllForAlias(alias).status(),
                "DeleteAllForAlias");
        return std::optional<double>(seconds);
      },
      [&] {
        const std::string& alias = cold.aliases[(cold_i++ * 7919) % n];
        absl::StatusOr<std::shared_ptr<const Entry>> found;
        const double seconds =
            SecondsOf([&] { found = cold.sqlite->Find(alias); });
        CheckOk(found.status(), "sqlite Find");
        return std::optional<double>(seconds);
      },
      "a Find failed");
}

// Empties the top layer of what earlier iterations back-filled.
void EvictBackfilled(ColdStores& cold) {
  for (const std::string& alias : cold.backfilled) {
    CheckOk(cold.top->DeleteAllForAlias(alias).status(), "DeleteAllForAlias");
  }
  cold.backfilled.clear();
}

// Back-fills that stay: the top layer fills up over a pass over the aliases
// and is emptied (untimed) when the next pass begins. Slower than a single
// back-fill by what the allocator does when each entry's memory stays in
// use instead of being reused by the next one (malloc_consolidate and
// page faults in the profile), not by anything the stores do.
void BM_Layered_MissBackfillGrowing(benchmark::State& state) {
  ColdStores& cold = ColdFor(state);
  const int64_t n = static_cast<int64_t>(cold.aliases.size());
  int64_t i = 0;
  for (auto _ : state) {
    if (i % n == 0) {
      state.PauseTiming();
      EvictBackfilled(cold);
      state.ResumeTiming();
    }
    const std::string& alias = Alias(cold.aliases, state, i++);
    auto entry = cold.layered->Find(alias);
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    cold.backfilled.push_back(alias);
  }
  // Leave nothing held (the timer stopped with the loop): a cold Find run
  // after this one must stay cold.
  EvictBackfilled(cold);
}

void SizeArgs(benchmark::internal::Benchmark* b) {
  b->Arg(kAliases)->Arg(kManyAliases);
}

BENCHMARK(BM_Memory_Find)
    ->Apply(SizeArgs)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_Layered_Find)
    ->Apply(SizeArgs)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_Paired_Find)
    ->Apply(SizeArgs)
    ->UseManualTime()
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_Sqlite_ColdFind)
    ->Apply(SizeArgs)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Layered_MissBackfill)
    ->Apply(SizeArgs)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Paired_MissBackfill)
    ->Apply(SizeArgs)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Layered_MissBackfillGrowing)
    ->Apply(SizeArgs)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

bool RegisterLayeredRatios() {
  for (int64_t n : {kAliases, kManyAliases}) {
    for (int threads : {1, 2}) {
      const std::string run =
          absl::StrFormat("/%d/real_time/threads:%d", n, threads);
      const std::string paired = absl::StrFormat(
          "BM_Paired_Find/%d/manual_time/threads:%d", n, threads);
      RegisterRatio(paired + "/ours", paired + "/floor", 1.2);
      RegisterRatio("BM_Layered_Find" + run, "BM_Memory_Find" + run, kNoBar);
    }
  }
  for (int64_t n : {kAliases, kManyAliases}) {
    const std::string cold =
        absl::StrFormat("BM_Sqlite_ColdFind/%d/manual_time", n);
    const std::string paired =
        absl::StrFormat("BM_Paired_MissBackfill/%d/manual_time", n);
    RegisterRatio(paired + "/ours", paired + "/floor",
                  n == kAliases ? 1.1 : kNoBar);
    RegisterRatio(absl::StrFormat("BM_Layered_MissBackfill/%d/manual_time", n),
                  cold, kNoBar);
    RegisterRatio(
        absl::StrFormat("BM_Layered_MissBackfillGrowing/%d/real_time", n), cold,
        kNoBar);
  }
  return true;
}

[[maybe_unused]] const bool kLayeredRatiosRegistered = RegisterLayeredRatios();

}  // namespace
}  // namespace certstore::bench

// LayeredStore (memory over SQLite) next to its own layers, same run:
//   BM_Layered_Find/N          warm hit, served by the memory layer
//   BM_Memory_Find/N           a bare MemoryStore with the same entries
//   BM_Layered_MissBackfill/N  the memory layer misses: SQLite hit + back-fill
//   BM_Sqlite_ColdFind/N       the SQLite store's own cold Find
// at N = 1,000 and 100,000 aliases. Every benchmark leaves the stores as it
// found them (a back-fill run empties the memory layer when it ends), so
// the runs may be interleaved (--benchmark_enable_random_interleaving),
// which is how scripts/bench runs them: this VM drifts by tens of percent
// between consecutive runs of the same loop.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/ratio_reporter.h"
#include "cache/layered_store.h"
#include "memory/memory_store.h"
#include "sqlite/connection_internal.h"
#include "sqlite/database_internal.h"
#include "sqlite/row_codec_internal.h"
#include "sqlite/sqlite_store.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_pki.h"

namespace certstore::bench {
namespace {

constexpr int64_t kAliases = 1000;
constexpr int64_t kManyAliases = 100000;
// Certificates issued for the 100,000-alias file; rows reuse them under
// other aliases (issuing 100,000 would take minutes).
constexpr int kDistinctEntries = 64;

void Check(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "layered_bench setup: %s\n",
                 status.ToString().c_str());
    std::abort();
  }
}

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
  Check(sqlite.status());
  layers.push_back(*std::move(sqlite));
  auto layered = LayeredStore::Open(std::move(layers));
  Check(layered.status());
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
      Check(fixture->layered->Put(entry));
      Check(fixture->memory->Put(entry));
      // Its own entries, dropped right after the Put: nothing holds them.
      Check(fixture->cold_sqlite->Put(pki.MakeEntry(
          fixture->aliases.back(), testing::PoolKey(KeyType::kEcP256, i % 16),
          absl::Now() - absl::Hours(1), absl::Now() + absl::Hours(24 * 7))));
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
    Check(OpenSqliteStore(many->path).status());  // creates the schema
    testing::TestPki pki;
    std::vector<sqlite_internal::StoredRow> rows;
    for (int i = 0; i < kDistinctEntries; ++i) {
      auto row = sqlite_internal::EncodeEntry(
          *pki.MakeEntry(absl::StrFormat("distinct-%d", i),
                         testing::PoolKey(KeyType::kEcP256, i),
                         absl::Now() - absl::Hours(1),
                         absl::Now() + absl::Hours(24 * 7)),
          nullptr);
      Check(row.status());
      rows.push_back(*std::move(row));
    }
    sqlite_internal::DatabaseOptions options;
    options.path = many->path;
    options.name = "sqlite:" + many->path;
    auto db = sqlite_internal::Database::Open(options);
    Check(db.status());
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
    Check((*db)->Write("bench fill", insert_all));
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
      Check(entry.status());
      entries.push_back(*std::move(entry));
    }
    for (auto& entry : entries) {
      Check(stores->memory->Put(std::move(entry)));
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

void BM_Sqlite_ColdFind(benchmark::State& state) {
  ColdStores& cold = ColdFor(state);
  int64_t i = 0;
  for (auto _ : state) {
    auto entry = cold.sqlite->Find(Alias(cold.aliases, state, i++));
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(entry);
  }
}

// Empties the top layer of what earlier iterations back-filled.
void EvictBackfilled(ColdStores& cold) {
  for (const std::string& alias : cold.backfilled) {
    Check(cold.top->DeleteAllForAlias(alias).status());
  }
  cold.backfilled.clear();
}

// Every alias misses in memory once per pass over the aliases: the top
// layer is emptied (untimed) at the start of each pass rather than before
// every iteration, so that PauseTiming's own cost (two clock reads, one a
// system call here) is not charged to each back-fill.
void BM_Layered_MissBackfill(benchmark::State& state) {
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
  b->Arg(kAliases)->Arg(kManyAliases)->UseRealTime();
}

BENCHMARK(BM_Memory_Find)->Apply(SizeArgs)->Threads(1)->Threads(2);
BENCHMARK(BM_Layered_Find)->Apply(SizeArgs)->Threads(1)->Threads(2);
BENCHMARK(BM_Sqlite_ColdFind)->Apply(SizeArgs)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Layered_MissBackfill)
    ->Apply(SizeArgs)
    ->Unit(benchmark::kMicrosecond);

bool RegisterLayeredRatios() {
  for (int64_t n : {kAliases, kManyAliases}) {
    for (int threads : {1, 2}) {
      const std::string run =
          absl::StrFormat("/%d/real_time/threads:%d", n, threads);
      RegisterRatio("BM_Layered_Find" + run, "BM_Memory_Find" + run, 1.2);
    }
  }
  for (int64_t n : {kAliases, kManyAliases}) {
    RegisterRatio(absl::StrFormat("BM_Layered_MissBackfill/%d/real_time", n),
                  absl::StrFormat("BM_Sqlite_ColdFind/%d/real_time", n),
                  n == kAliases ? 1.1 : kNoBar);
  }
  return true;
}

[[maybe_unused]] const bool kLayeredRatiosRegistered = RegisterLayeredRatios();

}  // namespace
}  // namespace certstore::bench

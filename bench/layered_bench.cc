// LayeredStore (memory over SQLite) next to its own layers, same run:
//   BM_Layered_Find/N          warm hit, served by the memory layer
//   BM_Memory_Find/N           a bare MemoryStore with the same entries
//   BM_Layered_MissBackfill/N  the memory layer misses: SQLite hit + back-fill
//   BM_Sqlite_ColdFind         the SQLite store's own cold Find
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/ratio_reporter.h"
#include "cache/layered_store.h"
#include "memory/memory_store.h"
#include "sqlite/sqlite_store.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_pki.h"

namespace certstore::bench {
namespace {

constexpr int64_t kAliases = 1000;

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
  CertStore* cold_top = nullptr;
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
    fixture->cold_top = fixture->cold->layers()[0];
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
const std::string& Alias(const Fixture& f, const benchmark::State& state,
                         int64_t i) {
  const int64_t per_thread = kAliases / state.threads();
  return f.aliases[state.thread_index() * per_thread + (i * 7919) % per_thread];
}

void FindLoop(benchmark::State& state, CertStore* store) {
  const Fixture& f = Get();
  int64_t i = 0;
  for (auto _ : state) {
    auto entry = store->Find(Alias(f, state, i++));
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(entry);
  }
}

void BM_Layered_Find(benchmark::State& state) {
  FindLoop(state, Get().layered.get());
}
void BM_Memory_Find(benchmark::State& state) {
  FindLoop(state, Get().memory.get());
}
void BM_Sqlite_ColdFind(benchmark::State& state) {
  FindLoop(state, Get().cold_sqlite);
}

void BM_Layered_MissBackfill(benchmark::State& state) {
  Fixture& f = Get();
  int64_t i = 0;
  for (auto _ : state) {
    const std::string& alias = Alias(f, state, i++);
    state.PauseTiming();
    Check(f.cold_top->DeleteAllForAlias(alias).status());  // memory misses
    state.ResumeTiming();
    auto entry = f.cold->Find(alias);
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
  }
}

BENCHMARK(BM_Memory_Find)->UseRealTime()->Threads(1)->Threads(2);
BENCHMARK(BM_Layered_Find)->UseRealTime()->Threads(1)->Threads(2);
BENCHMARK(BM_Sqlite_ColdFind)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Layered_MissBackfill)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

bool RegisterLayeredRatios() {
  for (int threads : {1, 2}) {
    const std::string suffix =
        absl::StrFormat("/real_time/threads:%d", threads);
    RegisterRatio("BM_Layered_Find" + suffix, "BM_Memory_Find" + suffix, 1.2);
  }
  RegisterRatio("BM_Layered_MissBackfill/real_time",
                "BM_Sqlite_ColdFind/real_time", 1.1);
  return true;
}

[[maybe_unused]] const bool kLayeredRatiosRegistered = RegisterLayeredRatios();

}  // namespace
}  // namespace certstore::bench

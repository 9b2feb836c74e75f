// How a warm Find scales (issue 22), on each backend:
//   BM_Scale_Aliases/<backend>/<N>    one thread, a random alias among N
//                                     (memory and sqlite 10 → 1,000,000,
//                                     file 10 → 100,000, pkcs11 10 → 1,000)
//   BM_Scale_Threads/<backend>/threads:T   1,000 aliases, T = 1 → 64
//   BM_Scale_Processes/<backend>/<P>  1,000 aliases (PKCS#11: 100), P = 1 →
//                                     8 processes, each opening the store
//                                     after a fork, finding every alias once,
//                                     then 2,000 times; reports the mean time
//                                     per Find (counter ns_per_find)
// Times are per Find and thread. Stores live on /dev/shm (SoftHSM's tokens
// too), so this measures the stores' work, not the disk. scripts/bench-plot
// runs it and draws bench/charts/*.png from its JSON.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "certstore/backend_author.h"
#include "certstore/clock.h"
#include "certstore/memory_store.h"
#include "certstore/pem_dir_store.h"
#include "certstore/pkcs11_store.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/test_pki.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/temp_dir.h"

namespace certstore::bench {
namespace {

enum Backend : int64_t { kMemory = 0, kSqlite = 1, kFile = 2, kPkcs11 = 3 };
constexpr const char* kBackendNames[] = {"memory", "sqlite", "file", "pkcs11"};
constexpr int64_t kThreadsAliases = 1000;

absl::Time NotBefore() { return testing::TestNow() - absl::Hours(24); }
absl::Time NotAfter() { return testing::TestNow() + absl::Hours(6 * 24); }

std::string Alias(int64_t i) { return absl::StrFormat("%08d-client#att=0", i); }

// One issued entry; the others are its chain and key under other aliases
// (RestoreEntry: nothing decoded again).
std::shared_ptr<const Entry> WithAlias(const Entry& model, std::string alias) {
  EntryParts parts;
  parts.alias = std::move(alias);
  parts.chain_der = model.chain_der();
  parts.key = model.key();
  parts.created_at = model.created_at();
  auto entry = RestoreEntry(
      std::move(parts),
      LeafFacts{model.not_before(), model.not_after(), model.thumbprint()});
  CheckOk(entry.status(), "RestoreEntry");
  return *std::move(entry);
}

const testing::SoftHsmToken& Token() {
  static const testing::SoftHsmToken* const token = [] {
    auto made = testing::SoftHsmToken::Create("scaling");
    CheckOk(made.status(), "SoftHsmToken::Create");
    return made->release();
  }();
  return *token;
}

std::string ShmDir() {
  return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

// A store of `backend` holding N entries, and how to open it again (in a
// forked process).
struct Filled {
  explicit Filled(int64_t key) : backend(key / 100000000), n(key % 100000000) {
    static const Clock* const clock = new ManualClock(testing::TestNow());
    SetupTimer timer(
        absl::StrFormat("%s with %d entries", kBackendNames[backend], n));
    store = Open(clock);
    testing::TestPki pki;
    const auto model =
        pki.MakeEntry("model", testing::PoolKey(KeyType::kEcP256, 0),
                      NotBefore(), NotAfter());
    for (int64_t i = 0; i < n; ++i) {
      aliases.push_back(Alias(i));
      CheckOk(store->Put(WithAlias(*model, aliases.back())), "Put");
    }
  }

  std::unique_ptr<CertStore> Open(const Clock* clock) const {
    absl::StatusOr<std::unique_ptr<CertStore>> opened;
    switch (backend) {
      case kMemory: {
        MemoryStoreOptions options;
        options.clock = clock;
        return NewMemoryStore(options);
      }
      case kSqlite: {
        SqliteStoreOptions options;
        options.path = dir.path() + "/s.db";
        options.clock = clock;
        opened = OpenSqliteStore(options);
        break;
      }
      case kFile: {
        PemDirStoreOptions options;
        options.directory = dir.path() + "/certs";
        options.clock = clock;
        opened = OpenPemDirStore(options);
        break;
      }
      default: {
        Pkcs11StoreOptions options = Token().Options();
        options.allow_import = true;
        options.clock = clock;
        opened = OpenPkcs11Store(options);
      }
    }
    CheckOk(opened.status(), "open store");
    return *std::move(opened);
  }

  const int64_t backend;
  const int64_t n;
  std::vector<std::string> aliases;  // built once, not per Find
  testing::TempDir dir{ShmDir()};
  std::unique_ptr<CertStore> store;
};

const Filled& FilledStore(int64_t backend, int64_t n) {
  return BuiltOnce<Filled>(backend * 100000000 + n);
}

// Finds random aliases of `filled` until the loop ends.
void FindLoop(benchmark::State& state, const Filled& filled) {
  std::minstd_rand random(static_cast<unsigned>(state.thread_index() + 1));
  for (auto _ : state) {
    auto entry =
        filled.store->Find(filled.aliases[random() % filled.aliases.size()]);
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(entry);
  }
}

void BM_Scale_Aliases(benchmark::State& state, Backend backend) {
  const Filled& filled = FilledStore(backend, state.range(0));
  FindLoop(state, filled);
}

void BM_Scale_Threads(benchmark::State& state, Backend backend) {
  const Filled& filled = FilledStore(backend, kThreadsAliases);
  FindLoop(state, filled);
}

// P processes, each with its own store on the same files (or token),
// warmed by one Find of every alias. 100 aliases on PKCS#11: a first Find
// there is a linear scan of the token (~57 ms at 1,000 objects).
void BM_Scale_Processes(benchmark::State& state, Backend backend) {
  const Filled& filled =
      FilledStore(backend, backend == kPkcs11 ? 100 : kThreadsAliases);
  constexpr int kFinds = 2000;
  const int processes = static_cast<int>(state.range(0));
  double mean_ns = 0;
  for (auto _ : state) {
    std::vector<int> pipes;
    std::vector<pid_t> children;
    for (int p = 0; p < processes; ++p) {
      int fds[2];
      CheckOk(pipe(fds) == 0 ? absl::OkStatus() : absl::InternalError("pipe"),
              "pipe");
      const pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        ManualClock clock(testing::TestNow());
        std::unique_ptr<CertStore> store = filled.Open(&clock);
        std::minstd_rand random(static_cast<unsigned>(p + 1));
        for (const std::string& alias : filled.aliases) {  // warm
          (void)store->Find(alias);
        }
        const auto start = std::chrono::steady_clock::now();
        int failures = 0;
        for (int i = 0; i < kFinds; ++i) {
          failures +=
              !store->Find(filled.aliases[random() % filled.aliases.size()])
                   .ok();
        }
        const double ns = std::chrono::duration<double, std::nano>(
                              std::chrono::steady_clock::now() - start)
                              .count() /
                          kFinds;
        const double result = failures == 0 ? ns : -1;
        (void)!write(fds[1], &result, sizeof(result));
        _exit(0);
      }
      close(fds[1]);
      pipes.push_back(fds[0]);
      children.push_back(pid);
    }
    double sum = 0;
    for (size_t i = 0; i < children.size(); ++i) {
      double ns = -1;
      (void)!read(pipes[i], &ns, sizeof(ns));
      close(pipes[i]);
      waitpid(children[i], nullptr, 0);
      if (ns < 0) {
        state.SkipWithError("a process's Find failed");
        return;
      }
      sum += ns;
    }
    mean_ns = sum / processes;
    state.SetIterationTime(mean_ns / 1e9);
  }
  state.counters["ns_per_find"] = mean_ns;
}

void AliasArgs(benchmark::internal::Benchmark* b, int64_t max) {
  for (int64_t n = 10; n <= max; n *= 10) {
    b->Arg(n);
  }
  b->UseRealTime();
}

bool Register() {
  const std::pair<Backend, int64_t> aliases[] = {
      {kMemory, 1000000}, {kSqlite, 1000000}, {kFile, 100000}, {kPkcs11, 1000}};
  for (const auto& [backend, max] : aliases) {
    auto* b = benchmark::RegisterBenchmark(
        absl::StrFormat("BM_Scale_Aliases/%s", kBackendNames[backend]).c_str(),
        BM_Scale_Aliases, backend);
    AliasArgs(b, max);
  }
  for (Backend backend : {kMemory, kSqlite, kFile, kPkcs11}) {
    benchmark::RegisterBenchmark(
        absl::StrFormat("BM_Scale_Threads/%s", kBackendNames[backend]).c_str(),
        BM_Scale_Threads, backend)
        ->ThreadRange(1, 64)
        ->UseRealTime();
  }
  for (Backend backend : {kSqlite, kFile, kPkcs11}) {
    benchmark::RegisterBenchmark(
        absl::StrFormat("BM_Scale_Processes/%s", kBackendNames[backend])
            .c_str(),
        BM_Scale_Processes, backend)
        ->RangeMultiplier(2)
        ->Range(1, 8)
        ->Iterations(1)
        ->UseManualTime();
  }
  return true;
}

[[maybe_unused]] const bool kRegistered = Register();

}  // namespace
}  // namespace certstore::bench

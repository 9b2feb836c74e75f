// PemDirStore benchmarks beside the raw primitives they are built on.
//
// Workloads (names shared with the other backends where they apply):
//   BM_Floor_OpenRead/N            open + fstat + read + close of an entry file
//   BM_Floor_OpenReadPemDecode/N   the same + PEM_read_bio_X509 +
//                                  PEM_read_bio_PrivateKey: what a program
//                                  reading the PEM file itself pays per lookup
//   BM_Filesystem_Find/N           PemDirStore::Find hit (decoded entries
//                                  reused while the file bytes are unchanged)
//   BM_Filesystem_FindUncached/N   Find on a store that has decoded nothing
//                                  (the first lookup of each file)
//   BM_Floor_AtomicWrite           temp file + write + fsync + rename +
//                                  fsync(dir), bare
//   BM_Filesystem_Put              PemDirStore::Put of a new entry
//
// N aliases each have one entry file (EC P-256 leaf + intermediate + key,
// ~2.3 KB), in a temp directory removed at exit. Lookups walk the aliases
// in a shuffled order. Time is wall time per operation per thread (see
// memory_bench.cc for how Google Benchmark reports threaded runs).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/ratio_reporter.h"
#include "certstore/backend_author.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/entry.h"
#include "certstore/openssl_types.h"
#include "certstore/pem_dir_store.h"
#include "certstore/testing/test_pki.h"
#include "filesystem/alias_names.h"

namespace certstore::bench {
namespace {

constexpr int64_t kSizes[] = {1, 1000, 10000};
constexpr int kDistinctEntries = 64;

// One temp directory for the whole run, removed at exit.
const std::string& BenchRoot() {
  static const std::string* root = [] {
    const char* tmp = getenv("TMPDIR");
    auto* path = new std::string(
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp",
                     "/certstore-fs-bench-XXXXXX"));
    if (mkdtemp(&(*path)[0]) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      nftw(
          BenchRoot().c_str(),
          [](const char* p, const struct stat*, int, struct FTW*) {
            return remove(p);
          },
          16, FTW_DEPTH | FTW_PHYS);
    });
    return path;
  }();
  return *root;
}

std::shared_ptr<const Entry> Issue(const testing::TestPki& pki,
                                   const std::string& alias, int key_index) {
  return pki.MakeEntry(alias, testing::PoolKey(KeyType::kEcP256, key_index),
                       testing::TestNow() - absl::Hours(24),
                       testing::TestNow() + absl::Hours(6 * 24));
}

// `entry`'s chain and key under `alias` (no new certificate issued).
std::shared_ptr<const Entry> Realias(const Entry& entry, std::string alias) {
  EntryParts parts{std::move(alias), entry.chain_der(), entry.key(),
                   entry.metadata(), entry.created_at()};
  auto restored =
      RestoreEntry(std::move(parts),
                   {entry.not_before(), entry.not_after(), entry.thumbprint()});
  CheckOk(restored.status(), "Entry::Restore");
  return *restored;
}

// A store directory with N aliases, an entry each; the entry files' paths;
// and a store whose Finds have decoded every file once.
struct Population {
  explicit Population(int64_t n)
      : dir(absl::StrCat(BenchRoot(), "/store-", n)),
        clock(testing::TestNow()) {
    SetupTimer timer(absl::StrCat("Population(", n, ")"));
    testing::TestPki pki;
    std::vector<std::shared_ptr<const Entry>> distinct;
    for (int i = 0; i < kDistinctEntries; ++i) {
      distinct.push_back(Issue(pki, absl::StrCat("distinct-", i), i));
    }
    store = Open();
    for (int64_t i = 0; i < n; ++i) {
      aliases.push_back(absl::StrFormat("%08d-client#att=0", i));
      const auto entry =
          Realias(*distinct[i % kDistinctEntries], aliases.back());
      CheckOk(store->Put(entry), "Put");
      files.push_back(absl::StrCat(
          dir, "/", filesystem_internal::AliasDirName(aliases.back()), "/",
          filesystem_internal::EntryFileName(entry->thumbprint())));
    }
    // Put fills the store's cache with the entries it was given; a second
    // store decodes each file once, as a reader process would.
    store = Open();
    for (const std::string& alias : aliases) {
      CheckOk(store->Find(alias).status(), "Find");
    }
    order.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      order[i] = static_cast<size_t>(i);
    }
    std::shuffle(order.begin(), order.end(), std::mt19937_64(n));
  }

  std::unique_ptr<CertStore> Open() {
    PemDirStoreOptions options;
    options.directory = dir;
    options.clock = &clock;
    auto opened = OpenPemDirStore(options);
    CheckOk(opened.status(), "OpenPemDirStore");
    return *std::move(opened);
  }

  std::string dir;
  ManualClock clock;
  std::unique_ptr<CertStore> store;
  std::vector<std::string> aliases;
  std::vector<std::string> files;  // files[i]: the entry of aliases[i]
  std::vector<size_t> order;       // shuffled indexes
};

// This thread's disjoint share of the shuffled order, wrapping around.
class Walk {
 public:
  Walk(const Population& population, const benchmark::State& state)
      : order_(population.order) {
    const size_t threads = static_cast<size_t>(state.threads());
    share_ = std::max<size_t>(1, order_.size() / threads);
    first_ = std::min(static_cast<size_t>(state.thread_index()) * share_,
                      order_.size() - share_);
  }
  size_t Next() {
    const size_t index = order_[first_ + next_];
    next_ = next_ + 1 == share_ ? 0 : next_ + 1;
    return index;
  }

 private:
  const std::vector<size_t>& order_;
  size_t share_ = 1;
  size_t first_ = 0;
  size_t next_ = 0;
};

// open + fstat + read + close; the bytes in `out`.
bool OpenRead(const std::string& path, std::string* out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    return false;
  }
  out->resize(static_cast<size_t>(st.st_size));
  const ssize_t n = read(fd, &(*out)[0], out->size());
  close(fd);
  return n == st.st_size;
}

// Reads each file of this thread's walk, then `then(bytes)`; false stops
// the run.
template <typename Then>
void ReadEachFile(benchmark::State& state, Then then) {
  const Population& population = BuiltOnce<Population>(state.range(0));
  Walk walk(population, state);
  std::string bytes;
  for (auto _ : state) {
    if (!OpenRead(population.files[walk.Next()], &bytes) || !then(bytes)) {
      state.SkipWithError("open, read or PEM decode failed");
      break;
    }
  }
}

void BM_Floor_OpenRead(benchmark::State& state) {
  ReadEachFile(state, [](const std::string& bytes) {
    benchmark::DoNotOptimize(bytes.data());
    return true;
  });
}

void BM_Floor_OpenReadPemDecode(benchmark::State& state) {
  ReadEachFile(state, [](const std::string& bytes) {
    UniqueBio bio(
        BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
    UniqueX509 cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    UniqueEvpPkey key(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    return cert != nullptr && key != nullptr;
  });
}

void BM_Filesystem_Find(benchmark::State& state) {
  const Population& population = BuiltOnce<Population>(state.range(0));
  Walk walk(population, state);
  for (auto _ : state) {
    auto entry = population.store->Find(population.aliases[walk.Next()]);
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(entry);
  }
}

// Each lookup on a store that has not decoded that file yet (a new store
// per 64 lookups; opening it is not timed).
void BM_Filesystem_FindUncached(benchmark::State& state) {
  Population& population = BuiltOnce<Population>(state.range(0));
  Walk walk(population, state);
  std::unique_ptr<CertStore> store;
  int64_t done = 0;
  for (auto _ : state) {
    if (done++ % 64 == 0) {
      state.PauseTiming();
      store = population.Open();
      state.ResumeTiming();
    }
    auto entry = store->Find(population.aliases[walk.Next()]);
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
  }
}

void LookupArgs(benchmark::internal::Benchmark* b) {
  for (int64_t n : kSizes) {
    b->Arg(n);
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond)->Threads(1)->Threads(2);
}

BENCHMARK(BM_Floor_OpenRead)->Apply(LookupArgs);
BENCHMARK(BM_Floor_OpenReadPemDecode)->Apply(LookupArgs);
BENCHMARK(BM_Filesystem_Find)->Apply(LookupArgs);
BENCHMARK(BM_Filesystem_FindUncached)
    ->Arg(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Writes: new entries of one alias, each under its own name; the directory
// is emptied (untimed) every 256 writes so that it stays small.
struct WriteFixture {
  explicit WriteFixture(int64_t) : dir(BenchRoot() + "/writes") {
    SetupTimer timer("WriteFixture");
    testing::TestPki pki;
    for (int i = 0; i < kDistinctEntries; ++i) {
      entries.push_back(Issue(pki, "writer#att=0", i));
    }
    content = std::string(2300, 'x');
    mkdir(dir.c_str(), 0700);
  }
  std::string dir;
  std::vector<std::shared_ptr<const Entry>> entries;
  std::string content;
};

void BM_Floor_AtomicWrite(benchmark::State& state) {
  WriteFixture& fixture = BuiltOnce<WriteFixture>(0);
  const int dir_fd = open(fixture.dir.c_str(), O_RDONLY | O_DIRECTORY);
  int64_t i = 0;
  for (auto _ : state) {
    const std::string name = absl::StrCat("f", i++ % 256, ".pem");
    const int fd = openat(dir_fd, ".tmp", O_WRONLY | O_CREAT | O_EXCL, 0600);
    const bool ok = fd >= 0 &&
                    write(fd, fixture.content.data(), fixture.content.size()) ==
                        static_cast<ssize_t>(fixture.content.size()) &&
                    fsync(fd) == 0 && close(fd) == 0 &&
                    renameat(dir_fd, ".tmp", dir_fd, name.c_str()) == 0 &&
                    fsync(dir_fd) == 0;
    if (!ok) {
      state.SkipWithError("atomic write failed");
      break;
    }
  }
  close(dir_fd);
}

void BM_Filesystem_Put(benchmark::State& state) {
  WriteFixture& fixture = BuiltOnce<WriteFixture>(0);
  Population& population = BuiltOnce<Population>(1);
  int64_t i = 0;
  for (auto _ : state) {
    if (i % kDistinctEntries == 0) {
      state.PauseTiming();
      CheckOk(population.store->DeleteAllForAlias("writer#att=0").status(),
              "DeleteAllForAlias");
      state.ResumeTiming();
    }
    absl::Status put =
        population.store->Put(fixture.entries[i++ % kDistinctEntries]);
    if (!put.ok()) {
      state.SkipWithError(put.ToString().c_str());
      break;
    }
  }
}

BENCHMARK(BM_Floor_AtomicWrite)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Filesystem_Put)->Unit(benchmark::kMicrosecond);

std::string Run(absl::string_view family, int64_t n, int threads) {
  return absl::StrFormat("%s/%d/real_time/threads:%d", family, n, threads);
}

// The issue's bar: Find at 1,000 aliases at least 3x faster than reading
// and PEM-decoding the file (ratio <= 1/3). The rest is context.
bool RegisterFilesystemRatios() {
  for (int64_t n : kSizes) {
    for (int threads : {1, 2}) {
      const double bar = n == 1000 && threads == 1 ? 1.0 / 3 : kNoBar;
      RegisterRatio(Run("BM_Filesystem_Find", n, threads),
                    Run("BM_Floor_OpenReadPemDecode", n, threads), bar);
      RegisterRatio(Run("BM_Filesystem_Find", n, threads),
                    Run("BM_Floor_OpenRead", n, threads));
    }
  }
  RegisterRatio("BM_Filesystem_FindUncached/1000/real_time",
                "BM_Floor_OpenReadPemDecode/1000/real_time/threads:1");
  RegisterRatio("BM_Filesystem_Put", "BM_Floor_AtomicWrite");
  return true;
}

[[maybe_unused]] const bool kFilesystemRatiosRegistered =
    RegisterFilesystemRatios();

}  // namespace
}  // namespace certstore::bench

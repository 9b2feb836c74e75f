// LayeredStore over real persistent backends, opened by URI: the
// conformance suite, back-fill, write-through, eviction from every layer,
// persistence across stores and processes, and cross-process single-flight.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "certstore/mint_coordinator.h"
#include "certstore/open_store.h"
#include "certstore/testing/cert_store_conformance.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;

// Directories that must outlive the stores the conformance factory hands
// out; removed at exit.
std::string ScratchDir() {
  static std::mutex mu;
  static auto* dirs = new std::vector<std::unique_ptr<TempDir>>();
  static struct Cleanup {
    ~Cleanup() { dirs->clear(); }
  } cleanup;
  std::lock_guard<std::mutex> lock(mu);
  dirs->push_back(std::make_unique<TempDir>());
  return dirs->back()->path();
}

// "{dir}" in `pattern` becomes a fresh scratch directory.
std::string UriFor(const std::string& pattern) {
  const std::string dir = ScratchDir();
  std::string uri = pattern;
  for (size_t pos; (pos = uri.find("{dir}")) != std::string::npos;) {
    uri.replace(pos, 5, dir);
  }
  return uri;
}

ConformanceBackend LayeredBackend(std::string name, std::string pattern) {
  return ConformanceBackend{
      std::move(name),
      [pattern](
          const Clock* clock) -> absl::StatusOr<std::unique_ptr<CertStore>> {
        OpenStoreOptions options;
        options.clock = clock;
        auto store = OpenStore(UriFor(pattern), options);
        if (!store.ok()) {
          return store.status();
        }
        return std::unique_ptr<CertStore>(std::move(*store));
      }};
}

INSTANTIATE_TEST_SUITE_P(
    LayeredBackends, CertStoreConformanceTest,
    ::testing::Values(
        LayeredBackend("memory_over_sqlite", "memory:,sqlite:{dir}/s.db"),
        LayeredBackend("memory_over_file", "memory:,file:{dir}/certs"),
        LayeredBackend("memory_over_file_over_sqlite",
                       "memory:,file:{dir}/certs,sqlite:{dir}/s.db")),
    ConformanceBackendName);

const TestPki& Pki() {
  static const TestPki* const pki = new TestPki(KeyType::kEcP256);
  return *pki;
}

std::shared_ptr<const Entry> Fresh(const std::string& alias, int key = 0) {
  return Pki().MakeEntry(alias, PoolKey(KeyType::kEcP256, key),
                         absl::Now() - absl::Hours(1),
                         absl::Now() + absl::Hours(24 * 7));
}

class LayeredBackendsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { uri_ = UriFor(GetParam()); }

  std::unique_ptr<LayeredStore> Open() {
    auto store = OpenStore(uri_);
    EXPECT_OK(store);
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::string uri_;
};

TEST_P(LayeredBackendsTest, PersistentHitIsBackfilledIntoMemory) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  CertStore* memory = store->layers()[0];
  CertStore* persistent = store->layers()[1];
  auto entry = Fresh("bf#att=0");
  ASSERT_OK(persistent->Put(entry));
  ASSERT_OK(store->Find("bf#att=0"));
  auto in_memory = memory->Find("bf#att=0");
  ASSERT_OK(in_memory);
  EXPECT_EQ((*in_memory)->thumbprint(), entry->thumbprint());
}

TEST_P(LayeredBackendsTest, PutWritesThroughAndDeleteEvictsEverywhere) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Put(Fresh("wt#att=0")));
  for (CertStore* layer : store->layers()) {
    EXPECT_OK(layer->Find("wt#att=0")) << layer->Name();
  }
  EXPECT_THAT(store->DeleteAllForAlias("wt#att=0"), IsOkAndHolds(1));
  for (CertStore* layer : store->layers()) {
    EXPECT_THAT(layer->Find("wt#att=0"), StatusIs(absl::StatusCode::kNotFound))
        << layer->Name();
  }
}

TEST_P(LayeredBackendsTest, EntriesSurviveANewStoreOnTheSameUri) {
  auto entry = Fresh("persist#att=0");
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Put(entry));
  }
  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  auto found = reopened->Find("persist#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
  EXPECT_OK(reopened->ProbeKey(**found));
  EXPECT_THAT(reopened->Metrics().hits_per_layer, ::testing::ElementsAre(0, 1));
}

// 4 processes x 16 threads, all cold on one persistent store: the mint
// lock makes them mint once. Each mint appends a line to a shared file.
TEST_P(LayeredBackendsTest, FourProcessesOfSixteenThreadsMintOnce) {
  TempDir scratch;
  const std::string mints_file = scratch.path() + "/mints";
  const std::string results_file = scratch.path() + "/results";
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> children;
  for (int p = 0; p < 4; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char byte;
      if (read(go[0], &byte, 1) < 0) {
        _exit(3);
      }
      auto store = OpenStore(uri_);
      if (!store.ok()) {
        fprintf(stderr, "child %d: %s\n", static_cast<int>(getpid()),
                store.status().ToString().c_str());
        _exit(2);
      }
      auto minter = MintCoordinator::Create(store->get());
      if (!minter.ok()) {
        _exit(2);
      }
      MintFunction mint = [&](absl::string_view alias)
          -> absl::StatusOr<std::shared_ptr<const Entry>> {
        int fd = open(mints_file.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
        std::string line = absl::StrCat(getpid(), "\n");
        (void)!write(fd, line.data(), line.size());
        close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        return Fresh(std::string(alias), 20 + getpid() % 8);
      };
      std::vector<std::string> got(16);
      std::vector<std::thread> threads;
      for (int t = 0; t < 16; ++t) {
        threads.emplace_back([&, t] {
          auto entry = (*minter)->GetOrCreate("herd#att=0", {}, mint);
          got[t] = entry.ok() ? (*entry)->thumbprint() : "error";
        });
      }
      for (auto& thread : threads) {
        thread.join();
      }
      std::string lines;
      for (const auto& g : got) {
        absl::StrAppend(&lines, g, "\n");
      }
      int fd = open(results_file.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
      (void)!write(fd, lines.data(), lines.size());
      close(fd);
      _exit(0);
    }
    children.push_back(pid);
  }
  close(go[0]);
  close(go[1]);  // EOF releases every child at once
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  std::ifstream mints(mints_file);
  int mint_count = 0;
  for (std::string line; std::getline(mints, line);) {
    ++mint_count;
  }
  EXPECT_EQ(mint_count, 1);
  std::ifstream results(results_file);
  std::set<std::string> thumbprints;
  int answers = 0;
  for (std::string line; std::getline(results, line);) {
    thumbprints.insert(line);
    ++answers;
  }
  EXPECT_EQ(answers, 64);
  EXPECT_EQ(thumbprints.size(), 1u);
  EXPECT_EQ(thumbprints.count("error"), 0u);
}

TEST_P(LayeredBackendsTest, PersistentLayerDeletedUnderTheStoreDegrades) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Put(Fresh("kept#att=0")));
  // The persistent files vanish (an operator wiped the state directory).
  const std::string dir =
      uri_.substr(uri_.find('/'), uri_.rfind('/') - uri_.find('/'));
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  // Memory still serves what it had; nothing crashes; misses stay misses.
  EXPECT_OK(store->Find("kept#att=0"));
  EXPECT_THAT(store->Find("other#att=0"), ::testing::Not(IsOk()));
}

INSTANTIATE_TEST_SUITE_P(Uris, LayeredBackendsTest,
                         ::testing::Values("memory:,sqlite:{dir}/s.db",
                                           "memory:,file:{dir}/certs"),
                         [](const auto& param_info) {
                           return param_info.param.find("sqlite") !=
                                          std::string::npos
                                      ? std::string("memory_over_sqlite")
                                      : std::string("memory_over_file");
                         });

}  // namespace
}  // namespace certstore::testing

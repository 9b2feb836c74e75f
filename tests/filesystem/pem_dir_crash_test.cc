// Crash loop: a child process Puts and deletes entries of a few aliases
// (from a pool issued before the fork) and is SIGKILLed after a random
// 0-30 ms, mid-write or not. After every kill, a store that kept its
// decoded entries and a fresh one must find, for each alias, nothing or one
// of the pool's entries (old or new), never a torn pair, a temp file or an
// error. Iterations: CERTSTORE_CRASH_ITERATIONS (default 200; scripts/soak
// runs 5,000).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "tests/filesystem/pem_dir_fixture.h"

namespace certstore::testing {
namespace {

constexpr int kAliases = 3;
constexpr int kVariants = 3;
constexpr int kMaxWriterOps = 100000;

int Iterations() {
  const char* env = getenv("CERTSTORE_CRASH_ITERATIONS");
  const int n = env != nullptr ? atoi(env) : 0;
  return n > 0 ? n : 200;
}

class PemDirCrashTest : public PemDirTest {
 protected:
  void SetUp() override {
    PemDirTest::SetUp();
    for (int a = 0; a < kAliases; ++a) {
      // The last alias is long enough for a hashed directory name.
      aliases_.push_back(a + 1 < kAliases ? absl::StrCat("crash-", a, "#att=0")
                                          : std::string(200, 'c'));
      pool_.emplace_back();
      for (int v = 0; v < kVariants; ++v) {
        EntryMetadata metadata{absl::StrCat("https://endpoint/", v),
                               absl::StrCat("client-", a, "-", v), "tenant"};
        pool_[a].push_back(
            With(*Fresh(aliases_[a], a * kVariants + v, absl::Hours(v)),
                 aliases_[a], metadata));
      }
    }
  }

  // The child: its own store on the directory, random Puts and deletes
  // until killed. Exit codes say what failed.
  int RunWriter(uint32_t seed, int ready_fd) {
    auto store = Open();
    if (!store.ok() || write(ready_fd, "R", 1) != 1) {
      return 2;
    }
    std::mt19937 rng(seed);
    for (int i = 0; i < kMaxWriterOps; ++i) {
      const int a = static_cast<int>(rng() % kAliases);
      const bool ok = rng() % 10 < 7
                          ? (*store)->Put(pool_[a][rng() % kVariants]).ok()
                          : (*store)->DeleteAllForAlias(aliases_[a]).ok();
      if (!ok) {
        return 3;
      }
    }
    return 0;
  }

  // Every Find of `store` is a miss or a whole pool entry of the alias.
  void ExpectOldOrNew(CertStore& store, const char* which) {
    SCOPED_TRACE(which);
    for (int a = 0; a < kAliases; ++a) {
      auto found = store.Find(aliases_[a]);
      if (absl::IsNotFound(found.status())) {
        continue;
      }
      ASSERT_OK(found);
      const Entry* expected = nullptr;
      for (const auto& entry : pool_[a]) {
        if (entry->thumbprint() == (*found)->thumbprint()) {
          expected = entry.get();
        }
      }
      ASSERT_NE(expected, nullptr) << "not a pool entry of " << a;
      EXPECT_EQ((*found)->alias(), aliases_[a]);
      EXPECT_EQ((*found)->chain_der(), expected->chain_der());
      EXPECT_EQ((*found)->metadata(), expected->metadata());
      EXPECT_EQ((*found)->key()->public_key_der(),
                expected->key()->public_key_der());
      EXPECT_OK(CheckKeyMatchesLeaf(**found));
    }
    auto listed = store.List({});
    ASSERT_OK(listed);
    EXPECT_LE(listed->size(), static_cast<size_t>(kAliases * kVariants));
  }

  // Files in the alias directories: pool entries' names or temp files.
  // Returns how many temp files a killed writer left.
  int CountTempFiles() {
    int temps = 0;
    for (int a = 0; a < kAliases; ++a) {
      for (const std::string& name : ListNames(DirOf(aliases_[a]))) {
        if (absl::StartsWith(name, ".tmp-")) {
          ++temps;
          continue;
        }
        bool known = false;
        for (const auto& entry : pool_[a]) {
          known |= name == "x5t-" + entry->thumbprint() + ".pem";
        }
        EXPECT_TRUE(known) << name;
      }
    }
    return temps;
  }

  std::vector<std::string> aliases_;
  std::vector<std::vector<std::shared_ptr<const Entry>>> pool_;
};

TEST_F(PemDirCrashTest, KilledWritersNeverTearAnEntry) {
  const int iterations = Iterations();
  const absl::Time deadline =
      absl::Now() + absl::Seconds(60) + iterations * absl::Milliseconds(250);
  const uint32_t seed = std::random_device()();
  RecordProperty("seed", static_cast<int>(seed));
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 rng(seed);
  int done = 0;
  int kills_leaving_temp_files = 0;
  for (; done < iterations && absl::Now() < deadline && !HasFailure(); ++done) {
    const uint32_t child_seed = rng();
    ChildProcess writer(
        [&](int ready_fd) { return RunWriter(child_seed, ready_fd); });
    ASSERT_TRUE(writer.WaitReady(absl::Seconds(10)));
    absl::SleepFor(absl::Microseconds(rng() % 30001));
    ASSERT_EQ(writer.Poll(), std::nullopt) << "the writer stopped by itself";
    writer.Kill();
    ExpectOldOrNew(*store_, "store with decoded entries");
    auto fresh = Open();
    ASSERT_OK(fresh);
    ExpectOldOrNew(**fresh, "fresh store");
    kills_leaving_temp_files += CountTempFiles() > 0 ? 1 : 0;
  }
  EXPECT_EQ(done, iterations) << "ran out of time";
  std::printf("%d kills, %d of them left temp files behind\n", done,
              kills_leaving_temp_files);
  RecordProperty("kills_leaving_temp_files", kills_leaving_temp_files);
  if (iterations >= 50) {
    EXPECT_GT(kills_leaving_temp_files, 0) << "no kill landed mid-write";
  }
  // The next writer of each alias removes what killed writers left.
  for (int a = 0; a < kAliases; ++a) {
    ASSERT_OK(store_->Put(pool_[a][0]));
  }
  EXPECT_EQ(CountTempFiles(), 0);
}

}  // namespace
}  // namespace certstore::testing

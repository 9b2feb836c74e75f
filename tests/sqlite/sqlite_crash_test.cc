// The crash loop: a child process runs random Put / DeleteAllForAlias on a
// store and is killed with SIGKILL at a random moment; the parent reopens
// the file, runs PRAGMA integrity_check, and checks that every acknowledged
// write is there, that the one unacknowledged write happened entirely or
// not at all, and that no entry is torn. CERTSTORE_CRASH_ITERATIONS sets
// the number of kills per journal mode (default 200; scripts/soak: 5,000);
// CERTSTORE_CRASH_SEED replays a run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "sqlite/row_codec_internal.h"
#include "tests/sqlite/sqlite_test_util.h"

namespace certstore {

// So test names and failures print "kAuto", not the enum's bytes.
inline void PrintTo(SqliteJournal journal, std::ostream* os) {
  *os << (journal == SqliteJournal::kAuto ? "kAuto" : "kRollback");
}

namespace testing {
namespace {

constexpr int kAliases = 4;
constexpr int kVariants = 3;  // variant v outlives v - 1
// A child is killed once it acknowledged a random number of operations (at
// most kMaxOpsBeforeKill; 0 kills it while it opens the file), then a
// random delay of up to kMaxKillDelay later, to land inside the next
// operation. Counting operations, not time, keeps the kill points the same
// on a busy machine. kChildLifetime is only a safety net.
constexpr int kMaxOpsBeforeKill = 6;
constexpr absl::Duration kMaxKillDelay = absl::Milliseconds(2);
constexpr absl::Duration kChildLifetime = absl::Seconds(60);

// What the child reports through its pipe, before ('I') and after ('A')
// each operation.
struct Record {
  char phase;
  char op;  // 'P' Put, 'D' DeleteAllForAlias
  uint8_t alias;
  uint8_t variant;
};

// Present variants of each alias, one bit each.
using State = std::vector<unsigned>;

int64_t EnvOr(const char* name, int64_t fallback) {
  int64_t value = 0;
  const char* text = getenv(name);
  return text != nullptr && absl::SimpleAtoi(text, &value) ? value : fallback;
}

std::string AliasName(int a) { return absl::StrCat("crash-", a, "#att=0"); }

void Apply(const Record& r, State* state) {
  if (r.op == 'P') {
    (*state)[r.alias] |= 1u << r.variant;
  } else {
    (*state)[r.alias] = 0;
  }
}

class SqliteCrashTest : public SqliteFixture,
                        public ::testing::WithParamInterface<SqliteJournal> {
 protected:
  void SetUp() override {
    for (int a = 0; a < kAliases; ++a) {
      pool_.emplace_back();
      for (int v = 0; v < kVariants; ++v) {
        pool_[a].push_back(Fresh(AliasName(a), a * kVariants + v,
                                 KeyType::kEcP256, kOneWeek + absl::Hours(v)));
      }
    }
  }

  SqliteStoreOptions CrashOptions() const {
    SqliteStoreOptions options = Options();
    options.journal = GetParam();
    return options;
  }

  // The child: random operations until killed, each bracketed by records.
  [[noreturn]] void RunChild(int fd, uint32_t seed) {
    auto store = OpenSqliteStore(CrashOptions());
    if (!store.ok()) {
      _exit(2);
    }
    std::mt19937 rng(seed);
    const auto end = std::chrono::steady_clock::now() +
                     absl::ToChronoNanoseconds(kChildLifetime);
    while (std::chrono::steady_clock::now() < end) {
      Record r{'I', rng() % 10 < 7 ? 'P' : 'D',
               static_cast<uint8_t>(rng() % kAliases),
               static_cast<uint8_t>(rng() % kVariants)};
      if (write(fd, &r, sizeof(r)) != sizeof(r)) {
        _exit(3);
      }
      const absl::Status status =
          r.op == 'P'
              ? (*store)->Put(pool_[r.alias][r.variant])
              : (*store)->DeleteAllForAlias(AliasName(r.alias)).status();
      if (!status.ok()) {
        fprintf(stderr, "crash child: %s\n", status.ToString().c_str());
        _exit(4);
      }
      r.phase = 'A';
      if (write(fd, &r, sizeof(r)) != sizeof(r)) {
        _exit(3);
      }
    }
    _exit(0);
  }

  // Forks a child, kills it after `ops` acknowledged operations and a
  // random delay; returns its records.
  std::vector<Record> RunAndKill(std::mt19937& rng, int ops) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    const uint32_t child_seed = rng();
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      RunChild(fds[1], child_seed);
    }
    close(fds[1]);
    std::vector<Record> records;
    Record r;
    for (int acknowledged = 0;
         acknowledged < ops && read(fds[0], &r, sizeof(r)) == sizeof(r);) {
      records.push_back(r);
      acknowledged += r.phase == 'A' ? 1 : 0;
    }
    const auto delay = std::uniform_int_distribution<int64_t>(
        0, absl::ToInt64Microseconds(kMaxKillDelay))(rng);
    std::this_thread::sleep_for(std::chrono::microseconds(delay));
    kill(pid, SIGKILL);
    const int code = WaitChild(pid, absl::Seconds(30));
    EXPECT_TRUE(code == -SIGKILL || code == 0) << "child exit " << code;
    while (read(fds[0], &r, sizeof(r)) == sizeof(r)) {
      records.push_back(r);
    }
    close(fds[0]);
    return records;
  }

  // What the file holds now, checking each row on the way: it decodes, its
  // key matches its certificate, and it is one of the entries of its alias.
  State StoredState() {
    State state(kAliases, 0);
    for (const sqlite_internal::StoredRow& row : ReadAllRows(path_)) {
      auto entry = sqlite_internal::DecodeRow(row, nullptr);
      EXPECT_OK(entry) << "torn or damaged row " << row.id;
      if (!entry.ok()) {
        continue;
      }
      EXPECT_OK(CheckKeyMatchesLeaf(**entry));
      bool known = false;
      for (int a = 0; a < kAliases; ++a) {
        for (int v = 0; v < kVariants; ++v) {
          if (pool_[a][v]->thumbprint() == row.thumbprint &&
              AliasName(a) == row.alias) {
            state[a] |= 1u << v;
            known = true;
          }
        }
      }
      EXPECT_TRUE(known) << "row " << row.id << " is no entry ever Put";
    }
    return state;
  }

  // Find through a freshly opened store agrees with the rows.
  void CheckFinds(const State& state) {
    auto store = OpenOrDie(CrashOptions());
    ASSERT_NE(store, nullptr);
    for (int a = 0; a < kAliases; ++a) {
      auto found = store->Find(AliasName(a));
      if (state[a] == 0) {
        EXPECT_THAT(found, StatusIs(absl::StatusCode::kNotFound));
        continue;
      }
      ASSERT_OK(found);
      const int newest = 31 - __builtin_clz(state[a]);
      EXPECT_EQ((*found)->thumbprint(), pool_[a][newest]->thumbprint());
    }
  }

  std::vector<std::vector<std::shared_ptr<const Entry>>> pool_;
};

std::string JournalName(const ::testing::TestParamInfo<SqliteJournal>& p) {
  return p.param == SqliteJournal::kAuto ? "wal" : "rollback";
}

TEST_P(SqliteCrashTest, AcknowledgedWritesSurviveSigkillAndNothingIsTorn) {
  const int64_t iterations = EnvOr("CERTSTORE_CRASH_ITERATIONS", 200);
  const uint32_t seed = static_cast<uint32_t>(
      EnvOr("CERTSTORE_CRASH_SEED", std::random_device{}()));
  SCOPED_TRACE(absl::StrCat("CERTSTORE_CRASH_SEED=", seed));
  std::mt19937 rng(seed);
  ASSERT_NE(OpenOrDie(CrashOptions()), nullptr);  // the file and its schema
  State model(kAliases, 0);
  int64_t acknowledged = 0;
  int64_t planned = 0;
  int64_t unresolved = 0;
  for (int64_t i = 0; i < iterations && !HasFailure(); ++i) {
    SCOPED_TRACE(absl::StrCat("iteration ", i));
    const int ops = static_cast<int>(rng() % (kMaxOpsBeforeKill + 1));
    planned += ops;
    const std::vector<Record> records = RunAndKill(rng, ops);
    const Record* pending = nullptr;
    for (const Record& r : records) {
      if (r.phase == 'A') {
        Apply(r, &model);
        ++acknowledged;
        pending = nullptr;
      } else {
        pending = &r;
      }
    }
    ASSERT_EQ(IntegrityCheck(path_), "ok");
    const State stored = StoredState();
    State with_pending = model;
    if (pending != nullptr) {
      Apply(*pending, &with_pending);
      ++unresolved;
    }
    // The killed operation happened entirely or not at all.
    ASSERT_TRUE(stored == model || stored == with_pending)
        << "stored state differs from every outcome the acknowledgements "
           "allow";
    model = stored;
    if (i % 10 == 0 || i + 1 == iterations) {
      CheckFinds(model);
    }
  }
  // Every child lived through the operations it was meant to: the loop
  // exercised writes, however slow the machine.
  EXPECT_GE(acknowledged, planned);
  RecordProperty("acknowledged", static_cast<int>(acknowledged));
  RecordProperty("killed_mid_operation", static_cast<int>(unresolved));
}

// A process killed while creating the file (before, during or after the
// schema transaction) leaves a file the next Open accepts.
TEST_P(SqliteCrashTest, KilledWhileCreatingTheFileLeavesAUsableFile) {
  std::mt19937 rng(static_cast<uint32_t>(
      EnvOr("CERTSTORE_CRASH_SEED", std::random_device{}())));
  for (int i = 0; i < 20 && !HasFailure(); ++i) {
    TempDir dir;
    SqliteStoreOptions options = CrashOptions();
    options.path = FileIn(dir, "new.db");
    const pid_t pid = ForkChild([&options] {
      auto store = OpenSqliteStore(options);
      return store.ok() ? 0 : 1;
    });
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
    kill(pid, SIGKILL);
    const int code = WaitChild(pid, absl::Seconds(30));
    EXPECT_TRUE(code == -SIGKILL || code == 0) << "child exit " << code;
    auto store = OpenOrDie(options);
    ASSERT_NE(store, nullptr) << "iteration " << i;
    EXPECT_OK(store->Put(pool_[0][0]));
    EXPECT_EQ(IntegrityCheck(options.path), "ok");
  }
}

INSTANTIATE_TEST_SUITE_P(Journals, SqliteCrashTest,
                         ::testing::Values(SqliteJournal::kAuto,
                                           SqliteJournal::kRollback),
                         JournalName);

}  // namespace
}  // namespace testing
}  // namespace certstore

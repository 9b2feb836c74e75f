// Real processes on one file: a store used across fork(), the cross-process
// mint lock (including a holder killed with SIGKILL), and four processes
// mixing operations without leaking SQLITE_BUSY or losing a write.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "tests/sqlite/sqlite_test_util.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class SqliteProcessTest : public SqliteFixture {};

// Reads one byte from `fd`, waiting at most `timeout`; -1 when none came.
int ReadByte(int fd, absl::Duration timeout) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) {
    return -1;
  }
  unsigned char byte = 0;
  return read(fd, &byte, 1) == 1 ? byte : -1;
}

TEST_F(SqliteProcessTest, ForkedChildKeepsUsingTheParentsStore) {
  auto store = Open();
  auto parents = Fresh("parent#att=0", 0);
  auto childs = Fresh("child#att=0", 1);
  ASSERT_OK(store->Put(parents));
  ASSERT_OK(store->Find("parent#att=0"));  // the connection is open and used
  const pid_t pid = ForkChild([&] {
    if (!store->Find("parent#att=0").ok()) {
      return 1;
    }
    if (!store->Put(childs).ok()) {
      return 2;
    }
    return store->Find("child#att=0").ok() ? 0 : 3;
  });
  for (int i = 0; i < 50; ++i) {  // the parent keeps going meanwhile
    ASSERT_OK(store->Find("parent#att=0"));
  }
  EXPECT_EQ(WaitChild(pid, absl::Seconds(60)), 0);
  auto found = store->Find("child#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), childs->thumbprint());
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

TEST_F(SqliteProcessTest, ChildForkedWithoutForkHandlersReconnects) {
  auto store = Open();
  ASSERT_OK(store->Put(Fresh("raw#att=0", 0)));
  ASSERT_OK(store->Find("raw#att=0"));
  auto childs = Fresh("raw-child#att=0", 1);
  // A bare clone(): no pthread_atfork handler runs, so the child inherits
  // the open connection and must notice the pid change on its own.
  const pid_t pid = static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
  if (pid == 0) {
    const bool ok = store->Put(childs).ok() && store->Find("raw#att=0").ok();
    _exit(ok ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  EXPECT_EQ(WaitChild(pid, absl::Seconds(60)), 0);
  EXPECT_OK(store->Find("raw-child#att=0"));
  EXPECT_OK(store->Put(Fresh("raw#att=0", 2)));
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

TEST_F(SqliteProcessTest, LockAliasExcludesOtherProcesses) {
  auto store = Open();
  auto held = store->LockAlias("mint#att=0", absl::Seconds(1));
  ASSERT_OK(held);
  const SqliteStoreOptions options = Options();
  pid_t pid = ForkChild([&options] {
    auto mine = OpenSqliteStore(options);
    if (!mine.ok()) {
      return 10;
    }
    auto lock = (*mine)->LockAlias("mint#att=0", absl::Milliseconds(200));
    if (lock.status().code() != absl::StatusCode::kUnavailable) {
      return 1;
    }
    if (!absl::StrContains(lock.status().message(), "mint#att=0") ||
        !absl::StrContains(lock.status().message(), "pid ")) {
      return 2;
    }
    return (*mine)->LockAlias("other#att=0", absl::Seconds(1)).ok() ? 0 : 3;
  });
  EXPECT_EQ(WaitChild(pid, absl::Seconds(60)), 0);
  held->reset();
  pid = ForkChild([&options] {
    auto mine = OpenSqliteStore(options);
    return mine.ok() && (*mine)->LockAlias("mint#att=0", absl::Seconds(5)).ok()
               ? 0
               : 1;
  });
  EXPECT_EQ(WaitChild(pid, absl::Seconds(60)), 0);
}

TEST_F(SqliteProcessTest, AChildDroppingAnInheritedLockLeavesTheParentsLease) {
  auto store = Open();
  auto held = store->LockAlias("inherited#att=0", absl::Seconds(1));
  ASSERT_OK(held);
  const pid_t pid = ForkChild([&held] {
    held->reset();  // the parent's lease: the child must not release it
    return 0;
  });
  EXPECT_EQ(WaitChild(pid, absl::Seconds(60)), 0);
  auto other = Open();  // a second store: only the lease row decides
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(other->LockAlias("inherited#att=0", absl::Milliseconds(100)),
              StatusIs(absl::StatusCode::kUnavailable));
  held->reset();
  EXPECT_OK(other->LockAlias("inherited#att=0", absl::Seconds(1)));
}

TEST_F(SqliteProcessTest, HolderKilledWithSigkillBlocksOthersAtMostTheTtl) {
  SqliteStoreOptions options = Options();
  options.lease_ttl = absl::Seconds(2);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t pid = ForkChild([&] {
    auto mine = OpenSqliteStore(options);
    auto lock = mine.ok() ? (*mine)->LockAlias("killed#att=0", absl::Seconds(5))
                          : mine.status();
    if (!lock.ok() || write(ready[1], "L", 1) != 1) {
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::seconds(30));  // until killed
    return 2;
  });
  ASSERT_EQ(ReadByte(ready[0], absl::Seconds(30)), 'L');
  close(ready[0]);
  close(ready[1]);
  kill(pid, SIGKILL);
  EXPECT_EQ(WaitChild(pid, absl::Seconds(30)), -SIGKILL);

  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->LockAlias("killed#att=0", absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("killed#att=0"),
                             HasSubstr(absl::StrCat("pid ", pid)))));
  const absl::Time start = absl::Now();
  EXPECT_OK(store->LockAlias("killed#att=0", absl::Seconds(20)));
  const absl::Duration waited = absl::Now() - start;
  EXPECT_GE(waited, absl::Milliseconds(500));  // it did wait for expiry
  EXPECT_LE(waited, options.lease_ttl + absl::Seconds(1));
}

TEST_F(SqliteProcessTest, HeldLeaseIsRenewedPastItsTtl) {
  SqliteStoreOptions options = Options();
  options.lease_ttl = absl::Milliseconds(300);
  // Two stores on one file have separate in-process locks: only the lease
  // row stands between them, as between processes.
  auto first = OpenOrDie(options);
  auto second = OpenOrDie(options);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  auto held = first->LockAlias("renewed#att=0", absl::Seconds(1));
  ASSERT_OK(held);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_THAT(second->LockAlias("renewed#att=0", absl::Milliseconds(100)),
              StatusIs(absl::StatusCode::kUnavailable));
  held->reset();
  EXPECT_OK(second->LockAlias("renewed#att=0", absl::Seconds(1)));
}

// ----------------------------------------------------- four processes

constexpr int kProcesses = 4;
constexpr int kOpsPerProcess = 2000;
constexpr int kShared = 4;          // aliases every process writes
constexpr int kSharedVariants = 3;  // entries per shared alias
constexpr int kPrivate = 3;         // aliases one process owns
constexpr int kPrivateVariants = 2;

struct Pool {
  std::vector<std::vector<std::shared_ptr<const Entry>>> shared;
  // private_[p][a][v]
  std::vector<std::vector<std::vector<std::shared_ptr<const Entry>>>> own;
};

std::string SharedAlias(int a) { return absl::StrCat("shared-", a, "#att=0"); }
std::string OwnAlias(int p, int a) {
  return absl::StrCat("own-", p, "-", a, "#att=0");
}

// One process's work. Returns its exit code: 0, or what went wrong first.
// Private aliases follow a model exactly; shared ones must only ever show
// an entry Put under that alias, with its key. `own_state` receives the
// final model (bit v: variant v present) of each private alias.
int MixedOps(CertStore& store, const Pool& pool, int p,
             std::vector<unsigned char>* own_state) {
  std::mt19937 rng(7919 * (p + 1));
  own_state->assign(kPrivate, 0);
  for (int i = 0; i < kOpsPerProcess; ++i) {
    const int r = static_cast<int>(rng() % 100);
    const int s = static_cast<int>(rng() % kShared);
    const int a = static_cast<int>(rng() % kPrivate);
    const int v = static_cast<int>(rng() % kPrivateVariants);
    absl::Status status;
    if (r < 10) {
      status = store.Put(pool.shared[s][rng() % kSharedVariants]);
    } else if (r < 12) {
      status = store.DeleteAllForAlias(SharedAlias(s)).status();
    } else if (r < 50) {
      auto found = store.Find(SharedAlias(s));
      status = found.status();
      if (found.ok()) {
        bool known = false;
        for (const auto& e : pool.shared[s]) {
          known |= e->thumbprint() == (*found)->thumbprint();
        }
        if (!known || !CheckKeyMatchesLeaf(**found).ok()) {
          return 1;
        }
      } else if (status.code() == absl::StatusCode::kNotFound) {
        status = absl::OkStatus();
      }
    } else if (r < 65) {
      status = store.Put(pool.own[p][a][v]);
      (*own_state)[a] |= 1 << v;
    } else if (r < 70) {
      auto removed = store.DeleteAllForAlias(OwnAlias(p, a));
      status = removed.status();
      const int expected = __builtin_popcount((*own_state)[a]);
      (*own_state)[a] = 0;
      if (removed.ok() && *removed != expected) {
        return 2;
      }
    } else {
      // Variant 1 outlives variant 0: the newest present must be found.
      const unsigned char present = (*own_state)[a];
      auto found = store.Find(OwnAlias(p, a));
      if (present == 0) {
        if (found.status().code() != absl::StatusCode::kNotFound) {
          return 3;
        }
        continue;
      }
      status = found.status();
      const int newest = (present & 2) != 0 ? 1 : 0;
      if (found.ok() &&
          (*found)->thumbprint() != pool.own[p][a][newest]->thumbprint()) {
        return 4;
      }
    }
    if (!status.ok()) {
      fprintf(stderr, "process %d op %d: %s\n", p, i,
              status.ToString().c_str());
      return status.code() == absl::StatusCode::kUnavailable ? 5 : 6;
    }
  }
  return 0;
}

TEST_F(SqliteProcessTest, FourProcessesMixingOpsLoseNothingAndNeverSeeBusy) {
  Pool pool;
  pool.shared.resize(kShared);
  for (int s = 0; s < kShared; ++s) {
    for (int v = 0; v < kSharedVariants; ++v) {
      pool.shared[s].push_back(Fresh(SharedAlias(s), s * kSharedVariants + v,
                                     KeyType::kEcP256,
                                     kOneWeek + absl::Hours(v)));
    }
  }
  pool.own.resize(kProcesses);
  for (int p = 0; p < kProcesses; ++p) {
    pool.own[p].resize(kPrivate);
    for (int a = 0; a < kPrivate; ++a) {
      for (int v = 0; v < kPrivateVariants; ++v) {
        pool.own[p][a].push_back(Fresh(OwnAlias(p, a), 20 + v, KeyType::kEcP256,
                                       kOneWeek + absl::Hours(v)));
      }
    }
  }
  ASSERT_NE(Open(), nullptr);  // schema in place before the race

  std::vector<pid_t> pids;
  std::vector<int> pipes;
  const SqliteStoreOptions options = Options();
  for (int p = 0; p < kProcesses; ++p) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pids.push_back(ForkChild([&, p, fds] {
      close(fds[0]);
      auto store = OpenSqliteStore(options);
      if (!store.ok()) {
        return 7;
      }
      std::vector<unsigned char> own_state;
      const int code = MixedOps(**store, pool, p, &own_state);
      const ssize_t n = write(fds[1], own_state.data(), own_state.size());
      return n == static_cast<ssize_t>(own_state.size()) ? code : 8;
    }));
    close(fds[1]);
    pipes.push_back(fds[0]);
  }
  std::vector<std::vector<unsigned char>> states(kProcesses);
  for (int p = 0; p < kProcesses; ++p) {
    EXPECT_EQ(WaitChild(pids[p], absl::Seconds(100)), 0) << "process " << p;
    states[p].resize(kPrivate);
    EXPECT_EQ(read(pipes[p], states[p].data(), kPrivate), kPrivate);
    close(pipes[p]);
  }

  // Every acknowledged private write is there, and nothing else.
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (int p = 0; p < kProcesses; ++p) {
    for (int a = 0; a < kPrivate; ++a) {
      ListOptions list;
      list.alias_prefix = OwnAlias(p, a);
      auto listed = store->List(list);
      ASSERT_OK(listed);
      unsigned char present = 0;
      for (const EntryInfo& info : *listed) {
        for (int v = 0; v < kPrivateVariants; ++v) {
          if (info.thumbprint == pool.own[p][a][v]->thumbprint()) {
            present |= 1 << v;
          }
        }
      }
      EXPECT_EQ(present, states[p][a]) << OwnAlias(p, a);
      EXPECT_EQ(listed->size(),
                static_cast<size_t>(__builtin_popcount(states[p][a])));
    }
  }
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

}  // namespace
}  // namespace certstore::testing

// Pkcs11Store under threads, fork and process exit, on a real SoftHSM token.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/pkcs11_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "tests/pkcs11/softhsm_token.h"

#ifndef CERTSTORE_EXIT_HELPER
#error "CERTSTORE_EXIT_HELPER must name the pkcs11_exit_helper binary"
#endif

namespace certstore::testing {
namespace {

class Pkcs11ProcessTest : public SoftHsmStoreTest {
 protected:
  Pkcs11ProcessTest() : SoftHsmStoreTest("process") {}
};

// 8 threads × 500 mixed Find / ProbeKey / Put / DeleteAllForAlias on one
// token. Token keys live under their own labels, so deleting an alias's
// entries never deletes the key a later Put pairs with.
TEST_F(Pkcs11ProcessTest, EightThreadsMixedOperationsKeepInvariants) {
  constexpr int kThreads = 8;
  constexpr int kOps = 500;
  constexpr int kAliases = 4;
  constexpr int kVariants = 2;
  std::vector<std::vector<std::shared_ptr<const Entry>>> entries(kAliases);
  for (int a = 0; a < kAliases; ++a) {
    auto key = store_->CreateKey(absl::StrCat("thread-key-", a),
                                 KeySpec{KeyType::kEcP256});
    ASSERT_OK(key);
    for (int v = 0; v < kVariants; ++v) {
      entries[a].push_back(
          Issue(absl::StrCat("thread-", a, "#att=0"), *key, absl::Hours(v)));
    }
  }
  std::atomic<int> violations{0};
  std::atomic<int> unexpected{0};
  std::atomic<int> operation_active{0};
  std::atomic<int> probes{0};
  const absl::Time deadline = absl::Now() + absl::Seconds(150);
  auto check = [&](const absl::Status& s) {
    if (absl::StrContains(s.message(), "CKR_OPERATION_ACTIVE")) {
      operation_active++;
    }
    if (!s.ok()) {
      unexpected++;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(77 + t);
      for (int i = 0; i < kOps && absl::Now() < deadline; ++i) {
        const int a = static_cast<int>(rng() % kAliases);
        const std::string alias = absl::StrCat("thread-", a, "#att=0");
        const int op = static_cast<int>(rng() % 8);
        if (op == 0) {
          check(store_->Put(entries[a][rng() % kVariants]));
        } else if (op == 1) {
          check(store_->DeleteAllForAlias(alias).status());
        } else {
          auto found = store_->Find(alias);
          if (!found.ok()) {
            if (found.status().code() != absl::StatusCode::kNotFound) {
              check(found.status());
            }
            continue;
          }
          bool known = false;
          for (const auto& e : entries[a]) {
            known |= e->thumbprint() == (*found)->thumbprint();
          }
          if ((*found)->alias() != alias || !known ||
              !CheckKeyMatchesLeaf(**found).ok()) {
            violations++;
          }
          if (op >= 5) {
            probes++;
            check(store_->ProbeKey(**found));
          }
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_LT(absl::Now(), deadline) << "ran out of time";
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(operation_active.load(), 0);
  EXPECT_GT(probes.load(), 0);
  for (int a = 0; a < kAliases; ++a) {
    auto listed = store_->List({absl::StrCat("thread-", a, "#")});
    ASSERT_OK(listed);
    EXPECT_LE(listed->size(), static_cast<size_t>(kVariants));
    EXPECT_OK(store_->DeleteAllForAlias(absl::StrCat("thread-", a, "#att=0")));
    EXPECT_OK(store_->DeleteAllForAlias(absl::StrCat("thread-key-", a)));
  }
}

// Waits for `pid` at most `limit`; kills it after that. Returns the raw
// wait status, or -1 when it had to be killed.
int WaitBounded(pid_t pid, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  int status = 0;
  while (absl::Now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// The parent has opened and logged in; each child finds and signs on the
// token (re-initialising the module in the child), and the parent keeps
// working after every child.
TEST_F(Pkcs11ProcessTest, ForkedChildrenFindAndSignAndTheParentKeepsWorking) {
  auto key = store_->CreateKey("forked#att=0", KeySpec{KeyType::kEcP256});
  ASSERT_OK(key);
  auto entry = Issue("forked#att=0", *key);
  ASSERT_OK(store_->Put(entry));
  ASSERT_OK(store_->ProbeKey(*entry));
  for (int i = 0; i < 20; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto found = store_->Find("forked#att=0");
      int code = 0;
      if (!found.ok()) {
        code = 10;
      } else if (!store_->ProbeKey(**found).ok()) {
        code = 11;
      } else if (!(*found)->key()->Sign("child").ok()) {
        code = 12;
      }
      _exit(code);
    }
    const int status = WaitBounded(pid, absl::Seconds(30));
    ASSERT_TRUE(status != -1 && WIFEXITED(status)) << "child " << i;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child " << i;
    auto found = store_->Find("forked#att=0");
    ASSERT_OK(found);
    EXPECT_OK(store_->ProbeKey(**found)) << "parent after child " << i;
  }
  EXPECT_THAT(store_->DeleteAllForAlias("forked#att=0"), IsOkAndHolds(1));
}

// Runs `body` in a forked child (it returns the exit code) and returns the
// code, or -1 when the child did not exit normally within a minute.
template <typename Body>
int InChild(Body body) {
  const pid_t pid = fork();
  if (pid == 0) {
    _exit(body());
  }
  if (pid < 0) {
    return -1;
  }
  const int status = WaitBounded(pid, absl::Seconds(60));
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// LockAlias reaches other processes: a child with its own store on the token
// cannot take an alias the parent holds (Unavailable naming the alias once
// its timeout runs out), takes another alias at once, and takes the alias
// after the parent lets go.
TEST_F(Pkcs11ProcessTest, LockAliasExcludesOtherProcesses) {
  auto held = store_->LockAlias("mint#att=0", absl::Seconds(1));
  ASSERT_OK(held);
  const Pkcs11StoreOptions options = Options();
  EXPECT_EQ(
      InChild([&options] {
        auto mine = OpenPkcs11Store(options);
        if (!mine.ok()) {
          return 10;
        }
        const absl::Time start = absl::Now();
        auto lock = (*mine)->LockAlias("mint#att=0", absl::Milliseconds(200));
        if (lock.status().code() != absl::StatusCode::kUnavailable) {
          return 1;
        }
        if (!absl::StrContains(lock.status().message(), "mint#att=0") ||
            absl::Now() - start < absl::Milliseconds(200)) {
          return 2;
        }
        return (*mine)->LockAlias("other#att=0", absl::Seconds(1)).ok() ? 0 : 3;
      }),
      0);
  held->reset();
  EXPECT_EQ(
      InChild([&options] {
        auto mine = OpenPkcs11Store(options);
        return mine.ok() &&
                       (*mine)->LockAlias("mint#att=0", absl::Seconds(5)).ok()
                   ? 0
                   : 1;
      }),
      0);
}

// A process that dies holding the lock does not keep it: the kernel drops
// it with the process.
TEST_F(Pkcs11ProcessTest, LockDiesWithItsProcess) {
  const Pkcs11StoreOptions options = Options();
  EXPECT_EQ(InChild([&options] {
              auto mine = OpenPkcs11Store(options);
              if (!mine.ok()) {
                return 10;
              }
              auto lock = (*mine)->LockAlias("dies#att=0", absl::Seconds(1));
              if (!lock.ok()) {
                return 1;
              }
              _exit(0);  // holding it, no destructors
            }),
            0);
  EXPECT_OK(store_->LockAlias("dies#att=0", absl::Seconds(1)));
}

TEST_F(Pkcs11ProcessTest, ExitWithTheStoreOpenNeverCrashes) {
  for (const char* how : {"return", "exit"}) {
    auto output = RunCommand(absl::StrCat(CERTSTORE_EXIT_HELPER, " ", how, " '",
                                          token().Uri(), "'"));
    EXPECT_OK(output) << how;  // exit status 0, no signal
  }
}

}  // namespace
}  // namespace certstore::testing

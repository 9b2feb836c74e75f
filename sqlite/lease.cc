#include <openssl/rand.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "certstore/status_macros.h"
#include "sqlite/lease_internal.h"

namespace certstore::sqlite_internal {
namespace {

constexpr char kGetSql[] =
    "SELECT holder, expires_at_ms, ttl_ms FROM leases WHERE alias = ?1";
constexpr char kTakeSql[] =
    "INSERT OR REPLACE INTO leases(alias, holder, expires_at_ms, ttl_ms) "
    "VALUES(?1, ?2, ?3, ?4)";
constexpr char kRenewSql[] =
    "UPDATE leases SET expires_at_ms = ?3 WHERE alias = ?1 AND holder = ?2";
constexpr char kReleaseSql[] =
    "DELETE FROM leases WHERE alias = ?1 AND holder = ?2";

constexpr std::chrono::milliseconds kMaxPollPause(50);

// Leases are compared across processes, so they run on the wall clock
// (not the store's injected clock); ttl_ms bounds the damage of a jump.
int64_t WallMillis() { return absl::ToUnixMillis(absl::Now()); }

std::string NewHolder() {
  unsigned char nonce[8] = {0};
  RAND_bytes(nonce, sizeof(nonce));  // a zero nonce still names the pid
  return absl::StrCat(
      "pid ", getpid(), " #",
      absl::BytesToHexString(absl::string_view(
          reinterpret_cast<const char*>(nonce), sizeof(nonce))));
}

struct TakeResult {
  bool taken = false;
  std::string holder;  // when not taken: who holds it
  int64_t remaining_ms = 0;
};

// In one write transaction: reads the alias's lease and takes it if free.
absl::StatusOr<TakeResult> TryTake(Database& db, absl::string_view alias,
                                   const std::string& holder, int64_t ttl_ms,
                                   Deadline deadline,
                                   absl::string_view context) {
  TakeResult result;
  auto work = [&](Connection& connection) -> absl::Status {
    result = TakeResult{};
    const int64_t now = WallMillis();
    {
      CERTSTORE_ASSIGN_OR_RETURN(Statement get, connection.Prepare(kGetSql));
      get.BindBlob(1, alias);
      CERTSTORE_ASSIGN_OR_RETURN(bool row, get.Step());
      const int64_t remaining = row ? get.Int(1) - now : 0;
      if (row && remaining > 0 && remaining <= get.Int(2)) {
        result.holder = std::string(get.Text(0));
        result.remaining_ms = remaining;
        return absl::OkStatus();
      }
    }
    CERTSTORE_ASSIGN_OR_RETURN(Statement take, connection.Prepare(kTakeSql));
    take.BindBlob(1, alias);
    take.BindText(2, holder);
    take.BindInt(3, now + ttl_ms);
    take.BindInt(4, ttl_ms);
    CERTSTORE_RETURN_IF_ERROR(take.Run());
    result.taken = true;
    return absl::OkStatus();
  };
  // A lease is not worth an fsync: one lost in a power cut is one whose
  // holder died with the machine.
  CERTSTORE_RETURN_IF_ERROR(db.WriteUnsynced(context, work, deadline));
  return result;
}

class LeaseLock final : public AliasLock {
 public:
  LeaseLock(Database& db, std::string alias, std::string holder, int64_t ttl_ms,
            std::unique_ptr<AliasLock> local)
      : db_(db),
        alias_(std::move(alias)),
        holder_(std::move(holder)),
        ttl_ms_(ttl_ms),
        pid_(getpid()),
        local_(std::move(local)),
        heartbeat_([this] { Heartbeat(); }) {}

  ~LeaseLock() override {
    if (getpid() != pid_) {
      // A forked child: the heartbeat thread and the lease are the
      // parent's. A std::thread of another process can be neither joined
      // nor destroyed, so it is leaked on purpose.
      new std::thread(std::move(heartbeat_));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    heartbeat_.join();
    // If this fails the lease still ends within its TTL.
    Update(kReleaseSql, "release").IgnoreError();
  }

 private:
  void Heartbeat() {
    const absl::Duration period = absl::Milliseconds(ttl_ms_) / 3;
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), period)) {
      mu_.Unlock();
      // A failed renewal is retried at the next beat.
      Update(kRenewSql, "renew").IgnoreError();
      mu_.Lock();
    }
  }

  absl::Status Update(const char* sql, absl::string_view what) {
    return db_.WriteUnsynced(absl::StrCat(db_.options().name, ": lease ", what),
                             [&](Connection& connection) -> absl::Status {
                               CERTSTORE_ASSIGN_OR_RETURN(
                                   Statement update, connection.Prepare(sql));
                               update.BindBlob(1, alias_);
                               update.BindText(2, holder_);
                               if (sql == kRenewSql) {
                                 update.BindInt(3, WallMillis() + ttl_ms_);
                               }
                               return update.Run();
                             });
  }

  Database& db_;
  const std::string alias_;
  const std::string holder_;
  const int64_t ttl_ms_;
  const pid_t pid_;
  std::unique_ptr<AliasLock> local_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread heartbeat_;  // last: starts once everything it uses exists
};

}  // namespace

absl::StatusOr<std::unique_ptr<AliasLock>> AcquireLease(
    Database& db, absl::string_view alias, absl::Duration ttl,
    Deadline deadline, std::unique_ptr<AliasLock> local,
    absl::string_view context) {
  const std::string holder = NewHolder();
  const int64_t ttl_ms = absl::ToInt64Milliseconds(ttl);
  for (int attempt = 0;; ++attempt) {
    CERTSTORE_ASSIGN_OR_RETURN(
        TakeResult result,
        TryTake(db, alias, holder, ttl_ms, deadline, context));
    if (result.taken) {
      return std::unique_ptr<AliasLock>(new LeaseLock(
          db, std::string(alias), holder, ttl_ms, std::move(local)));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          context, ": mint lock held by ", result.holder,
          " (its lease ends in ",
          absl::FormatDuration(absl::Milliseconds(result.remaining_ms)),
          " unless renewed)"));
    }
    SleepWithJitter(attempt, deadline, kMaxPollPause);
  }
}

}  // namespace certstore::sqlite_internal

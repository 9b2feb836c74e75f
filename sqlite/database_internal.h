// The store's database: the file's safety checks, one connection serialised
// by a mutex, the busy budget, and fork safety. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_DATABASE_INTERNAL_H_
#define CERTSTORE_SQLITE_DATABASE_INTERNAL_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/internal/unique_fd.h"
#include "sqlite/connection_internal.h"

namespace certstore::sqlite_internal {

using UniqueFd = ::certstore::internal::UniqueFd;

// True for statfs() f_type values of network, cluster and FUSE filesystems,
// where SQLite's WAL index (shared memory between processes) and POSIX
// locks are not reliable.
bool IsNetworkFilesystem(int64_t f_type);

// Creates `path` (mode 0600, never through a symlink) if absent, then
// requires it and any existing -wal, -shm or -journal companion to be
// private files (CheckPrivateFile): PermissionDenied otherwise.
absl::Status PreparePrivateFile(const std::string& path);

struct DatabaseOptions {
  std::string path;  // absolute
  std::string name;  // "sqlite:" + path, the store's Name()
  bool force_rollback_journal = false;
  absl::Duration busy_budget = absl::Seconds(5);
};

// Runs `work` inside BEGIN IMMEDIATE ... COMMIT on `connection`, rolling
// back when it or the commit fails.
absl::Status RunTransaction(
    Connection& connection,
    const std::function<absl::Status(Connection&)>& work);

class Database {
 public:
  using Work = std::function<absl::Status(Connection&)>;

  // Prepares the file, connects, and creates or migrates the schema.
  static absl::StatusOr<std::unique_ptr<Database>> Open(
      DatabaseOptions options);

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  // Runs `work` with the connection (reconnecting first after a fork), or
  // inside one BEGIN IMMEDIATE transaction for Write. A call that finds the
  // database locked by another connection is retried whole, with jittered
  // pauses, until `deadline` or the busy budget, whichever comes first;
  // past it: Unavailable naming the budget. Errors start with `context`.
  absl::Status Read(absl::string_view context, const Work& work,
                    std::optional<Deadline> deadline = std::nullopt);
  absl::Status Write(absl::string_view context, const Work& work,
                     std::optional<Deadline> deadline = std::nullopt);
  // Write, but in WAL mode the commit is not synced to disk
  // (synchronous=NORMAL): still atomic, and made durable by the next
  // synced commit, but a power cut may undo it. For what ends by itself
  // anyway (mint leases), so that taking and releasing one costs no fsync.
  // In rollback-journal mode it is synced like Write.
  absl::Status WriteUnsynced(absl::string_view context, const Work& work,
                             std::optional<Deadline> deadline = std::nullopt);

  const DatabaseOptions& options() const { return options_; }

 private:
  friend class ForkGuard;

  explicit Database(DatabaseOptions options);
  enum class Mode { kRead, kWrite, kUnsyncedWrite };
  absl::Status Run(absl::string_view context, Mode mode, const Work& work,
                   std::optional<Deadline> deadline);
  absl::Status Attempt(Mode mode, const Work& work, Deadline deadline);
  absl::Status Connect(Deadline deadline);
  void DropConnection();
  absl::Status BusyStatus(absl::string_view context,
                          absl::string_view cause) const;

  const DatabaseOptions options_;
  // Guards the connection; timed, so that waiting for another thread's call
  // counts against the busy budget too.
  std::timed_mutex mu_;
  std::unique_ptr<Connection> connection_;
  pid_t connection_pid_ = 0;
};

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_DATABASE_INTERNAL_H_

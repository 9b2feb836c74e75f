// Cross-process mutual exclusion on a lock file: flock(LOCK_EX) on a private
// file, polled for a bounded time; the kernel drops it when the holder
// closes the descriptor or dies. The PEM directory's and the PKCS#11 store's
// LockAlias and the PEM directory's writers use it. Project-internal.
#ifndef CERTSTORE_API_INTERNAL_LOCK_FILE_H_
#define CERTSTORE_API_INTERNAL_LOCK_FILE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/internal/internal_export.h"
#include "api/internal/unique_fd.h"
#include "certstore/backend_author.h"
#include "certstore/cert_store.h"

namespace certstore::internal {

// Opens (creating, 0600) the lock file `name` in `dir_fd` without following
// a symlink, and checks it with CheckPrivateFile. Takes no lock.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<UniqueFd> OpenLockFile(
    int dir_fd, const std::string& name, absl::string_view context);

// Takes flock(LOCK_EX) on `name` in `dir_fd` (created 0600 when absent),
// polling with backoff for at most `timeout`. The lock lasts until the
// returned descriptor is closed, or the process dies. Unavailable (naming
// `context`) when still held by someone else after `timeout`.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<UniqueFd> LockFile(
    int dir_fd, const std::string& name, absl::Duration timeout,
    absl::string_view context);

// A persistent store's LockAlias: `in_process` first (this process's
// threads queue there, not on flock), then LockFile(dir_fd, file_name)
// with what is left of `timeout`. Held until the returned lock is
// destroyed; the kernel drops the file lock if the process dies.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<std::unique_ptr<AliasLock>>
LockAliasAcrossProcesses(InProcessAliasLocks& in_process,
                         absl::string_view alias, int dir_fd,
                         const std::string& file_name, absl::Duration timeout,
                         absl::string_view context);

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_LOCK_FILE_H_

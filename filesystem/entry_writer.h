// The write side of a PEM directory store: alias directories created and
// removed, entry files replaced atomically, every writer of every process
// serialised. Internal to filesystem/.
#ifndef CERTSTORE_FILESYSTEM_ENTRY_WRITER_H_
#define CERTSTORE_FILESYSTEM_ENTRY_WRITER_H_

#include <sys/stat.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "filesystem/file_system_ops.h"
#include "filesystem/posix_files.h"

namespace certstore::filesystem_internal {

// The writers' lock file in the store directory.
inline constexpr char kWritersLockName[] = ".lock";

// Every call holds a mutex (this process) and flock(kWritersLockName) (all
// processes), waiting at most `lock_timeout` for the flock: Unavailable
// then. Errors are put behind `context`. Thread-safe.
class EntryWriter {
 public:
  // `store_fd` (not owned) is the store directory, `store_path` its path.
  EntryWriter(int store_fd, std::string store_path, const FileSystemOps& ops,
              absl::Duration lock_timeout)
      : store_fd_(store_fd),
        store_path_(std::move(store_path)),
        ops_(ops),
        lock_timeout_(lock_timeout) {}

  // Writes `content` as `file_name` in alias directory `dir_name` (created
  // if absent) with WriteFileAtomically, after removing temp files dead
  // writers left there. Returns what fstat said about the new file.
  absl::StatusOr<struct stat> Write(const std::string& dir_name,
                                    const std::string& file_name,
                                    absl::string_view content,
                                    absl::string_view context);

  // Removes every entry file of alias directory `dir_name`, then the
  // directory unless something else is left in it. Returns how many entry
  // files were removed (0 when the directory is absent).
  absl::StatusOr<int> RemoveAll(const std::string& dir_name,
                                absl::string_view context);

  // Removes the entry files of `dir_name` for which `doomed` (asked with
  // the writers' lock held, so that no writer replaces a file in between)
  // answers true. Returns how many were removed.
  absl::StatusOr<int> RemoveIf(
      const std::string& dir_name,
      const std::function<bool(const Directory&, const Directory::Item&)>&
          doomed,
      absl::string_view context);

 private:
  absl::StatusOr<UniqueFd> LockWriters(absl::string_view context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Directory> EnsureAliasDir(const std::string& dir_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int> RemoveEntries(const Directory& dir,
                                    const std::string& dir_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int store_fd_;
  const std::string store_path_;
  const FileSystemOps& ops_;
  const absl::Duration lock_timeout_;
  absl::Mutex mu_;
};

}  // namespace certstore::filesystem_internal

#endif  // CERTSTORE_FILESYSTEM_ENTRY_WRITER_H_

#include "filesystem/entry_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "api/internal/lock_file.h"
#include "api/internal/posix_status.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "filesystem/alias_names.h"

namespace certstore::filesystem_internal {

using internal::ErrnoStatus;

absl::StatusOr<struct stat> EntryWriter::Write(const std::string& dir_name,
                                               const std::string& file_name,
                                               absl::string_view content,
                                               absl::string_view context) {
  absl::MutexLock lock(&mu_);
  CERTSTORE_ASSIGN_OR_RETURN(UniqueFd writers, LockWriters(context));
  CERTSTORE_ASSIGN_OR_RETURN(Directory dir,
                             InContext(EnsureAliasDir(dir_name), context));
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<Directory::Item> items,
                             InContext(dir.List(), context));
  RemoveStaleTempFiles(dir.fd(), items);
  return InContext(
      WriteFileAtomically(ops_, dir.fd(), file_name, content,
                          absl::StrCat(store_path_, "/", dir_name)),
      context);
}

absl::StatusOr<int> EntryWriter::RemoveAll(const std::string& dir_name,
                                           absl::string_view context) {
  absl::MutexLock lock(&mu_);
  CERTSTORE_ASSIGN_OR_RETURN(UniqueFd writers, LockWriters(context));
  absl::StatusOr<Directory> dir = Directory::Open(
      store_fd_, dir_name, absl::StrCat(store_path_, "/", dir_name));
  if (absl::IsNotFound(dir.status())) {
    return 0;
  }
  CERTSTORE_RETURN_IF_ERROR(WithContext(dir.status(), context));
  return InContext(RemoveEntries(*dir, dir_name), context);
}

absl::StatusOr<int> EntryWriter::RemoveIf(
    const std::string& dir_name,
    const std::function<bool(const Directory&, const Directory::Item&)>& doomed,
    absl::string_view context) {
  absl::MutexLock lock(&mu_);
  CERTSTORE_ASSIGN_OR_RETURN(UniqueFd writers, LockWriters(context));
  const std::string path = absl::StrCat(store_path_, "/", dir_name);
  absl::StatusOr<Directory> dir = Directory::Open(store_fd_, dir_name, path);
  if (absl::IsNotFound(dir.status())) {
    return 0;
  }
  CERTSTORE_RETURN_IF_ERROR(WithContext(dir.status(), context));
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<Directory::Item> items,
                             InContext(dir->List(), context));
  int removed = 0;
  for (const Directory::Item& item : items) {
    if (!IsEntryFileName(item.name) || !doomed(*dir, item)) {
      continue;
    }
    if (unlinkat(dir->fd(), item.name.c_str(), 0) == 0) {
      ++removed;
    } else if (errno != ENOENT) {
      return WithContext(
          ErrnoStatus(errno, absl::StrCat(path, "/", item.name, ": unlink")),
          context);
    }
  }
  if (removed > 0 && ops_.fsync(dir->fd()) != 0) {
    return WithContext(ErrnoStatus(errno, absl::StrCat(path, ": fsync")),
                       context);
  }
  return removed;
}

absl::StatusOr<UniqueFd> EntryWriter::LockWriters(absl::string_view context) {
  return internal::LockFile(store_fd_, kWritersLockName, lock_timeout_,
                            context);
}

absl::StatusOr<Directory> EntryWriter::EnsureAliasDir(
    const std::string& dir_name) {
  const std::string path = absl::StrCat(store_path_, "/", dir_name);
  if (mkdirat(store_fd_, dir_name.c_str(), 0700) == 0) {
    if (ops_.fsync(store_fd_) != 0) {
      absl::Status status = ErrnoStatus(
          errno,
          absl::StrCat(store_path_, ": fsync after creating ", dir_name));
      unlinkat(store_fd_, dir_name.c_str(), AT_REMOVEDIR);
      return status;
    }
  } else if (errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat(path, ": mkdir"));
  }
  return Directory::Open(store_fd_, dir_name, path);
}

absl::StatusOr<int> EntryWriter::RemoveEntries(const Directory& dir,
                                               const std::string& dir_name) {
  const std::string path = absl::StrCat(store_path_, "/", dir_name);
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<Directory::Item> items, dir.List());
  RemoveStaleTempFiles(dir.fd(), items);
  int removed = 0;
  for (const Directory::Item& item : items) {
    if (!IsEntryFileName(item.name)) {
      continue;
    }
    if (unlinkat(dir.fd(), item.name.c_str(), 0) == 0) {
      ++removed;
    } else if (errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat(path, "/", item.name, ": unlink"));
    }
  }
  if (ops_.fsync(dir.fd()) != 0) {
    return ErrnoStatus(errno, absl::StrCat(path, ": fsync"));
  }
  // Fails (ENOTEMPTY) while something that is not an entry is left there.
  if (unlinkat(store_fd_, dir_name.c_str(), AT_REMOVEDIR) == 0 &&
      ops_.fsync(store_fd_) != 0) {
    return ErrnoStatus(errno, absl::StrCat(store_path_, ": fsync"));
  }
  return removed;
}

}  // namespace certstore::filesystem_internal

#include "api/internal/lock_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "api/internal/posix_status.h"
#include "certstore/status_macros.h"

namespace certstore::internal {

absl::StatusOr<UniqueFd> OpenLockFile(int dir_fd, const std::string& name,
                                      absl::string_view context) {
  UniqueFd fd(openat(dir_fd, name.c_str(),
                     O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  struct stat st;
  if (fd.get() < 0 || fstat(fd.get(), &st) != 0) {
    return errno == ELOOP
               ? RefuseSymlink(absl::StrCat(context, ": ", name))
               : ErrnoStatus(errno, absl::StrCat(context, ": ", name));
  }
  CERTSTORE_RETURN_IF_ERROR(
      CheckPrivateFile(st, absl::StrCat(context, ": ", name)));
  return fd;
}

absl::StatusOr<UniqueFd> LockFile(int dir_fd, const std::string& name,
                                  absl::Duration timeout,
                                  absl::string_view context) {
  CERTSTORE_ASSIGN_OR_RETURN(UniqueFd fd, OpenLockFile(dir_fd, name, context));
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Microseconds(500);
  while (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) {
      continue;
    }
    if (errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat(context, ": flock ", name));
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::UnavailableError(absl::StrCat(
          context, ": lock ", name, " still held by another process after ",
          absl::FormatDuration(timeout)));
    }
    absl::SleepFor(std::min(backoff, left));
    backoff = std::min(backoff * 2, absl::Milliseconds(20));
  }
  return fd;
}

namespace {

class ProcessAndFileLock final : public AliasLock {
 public:
  ProcessAndFileLock(std::unique_ptr<AliasLock> in_process, UniqueFd file)
      : in_process_(std::move(in_process)), file_(std::move(file)) {}

 private:
  std::unique_ptr<AliasLock> in_process_;  // released last
  UniqueFd file_;                          // closing it releases the flock
};

}  // namespace

absl::StatusOr<std::unique_ptr<AliasLock>> LockAliasAcrossProcesses(
    InProcessAliasLocks& in_process, absl::string_view alias, int dir_fd,
    const std::string& file_name, absl::Duration timeout,
    absl::string_view context) {
  const absl::Time deadline = absl::Now() + timeout;
  CERTSTORE_ASSIGN_OR_RETURN(std::unique_ptr<AliasLock> held,
                             in_process.Acquire(alias, timeout, context));
  CERTSTORE_ASSIGN_OR_RETURN(
      UniqueFd file,
      LockFile(dir_fd, file_name,
               std::max(deadline - absl::Now(), absl::ZeroDuration()),
               context));
  return std::unique_ptr<AliasLock>(
      new ProcessAndFileLock(std::move(held), std::move(file)));
}

}  // namespace certstore::internal

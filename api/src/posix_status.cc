#include "api/internal/posix_status.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace certstore::internal {

absl::Status ErrnoStatus(int err, absl::string_view context) {
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case ENOENT:
    case ENOTDIR:
      code = absl::StatusCode::kNotFound;
      break;
    case EAGAIN:
    case EINTR:
    case EBUSY:
    case ETIMEDOUT:
      code = absl::StatusCode::kUnavailable;
      break;
    case ENOSPC:
    case EDQUOT:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case ELOOP:
    case EMLINK:
    case ENAMETOOLONG:
    case EINVAL:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case EEXIST:
      code = absl::StatusCode::kAlreadyExists;
      break;
    default:
      break;
  }
  char buf[128];
  // GNU strerror_r returns the message (possibly not in buf).
  const char* text = strerror_r(err, buf, sizeof(buf));
  return absl::Status(code,
                      absl::StrCat(context, ": ", text, " (errno ", err, ")"));
}

absl::Status RefuseSymlink(absl::string_view path) {
  return absl::PermissionDeniedError(
      absl::StrCat(path, ": is a symbolic link; refusing to follow it"));
}

absl::Status CheckPrivateFile(const struct stat& st, absl::string_view path) {
  if (!S_ISREG(st.st_mode)) {
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": not a regular file; refusing to use it"));
  }
  if (st.st_uid != geteuid()) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: owned by uid %d, not by this user (uid %d); refusing to trust it",
        path, st.st_uid, geteuid()));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: mode %04o lets group/others read or write it; fix with chmod 600",
        path, st.st_mode & 07777));
  }
  return absl::OkStatus();
}

}  // namespace certstore::internal

// errno -> absl::Status, and the ownership/mode rule for secret files: the
// one place that maps the POSIX error space. Project-internal.
#ifndef CERTSTORE_API_INTERNAL_POSIX_STATUS_H_
#define CERTSTORE_API_INTERNAL_POSIX_STATUS_H_

#include <sys/stat.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "api/internal/internal_export.h"

namespace certstore::internal {

// "<context>: <strerror> (errno N)" with a code by errno:
// EACCES/EPERM/EROFS -> PermissionDenied, ENOENT/ENOTDIR -> NotFound,
// EAGAIN/EWOULDBLOCK/EINTR/EBUSY/ETIMEDOUT -> Unavailable,
// ENOSPC/EDQUOT -> ResourceExhausted, ELOOP/EMLINK/ENAMETOOLONG/EINVAL ->
// InvalidArgument, EEXIST -> AlreadyExists, anything else -> Internal.
CERTSTORE_INTERNAL_EXPORT absl::Status ErrnoStatus(int err,
                                                   absl::string_view context);

// OK when `st` describes a regular file owned by this process's effective
// user with no group/world permission bits (like ssh's rule for keys).
// PermissionDenied otherwise, naming `path`, the mode or owner, and the fix.
CERTSTORE_INTERNAL_EXPORT absl::Status CheckPrivateFile(const struct stat& st,
                                                        absl::string_view path);

// PermissionDenied: "<path>: is a symbolic link; refusing to follow it"
// (what an O_NOFOLLOW open's ELOOP means).
CERTSTORE_INTERNAL_EXPORT absl::Status RefuseSymlink(absl::string_view path);

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_POSIX_STATUS_H_

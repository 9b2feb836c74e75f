// Directories certstore creates on its own: the per-user state directory
// (the embedded default store's SQLite file, the PKCS#11 store's lock
// files) and private directories under it. Project-internal.
#ifndef CERTSTORE_API_INTERNAL_DIRECTORIES_H_
#define CERTSTORE_API_INTERNAL_DIRECTORIES_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/internal/internal_export.h"
#include "api/internal/unique_fd.h"

namespace certstore::internal {

// mkdir -p `path`: missing parents 0755, the last component `mode`. An
// existing directory is left as it is. Errors name `context` and the part.
CERTSTORE_INTERNAL_EXPORT absl::Status MakeDirectories(
    const std::string& path, mode_t mode, absl::string_view context);

// $XDG_STATE_HOME/certstore, else $HOME/.local/state/certstore; created
// (0700) when absent. FailedPrecondition when neither variable is set.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<std::string> StateDirectory();

// PermissionDenied unless `st` is a directory owned by this user that
// neither group nor others may write.
CERTSTORE_INTERNAL_EXPORT absl::Status CheckPrivateDir(const struct stat& st,
                                                       absl::string_view path);

// Opens `name` under `parent_fd` (AT_FDCWD: a path) as a directory without
// following a symlink in its last component, and checks it with
// CheckPrivateDir. NotFound when absent; PermissionDenied for a symlink, a
// non-directory, or a directory others control. Messages name `path`.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<UniqueFd> OpenPrivateDir(
    int parent_fd, const std::string& name, absl::string_view path);

// MakeDirectories(path, 0700), then OpenPrivateDir. Messages start with
// "<context> <path>"; InvalidArgument for a relative path.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<UniqueFd> OpenPrivateDirectory(
    const std::string& path, absl::string_view context);

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_DIRECTORIES_H_

#include "api/internal/directories.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/internal/posix_status.h"
#include "certstore/status_macros.h"

namespace certstore::internal {

absl::Status MakeDirectories(const std::string& path, mode_t mode,
                             absl::string_view context) {
  for (size_t slash = 1; slash != std::string::npos;) {
    slash = path.find('/', slash + 1);
    const std::string part = path.substr(0, slash);
    if (mkdir(part.c_str(), slash == std::string::npos ? mode : 0755) != 0 &&
        errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat(context, ": create ", part));
    }
  }
  return absl::OkStatus();
}

namespace {

// Why `name` could not be opened as a directory without following links.
absl::Status RefuseNonDirectory(int parent_fd, const std::string& name,
                                absl::string_view path) {
  struct stat st;
  if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK(st.st_mode)) {
    return RefuseSymlink(path);
  }
  return absl::PermissionDeniedError(
      absl::StrCat(path, ": not a directory; refusing to use it"));
}

}  // namespace

absl::Status CheckPrivateDir(const struct stat& st, absl::string_view path) {
  if (!S_ISDIR(st.st_mode)) {
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": not a directory; refusing to use it"));
  }
  if (st.st_uid != geteuid()) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: directory owned by uid %d, not by this user (uid %d); refusing "
        "to trust it",
        path, st.st_uid, geteuid()));
  }
  if ((st.st_mode & 022) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: directory mode %04o lets group/others write it; fix with chmod "
        "700",
        path, st.st_mode & 07777));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenPrivateDir(int parent_fd, const std::string& name,
                                        absl::string_view path) {
  UniqueFd fd(openat(parent_fd, name.c_str(),
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ELOOP || err == ENOTDIR) {
      return RefuseNonDirectory(parent_fd, name, path);
    }
    return ErrnoStatus(err, absl::StrCat(path, ": open"));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(path, ": fstat"));
  }
  CERTSTORE_RETURN_IF_ERROR(CheckPrivateDir(st, path));
  return fd;
}

absl::StatusOr<UniqueFd> OpenPrivateDirectory(const std::string& path,
                                              absl::string_view context) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(context, " \"", path, "\": not an absolute path"));
  }
  const std::string named = absl::StrCat(context, " ", path);
  CERTSTORE_RETURN_IF_ERROR(MakeDirectories(path, 0700, named));
  return OpenPrivateDir(AT_FDCWD, path, named);
}

absl::StatusOr<std::string> StateDirectory() {
  std::string dir;
  if (const char* xdg = getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg) {
    dir = absl::StrCat(xdg, "/certstore");
  } else if (const char* home = getenv("HOME"); home != nullptr && *home) {
    dir = absl::StrCat(home, "/.local/state/certstore");
  } else {
    return absl::FailedPreconditionError(
        "no state directory: set XDG_STATE_HOME or HOME");
  }
  CERTSTORE_RETURN_IF_ERROR(MakeDirectories(dir, 0700, "state directory"));
  return dir;
}

}  // namespace certstore::internal

// POSIX file handling for PemDirStore: descriptors and directories owned by
// RAII types, every file opened relative to a directory descriptor without
// following symlinks and checked before use, atomic replacement of a file,
// and flock-based locks with a timeout. Internal to filesystem/.
#ifndef CERTSTORE_FILESYSTEM_POSIX_FILES_H_
#define CERTSTORE_FILESYSTEM_POSIX_FILES_H_

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/internal/unique_fd.h"
#include "certstore/errors.h"
#include "filesystem/file_system_ops.h"

namespace certstore::filesystem_internal {

using UniqueFd = ::certstore::internal::UniqueFd;

// `value`, its error put behind `context` (WithContext for StatusOr).
template <typename T>
absl::StatusOr<T> InContext(absl::StatusOr<T> value,
                            absl::string_view context) {
  if (!value.ok()) {
    return WithContext(value.status(), context);
  }
  return value;
}

// Temp files start with this; readers never look at them and writers remove
// the ones a dead writer left.
inline constexpr absl::string_view kTempPrefix = ".tmp-";

// An open directory: a descriptor for *at() calls and its entries.
class Directory {
 public:
  struct Item {
    std::string name;
    unsigned char type;  // d_type: DT_REG, DT_LNK, DT_UNKNOWN, ...
  };

  // OpenPrivateDir, then ready to list.
  static absl::StatusOr<Directory> Open(int parent_fd, const std::string& name,
                                        absl::string_view path);

  int fd() const { return dirfd(dir_.get()); }

  // Every entry but "." and "..", sorted by name. Call once.
  absl::StatusOr<std::vector<Item>> List() const;

 private:
  struct Closer {
    void operator()(DIR* dir) const { closedir(dir); }
  };
  Directory(DIR* dir, std::string path) : dir_(dir), path_(std::move(path)) {}

  std::unique_ptr<DIR, Closer> dir_;
  std::string path_;
};

// A regular file opened for reading, and what fstat said about it.
struct OpenedFile {
  UniqueFd fd;
  struct stat st;
};

// Opens `item` in `dir_fd` for reading, refusing (PermissionDenied) a
// symlink, anything but a regular file (a FIFO is refused without blocking),
// a file with more than one hard link, and one that fails CheckPrivateFile.
// A file unlinked after it was opened is read as it was.
// NotFound when the file vanished meanwhile.
absl::StatusOr<OpenedFile> OpenPrivateFile(int dir_fd,
                                           const Directory::Item& item,
                                           absl::string_view path);

// Reads the whole file (`expected_size`: what fstat said); DataLoss when it
// holds more than `max_bytes`.
absl::StatusOr<std::string> ReadAll(int fd, size_t expected_size,
                                    size_t max_bytes, absl::string_view path);

// Replaces `name` in `dir_fd` with `content` atomically and durably: a new
// temp file (O_EXCL, 0600) → write → fsync → renameat → fsync(dir). On any
// failure the temp file is removed and the error returned; a failure of the
// final fsync also removes `name` again when it did not exist before.
// Returns what fstat said about the written file.
absl::StatusOr<struct stat> WriteFileAtomically(const FileSystemOps& ops,
                                                int dir_fd,
                                                const std::string& name,
                                                absl::string_view content,
                                                absl::string_view dir_path);

// Removes the temp files in `dir_fd` (call only while holding the writers'
// lock: then they belong to writers that died). Best effort.
void RemoveStaleTempFiles(int dir_fd,
                          const std::vector<Directory::Item>& items);

}  // namespace certstore::filesystem_internal

#endif  // CERTSTORE_FILESYSTEM_POSIX_FILES_H_

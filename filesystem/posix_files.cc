#include "filesystem/posix_files.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/internal/directories.h"
#include "api/internal/posix_status.h"
#include "certstore/status_macros.h"

namespace certstore::filesystem_internal {
namespace {

using internal::CheckPrivateFile;
using internal::ErrnoStatus;
using internal::OpenPrivateDir;
using internal::RefuseSymlink;

std::string RandomHex() {
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // Uniqueness, not secrecy, is what matters; O_EXCL catches a clash.
    return absl::StrCat(getpid(), "-", absl::ToUnixNanos(absl::Now()));
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

absl::Status WriteAll(const FileSystemOps& ops, int fd,
                      absl::string_view content, absl::string_view path) {
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ops.write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return ErrnoStatus(n < 0 ? errno : EIO, absl::StrCat(path, ": write"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Makes the file 0600 whatever the umask, writes it and flushes it to disk.
absl::StatusOr<struct stat> WriteAndSync(const FileSystemOps& ops, int fd,
                                         absl::string_view content,
                                         absl::string_view path) {
  if (fchmod(fd, 0600) != 0) {
    return ErrnoStatus(errno, absl::StrCat(path, ": chmod"));
  }
  CERTSTORE_RETURN_IF_ERROR(WriteAll(ops, fd, content, path));
  if (ops.fsync(fd) != 0) {
    return ErrnoStatus(errno, absl::StrCat(path, ": fsync"));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(path, ": fstat"));
  }
  return st;
}

}  // namespace

const FileSystemOps& RealFileSystemOps() {
  static const FileSystemOps ops{&::write, &::fsync, &::renameat};
  return ops;
}

absl::StatusOr<Directory> Directory::Open(int parent_fd,
                                          const std::string& name,
                                          absl::string_view path) {
  CERTSTORE_ASSIGN_OR_RETURN(UniqueFd fd,
                             OpenPrivateDir(parent_fd, name, path));
  DIR* dir = fdopendir(fd.get());
  if (dir == nullptr) {
    return ErrnoStatus(errno, absl::StrCat(path, ": opendir"));
  }
  fd.release();  // owned by `dir` now
  return Directory(dir, std::string(path));
}

absl::StatusOr<std::vector<Directory::Item>> Directory::List() const {
  std::vector<Item> items;
  for (;;) {
    errno = 0;
    const struct dirent* entry = readdir(dir_.get());
    if (entry == nullptr) {
      break;
    }
    absl::string_view name(entry->d_name);
    if (name != "." && name != "..") {
      items.push_back(Item{std::string(name), entry->d_type});
    }
  }
  if (errno != 0) {
    return ErrnoStatus(errno, absl::StrCat(path_, ": readdir"));
  }
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.name < b.name; });
  return items;
}

absl::StatusOr<OpenedFile> OpenPrivateFile(int dir_fd,
                                           const Directory::Item& item,
                                           absl::string_view path) {
  OpenedFile file;
  // Look before opening anything readdir did not call regular: opening a
  // FIFO or a device could block or have side effects.
  if (item.type != DT_REG) {
    if (fstatat(dir_fd, item.name.c_str(), &file.st, AT_SYMLINK_NOFOLLOW) !=
        0) {
      return ErrnoStatus(errno, absl::StrCat(path, ": stat"));
    }
    if (S_ISLNK(file.st.st_mode)) {
      return RefuseSymlink(path);
    }
    CERTSTORE_RETURN_IF_ERROR(CheckPrivateFile(file.st, path));
  }
  file.fd.reset(
      openat(dir_fd, item.name.c_str(),
             O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (file.fd.get() < 0) {
    return errno == ELOOP ? RefuseSymlink(path)
                          : ErrnoStatus(errno, absl::StrCat(path, ": open"));
  }
  if (fstat(file.fd.get(), &file.st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(path, ": fstat"));
  }
  CERTSTORE_RETURN_IF_ERROR(CheckPrivateFile(file.st, path));
  // 0 links: deleted or replaced since it was opened; its bytes are still
  // the entry as it was then.
  if (file.st.st_nlink > 1) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: has %d hard links; refusing a file that other names share", path,
        file.st.st_nlink));
  }
  return file;
}

absl::StatusOr<std::string> ReadAll(int fd, size_t expected_size,
                                    size_t max_bytes, absl::string_view path) {
  constexpr size_t kChunk = 8192;
  std::string out;
  out.reserve(std::min(expected_size, max_bytes) + 1);
  for (;;) {
    const size_t old_size = out.size();
    out.resize(old_size + kChunk);
    ssize_t n = read(fd, &out[old_size], kChunk);
    out.resize(old_size + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 || out.size() > max_bytes) {
      const int err = errno;
      OPENSSL_cleanse(&out[0], out.size());
      if (n < 0) {
        return ErrnoStatus(err, absl::StrCat(path, ": read"));
      }
      return absl::DataLossError(absl::StrCat(path, ": larger than ", max_bytes,
                                              " bytes; not an entry file"));
    }
    // A short read past the size fstat gave is the end of the file: saves
    // the read() that would return 0.
    if (n == 0 ||
        (static_cast<size_t>(n) < kChunk && out.size() >= expected_size)) {
      return out;
    }
  }
}

absl::StatusOr<struct stat> WriteFileAtomically(const FileSystemOps& ops,
                                                int dir_fd,
                                                const std::string& name,
                                                absl::string_view content,
                                                absl::string_view dir_path) {
  const std::string temp = absl::StrCat(kTempPrefix, RandomHex());
  const std::string temp_path = absl::StrCat(dir_path, "/", temp);
  UniqueFd fd(openat(dir_fd, temp.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     0600));
  if (fd.get() < 0) {
    return ErrnoStatus(errno, absl::StrCat(temp_path, ": create"));
  }
  absl::Cleanup remove_temp = [&] { unlinkat(dir_fd, temp.c_str(), 0); };
  CERTSTORE_ASSIGN_OR_RETURN(struct stat st,
                             WriteAndSync(ops, fd.get(), content, temp_path));
  if (close(fd.release()) != 0) {
    return ErrnoStatus(errno, absl::StrCat(temp_path, ": close"));
  }
  struct stat old;
  const bool existed =
      fstatat(dir_fd, name.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0;
  if (ops.renameat(dir_fd, temp.c_str(), dir_fd, name.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat(temp_path, ": rename to ", name));
  }
  std::move(remove_temp).Cancel();
  if (ops.fsync(dir_fd) != 0) {
    absl::Status status = ErrnoStatus(
        errno, absl::StrCat(dir_path, ": fsync after renaming to ", name));
    if (!existed) {  // not durable: take the new name back (best effort)
      unlinkat(dir_fd, name.c_str(), 0);
      ops.fsync(dir_fd);
    }
    return status;
  }
  return st;
}

void RemoveStaleTempFiles(int dir_fd,
                          const std::vector<Directory::Item>& items) {
  for (const Directory::Item& item : items) {
    if (absl::StartsWith(item.name, kTempPrefix)) {
      unlinkat(dir_fd, item.name.c_str(), 0);
    }
  }
}

}  // namespace certstore::filesystem_internal

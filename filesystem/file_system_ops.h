// The system calls of PemDirStore's write path, as a table tests can replace
// to inject faults (a failing fsync, a rename that never happens). Internal
// to filesystem/ and its tests.
#ifndef CERTSTORE_FILESYSTEM_FILE_SYSTEM_OPS_H_
#define CERTSTORE_FILESYSTEM_FILE_SYSTEM_OPS_H_

#include <sys/types.h>

#include <memory>

#include "absl/status/statusor.h"
#include "certstore/cert_store.h"
#include "certstore/pem_dir_store.h"

namespace certstore::filesystem_internal {

// Each member has the signature and errno contract of the POSIX call it is
// named after.
struct FileSystemOps {
  ssize_t (*write)(int fd, const void* data, size_t size);
  int (*fsync)(int fd);
  int (*renameat)(int old_dir_fd, const char* old_name, int new_dir_fd,
                  const char* new_name);
};

// The real calls.
const FileSystemOps& RealFileSystemOps();

// OpenPemDirStore whose write path calls `ops` (not owned; must outlive the
// store) instead of the real calls: for fault-injection tests.
absl::StatusOr<std::unique_ptr<CertStore>> OpenPemDirStoreWithOps(
    const PemDirStoreOptions& options, const FileSystemOps& ops);

}  // namespace certstore::filesystem_internal

#endif  // CERTSTORE_FILESYSTEM_FILE_SYSTEM_OPS_H_

/// \file
/// PemDirStore: a directory of PEM files, one per entry, that ordinary tools
/// read as they are (`openssl x509 -in`, `openssl pkey -in`, `curl --cert`).
/// Layout, file format, security model and crash-safety argument:
/// docs/filesystem-store.md.
#ifndef CERTSTORE_PEM_DIR_STORE_H_
#define CERTSTORE_PEM_DIR_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/export.h"

namespace certstore {

struct PemDirStoreOptions {
  /// The store's directory; a relative path is taken from the current
  /// directory at open. Created 0700 when absent (its parent must exist).
  std::string directory;

  /// Time source for selection; null means Clock::System(). Not owned; must
  /// outlive the store.
  const Clock* clock = nullptr;

  /// How long Put and DeleteAllForAlias wait for the directory's writer lock
  /// while another process holds it; then Unavailable.
  absl::Duration write_lock_timeout = absl::Seconds(5);
};

/// Opens (creating if needed) a PEM directory store named
/// `file:<absolute directory>`.
///
/// Layout: each alias has a directory `a-<base64url(alias)>` (or
/// `h-<hex SHA-256(alias)>` for aliases over 150 bytes) holding one file per
/// entry, `x5t-<thumbprint>.pem`: a few `certstore-<field>: <value>` header
/// lines (alias, thumbprint, validity, created_at, key algorithm, metadata),
/// the chain as CERTIFICATE blocks (leaf first), then the key as PRIVATE KEY
/// (PKCS#8). Any bytes are a valid alias (1..1024 of them): an alias is never
/// used as a path. Files made by hand in that layout ("*.pem", even without
/// header lines) are found too.
///
/// Security: the directory, and every alias directory and file in it, must
/// belong to this user; directories must not be group/world-writable and
/// files must have no group/world bits, exactly one link, and be regular
/// files; symlinks are never followed (the directory is opened once and every
/// file is opened relative to it). A file failing these is refused with
/// PermissionDenied; one that does not decode, records another alias, or
/// whose key is not its certificate's is DataLoss. Either way only that
/// entry is affected: Find serves the best servable entry among the good
/// files of the alias, and reports the first refused file only when there is
/// none. Open fails with PermissionDenied for a directory that is a symlink,
/// belongs to someone else or is group/world-writable.
///
/// Writes: a temp file (0600, O_EXCL) in the alias directory is written,
/// fsynced and renamed over the entry's name, then the directory is fsynced;
/// on any failure the temp file is removed, the old entries stay and the
/// error is returned. Writers (Put, DeleteAllForAlias) of every process take
/// an flock on `<dir>/.lock` (released by the kernel if the holder dies);
/// Find and List take no lock and see a file's old or new content, never a
/// mix. Put stores software keys only (the key is written as PKCS#8):
/// InvalidArgument for a key that cannot be exported.
///
/// Find reads the alias's files on every call (~5 µs each) and reuses the
/// decoded entry while a file's bytes and mtime are unchanged, so a file
/// replaced by another process is seen at once. Entries it decodes are
/// restored (Entry::Restore): certificates are decoded on first use.
///
/// LockAlias: the in-process lock, then flock on
/// `<dir>/.mint-<alias directory>.lock`, shared by every
/// process using the directory; released on destruction or by the kernel
/// when the holder dies. The lock files are never removed.
CERTSTORE_EXPORT absl::StatusOr<std::unique_ptr<CertStore>> OpenPemDirStore(
    const PemDirStoreOptions& options);

/// The same with default options.
CERTSTORE_EXPORT absl::StatusOr<std::unique_ptr<CertStore>> OpenPemDirStore(
    absl::string_view directory);

}  // namespace certstore

#endif  // CERTSTORE_PEM_DIR_STORE_H_

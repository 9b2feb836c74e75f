/// \file
/// SqliteStore: the embedded persistent store. One SQLite database file holds
/// every entry; several threads and processes may share it.
///
/// The file is created 0600 and must stay a regular file owned by this user
/// with no group/world bits (so must its -wal/-shm/-journal companions);
/// otherwise Open is PermissionDenied. The store runs in WAL mode (rollback
/// journal on network filesystems), synchronous=FULL, secure_delete=ON,
/// defensive mode, trusted_schema=OFF. Every write is one BEGIN IMMEDIATE
/// transaction: a Put commits chain, key and metadata together or not at all,
/// and survives a crash of the process once Put has returned OK.
///
/// Keys are stored as PKCS#8 DER. Without a passphrase, the file's
/// permissions are the only protection of the private keys: anyone who can
/// read the file (root, backups) can use them. With a passphrase, keys are
/// stored as encrypted PKCS#8 (PBES2: PBKDF2-HMAC-SHA-256, AES-256-CBC).
/// See docs/sqlite-store.md for the layout and the security model.
#ifndef CERTSTORE_SQLITE_STORE_H_
#define CERTSTORE_SQLITE_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/export.h"

namespace certstore {

/// Which journal the store asks SQLite for.
enum class SqliteJournal {
  /// WAL, unless the file lives on a network or FUSE filesystem (detected
  /// with statfs), where SQLite's shared-memory WAL index is unsafe: there the
  /// rollback journal (journal_mode=DELETE).
  kAuto,
  /// Always the rollback journal. Switching an existing WAL file needs every
  /// other connection closed; if one is open, Open is Unavailable.
  kRollback,
};

/// Returns the passphrase that protects keys at rest. Called once per Open.
/// The store never logs or returns it.
using SqlitePassphraseCallback = std::function<absl::StatusOr<std::string>()>;

struct SqliteStoreOptions {
  /// The database file. Created (0600) if absent; its directory must exist.
  /// Relative paths are made absolute at Open. Symlinks are refused.
  std::string path;

  /// Time source for selection (not for lock leases or busy waits, which use
  /// real time because they are shared with other processes); null means
  /// Clock::System().
  const Clock* clock = nullptr;

  /// How long one call may wait for a database another connection has
  /// locked (busy timeout plus jittered retries). Past it the call fails
  /// with Unavailable; it never hangs. Must be positive.
  absl::Duration busy_budget = absl::Seconds(5);

  SqliteJournal journal = SqliteJournal::kAuto;

  /// Optional secret for encrypting keys at rest: a file (which must pass
  /// the same 0600/owner rule as the database; one trailing newline is
  /// ignored) or a callback. At most one of the two. The first Open with a
  /// secret records a PBKDF2 salt and a check value in the file; later Opens
  /// with another secret are PermissionDenied, and Opens without one are
  /// PermissionDenied once the file holds encrypted keys' parameters.
  std::string passphrase_file;
  SqlitePassphraseCallback passphrase_callback;

  /// PBKDF2-HMAC-SHA-256 iterations used when a file's key-encryption
  /// parameters are first recorded (>= 100,000; later Opens use the recorded
  /// count). The derivation runs once per Open (~0.14 s at 600,000 here),
  /// never per lookup.
  int pbkdf2_iterations = 600000;

  /// LockAlias's cross-process lease: renewed every lease_ttl / 3 while held,
  /// so a holder killed with SIGKILL blocks others for at most lease_ttl.
  /// Must be at least 100 ms.
  absl::Duration lease_ttl = absl::Seconds(5);
};

/// Opens (creating if absent) the store in options.path, named
/// `sqlite:<absolute path>`. Errors name the path and the option at fault:
///   InvalidArgument     empty path, bad option values, a symlink, a valid
///                       SQLite file of another application;
///   PermissionDenied    file (or -wal/-shm/-journal, or passphrase file)
///                       group/world accessible or owned by another user;
///                       wrong or missing passphrase;
///   DataLoss            not an SQLite database, or a damaged one;
///   FailedPrecondition  the file's schema is newer than this build;
///   Unavailable         locked by others past busy_budget.
/// An older schema is migrated in place.
///
/// Fork: a child process may keep using a store its parent opened. The store
/// closes its connection before fork() (pthread_atfork; a fork waits for the
/// store's in-flight call) and reopens it lazily in both processes; a child
/// created without fork handlers abandons the inherited connection unused.
CERTSTORE_EXPORT absl::StatusOr<std::unique_ptr<CertStore>> OpenSqliteStore(
    const SqliteStoreOptions& options);

/// Same, with default options for `path`.
CERTSTORE_EXPORT absl::StatusOr<std::unique_ptr<CertStore>> OpenSqliteStore(
    absl::string_view path);

}  // namespace certstore

#endif  // CERTSTORE_SQLITE_STORE_H_

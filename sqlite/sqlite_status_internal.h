// SQLite result codes -> absl::Status: the one converter for SQLite's error
// space. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_SQLITE_STATUS_INTERNAL_H_
#define CERTSTORE_SQLITE_SQLITE_STATUS_INTERNAL_H_

#include <sqlite3.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace certstore::sqlite_internal {

// "<context>: <SQLite's message> (<code name>, extended code N)" (no
// "<context>: " when it is empty), with a status code by result:
// BUSY/LOCKED -> Unavailable; CORRUPT/NOTADB/IOERR_SHORT_READ -> DataLoss;
// PERM/AUTH/READONLY/CANTOPEN -> PermissionDenied; FULL/NOMEM ->
// ResourceExhausted; TOOBIG/RANGE/MISMATCH -> InvalidArgument; other IOERR
// -> Unavailable; anything else -> Internal. `db` may be null; its message
// is used only when it describes `rc`.
absl::Status SqliteStatus(int rc, sqlite3* db, absl::string_view context);

// True for the result codes that mean "another connection holds a lock":
// the only ones worth retrying.
bool IsBusyCode(int rc);

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_SQLITE_STATUS_INTERNAL_H_

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "sqlite/sqlite_status_internal.h"

namespace certstore::sqlite_internal {
namespace {

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return absl::StatusCode::kInvalidArgument;
    case SQLITE_IOERR:
      // A short read is a file cut below what its header promises; a
      // shared-memory file that cannot grow is a full disk (or /dev/shm).
      if (rc == SQLITE_IOERR_SHORT_READ) {
        return absl::StatusCode::kDataLoss;
      }
      return rc == SQLITE_IOERR_SHMSIZE ? absl::StatusCode::kResourceExhausted
                                        : absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

// Primary result codes 1..26, for messages (sqlite3_errstr gives prose).
constexpr const char* kPrimaryNames[] = {
    "SQLITE_OK",        "SQLITE_ERROR",      "SQLITE_INTERNAL",
    "SQLITE_PERM",      "SQLITE_ABORT",      "SQLITE_BUSY",
    "SQLITE_LOCKED",    "SQLITE_NOMEM",      "SQLITE_READONLY",
    "SQLITE_INTERRUPT", "SQLITE_IOERR",      "SQLITE_CORRUPT",
    "SQLITE_NOTFOUND",  "SQLITE_FULL",       "SQLITE_CANTOPEN",
    "SQLITE_PROTOCOL",  "SQLITE_EMPTY",      "SQLITE_SCHEMA",
    "SQLITE_TOOBIG",    "SQLITE_CONSTRAINT", "SQLITE_MISMATCH",
    "SQLITE_MISUSE",    "SQLITE_NOLFS",      "SQLITE_AUTH",
    "SQLITE_FORMAT",    "SQLITE_RANGE",      "SQLITE_NOTADB",
};

const char* PrimaryName(int rc) {
  const size_t primary = static_cast<size_t>(rc & 0xff);
  return primary < sizeof(kPrimaryNames) / sizeof(kPrimaryNames[0])
             ? kPrimaryNames[primary]
             : "SQLITE_?";
}

}  // namespace

bool IsBusyCode(int rc) {
  return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

absl::Status SqliteStatus(int rc, sqlite3* db, absl::string_view context) {
  // sqlite3_errmsg describes the connection's latest failure, which is `rc`
  // when the caller converts right after the failing call.
  const bool db_describes_rc =
      db != nullptr && sqlite3_extended_errcode(db) == rc;
  std::string cause = db_describes_rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if (db_describes_rc && sqlite3_system_errno(db) != 0 &&
      (rc & 0xff) == SQLITE_CANTOPEN) {
    absl::StrAppend(&cause, " (errno ", sqlite3_system_errno(db), ")");
  }
  absl::StatusCode code = CodeFor(rc);
  const int system_errno = db_describes_rc ? sqlite3_system_errno(db) : 0;
  if (system_errno == ENOSPC || system_errno == EDQUOT ||
      rc == SQLITE_IOERR_SHMSIZE || (rc & 0xff) == SQLITE_FULL) {
    // Say what the operator must fix: SQLite's words ("disk I/O error")
    // do not, and a retry cannot.
    code = absl::StatusCode::kResourceExhausted;
    absl::StrAppend(&cause,
                    ": no space left on the device (or quota) for "
                    "the store or its -wal/-shm files");
  }
  std::string message =
      absl::StrCat(cause, " (", PrimaryName(rc), ", extended code ", rc, ")");
  if (!context.empty()) {
    message = absl::StrCat(context, ": ", message);
  }
  return absl::Status(code, message);
}

}  // namespace certstore::sqlite_internal

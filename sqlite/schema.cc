#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "certstore/status_macros.h"
#include "sqlite/database_internal.h"
#include "sqlite/schema_internal.h"

namespace certstore::sqlite_internal {
namespace {

// kMigrations[v] takes a file from version v to v + 1. A new file runs them
// all, so fresh and upgraded files go through the same statements.
constexpr const char* kMigrations[] = {
    // 0 -> 1. Aliases are BLOBs so that they compare byte for byte (NUL,
    // case, trailing spaces). Times are Unix seconds (created_at: ns). The
    // chain is the DER certificates, leaf first, each behind a 4-byte
    // big-endian length. digest is SHA-256 over every other column but id.
    R"sql(
CREATE TABLE meta(
  key TEXT PRIMARY KEY NOT NULL,
  value BLOB NOT NULL);
CREATE TABLE entries(
  id INTEGER PRIMARY KEY,
  alias BLOB NOT NULL CHECK(typeof(alias) = 'blob'),
  thumbprint TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  created_at_ns INTEGER NOT NULL,
  key_type INTEGER NOT NULL,
  key_algorithm TEXT NOT NULL,
  key_encrypted INTEGER NOT NULL,
  key_der BLOB NOT NULL,
  chain BLOB NOT NULL,
  endpoint TEXT NOT NULL,
  client_id TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  digest BLOB NOT NULL,
  UNIQUE(alias, thumbprint));
CREATE INDEX entries_by_alias ON entries(alias, not_after DESC);
)sql",
    // 1 -> 2. One row per alias whose mint lock is held; a holder renews
    // expires_at_ms while alive. ttl_ms bounds a lease whose holder's clock
    // ran ahead of ours.
    R"sql(
CREATE TABLE leases(
  alias BLOB PRIMARY KEY NOT NULL,
  holder TEXT NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  ttl_ms INTEGER NOT NULL) WITHOUT ROWID;
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion,
              "one migration per schema version");

absl::StatusOr<int64_t> QueryInt(Connection& connection, const char* sql) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string text, connection.QueryText(sql));
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::DataLossError(
        absl::StrCat("unexpected value \"", text, "\" for: ", sql));
  }
  return value;
}

// The file's schema version: 0 for an empty file.
absl::StatusOr<int64_t> ReadVersion(Connection& connection) {
  CERTSTORE_ASSIGN_OR_RETURN(int64_t app_id,
                             QueryInt(connection, "PRAGMA application_id"));
  if (app_id == 0) {
    CERTSTORE_ASSIGN_OR_RETURN(
        int64_t objects,
        QueryInt(connection, "SELECT count(*) FROM sqlite_schema"));
    if (objects == 0) {
      return 0;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "an SQLite database of something else (", objects,
        " schema objects, no certstore application_id); refusing to use it"));
  }
  if (app_id != kApplicationId) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "an SQLite database of another application (application_id 0x%08x); "
        "refusing to use it",
        static_cast<uint32_t>(app_id)));
  }
  absl::StatusOr<int64_t> version = QueryInt(
      connection, "SELECT value FROM meta WHERE key = 'schema_version'");
  if (!version.ok() &&
      version.status().code() == absl::StatusCode::kUnavailable) {
    return version.status();
  }
  if (!version.ok() || *version <= 0) {
    return absl::DataLossError(absl::StrCat(
        "certstore file without a readable schema_version in its meta table",
        version.ok() ? "" : ": ", version.status().message()));
  }
  return version;
}

absl::Status CheckNotNewer(int64_t version) {
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "schema version ", version, " is newer than this build supports (",
        kSchemaVersion, "); upgrade certstore to use this file"));
  }
  return absl::OkStatus();
}

absl::Status Migrate(Connection& connection) {
  // Re-read under the write lock: another process may have migrated.
  CERTSTORE_ASSIGN_OR_RETURN(int64_t version, ReadVersion(connection));
  CERTSTORE_RETURN_IF_ERROR(CheckNotNewer(version));
  for (int64_t v = version; v < kSchemaVersion; ++v) {
    CERTSTORE_RETURN_IF_ERROR(connection.Exec(kMigrations[v]));
  }
  const std::string stamp = absl::StrCat(
      "PRAGMA application_id = ", kApplicationId,
      "; INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ",
      kSchemaVersion, ")");
  return connection.Exec(stamp.c_str());
}

}  // namespace

absl::Status EnsureSchema(Connection& connection) {
  // One read transaction, so that the header's application_id and the
  // schema are read from the same snapshot: read apart, a process that
  // created the file just then could be seen with its tables but not yet
  // its id, and the file refused as another program's.
  CERTSTORE_RETURN_IF_ERROR(connection.Exec("BEGIN"));
  absl::StatusOr<int64_t> read = ReadVersion(connection);
  if (!connection.Exec("COMMIT").ok()) {
    connection.Exec("ROLLBACK").IgnoreError();  // a read: nothing to keep
  }
  CERTSTORE_ASSIGN_OR_RETURN(int64_t version, std::move(read));
  CERTSTORE_RETURN_IF_ERROR(CheckNotNewer(version));
  if (version == kSchemaVersion) {
    return absl::OkStatus();
  }
  return RunTransaction(connection, &Migrate);
}

}  // namespace certstore::sqlite_internal

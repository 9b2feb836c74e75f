// The database schema, its version and migrations. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_SCHEMA_INTERNAL_H_
#define CERTSTORE_SQLITE_SCHEMA_INTERNAL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "sqlite/connection_internal.h"

namespace certstore::sqlite_internal {

// Version 1: meta, entries and their alias index. Version 2: leases (the
// cross-process mint lock).
inline constexpr int kSchemaVersion = 2;

// PRAGMA application_id of a certstore file: "CERT".
inline constexpr int32_t kApplicationId = 0x43455254;

// Brings the file to kSchemaVersion: creates the schema in an empty file,
// migrates an older one step by step in one BEGIN IMMEDIATE transaction.
// InvalidArgument for a file of another application (or an SQLite file
// with foreign tables), FailedPrecondition for a newer schema.
absl::Status EnsureSchema(Connection& connection);

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_SCHEMA_INTERNAL_H_

// LockAlias across processes: a lease row per alias, taken under BEGIN
// IMMEDIATE and renewed by a heartbeat while held. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_LEASE_INTERNAL_H_
#define CERTSTORE_SQLITE_LEASE_INTERNAL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "sqlite/database_internal.h"

namespace certstore::sqlite_internal {

// Takes the lease of `alias` in `db` for this process, polling with
// jittered backoff until `deadline`: a lease is free when absent, expired,
// or further from expiry than its own TTL (its holder's clock jumped).
// While held, a thread renews it every ttl / 3; releasing deletes the row
// if still ours. A holder killed with SIGKILL blocks others for at most
// `ttl`. `local` is the in-process lock of the alias, held as long as the
// lease (so threads of one process queue in process). Unavailable naming
// the holder when still held at `deadline`. The lock must not outlive `db`.
absl::StatusOr<std::unique_ptr<AliasLock>> AcquireLease(
    Database& db, absl::string_view alias, absl::Duration ttl,
    Deadline deadline, std::unique_ptr<AliasLock> local,
    absl::string_view context);

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_LEASE_INTERNAL_H_

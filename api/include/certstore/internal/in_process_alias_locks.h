// Per-alias exclusive locks within one process, with a timeout. The memory
// store's LockAlias, and the in-process half of persistent stores' locks.
// Project-internal: not part of the public API.
#ifndef CERTSTORE_INTERNAL_IN_PROCESS_ALIAS_LOCKS_H_
#define CERTSTORE_INTERNAL_IN_PROCESS_ALIAS_LOCKS_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"

namespace certstore::internal {

class InProcessAliasLocks {
 public:
  InProcessAliasLocks() = default;
  InProcessAliasLocks(const InProcessAliasLocks&) = delete;
  InProcessAliasLocks& operator=(const InProcessAliasLocks&) = delete;

  // Waits up to `timeout` for `alias` to be free, then holds it until the
  // returned lock is destroyed. Unavailable (naming `context`) on timeout.
  absl::StatusOr<std::unique_ptr<AliasLock>> Acquire(absl::string_view alias,
                                                     absl::Duration timeout,
                                                     absl::string_view context);

 private:
  class Held;
  void Release(const std::string& alias);

  absl::Mutex mu_;
  absl::flat_hash_set<std::string> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certstore::internal

#endif  // CERTSTORE_INTERNAL_IN_PROCESS_ALIAS_LOCKS_H_

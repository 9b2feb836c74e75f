// Small JSON records the token client keeps per store, where every process
// that opens the same store finds them: one file per (store, key) in a
// private directory under the state directory, written atomically. A store
// that is "memory:" alone is seen by no other process, so its records stay
// in process. The negative-mint budget (rejection_ledger.h) and the cached
// platform metadata use it. Project-internal to client/.
#ifndef CERTSTORE_CLIENT_STATE_RECORDS_H_
#define CERTSTORE_CLIENT_STATE_RECORDS_H_

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "api/internal/internal_export.h"
#include "api/internal/json.h"

namespace certstore::client_internal {

// Thread-safe.
class CERTSTORE_INTERNAL_EXPORT StateRecords {
 public:
  // Records of `kind` ("rejections", "platform") for the store named
  // `store_name` go to `<directory>/<kind>`; `directory` empty: the state
  // directory. Without one (no HOME) nothing is kept: reads find nothing
  // and writes say so.
  StateRecords(std::string store_name, const std::string& directory,
               absl::string_view kind);

  // The record under `key`; nullopt when there is none, or it cannot be
  // read or parsed (a damaged record is as good as none).
  std::optional<internal::Json> Read(absl::string_view key);
  absl::Status Write(absl::string_view key, const internal::Json& record);
  void Remove(absl::string_view key);

 private:
  std::string PathOf(absl::string_view key) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string store_name_;
  const bool in_process_only_;
  std::string directory_;  // empty: records are not kept
  const std::string kind_;
  absl::Mutex mu_;
  // The records of a "memory:" store, serialized.
  absl::flat_hash_map<std::string, std::string> memory_ ABSL_GUARDED_BY(mu_);
  // key -> file, for a store with a directory: hashing the name costs more
  // than opening the file (OpenSSL fetches the digest on every call), and
  // every token request reads its alias's rejection record.
  absl::flat_hash_map<std::string, std::string> paths_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certstore::client_internal

#endif  // CERTSTORE_CLIENT_STATE_RECORDS_H_

// The negative-mint budget: when a freshly minted binding is refused as
// well, the rejection is written down where every process that uses the
// same store finds it, and for a backoff window none of them mints again
// for that alias. Project-internal to client/ (the CLI's evict clears it).
#ifndef CERTSTORE_CLIENT_REJECTION_LEDGER_H_
#define CERTSTORE_CLIENT_REJECTION_LEDGER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/internal/internal_export.h"
#include "client/state_records.h"

namespace certstore::client_internal {

struct Rejection {
  std::string alias;
  std::string thumbprint;  // the binding refused after the re-mint
  std::string reason;      // what the server said (escaped, shortened)
  absl::Time since;        // first refusal of this run of refusals
  absl::Time until;        // no mint before this
  int count = 0;           // refusals in a row; the window doubles each time
};

// One record per (store, alias), kept as StateRecords of kind
// "rejections". Thread-safe.
class CERTSTORE_INTERNAL_EXPORT RejectionLedger {
 public:
  // Records go to `<state_dir>/rejections`; `state_dir` empty: the state
  // directory. The windows are TokenClientOptions' defaults unless given.
  explicit RejectionLedger(std::string store_name, std::string state_dir = "",
                           absl::Duration first_window = absl::Minutes(1),
                           absl::Duration max_window = absl::Hours(1));

  // The record of `alias` while its window is open; nullopt otherwise (or
  // when it cannot be read: a damaged record never blocks a mint).
  // `recorded` (optional) says whether a record exists, open or not.
  std::optional<Rejection> Active(absl::string_view alias, absl::Time now,
                                  bool* recorded = nullptr);

  // Writes down a refusal of `thumbprint`: a window of first_window, twice
  // the previous one when the last window has just ended, at most
  // max_window.
  absl::Status Record(absl::string_view alias, absl::string_view thumbprint,
                      absl::string_view reason, absl::Time now);

  // Removes the record (a token was served, or an operator evicted).
  void Clear(absl::string_view alias);

 private:
  std::optional<Rejection> Read(absl::string_view alias);

  StateRecords records_;
  const absl::Duration first_window_;
  const absl::Duration max_window_;
};

}  // namespace certstore::client_internal

#endif  // CERTSTORE_CLIENT_REJECTION_LEDGER_H_

#include "client/rejection_ledger.h"

#include <algorithm>
#include <utility>

#include "api/internal/json.h"

namespace certstore::client_internal {
namespace {

constexpr size_t kMaxReason = 512;

}  // namespace

RejectionLedger::RejectionLedger(std::string store_name, std::string state_dir,
                                 absl::Duration first_window,
                                 absl::Duration max_window)
    : records_(std::move(store_name), state_dir, "rejections"),
      first_window_(first_window),
      max_window_(std::max(max_window, first_window)) {}

std::optional<Rejection> RejectionLedger::Read(absl::string_view alias) {
  std::optional<internal::Json> json = records_.Read(alias);
  if (!json.has_value()) {
    return std::nullopt;
  }
  Rejection r;
  r.alias = internal::JsonString(*json, "alias").value_or("");
  r.thumbprint = internal::JsonString(*json, "thumbprint").value_or("");
  r.reason = internal::JsonString(*json, "reason").value_or("");
  std::optional<int64_t> since =
      internal::JsonInteger(*json, "since", 0, INT64_MAX);
  std::optional<int64_t> until =
      internal::JsonInteger(*json, "until", 0, INT64_MAX);
  std::optional<int64_t> count = internal::JsonInteger(*json, "count", 1, 64);
  if (r.alias != alias || !since.has_value() || !until.has_value() ||
      !count.has_value()) {
    return std::nullopt;  // another alias's (a hash clash) or damaged
  }
  r.since = absl::FromUnixSeconds(*since);
  r.until = absl::FromUnixSeconds(*until);
  r.count = static_cast<int>(*count);
  return r;
}

std::optional<Rejection> RejectionLedger::Active(absl::string_view alias,
                                                 absl::Time now,
                                                 bool* recorded) {
  std::optional<Rejection> r = Read(alias);
  if (recorded != nullptr) {
    *recorded = r.has_value();
  }
  if (!r.has_value() || now >= r->until) {
    return std::nullopt;
  }
  return r;
}

absl::Status RejectionLedger::Record(absl::string_view alias,
                                     absl::string_view thumbprint,
                                     absl::string_view reason, absl::Time now) {
  std::optional<Rejection> previous = Read(alias);
  Rejection r;
  r.alias = std::string(alias);
  r.thumbprint = std::string(thumbprint);
  r.reason = std::string(reason.substr(0, kMaxReason));
  r.count = previous.has_value() ? std::min(previous->count + 1, 64) : 1;
  r.since = previous.has_value() ? previous->since : now;
  absl::Duration window = first_window_;
  for (int i = 1; i < r.count && window < max_window_; ++i) {
    window *= 2;
  }
  r.until = now + std::min(window, max_window_);
  return records_.Write(alias,
                        internal::Json{{"alias", r.alias},
                                       {"thumbprint", r.thumbprint},
                                       {"reason", r.reason},
                                       {"since", absl::ToUnixSeconds(r.since)},
                                       {"until", absl::ToUnixSeconds(r.until)},
                                       {"count", r.count}});
}

void RejectionLedger::Clear(absl::string_view alias) { records_.Remove(alias); }

}  // namespace certstore::client_internal

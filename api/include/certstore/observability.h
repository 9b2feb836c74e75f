// Logging and metrics hooks. Silent by default: a store or client logs only
// through the callback its options give it, and counts into a Metrics
// object the application can read. Messages never hold secrets.
#ifndef CERTSTORE_OBSERVABILITY_H_
#define CERTSTORE_OBSERVABILITY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace certstore {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

absl::string_view LogLevelName(LogLevel level);

// component: "cache", "sqlite", "client"… ; message: one line.
using LogCallback = std::function<void(
    LogLevel level, absl::string_view component, absl::string_view message)>;

// A counter many threads bump without sharing a cache line: each thread adds
// into its own stripe; Value() sums them.
class StripedCounter {
 public:
  void Add(int64_t n = 1) {
    size_t slot = this_thread_slot_;
    if (__builtin_expect(slot == kUnassigned, 0)) {
      slot = AssignThisThreadSlot();
    }
    stripes_[slot % kStripes].value.fetch_add(n, std::memory_order_relaxed);
  }
  int64_t Value() const;

 private:
  static constexpr size_t kUnassigned = ~size_t{0};
  static inline thread_local size_t this_thread_slot_ = kUnassigned;
  static size_t AssignThisThreadSlot();

  static constexpr size_t kStripes = 16;
  struct alignas(64) Stripe {
    std::atomic<int64_t> value{0};
  };
  Stripe stripes_[kStripes];
};

}  // namespace certstore

#endif  // CERTSTORE_OBSERVABILITY_H_

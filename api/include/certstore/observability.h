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

// A counter many threads bump without sharing a cache line or a locked
// instruction: each thread owns a stripe (its index recycled when the
// thread exits) and adds into it with a plain load and store, as its only
// writer; threads beyond kOwnedStripes share one more stripe and add
// atomically. Value() sums the stripes (each read atomically: exact once
// the adders are done, a snapshot while they run).
class StripedCounter {
 public:
  void Add(int64_t n = 1) {
    size_t slot = this_thread_slot_;
    if (__builtin_expect(slot == kUnassigned, 0)) {
      slot = AssignThisThreadSlot();
    }
    std::atomic<int64_t>& value = stripes_[slot].value;
    if (__builtin_expect(slot != kSharedStripe, 1)) {
      value.store(value.load(std::memory_order_relaxed) + n,
                  std::memory_order_relaxed);
    } else {
      value.fetch_add(n, std::memory_order_relaxed);
    }
  }
  int64_t Value() const;

 private:
  static constexpr size_t kOwnedStripes = 32;
  static constexpr size_t kSharedStripe = kOwnedStripes;
  static constexpr size_t kUnassigned = ~size_t{0};
  // This thread's stripe index, the same in every counter.
  static inline thread_local size_t this_thread_slot_ = kUnassigned;
  static size_t AssignThisThreadSlot();

  struct alignas(64) Stripe {
    std::atomic<int64_t> value{0};
  };
  Stripe stripes_[kOwnedStripes + 1];
};

}  // namespace certstore

#endif  // CERTSTORE_OBSERVABILITY_H_

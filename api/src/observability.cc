#include "certstore/observability.h"

namespace certstore {
absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

size_t StripedCounter::AssignThisThreadSlot() {
  // Round-robin, so two threads share a stripe only past kStripes threads.
  static std::atomic<size_t> next{0};
  this_thread_slot_ = next.fetch_add(1, std::memory_order_relaxed);
  return this_thread_slot_;
}

int64_t StripedCounter::Value() const {
  int64_t sum = 0;
  for (const Stripe& stripe : stripes_) {
    sum += stripe.value.load(std::memory_order_relaxed);
  }
  return sum;
}

}  // namespace certstore

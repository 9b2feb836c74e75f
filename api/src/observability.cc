#include "certstore/observability.h"

namespace certstore {
namespace {

size_t ThisThreadStripe(size_t stripes) {
  static std::atomic<size_t> next{0};
  thread_local const size_t stripe =
      next.fetch_add(1, std::memory_order_relaxed);
  return stripe % stripes;
}

}  // namespace

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

void StripedCounter::Add(int64_t n) {
  stripes_[ThisThreadStripe(kStripes)].value.fetch_add(
      n, std::memory_order_relaxed);
}

int64_t StripedCounter::Value() const {
  int64_t sum = 0;
  for (const Stripe& stripe : stripes_) {
    sum += stripe.value.load(std::memory_order_relaxed);
  }
  return sum;
}

}  // namespace certstore

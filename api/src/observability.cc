#include "certstore/observability.h"

#include <atomic>
#include <mutex>
#include <vector>

#include "certstore/backend_author.h"

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

namespace {

// Hands out stripe indices [0, count) to threads, one owner each, and takes
// them back when the owner exits; the mutex orders the last owner's adds
// before the next owner's.
class StripeOwners {
 public:
  explicit StripeOwners(size_t count) {
    for (size_t i = count; i-- > 0;) {
      free_.push_back(i);
    }
  }
  // An index, or `none` when every one is owned.
  size_t Take(size_t none) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      return none;
    }
    const size_t index = free_.back();
    free_.pop_back();
    return index;
  }
  void Return(size_t index) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(index);
  }

 private:
  std::mutex mu_;
  std::vector<size_t> free_;
};

}  // namespace

size_t StripedCounter::AssignThisThreadSlot() {
  static StripeOwners* const owners = new StripeOwners(kOwnedStripes);
  // Gives the index back at thread exit; adds made later in the exit (by
  // other thread-local destructors) go to the shared stripe.
  struct Ownership {
    size_t index;
    ~Ownership() {
      this_thread_slot_ = kSharedStripe;
      if (index != kSharedStripe) {
        owners->Return(index);
      }
    }
  };
  thread_local Ownership ownership{owners->Take(kSharedStripe)};
  this_thread_slot_ = ownership.index;
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

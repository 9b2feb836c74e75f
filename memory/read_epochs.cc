#include "memory/read_epochs.h"

#include <sched.h>

namespace certstore {
namespace memory_internal {

size_t ReadEpochs::ThisThreadStripe() {
  // Round-robin assignment: two threads never share a stripe until there
  // are more than kStripes of them.
  static std::atomic<size_t> next{0};
  thread_local const size_t stripe =
      next.fetch_add(1, std::memory_order_relaxed) % kStripes;
  return stripe;
}

ReadEpochs::Section ReadEpochs::Enter() {
  Stripe& stripe = stripes_[ThisThreadStripe()];
  for (;;) {
    const uint64_t epoch = epoch_.load(std::memory_order_seq_cst);
    std::atomic<int64_t>& counter = stripe.active[epoch & 1];
    counter.fetch_add(1, std::memory_order_seq_cst);
    // Re-check: either the writer sees our increment, or we see its flip
    // and retry under the new epoch (where we can only load new pointers).
    if (epoch_.load(std::memory_order_seq_cst) == epoch) {
      return Section(&counter);
    }
    counter.fetch_sub(1, std::memory_order_release);
  }
}

void ReadEpochs::WaitForReaders() {
  const uint64_t old_epoch = epoch_.fetch_add(1, std::memory_order_seq_cst);
  const size_t parity = old_epoch & 1;
  for (Stripe& stripe : stripes_) {
    while (stripe.active[parity].load(std::memory_order_seq_cst) != 0) {
      sched_yield();
    }
  }
}

}  // namespace memory_internal
}  // namespace certstore

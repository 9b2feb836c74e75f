// A minimal epoch scheme so that readers never lock: they announce
// themselves in a per-thread stripe; a writer that replaced a pointer waits
// until every reader that might still see the old one has left, then frees
// it. Internal to memory/.
#ifndef CERTSTORE_MEMORY_READ_EPOCHS_H_
#define CERTSTORE_MEMORY_READ_EPOCHS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace certstore {
namespace memory_internal {

class ReadEpochs {
 public:
  // While alive, pointers loaded from the protected structure stay valid.
  class Section {
   public:
    explicit Section(std::atomic<int64_t>* counter) : counter_(counter) {}
    Section(const Section&) = delete;
    Section& operator=(const Section&) = delete;
    ~Section() { counter_->fetch_sub(1, std::memory_order_release); }

   private:
    std::atomic<int64_t>* counter_;
  };

  ReadEpochs() = default;
  ReadEpochs(const ReadEpochs&) = delete;
  ReadEpochs& operator=(const ReadEpochs&) = delete;

  // Enters a read section: two uncontended atomic increments on this
  // thread's own cache line. Wait-free unless writers keep flipping epochs.
  Section Enter();

  // Returns once every read section that began before the call has ended.
  // Writers call it after publishing a new pointer and before freeing the
  // old one. Callers serialise (one writer at a time).
  void WaitForReaders();

 private:
  static constexpr size_t kStripes = 64;
  struct alignas(64) Stripe {
    std::atomic<int64_t> active[2] = {{0}, {0}};
  };

  static size_t ThisThreadStripe();

  std::atomic<uint64_t> epoch_{0};
  Stripe stripes_[kStripes];
};

}  // namespace memory_internal
}  // namespace certstore

#endif  // CERTSTORE_MEMORY_READ_EPOCHS_H_

// A value that every handshake reads and that is replaced now and then
// (an identity's credential, a policy's anchors and allowlist). Readers
// keep a per-thread copy of the shared_ptr and re-take it, under the
// writer's mutex, only when the version moved: a read is one atomic load
// and a short per-thread search, with no lock shared between readers.
// Internal to tls/.
#ifndef CERTSTORE_TLS_SHARED_SNAPSHOT_H_
#define CERTSTORE_TLS_SHARED_SNAPSHOT_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace certstore::tls_internal {

template <typename T>
class SharedSnapshot {
 public:
  explicit SharedSnapshot(std::shared_ptr<const T> initial)
      : id_(NextId()), value_(std::move(initial)) {}
  SharedSnapshot(const SharedSnapshot&) = delete;
  SharedSnapshot& operator=(const SharedSnapshot&) = delete;

  // The current value, from this thread's copy when it is up to date. The
  // reference is valid until this thread's next Read of any snapshot of T
  // (copy it to keep the value longer).
  const std::shared_ptr<const T>& Read() const {
    const uint64_t version = version_.load(std::memory_order_acquire);
    Slot& slot = SlotFor(id_);
    if (slot.id != id_ || slot.version != version) {
      absl::MutexLock lock(&mu_);
      slot.id = id_;
      slot.version = version_.load(std::memory_order_relaxed);
      slot.value = value_;
    }
    return slot.value;
  }

  // The current value, under the mutex (for writers and slow paths).
  std::shared_ptr<const T> Load() const {
    absl::MutexLock lock(&mu_);
    return value_;
  }

  void Store(std::shared_ptr<const T> value) {
    absl::MutexLock lock(&mu_);
    value_ = std::move(value);
    version_.fetch_add(1, std::memory_order_release);
  }

  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  struct Slot {
    uint64_t id = 0;
    uint64_t version = 0;
    std::shared_ptr<const T> value;
  };

  static uint64_t NextId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  // A few slots per thread and T, by snapshot id (ids are never reused, so
  // a slot of a destroyed snapshot is never mistaken for a live one; its
  // copy is released when the slot is taken over or the thread ends).
  static Slot& SlotFor(uint64_t id) {
    thread_local std::array<Slot, 8> slots;
    thread_local size_t next_victim = 0;
    for (Slot& slot : slots) {
      if (slot.id == id) {
        return slot;
      }
    }
    Slot& slot = slots[next_victim];
    next_victim = (next_victim + 1) % slots.size();
    slot = Slot{};
    return slot;
  }

  const uint64_t id_;
  std::atomic<uint64_t> version_{0};
  mutable absl::Mutex mu_;
  std::shared_ptr<const T> value_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certstore::tls_internal

#endif  // CERTSTORE_TLS_SHARED_SNAPSHOT_H_

#include "memory/read_epochs.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <vector>

namespace certstore {
namespace memory_internal {

namespace {

struct Registry {
  std::mutex mu;  // guards readers; held by writers while they wait
  std::vector<ReaderRecord*> readers;
};

Registry& GetRegistry() {
  static Registry* const registry = new Registry();
  return *registry;
}

bool RegisterMembarrier() {
  long supported = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  return supported > 0 && (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
         syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
                 0) == 0;
}

// Decided once (thread-safe static), the same for readers and writers.
bool Asymmetric() {
  static const bool asymmetric = RegisterMembarrier();
  return asymmetric;
}

// The writer side: a full barrier on every CPU running one of our threads.
void WriterFence() {
#ifdef CERTSTORE_READ_EPOCHS_WITHOUT_FENCES
  static std::atomic<uint64_t> serializer{0};
  serializer.fetch_add(1, std::memory_order_seq_cst);
#else
  if (!Asymmetric() ||
      syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
#endif
}

// Owns this thread's record: registers it, and unregisters it when the
// thread exits.
class RecordOwner {
 public:
  RecordOwner() {
    record_.asymmetric = Asymmetric();
    Registry& registry = GetRegistry();
    std::lock_guard<std::mutex> lock(registry.mu);
    registry.readers.push_back(&record_);
  }
  ~RecordOwner() {
    this_thread_reader = nullptr;
    Registry& registry = GetRegistry();
    std::lock_guard<std::mutex> lock(registry.mu);
    for (auto& reader : registry.readers) {
      if (reader == &record_) {
        reader = registry.readers.back();
        registry.readers.pop_back();
        break;
      }
    }
  }
  ReaderRecord* record() { return &record_; }

 private:
  ReaderRecord record_;
};

}  // namespace

ReaderRecord* RegisterThisThread() {
  thread_local RecordOwner owner;
  this_thread_reader = owner.record();
  return this_thread_reader;
}

void ReadEpochs::WaitForReaders() {
  // Every reader whose marker is not visible after this fence will load the
  // pointer published before it.
  WriterFence();
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  for (ReaderRecord* reader : registry.readers) {
    const uint64_t seen = reader->sequence.load(std::memory_order_acquire);
    if ((seen & 1) == 0) {
      continue;
    }
    while (reader->sequence.load(std::memory_order_acquire) == seen) {
      sched_yield();
    }
  }
}

}  // namespace memory_internal
}  // namespace certstore

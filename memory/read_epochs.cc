#include "memory/read_epochs.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <vector>

namespace certstore {
namespace memory_internal {

// Odd `sequence`: inside a section. Written only by its own thread.
struct alignas(64) ReaderRecord {
  std::atomic<uint64_t> sequence{0};
  int depth = 0;
  ReaderRecord();
  ~ReaderRecord();
};

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

// The reader side of the barrier pair.
inline void ReaderFence() {
  if (Asymmetric()) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// The writer side: a full barrier on every CPU running one of our threads.
void WriterFence() {
  if (!Asymmetric() ||
      syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

}  // namespace

ReaderRecord::ReaderRecord() {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  registry.readers.push_back(this);
}

ReaderRecord::~ReaderRecord() {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  for (auto& reader : registry.readers) {
    if (reader == this) {
      reader = registry.readers.back();
      registry.readers.pop_back();
      break;
    }
  }
}

ReaderRecord& ThisThreadReader() {
  thread_local ReaderRecord reader;
  return reader;
}

void EnterRead(ReaderRecord& reader) {
  if (reader.depth++ == 0) {
    reader.sequence.store(reader.sequence.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
    ReaderFence();  // marker before any protected load
  }
}

void ExitRead(ReaderRecord& reader) {
  if (--reader.depth == 0) {
    reader.sequence.store(reader.sequence.load(std::memory_order_relaxed) + 1,
                          std::memory_order_release);
  }
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

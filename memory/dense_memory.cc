#include "memory/dense_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

// Freed blocks are poisoned for AddressSanitizer, so that a use after a
// node's release is still caught although the pool keeps the memory.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CERTSTORE_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define CERTSTORE_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define CERTSTORE_POISON(p, n) ((void)(p), (void)(n))
#define CERTSTORE_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace certstore {
namespace memory_internal {
namespace {

constexpr size_t kCacheLine = 64;
constexpr size_t kHugePage = size_t{2} << 20;
// Chunks double from this up to a huge page, so that a store of a few
// aliases reserves kilobytes, not megabytes.
constexpr size_t kFirstChunk = size_t{16} << 10;

struct FreeBlock {
  FreeBlock* next;
};

struct Pool {
  std::mutex mu;
  FreeBlock* free = nullptr;  // last freed first: its lines may be cached
  char* next = nullptr;       // uncarved rest of the newest chunk
  char* end = nullptr;
  size_t next_chunk = kFirstChunk;
  std::vector<void*> chunks;  // every chunk, kept for the process's life
};

Pool& GetPool() {
  static Pool* const pool = new Pool();  // outlives every store and result
  return *pool;
}

}  // namespace

void* BlockPool::Allocate() {
  Pool& pool = GetPool();
  std::lock_guard<std::mutex> lock(pool.mu);
  void* block;
  if (pool.free != nullptr) {
    block = pool.free;
    CERTSTORE_UNPOISON(block, kBlockSize);
    pool.free = pool.free->next;
  } else {
    if (pool.next == pool.end) {
      const size_t size = pool.next_chunk;
      pool.next = static_cast<char*>(AllocateLarge(size));
      pool.chunks.push_back(pool.next);
      pool.end = pool.next + size;
      pool.next_chunk = std::min(size * 2, kHugePage);
    }
    block = pool.next;
    pool.next += kBlockSize;
  }
  return block;
}

void BlockPool::Deallocate(void* block) {
  Pool& pool = GetPool();
  std::lock_guard<std::mutex> lock(pool.mu);
  auto* freed = static_cast<FreeBlock*>(block);
  freed->next = pool.free;
  pool.free = freed;
  CERTSTORE_POISON(block, kBlockSize);
}

void* AllocateLarge(size_t bytes) {
  if (bytes < kHugePage) {
    return ::operator new (bytes, std::align_val_t{kCacheLine});
  }
  void* memory = ::operator new (bytes, std::align_val_t{kHugePage});
  // A hint: with THP in "madvise" mode the kernel backs the range with huge
  // pages when it can; otherwise nothing changes.
  madvise(memory, bytes, MADV_HUGEPAGE);
  return memory;
}

void FreeLarge(void* memory, size_t bytes) {
  ::operator delete (
      memory, std::align_val_t{bytes < kHugePage ? kCacheLine : kHugePage});
}

}  // namespace memory_internal
}  // namespace certstore

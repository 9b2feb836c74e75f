// Memory for the memory store's alias nodes and tables, kept dense. A lookup
// at 100,000 aliases reads a table word and a node: if the nodes lie
// scattered among everything else the process allocated (entries decoded
// by a persistent layer between two back-fills, say), each lookup also
// pays a TLB miss. Nodes come from a pool of fixed-size blocks carved from
// large chunks, and large chunks and tables are aligned so that the kernel
// may back them with huge pages (madvise; a hint, ignored where THP is
// off). Internal to memory/.
#ifndef CERTSTORE_MEMORY_DENSE_MEMORY_H_
#define CERTSTORE_MEMORY_DENSE_MEMORY_H_

#include <cstddef>

namespace certstore {
namespace memory_internal {

// Process-wide blocks of kBlockSize bytes, aligned to a cache line.
// Thread-safe. Memory is never given back to the system: freed blocks are
// reused (a store's peak node count × kBlockSize stays reserved).
class BlockPool {
 public:
  static constexpr size_t kBlockSize = 128;  // two cache lines

  static void* Allocate();
  static void Deallocate(void* block);
};

// `bytes` aligned to a cache line, or to a huge page (and advised to use
// one) when `bytes` is at least that large. Free with FreeLarge(p, bytes).
void* AllocateLarge(size_t bytes);
void FreeLarge(void* memory, size_t bytes);

}  // namespace memory_internal
}  // namespace certstore

#endif  // CERTSTORE_MEMORY_DENSE_MEMORY_H_

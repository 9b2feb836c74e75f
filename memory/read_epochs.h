// Read-side protection without shared writes, so readers never lock: a
// reader marks itself inside a section in a word only its own thread
// writes; a writer that replaced a pointer waits until every reader that
// might still see the old one has left, then frees it. Internal to memory/.
//
// Asymmetric fences (as in liburcu's membarrier flavour): readers order
// their marker store before their pointer loads with a compiler barrier
// only; the writer issues membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED),
// which runs a full barrier on every CPU running this process. Where the
// kernel lacks it, readers fall back to a full fence.
#ifndef CERTSTORE_MEMORY_READ_EPOCHS_H_
#define CERTSTORE_MEMORY_READ_EPOCHS_H_

#include <atomic>
#include <cstdint>

// ThreadSanitizer models no fences (GCC refuses them under -fsanitize=
// thread): there, the marker is a seq_cst exchange and the writer's side a
// seq_cst read-modify-write, which TSan does see. Same protocol, stronger
// (slower) orderings; scripts/check-sanitizers tsan builds this way.
#if defined(__SANITIZE_THREAD__)
#define CERTSTORE_READ_EPOCHS_WITHOUT_FENCES 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CERTSTORE_READ_EPOCHS_WITHOUT_FENCES 1
#endif
#endif

namespace certstore {
namespace memory_internal {

// Odd `sequence`: inside a section. Written only by its own thread.
struct alignas(64) ReaderRecord {
  std::atomic<uint64_t> sequence{0};
  int depth = 0;
  bool asymmetric = false;  // membarrier available: a compiler fence suffices
};

// Registers this thread's record (first section of a thread; unregistered
// at thread exit).
ReaderRecord* RegisterThisThread();

inline thread_local ReaderRecord* this_thread_reader = nullptr;

inline ReaderRecord& ThisThreadReader() {
  ReaderRecord* reader = this_thread_reader;
  if (__builtin_expect(reader == nullptr, 0)) {
    reader = RegisterThisThread();
  }
  return *reader;
}

inline void EnterRead(ReaderRecord& reader) {
  if (reader.depth++ == 0) {
#ifdef CERTSTORE_READ_EPOCHS_WITHOUT_FENCES
    reader.sequence.fetch_add(1, std::memory_order_seq_cst);
#else
    reader.sequence.store(reader.sequence.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
    // The marker before any protected load: the writer's membarrier makes
    // a compiler fence enough; without it, a full fence.
    if (reader.asymmetric) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
#endif
  }
}

inline void ExitRead(ReaderRecord& reader) {
  if (--reader.depth == 0) {
    reader.sequence.store(reader.sequence.load(std::memory_order_relaxed) + 1,
                          std::memory_order_release);
  }
}

class ReadEpochs {
 public:
  // While alive, pointers loaded from the protected structure stay valid.
  // Sections nest; only the outermost one counts.
  class Section {
   public:
    Section() : reader_(ThisThreadReader()) { EnterRead(reader_); }
    Section(const Section&) = delete;
    Section& operator=(const Section&) = delete;
    ~Section() { ExitRead(reader_); }

   private:
    ReaderRecord& reader_;
  };

  ReadEpochs() = default;
  ReadEpochs(const ReadEpochs&) = delete;
  ReadEpochs& operator=(const ReadEpochs&) = delete;

  // Enters a read section: two plain stores to a thread-owned word.
  Section Enter() { return Section(); }

  // Returns once every read section that began before the call has ended
  // (in any thread, for any ReadEpochs: the reader records are shared).
  // Writers call it after publishing a new pointer and before freeing the
  // old one. ~1 µs with no reader inside a section.
  void WaitForReaders();
};

}  // namespace memory_internal
}  // namespace certstore

#endif  // CERTSTORE_MEMORY_READ_EPOCHS_H_

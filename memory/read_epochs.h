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

namespace certstore {
namespace memory_internal {

// This thread's reader record (defined in the .cc; registered on first use).
struct ReaderRecord;
ReaderRecord& ThisThreadReader();
void EnterRead(ReaderRecord& reader);
void ExitRead(ReaderRecord& reader);

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

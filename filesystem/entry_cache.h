// Decoded entries of a PEM directory, reused while their file is unchanged.
// Internal to filesystem/.
#ifndef CERTSTORE_FILESYSTEM_ENTRY_CACHE_H_
#define CERTSTORE_FILESYSTEM_ENTRY_CACHE_H_

#include <time.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "certstore/entry.h"

namespace certstore::filesystem_internal {

// Decoding a file costs ~0.3 ms (key + chain); reading it ~5 µs. So every
// lookup still reads the file, and reuses the decoded entry only when the
// bytes (by SHA-256) and the mtime are the ones it was decoded from: a file
// replaced by another process or edited in place is always seen, whatever
// its inode number, size or timestamps granularity. Thread-safe.
class DecodedEntryCache {
 public:
  using Digest = std::array<unsigned char, 32>;

  static Digest DigestOf(absl::string_view content);

  // The entry decoded from `file` in `dir` when it had this digest and
  // mtime; null otherwise.
  std::shared_ptr<const Entry> Lookup(const std::string& dir,
                                      const std::string& file,
                                      const Digest& digest,
                                      const struct timespec& mtime) const;

  void Insert(const std::string& dir, const std::string& file,
              const Digest& digest, const struct timespec& mtime,
              std::shared_ptr<const Entry> entry);

  // Forgets the files of `dir` not named in `present` (sorted), so that
  // deleted files do not stay cached.
  void Retain(const std::string& dir, const std::vector<std::string>& present);

  // Forgets every file of `dir`.
  void Forget(const std::string& dir);

 private:
  struct Cached {
    Digest digest;
    struct timespec mtime;
    std::shared_ptr<const Entry> entry;
  };
  using Files = absl::flat_hash_map<std::string, Cached>;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Files> dirs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace certstore::filesystem_internal

#endif  // CERTSTORE_FILESYSTEM_ENTRY_CACHE_H_

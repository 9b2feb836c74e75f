// Reads the entry files of a PEM directory store: every check of
// OpenPrivateFile, then the decoded entry (reused while the file is
// unchanged) or, for List, its summary. Internal to filesystem/.
#ifndef CERTSTORE_FILESYSTEM_ENTRY_READER_H_
#define CERTSTORE_FILESYSTEM_ENTRY_READER_H_

#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/entry.h"
#include "filesystem/entry_cache.h"
#include "filesystem/posix_files.h"

namespace certstore::filesystem_internal {

// Thread-safe.
class EntryReader {
 public:
  // `store_path` names files in messages.
  explicit EntryReader(std::string store_path)
      : store_path_(std::move(store_path)) {}

  // The entry `item` of alias directory `dir` (named `dir_name`) holds for
  // `alias`. PermissionDenied for a file that fails the checks, DataLoss
  // for one that does not decode or belongs to another alias, NotFound when
  // it vanished; messages name the file.
  absl::StatusOr<std::shared_ptr<const Entry>> Load(const Directory& dir,
                                                    const std::string& dir_name,
                                                    const Directory::Item& item,
                                                    absl::string_view alias);

  // The listing of `item`, without decoding its key when its header records
  // the facts (see SummarizeEntryFile). Errors as Load.
  absl::StatusOr<EntryInfo> Summarize(const Directory& dir,
                                      absl::string_view dir_name,
                                      const Directory::Item& item,
                                      absl::string_view store_name) const;

  // Records that `entry` was just written as `file_name` of `dir_name` with
  // `content` and `st`: Loads return it while the file stays so.
  void Remember(const std::string& dir_name, const std::string& file_name,
                absl::string_view content, const struct stat& st,
                std::shared_ptr<const Entry> entry);

  // Forgets the files of `dir_name` that are not in `present` (sorted).
  void Retain(const std::string& dir_name,
              const std::vector<std::string>& present) {
    cache_.Retain(dir_name, present);
  }
  // Forgets every file of `dir_name`.
  void Forget(const std::string& dir_name) { cache_.Forget(dir_name); }

 private:
  struct File;
  absl::StatusOr<File> Read(const Directory& dir, absl::string_view dir_name,
                            const Directory::Item& item) const;

  const std::string store_path_;
  DecodedEntryCache cache_;
};

}  // namespace certstore::filesystem_internal

#endif  // CERTSTORE_FILESYSTEM_ENTRY_READER_H_

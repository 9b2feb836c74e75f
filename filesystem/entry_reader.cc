#include "filesystem/entry_reader.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "filesystem/alias_names.h"
#include "filesystem/entry_file.h"

namespace certstore::filesystem_internal {
namespace {

// Far above any chain and key; a bigger file is not an entry.
constexpr size_t kMaxEntryFileBytes = size_t{1} << 20;

absl::Time MtimeOf(const struct stat& st) {
  return absl::TimeFromTimespec(st.st_mtim);
}

// A file's header, and the alias it belongs to in `dir_name`.
struct Resolved {
  EntryFileHeader header;
  std::string alias;
};

absl::StatusOr<Resolved> Resolve(absl::string_view content,
                                 absl::string_view dir_name) {
  Resolved resolved;
  CERTSTORE_ASSIGN_OR_RETURN(resolved.header, ParseEntryFileHeader(content));
  CERTSTORE_ASSIGN_OR_RETURN(resolved.alias,
                             ResolveAlias(dir_name, resolved.header.alias));
  return resolved;
}

}  // namespace

// A file's bytes, which hold a private key (wiped when destroyed), and what
// fstat said.
struct EntryReader::File {
  explicit File(std::string b) : bytes(std::move(b)) {}
  File(File&&) = default;
  File& operator=(File&&) = default;
  ~File() { OPENSSL_cleanse(&bytes[0], bytes.size()); }

  std::string bytes;
  struct stat st = {};
};

absl::StatusOr<EntryReader::File> EntryReader::Read(
    const Directory& dir, absl::string_view dir_name,
    const Directory::Item& item) const {
  const std::string path =
      absl::StrCat(store_path_, "/", dir_name, "/", item.name);
  CERTSTORE_ASSIGN_OR_RETURN(OpenedFile opened,
                             OpenPrivateFile(dir.fd(), item, path));
  CERTSTORE_ASSIGN_OR_RETURN(
      std::string bytes,
      ReadAll(opened.fd.get(), static_cast<size_t>(opened.st.st_size),
              kMaxEntryFileBytes, path));
  File file(std::move(bytes));
  file.st = opened.st;
  return file;
}

absl::StatusOr<std::shared_ptr<const Entry>> EntryReader::Load(
    const Directory& dir, const std::string& dir_name,
    const Directory::Item& item, absl::string_view alias) {
  CERTSTORE_ASSIGN_OR_RETURN(File file, Read(dir, dir_name, item));
  const DecodedEntryCache::Digest digest =
      DecodedEntryCache::DigestOf(file.bytes);
  if (std::shared_ptr<const Entry> cached =
          cache_.Lookup(dir_name, item.name, digest, file.st.st_mtim)) {
    return cached;
  }
  absl::StatusOr<Resolved> resolved = Resolve(file.bytes, dir_name);
  absl::StatusOr<std::shared_ptr<const Entry>> entry =
      resolved.ok()
          ? DecodeEntryFile(file.bytes, resolved->header,
                            std::move(resolved->alias), MtimeOf(file.st))
          : resolved.status();
  if (entry.ok() && (*entry)->alias() != alias) {
    entry = absl::DataLossError(absl::StrCat("holds an entry of alias ",
                                             QuoteAlias((*entry)->alias())));
  }
  if (!entry.ok()) {
    return WithContext(entry.status(), absl::StrCat(store_path_, "/", dir_name,
                                                    "/", item.name));
  }
  cache_.Insert(dir_name, item.name, digest, file.st.st_mtim, *entry);
  return entry;
}

absl::StatusOr<EntryInfo> EntryReader::Summarize(
    const Directory& dir, absl::string_view dir_name,
    const Directory::Item& item, absl::string_view store_name) const {
  CERTSTORE_ASSIGN_OR_RETURN(File file, Read(dir, dir_name, item));
  CERTSTORE_ASSIGN_OR_RETURN(Resolved resolved, Resolve(file.bytes, dir_name));
  return SummarizeEntryFile(file.bytes, resolved.header,
                            std::move(resolved.alias), MtimeOf(file.st),
                            store_name);
}

void EntryReader::Remember(const std::string& dir_name,
                           const std::string& file_name,
                           absl::string_view content, const struct stat& st,
                           std::shared_ptr<const Entry> entry) {
  cache_.Insert(dir_name, file_name, DecodedEntryCache::DigestOf(content),
                st.st_mtim, std::move(entry));
}

}  // namespace certstore::filesystem_internal

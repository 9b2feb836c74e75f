// The PEM directory's entry file reader: ParseEntryFileHeader,
// DecodeEntryFile, SummarizeEntryFile on arbitrary file bytes.
// Invariants: an entry that decodes re-encodes to a file that decodes to
// the same entry (alias, thumbprint, metadata); a summary never disagrees
// with the decoded entry.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "filesystem/entry_file.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using certstore::fuzz::Check;
  namespace fs = certstore::filesystem_internal;
  const std::string content(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<fs::EntryFileHeader> header =
      fs::ParseEntryFileHeader(content);
  if (!header.ok()) {
    return 0;
  }
  const absl::Time mtime = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<certstore::EntryInfo> info =
      fs::SummarizeEntryFile(content, *header, "fuzz", mtime, "file:/fuzz");
  absl::StatusOr<std::shared_ptr<const certstore::Entry>> entry =
      fs::DecodeEntryFile(content, *header, "fuzz", mtime);
  if (!entry.ok()) {
    return 0;
  }
  if (info.ok()) {
    Check(info->thumbprint == (*entry)->thumbprint(),
          "summary and entry disagree on the thumbprint");
  }
  absl::StatusOr<std::string> encoded = fs::EncodeEntryFile(**entry);
  if (!encoded.ok()) {
    return 0;  // e.g. a key type the writer does not store
  }
  absl::StatusOr<fs::EntryFileHeader> header2 =
      fs::ParseEntryFileHeader(*encoded);
  Check(header2.ok(), "a written file's header does not parse",
        header2.status().message());
  absl::StatusOr<std::shared_ptr<const certstore::Entry>> again =
      fs::DecodeEntryFile(*encoded, *header2, "fuzz", mtime);
  Check(again.ok(), "a written file does not decode", again.status().message());
  Check((*again)->thumbprint() == (*entry)->thumbprint() &&
            (*again)->alias() == (*entry)->alias() &&
            (*again)->metadata() == (*entry)->metadata() &&
            (*again)->chain_der() == (*entry)->chain_der(),
        "round trip changed the entry");
  return 0;
}

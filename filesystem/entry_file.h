// The entry file format: optional "certstore-<field>: <value>" header lines,
// then the certificate chain (leaf first) as CERTIFICATE blocks, then the
// private key as a PRIVATE KEY (PKCS#8) block. OpenSSL's PEM reader skips
// the header lines, so `openssl x509 -in`, `openssl pkey -in` and
// `curl --cert` read the file as it is. Internal to filesystem/; the layout
// is documented in docs/filesystem-store.md.
#ifndef CERTSTORE_FILESYSTEM_ENTRY_FILE_H_
#define CERTSTORE_FILESYSTEM_ENTRY_FILE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/backend_author.h"
#include "certstore/entry.h"

namespace certstore::filesystem_internal {

// What the header lines record. Every field is optional: a file made by
// hand (`cat cert.pem key.pem`) may have none.
struct EntryFileHeader {
  std::optional<std::string> alias;
  std::optional<std::string> thumbprint;
  std::optional<absl::Time> not_before;
  std::optional<absl::Time> not_after;
  std::optional<absl::Time> created_at;
  std::optional<std::string> key_algorithm;
  std::optional<std::string> endpoint;
  std::optional<std::string> client_id;
  std::optional<std::string> tenant_id;
  // The file carries a certstore-digest and matches it: certstore wrote it.
  bool digest_verified = false;
};

// The file for `entry`: every header field, the chain, the key. The result
// holds the private key: the caller wipes it (OPENSSL_cleanse) when done.
// InvalidArgument when the key cannot be exported (a token key).
absl::StatusOr<std::string> EncodeEntryFile(const Entry& entry);

// Parses the header lines (those before the first "-----BEGIN"). DataLoss
// for a repeated field, a value that does not parse, or a file that does
// not match its certstore-digest (SHA-256 of the file without that line,
// written by EncodeEntryFile; files without one, made by hand, are read
// unverified); unknown "certstore-" fields and other text are ignored.
absl::StatusOr<EntryFileHeader> ParseEntryFileHeader(absl::string_view content);

// The entry a stored file holds for `alias`. Decodes the key (narrowly:
// PKCS#8 with the recorded key type) and reads the leaf's validity and
// public key from its DER (ReadLeafDer), checks that the key is the leaf's
// and that the header's facts agree; the certificates themselves are
// decoded on first use (Entry::Restore).
// `mtime` is the created_at of a file whose header records none. DataLoss
// for anything wrong with the file.
absl::StatusOr<std::shared_ptr<const Entry>> DecodeEntryFile(
    absl::string_view content, const EntryFileHeader& header, std::string alias,
    absl::Time mtime);

// The listing of a stored file. Decodes no key when the header records the
// thumbprint, validity and key algorithm (the leaf's thumbprint is still
// checked); otherwise as DecodeEntryFile. DataLoss as DecodeEntryFile.
absl::StatusOr<EntryInfo> SummarizeEntryFile(absl::string_view content,
                                             const EntryFileHeader& header,
                                             std::string alias,
                                             absl::Time mtime,
                                             absl::string_view store);

}  // namespace certstore::filesystem_internal

#endif  // CERTSTORE_FILESYSTEM_ENTRY_FILE_H_

#include "filesystem/entry_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <initializer_list>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/internal/der_walk.h"
#include "api/internal/stored_key.h"
#include "certstore/backend_author.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/key.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"
#include "filesystem/alias_names.h"

namespace certstore::filesystem_internal {
namespace {

constexpr absl::string_view kFieldPrefix = "certstore-";
constexpr absl::string_view kComment =
    "# certstore entry: certificate chain (leaf first), then the private key."
    " See docs/filesystem-store.md.\n";

// Stored data that does not decode is corrupt: DataLoss, same message.
absl::Status AsDataLoss(const absl::Status& status) {
  if (status.ok() || status.code() == absl::StatusCode::kDataLoss) {
    return status;
  }
  return absl::DataLossError(status.message());
}

template <typename T>
absl::StatusOr<T> AsDataLoss(absl::StatusOr<T> value) {
  if (!value.ok()) {
    return AsDataLoss(value.status());
  }
  return value;
}

std::string FormatField(absl::string_view name, absl::string_view value) {
  return absl::StrCat(kFieldPrefix, name, ": ", EscapeHeaderValue(value), "\n");
}

// "sha256:<base64url>" of `parts` concatenated: the file without its digest
// line. It catches damage anywhere in a file certstore wrote, header
// included, where the certificates' own signatures cover only the chain.
std::string EntryDigest(std::initializer_list<absl::string_view> parts) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  for (absl::string_view part : parts) {
    ok = ok && EVP_DigestUpdate(ctx, part.data(), part.size()) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(ctx, digest, &length) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    ClearOpenSslErrors();
    return "sha256:unavailable";  // never matches: the file reads as damaged
  }
  return absl::StrCat("sha256:",
                      absl::WebSafeBase64Escape(absl::string_view(
                          reinterpret_cast<const char*>(digest), length)));
}

std::string FormatTimeField(absl::string_view name, absl::Time value) {
  return FormatField(
      name, absl::FormatTime(absl::RFC3339_full, value, absl::UTCTimeZone()));
}

absl::Status SetField(absl::string_view name, absl::string_view value,
                      std::optional<std::string>* field) {
  if (field->has_value()) {
    return absl::DataLossError(
        absl::StrCat("header field ", kFieldPrefix, name, " is repeated"));
  }
  absl::StatusOr<std::string> unescaped = UnescapeHeaderValue(value);
  if (!unescaped.ok()) {
    return absl::DataLossError(absl::StrCat("header field ", kFieldPrefix, name,
                                            ": ",
                                            unescaped.status().message()));
  }
  *field = *std::move(unescaped);
  return absl::OkStatus();
}

absl::Status SetTimeField(absl::string_view name, absl::string_view value,
                          std::optional<absl::Time>* field) {
  std::optional<std::string> text;
  CERTSTORE_RETURN_IF_ERROR(SetField(name, value, &text));
  absl::Time parsed;
  std::string error;
  if (field->has_value() ||
      !absl::ParseTime(absl::RFC3339_full, *text, &parsed, &error)) {
    return absl::DataLossError(absl::StrCat("header field ", kFieldPrefix, name,
                                            " is repeated or not an RFC 3339 "
                                            "time: ",
                                            QuoteAlias(*text)));
  }
  *field = parsed;
  return absl::OkStatus();
}

absl::Status ApplyField(absl::string_view name, absl::string_view value,
                        EntryFileHeader* header) {
  if (name == "not-before") {
    return SetTimeField(name, value, &header->not_before);
  }
  if (name == "not-after") {
    return SetTimeField(name, value, &header->not_after);
  }
  if (name == "created-at") {
    return SetTimeField(name, value, &header->created_at);
  }
  std::optional<std::string>* field =
      name == "alias"           ? &header->alias
      : name == "thumbprint"    ? &header->thumbprint
      : name == "key-algorithm" ? &header->key_algorithm
      : name == "endpoint"      ? &header->endpoint
      : name == "client-id"     ? &header->client_id
      : name == "tenant-id"     ? &header->tenant_id
                                : nullptr;
  // Unknown fields are left for newer versions to define.
  return field == nullptr ? absl::OkStatus() : SetField(name, value, field);
}

KeyTypeHint HintFor(const std::optional<std::string>& algorithm) {
  if (algorithm.has_value() && absl::StartsWith(*algorithm, "EC")) {
    return KeyTypeHint::kEc;
  }
  if (algorithm.has_value() && absl::StartsWith(*algorithm, "RSA")) {
    return KeyTypeHint::kRsa;
  }
  return KeyTypeHint::kAuto;
}

// The first private key block: PKCS#8 goes to the narrowed decoder; other
// forms ("EC PRIVATE KEY", encrypted keys) to the generic PEM reader, which
// refuses encrypted ones. A key in a file certstore wrote (digest
// verified) was pair-checked before it was stored.
absl::StatusOr<std::shared_ptr<const Key>> DecodeKey(
    absl::string_view content, const std::optional<std::string>& algorithm,
    bool written_by_certstore) {
  UniqueBio bio(
      BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
  char* name = nullptr;
  unsigned char* der = nullptr;
  long len = 0;
  auto no_passphrase = [](char*, int, int, void*) -> int { return -1; };
  if (PEM_bytes_read_bio(&der, &len, &name, PEM_STRING_EVP_PKEY, bio.get(),
                         no_passphrase, nullptr) != 1) {
    return OpenSslError(absl::StatusCode::kDataLoss,
                        "no usable PRIVATE KEY block");
  }
  const bool pkcs8 = absl::string_view(name) == PEM_STRING_PKCS8INF;
  const absl::string_view pkcs8_der(reinterpret_cast<char*>(der),
                                    static_cast<size_t>(len));
  absl::StatusOr<std::shared_ptr<const Key>> key =
      !pkcs8 ? SoftwareKeyFromPem(content)
      : written_by_certstore
          ? internal::StoredSoftwareKeyFromPkcs8Der(pkcs8_der,
                                                    HintFor(algorithm))
          : SoftwareKeyFromPkcs8Der(pkcs8_der, HintFor(algorithm));
  OPENSSL_free(name);
  OPENSSL_clear_free(der, static_cast<size_t>(len));
  return AsDataLoss(std::move(key));
}

absl::Status Disagree(absl::string_view field, absl::string_view recorded,
                      absl::string_view actual) {
  return absl::DataLossError(
      absl::StrCat("header records ", kFieldPrefix, field, " ", recorded,
                   " but the file holds ", actual, " (edited by hand?)"));
}

absl::Status CheckTime(absl::string_view field,
                       const std::optional<absl::Time>& recorded,
                       absl::Time actual) {
  if (recorded.has_value() && *recorded != actual) {
    return Disagree(field, absl::FormatTime(*recorded),
                    absl::FormatTime(actual));
  }
  return absl::OkStatus();
}

// The header's facts must be the file's: List shows the header's.
absl::Status CheckFacts(const Entry& entry, const EntryFileHeader& header) {
  if (header.thumbprint.has_value() &&
      *header.thumbprint != entry.thumbprint()) {
    return Disagree("thumbprint", *header.thumbprint, entry.thumbprint());
  }
  if (header.key_algorithm.has_value() &&
      *header.key_algorithm != entry.key()->algorithm()) {
    return Disagree("key-algorithm", *header.key_algorithm,
                    entry.key()->algorithm());
  }
  CERTSTORE_RETURN_IF_ERROR(
      CheckTime("not-before", header.not_before, entry.not_before()));
  return CheckTime("not-after", header.not_after, entry.not_after());
}

}  // namespace

absl::StatusOr<std::string> EncodeEntryFile(const Entry& entry) {
  absl::StatusOr<std::string> key_pem = KeyToPem(*entry.key());
  if (!key_pem.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key (", entry.key()->location(),
        ") cannot be stored in a file: ", key_pem.status().message()));
  }
  const EntryMetadata& metadata = entry.metadata();
  const std::string header =
      absl::StrCat(kComment, FormatField("alias", entry.alias()),
                   FormatField("thumbprint", entry.thumbprint()),
                   FormatTimeField("not-before", entry.not_before()),
                   FormatTimeField("not-after", entry.not_after()),
                   FormatTimeField("created-at", entry.created_at()),
                   FormatField("key-algorithm", entry.key()->algorithm()),
                   FormatField("endpoint", metadata.endpoint),
                   FormatField("client-id", metadata.client_id),
                   FormatField("tenant-id", metadata.tenant_id));
  const std::string chain = DerChainToPem(entry.chain_der());
  std::string out = absl::StrCat(
      header, FormatField("digest", EntryDigest({header, chain, *key_pem})),
      chain, *key_pem);
  OPENSSL_cleanse(&(*key_pem)[0], key_pem->size());
  return out;
}

absl::StatusOr<EntryFileHeader> ParseEntryFileHeader(
    absl::string_view content) {
  EntryFileHeader header;
  std::optional<absl::string_view> digest_line;  // with its newline
  std::optional<absl::string_view> digest;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    if (absl::StartsWith(line, "-----BEGIN")) {
      break;
    }
    const absl::string_view whole_line = line;
    if (!absl::ConsumePrefix(&line, kFieldPrefix)) {
      continue;  // comments and other text, as OpenSSL does
    }
    std::pair<absl::string_view, absl::string_view> field =
        absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (field.first == "digest") {
      if (digest.has_value()) {
        return absl::DataLossError("header field certstore-digest is repeated");
      }
      digest = absl::StripAsciiWhitespace(field.second);
      const size_t end = whole_line.data() - content.data() + whole_line.size();
      digest_line = absl::string_view(
          whole_line.data(), whole_line.size() + (end < content.size()));
      continue;
    }
    CERTSTORE_RETURN_IF_ERROR(ApplyField(
        field.first, absl::StripAsciiWhitespace(field.second), &header));
  }
  // Files made by hand, and by certstore before 0.3, have no digest.
  if (digest.has_value()) {
    const size_t start = digest_line->data() - content.data();
    const std::string computed =
        EntryDigest({content.substr(0, start),
                     content.substr(start + digest_line->size())});
    if (computed != *digest) {
      return absl::DataLossError(
          "the file does not match its certstore-digest: it was damaged or "
          "edited after certstore wrote it");
    }
    header.digest_verified = true;
  }
  return header;
}

absl::StatusOr<std::shared_ptr<const Entry>> DecodeEntryFile(
    absl::string_view content, const EntryFileHeader& header, std::string alias,
    absl::Time mtime) {
  EntryParts parts;
  parts.alias = std::move(alias);
  CERTSTORE_ASSIGN_OR_RETURN(parts.chain_der,
                             AsDataLoss(PemToDerChain(content)));
  CERTSTORE_ASSIGN_OR_RETURN(parts.key, DecodeKey(content, header.key_algorithm,
                                                  header.digest_verified));
  parts.metadata.endpoint = header.endpoint.value_or("");
  parts.metadata.client_id = header.client_id.value_or("");
  parts.metadata.tenant_id = header.tenant_id.value_or("");
  parts.created_at = header.created_at.value_or(mtime);
  CERTSTORE_ASSIGN_OR_RETURN(
      internal::LeafDer leaf,
      AsDataLoss(internal::ReadLeafDer(parts.chain_der[0])));
  std::shared_ptr<const Entry> entry;
  if (leaf.public_key_der == parts.key->public_key_der()) {
    // The key is the leaf's: the certificates are decoded on first use.
    CERTSTORE_ASSIGN_OR_RETURN(
        entry, RestoreEntry(std::move(parts), std::move(leaf.facts)));
  } else {
    // Another key, or the same one encoded differently: decode to compare.
    CERTSTORE_ASSIGN_OR_RETURN(entry,
                               AsDataLoss(Entry::Create(std::move(parts))));
    CERTSTORE_RETURN_IF_ERROR(AsDataLoss(CheckKeyMatchesLeaf(*entry)));
  }
  CERTSTORE_RETURN_IF_ERROR(CheckFacts(*entry, header));
  return entry;
}

absl::StatusOr<EntryInfo> SummarizeEntryFile(absl::string_view content,
                                             const EntryFileHeader& header,
                                             std::string alias,
                                             absl::Time mtime,
                                             absl::string_view store) {
  if (!header.thumbprint.has_value() || !header.not_before.has_value() ||
      !header.not_after.has_value() || !header.key_algorithm.has_value()) {
    CERTSTORE_ASSIGN_OR_RETURN(
        std::shared_ptr<const Entry> entry,
        DecodeEntryFile(content, header, std::move(alias), mtime));
    return InfoOf(*entry, store);
  }
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<std::string> chain,
                             AsDataLoss(PemToDerChain(content)));
  if (Thumbprint(chain[0]) != *header.thumbprint) {
    return Disagree("thumbprint", *header.thumbprint, Thumbprint(chain[0]));
  }
  EntryInfo info;
  info.alias = std::move(alias);
  info.thumbprint = *header.thumbprint;
  info.not_before = *header.not_before;
  info.not_after = *header.not_after;
  info.created_at = header.created_at.value_or(mtime);
  info.chain_length = chain.size();
  info.key_algorithm = *header.key_algorithm;
  info.key_location = "software";
  info.store = std::string(store);
  return info;
}

}  // namespace certstore::filesystem_internal

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/internal/stored_key.h"
#include "certstore/backend_author.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/key.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"
#include "sqlite/row_codec_internal.h"

namespace certstore::sqlite_internal {
namespace {

constexpr char kDigestDomain[] = "certstore sqlite row v1";
constexpr size_t kFrameHeaderBytes = 4;

void AppendUint64(uint64_t value, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

// Feeds length-prefixed fields to a SHA-256 without copying them.
class RowHasher {
 public:
  RowHasher() : ctx_(EVP_MD_CTX_new()) {
    ok_ = ctx_ != nullptr &&
          EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
    Bytes(kDigestDomain);
  }
  void Bytes(absl::string_view bytes) {
    Int(static_cast<int64_t>(bytes.size()));
    ok_ = ok_ && EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) == 1;
  }
  void Int(int64_t value) {
    std::string encoded;
    AppendUint64(static_cast<uint64_t>(value), &encoded);
    ok_ = ok_ &&
          EVP_DigestUpdate(ctx_.get(), encoded.data(), encoded.size()) == 1;
  }
  // Empty if OpenSSL failed: never equal to a stored 32-byte digest.
  std::string Finish() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) {
      ClearOpenSslErrors();
      return "";
    }
    return std::string(reinterpret_cast<char*>(md), len);
  }

 private:
  UniqueEvpMdCtx ctx_;
  bool ok_ = false;
};

absl::StatusOr<StoredKeyType> KeyTypeOf(const Key& key) {
  EVP_PKEY* pkey = key.evp_pkey();
  if (pkey != nullptr && EVP_PKEY_is_a(pkey, "RSA")) {
    return StoredKeyType::kRsa;
  }
  if (pkey != nullptr && EVP_PKEY_is_a(pkey, "EC")) {
    return StoredKeyType::kEc;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "key type ", key.algorithm(), " cannot be stored (RSA or EC only)"));
}

absl::Status Damaged(const StoredRow& row, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("stored entry (row ", row.id, ") is damaged: ", why));
}

absl::StatusOr<std::shared_ptr<const Key>> DecodeKey(const StoredRow& row,
                                                     const KeyCipher* cipher) {
  // The recorded type narrows the decoder (~20x cheaper than detecting).
  KeyTypeHint type;
  if (row.key_type == static_cast<int64_t>(StoredKeyType::kRsa)) {
    type = KeyTypeHint::kRsa;
  } else if (row.key_type == static_cast<int64_t>(StoredKeyType::kEc)) {
    type = KeyTypeHint::kEc;
  } else {
    return Damaged(row, absl::StrCat("unknown key type ", row.key_type));
  }
  std::optional<Secret> plain;
  if (row.key_encrypted) {
    if (cipher == nullptr) {
      return absl::PermissionDeniedError(
          absl::StrCat("stored key (row ", row.id,
                       ") is encrypted and no passphrase is configured"));
    }
    absl::StatusOr<Secret> decrypted = cipher->Decrypt(row.key_der);
    if (!decrypted.ok()) {
      return Damaged(row, decrypted.status().message());
    }
    plain.emplace(*std::move(decrypted));
  }
  // The row's digest has verified: these are bytes certstore exported.
  absl::StatusOr<std::shared_ptr<const Key>> key =
      internal::StoredSoftwareKeyFromPkcs8Der(
          plain.has_value() ? plain->value() : row.key_der, type);
  return key.ok() ? key : Damaged(row, key.status().message());
}

// Built once around kRowColumns and never freed: the statement cache keys
// on the text's address. Callers keep the string itself in a static, so
// that it stays reachable (LeakSanitizer sees no leak).
const std::string* RowQuery(absl::string_view condition) {
  return new std::string(
      absl::StrCat("SELECT ", kRowColumns, " FROM entries ", condition));
}

}  // namespace

const char* FindRowsSql() {
  // The selection rule (IsServable) in SQL: one B-tree seek, newest first.
  static const std::string* const sql = RowQuery(
      "WHERE alias = ?1 AND not_before <= ?2 AND not_after >= ?3 "
      "ORDER BY not_after DESC, id");
  return sql->c_str();
}

const char* RowByIdSql() {
  static const std::string* const sql = RowQuery("WHERE id = ?1");
  return sql->c_str();
}

const char* ListRowsSql(bool bounded) {
  static const std::string* const from =
      RowQuery("WHERE alias >= ?1 ORDER BY alias, not_after DESC, id");
  static const std::string* const range = RowQuery(
      "WHERE alias >= ?1 AND alias < ?2 ORDER BY alias, not_after DESC, id");
  return bounded ? range->c_str() : from->c_str();
}

StoredRow::~StoredRow() { OPENSSL_cleanse(&key_der[0], key_der.size()); }

StoredRow ReadRow(const Statement& s) {
  StoredRow row;
  row.id = s.Int(0);
  row.alias = std::string(s.Blob(1));
  row.thumbprint = std::string(s.Text(2));
  row.not_before = s.Int(3);
  row.not_after = s.Int(4);
  row.created_at_ns = s.Int(5);
  row.key_type = s.Int(6);
  row.key_algorithm = std::string(s.Text(7));
  row.key_encrypted = s.Int(8) != 0;
  row.key_der = std::string(s.Blob(9));
  row.chain = std::string(s.Blob(10));
  row.endpoint = std::string(s.Text(11));
  row.client_id = std::string(s.Text(12));
  row.tenant_id = std::string(s.Text(13));
  row.digest = std::string(s.Blob(14));
  return row;
}

void BindRow(const StoredRow& row, Statement& s) {
  s.BindBlob(1, row.alias);
  s.BindText(2, row.thumbprint);
  s.BindInt(3, row.not_before);
  s.BindInt(4, row.not_after);
  s.BindInt(5, row.created_at_ns);
  s.BindInt(6, row.key_type);
  s.BindText(7, row.key_algorithm);
  s.BindInt(8, row.key_encrypted ? 1 : 0);
  s.BindBlob(9, row.key_der);
  s.BindBlob(10, row.chain);
  s.BindText(11, row.endpoint);
  s.BindText(12, row.client_id);
  s.BindText(13, row.tenant_id);
  s.BindBlob(14, row.digest);
}

std::string RowDigest(const StoredRow& row) {
  RowHasher hasher;
  hasher.Bytes(row.alias);
  hasher.Bytes(row.thumbprint);
  hasher.Int(row.not_before);
  hasher.Int(row.not_after);
  hasher.Int(row.created_at_ns);
  hasher.Int(row.key_type);
  hasher.Bytes(row.key_algorithm);
  hasher.Int(row.key_encrypted ? 1 : 0);
  hasher.Bytes(row.key_der);
  hasher.Bytes(row.chain);
  hasher.Bytes(row.endpoint);
  hasher.Bytes(row.client_id);
  hasher.Bytes(row.tenant_id);
  return hasher.Finish();
}

std::string FrameChain(const std::vector<std::string>& chain_der) {
  std::string framed;
  for (const std::string& cert : chain_der) {
    const uint32_t size = static_cast<uint32_t>(cert.size());
    for (int shift = 24; shift >= 0; shift -= 8) {
      framed.push_back(static_cast<char>((size >> shift) & 0xff));
    }
    framed.append(cert);
  }
  return framed;
}

absl::StatusOr<std::vector<std::string>> UnframeChain(absl::string_view chain) {
  std::vector<std::string> certs;
  while (!chain.empty()) {
    if (chain.size() < kFrameHeaderBytes) {
      return absl::DataLossError("certificate chain framing is truncated");
    }
    uint32_t size = 0;
    for (size_t i = 0; i < kFrameHeaderBytes; ++i) {
      size = (size << 8) | static_cast<unsigned char>(chain[i]);
    }
    chain.remove_prefix(kFrameHeaderBytes);
    if (size == 0 || size > chain.size()) {
      return absl::DataLossError(absl::StrCat("certificate ", certs.size(),
                                              " of the chain is cut short"));
    }
    certs.emplace_back(chain.substr(0, size));
    chain.remove_prefix(size);
  }
  if (certs.empty()) {
    return absl::DataLossError("certificate chain is empty");
  }
  return certs;
}

absl::StatusOr<StoredRow> EncodeEntry(const Entry& entry,
                                      const KeyCipher* cipher) {
  StoredRow row;
  CERTSTORE_ASSIGN_OR_RETURN(StoredKeyType type, KeyTypeOf(*entry.key()));
  // A software key exports through OpenSSL's legacy ASN.1 path (8 vs 80 us).
  absl::StatusOr<std::string> der = entry.key()->ExportPkcs8Der();
  if (!der.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("key (", entry.key()->location(),
                     ") cannot be exported to be stored in a file: ",
                     der.status().message()));
  }
  Secret plain(*std::move(der));
  if (cipher != nullptr) {
    CERTSTORE_ASSIGN_OR_RETURN(row.key_der, cipher->Encrypt(plain.value()));
  } else {
    row.key_der = plain.value();
  }
  row.key_encrypted = cipher != nullptr;
  row.key_type = static_cast<int64_t>(type);
  row.key_algorithm = entry.key()->algorithm();
  row.alias = entry.alias();
  row.thumbprint = entry.thumbprint();
  row.not_before = absl::ToUnixSeconds(entry.not_before());
  row.not_after = absl::ToUnixSeconds(entry.not_after());
  row.created_at_ns = absl::ToUnixNanos(entry.created_at());
  row.chain = FrameChain(entry.chain_der());
  row.endpoint = entry.metadata().endpoint;
  row.client_id = entry.metadata().client_id;
  row.tenant_id = entry.metadata().tenant_id;
  row.digest = RowDigest(row);
  return row;
}

absl::StatusOr<std::shared_ptr<const Entry>> DecodeRow(
    const StoredRow& row, const KeyCipher* cipher) {
  if (RowDigest(row) != row.digest) {
    return Damaged(row, "its bytes no longer match the digest written with it");
  }
  absl::StatusOr<std::vector<std::string>> chain = UnframeChain(row.chain);
  if (!chain.ok()) {
    return Damaged(row, chain.status().message());
  }
  CERTSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const Key> key,
                             DecodeKey(row, cipher));
  EntryParts parts;
  parts.alias = row.alias;
  parts.chain_der = *std::move(chain);
  parts.key = std::move(key);
  parts.metadata = {row.endpoint, row.client_id, row.tenant_id};
  parts.created_at = absl::FromUnixNanos(row.created_at_ns);
  LeafFacts facts{absl::FromUnixSeconds(row.not_before),
                  absl::FromUnixSeconds(row.not_after), row.thumbprint};
  absl::StatusOr<std::shared_ptr<const Entry>> entry =
      RestoreEntry(std::move(parts), std::move(facts));
  return entry.ok() ? entry : Damaged(row, entry.status().message());
}

EntryInfo InfoOfRow(const StoredRow& row, absl::string_view store) {
  EntryInfo info;
  info.alias = row.alias;
  info.thumbprint = row.thumbprint;
  info.not_before = absl::FromUnixSeconds(row.not_before);
  info.not_after = absl::FromUnixSeconds(row.not_after);
  info.created_at = absl::FromUnixNanos(row.created_at_ns);
  info.key_algorithm = row.key_algorithm;
  info.key_location = "software";
  info.store = std::string(store);
  absl::StatusOr<std::vector<std::string>> chain = UnframeChain(row.chain);
  std::string problem;
  if (RowDigest(row) != row.digest) {
    problem = "bytes do not match the digest written with them";
  } else if (!chain.ok()) {
    problem = std::string(chain.status().message());
  } else if (Thumbprint((*chain)[0]) != row.thumbprint) {
    problem = "leaf certificate does not match its thumbprint";
  }
  info.chain_length = chain.ok() ? chain->size() : 0;
  if (!problem.empty()) {
    info.key_location = absl::StrCat("corrupt (row ", row.id, "): ", problem);
  }
  return info;
}

}  // namespace certstore::sqlite_internal

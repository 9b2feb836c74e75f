// One stored entry as a row of the entries table, and the conversions
// between rows and Entry. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_ROW_CODEC_INTERNAL_H_
#define CERTSTORE_SQLITE_ROW_CODEC_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/backend_author.h"
#include "certstore/entry.h"
#include "sqlite/connection_internal.h"
#include "sqlite/key_cipher_internal.h"

namespace certstore::sqlite_internal {

// entries.key_type: what the key decoder is narrowed to.
enum class StoredKeyType : int64_t { kRsa = 1, kEc = 2 };

// A row of `entries`, field for field (schema_internal.h describes them).
struct StoredRow {
  StoredRow() = default;
  StoredRow(StoredRow&&) = default;
  StoredRow& operator=(StoredRow&&) = default;
  ~StoredRow();  // wipes key_der

  int64_t id = 0;
  std::string alias;
  std::string thumbprint;
  int64_t not_before = 0;  // Unix seconds
  int64_t not_after = 0;
  int64_t created_at_ns = 0;
  int64_t key_type = 0;  // StoredKeyType
  std::string key_algorithm;
  bool key_encrypted = false;
  std::string key_der;  // PKCS#8, or EncryptedPrivateKeyInfo
  std::string chain;    // FrameChain
  std::string endpoint;
  std::string client_id;
  std::string tenant_id;
  std::string digest;  // RowDigest
};

// The columns ReadRow expects, in this order, for a SELECT.
inline constexpr char kRowColumns[] =
    "id, alias, thumbprint, not_before, not_after, created_at_ns, key_type, "
    "key_algorithm, key_encrypted, key_der, chain, endpoint, client_id, "
    "tenant_id, digest";
// An INSERT of every column but id, for BindRow.
inline constexpr char kInsertRowSql[] =
    "INSERT OR REPLACE INTO entries(alias, thumbprint, not_before, not_after, "
    "created_at_ns, key_type, key_algorithm, key_encrypted, key_der, chain, "
    "endpoint, client_id, tenant_id, digest) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

// The store's queries of kRowColumns. Find: the servable rows of ?1
// (not_before <= ?2, not_after >= ?3), newest not_after first, by the
// (alias, not_after DESC) index. List: rows with alias >= ?1 (and < ?2 when
// `bounded`), by alias then newest not_after.
const char* FindRowsSql();
const char* ListRowsSql(bool bounded);
// The row whose id is ?1, read from the table itself (the rowid B-tree):
// the check on what an index claims.
const char* RowByIdSql();

// Copies the current row of a SELECT of kRowColumns.
StoredRow ReadRow(const Statement& statement);
// Binds ?1..?14 of kInsertRowSql.
void BindRow(const StoredRow& row, Statement& statement);

// SHA-256 over every field but id and digest, each length-prefixed: any
// change to a stored row (bit rot, a hand edit, a torn write that SQLite
// did not catch) no longer matches the digest recorded at Put.
std::string RowDigest(const StoredRow& row);

// DER certificates, leaf first, each behind its 4-byte big-endian length.
std::string FrameChain(const std::vector<std::string>& chain_der);
// DataLoss when the framing is damaged or holds no certificate.
absl::StatusOr<std::vector<std::string>> UnframeChain(absl::string_view chain);

// The row for `entry`, whose chain and key the caller has validated; the
// key is exported as PKCS#8 and encrypted when `cipher` is set.
// FailedPrecondition for a key that cannot leave its token; InvalidArgument
// for a key that is neither RSA nor EC.
absl::StatusOr<StoredRow> EncodeEntry(const Entry& entry,
                                      const KeyCipher* cipher);

// The entry of `row`, decoding only the key (with the decoder narrowed to
// its recorded type) and deferring certificates to first use
// (Entry::Restore). DataLoss naming the row when anything is damaged;
// PermissionDenied for an encrypted key without a cipher.
absl::StatusOr<std::shared_ptr<const Entry>> DecodeRow(const StoredRow& row,
                                                       const KeyCipher* cipher);

// The listing of `row` from its columns alone: never decodes the key. A
// damaged row is still listed, with key_location "corrupt (row N): why".
EntryInfo InfoOfRow(const StoredRow& row, absl::string_view store);

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_ROW_CODEC_INTERNAL_H_

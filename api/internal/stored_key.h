// Decoding keys that a store wrote itself. Project-internal (the SQLite and
// PEM-directory stores).
#ifndef CERTSTORE_API_INTERNAL_STORED_KEY_H_
#define CERTSTORE_API_INTERNAL_STORED_KEY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/internal/internal_export.h"
#include "certstore/key.h"

namespace certstore::internal {

// SoftwareKeyFromPkcs8Der for PKCS#8 bytes that this library exported and
// whose store digest has just verified: it skips the EC pair check (one
// P-256 scalar multiplication, ~60 µs, twice a whole cold SQLite Find),
// which every key passed before it could be stored. Anything from outside
// goes through SoftwareKeyFromPkcs8Der.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<std::shared_ptr<const Key>>
StoredSoftwareKeyFromPkcs8Der(absl::string_view der, KeyTypeHint hint);

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_STORED_KEY_H_

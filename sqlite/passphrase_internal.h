// Where the passphrase comes from, and how a file's key-encryption
// parameters are recorded and checked. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_PASSPHRASE_INTERNAL_H_
#define CERTSTORE_SQLITE_PASSPHRASE_INTERNAL_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "certstore/sqlite_store.h"
#include "sqlite/database_internal.h"
#include "sqlite/key_cipher_internal.h"

namespace certstore::sqlite_internal {

// The passphrase configured in `options`, or nullopt for none. A file must
// pass CheckPrivateFile (PermissionDenied otherwise); one trailing newline
// is dropped. InvalidArgument for both sources set, or an empty secret.
absl::StatusOr<std::optional<Secret>> LoadPassphrase(
    const SqliteStoreOptions& options);

// The cipher for the file behind `db`: records fresh parameters and a check
// value on the first Open with a passphrase, otherwise derives with the
// recorded ones and compares the check value. Null when neither a
// passphrase nor recorded parameters exist. PermissionDenied for a wrong
// passphrase, or none when the file has parameters.
absl::StatusOr<std::unique_ptr<KeyCipher>> SetUpKeyCipher(
    Database& db, const std::optional<Secret>& passphrase, int iterations);

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_PASSPHRASE_INTERNAL_H_

// Option checks, the PIN source and the mint lock files for OpenPkcs11Store.
// Project-internal.
#ifndef CERTSTORE_PKCS11_PKCS11_OPTIONS_H_
#define CERTSTORE_PKCS11_PKCS11_OPTIONS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/internal/unique_fd.h"
#include "certstore/pkcs11_store.h"

namespace certstore::pkcs11_internal {

// The store's Name(): "pkcs11:token=<label>", percent-encoded.
std::string StoreName(absl::string_view token_label);

// The RFC 7512 URI of the private key `id` on the token: the label
// percent-encoded where it must be, every id byte as %XX, type=private —
// what p11tool, curl and OpenSSL's engine take ("pkcs11:token=lab;id=%17%d1
// ;type=private").
std::string KeyUri(absl::string_view token_label, absl::string_view id);

// The same for the certificate object certstore writes with a key's id
// (type=cert): what p11tool --export and curl --cert take.
std::string CertificateUri(absl::string_view token_label, absl::string_view id);

// InvalidArgument naming the option that is missing or malformed.
absl::Status CheckOptions(const Pkcs11StoreOptions& options);

// The PIN from pin_file (a regular file owned by this user with no group or
// world bits, else PermissionDenied naming the file; one trailing newline
// removed) or from pin_callback. Messages name the file, never the PIN.
absl::StatusOr<std::string> ResolvePin(const Pkcs11StoreOptions& options);

// The lock directory (lock_dir, or <state dir>/pkcs11-locks), created 0700
// when absent; PermissionDenied naming it when it is not private to this
// user.
absl::StatusOr<internal::UniqueFd> OpenLockDir(
    const Pkcs11StoreOptions& options);

// LockAlias's lock file in that directory for `alias` on the token
// labelled `token_label`: ".mint-<32 hex digits>.lock".
std::string MintLockFileName(absl::string_view token_label,
                             absl::string_view alias);

}  // namespace certstore::pkcs11_internal

#endif  // CERTSTORE_PKCS11_PKCS11_OPTIONS_H_

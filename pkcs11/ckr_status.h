// CK_RV -> absl::Status: the one converter for the PKCS#11 error space.
// Project-internal to pkcs11/.
#ifndef CERTSTORE_PKCS11_CKR_STATUS_H_
#define CERTSTORE_PKCS11_CKR_STATUS_H_

#include <p11-kit/pkcs11.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace certstore::pkcs11_internal {

// "CKR_PIN_INCORRECT", or "CKR_0x…" for codes without a name.
std::string CkrName(CK_RV rv);

// The status for `rv` returned by `call` on token `token_label`:
// "<call> on token "<label>": <CKR name>", with a code by meaning:
//   CKR_OK, CKR_USER_ALREADY_LOGGED_IN, CKR_CRYPTOKI_ALREADY_INITIALIZED -> OK
//   CKR_PIN_INCORRECT / _INVALID / _LEN_RANGE / _EXPIRED / _LOCKED,
//   CKR_USER_PIN_NOT_INITIALIZED                         -> PermissionDenied
//   CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED, CKR_DEVICE_ERROR,
//   CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_SLOT_ID_INVALID,
//   CKR_USER_NOT_LOGGED_IN, CKR_CRYPTOKI_NOT_INITIALIZED, CKR_SESSION_COUNT,
//   CKR_DEVICE_MEMORY, CKR_HOST_MEMORY, CKR_FUNCTION_CANCELED,
//   CKR_OPERATION_ACTIVE, CKR_GENERAL_ERROR              -> Unavailable
//   CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID    -> NotFound
//   CKR_TOKEN_WRITE_PROTECTED, CKR_SESSION_READ_ONLY     -> PermissionDenied
//   CKR_ATTRIBUTE_*, CKR_TEMPLATE_*, CKR_MECHANISM_*,
//   CKR_KEY_TYPE_INCONSISTENT, CKR_CURVE_NOT_SUPPORTED,
//   CKR_KEY_SIZE_RANGE, CKR_DOMAIN_PARAMS_INVALID        -> InvalidArgument
//   anything else                                        -> Internal
// The message never holds a PIN: callers pass only the call's name.
absl::Status CkrStatus(CK_RV rv, absl::string_view call,
                       absl::string_view token_label);

// True for the return values after which the session, the login or the
// token must be re-established before anything else is tried: the
// reconnect-and-retry-once set (CKR_SESSION_HANDLE_INVALID,
// CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
// CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_ERROR, CKR_SLOT_ID_INVALID,
// CKR_CRYPTOKI_NOT_INITIALIZED, CKR_GENERAL_ERROR).
bool NeedsReconnect(CK_RV rv);

}  // namespace certstore::pkcs11_internal

#endif  // CERTSTORE_PKCS11_CKR_STATUS_H_

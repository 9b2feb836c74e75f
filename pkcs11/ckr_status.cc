#include "pkcs11/ckr_status.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace certstore::pkcs11_internal {
namespace {

struct CkrEntry {
  CK_RV rv;
  const char* name;
  absl::StatusCode code;
};

#define CERTSTORE_CKR(name, code) \
  { name, #name, absl::StatusCode::code }

constexpr CkrEntry kCkrTable[] = {
    CERTSTORE_CKR(CKR_OK, kOk),
    CERTSTORE_CKR(CKR_USER_ALREADY_LOGGED_IN, kOk),
    CERTSTORE_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED, kOk),
    CERTSTORE_CKR(CKR_PIN_INCORRECT, kPermissionDenied),
    CERTSTORE_CKR(CKR_PIN_INVALID, kPermissionDenied),
    CERTSTORE_CKR(CKR_PIN_LEN_RANGE, kPermissionDenied),
    CERTSTORE_CKR(CKR_PIN_EXPIRED, kPermissionDenied),
    CERTSTORE_CKR(CKR_PIN_LOCKED, kPermissionDenied),
    CERTSTORE_CKR(CKR_USER_PIN_NOT_INITIALIZED, kPermissionDenied),
    CERTSTORE_CKR(CKR_TOKEN_WRITE_PROTECTED, kPermissionDenied),
    CERTSTORE_CKR(CKR_SESSION_READ_ONLY, kPermissionDenied),
    CERTSTORE_CKR(CKR_TOKEN_NOT_PRESENT, kUnavailable),
    CERTSTORE_CKR(CKR_TOKEN_NOT_RECOGNIZED, kUnavailable),
    CERTSTORE_CKR(CKR_DEVICE_REMOVED, kUnavailable),
    CERTSTORE_CKR(CKR_DEVICE_ERROR, kUnavailable),
    CERTSTORE_CKR(CKR_DEVICE_MEMORY, kUnavailable),
    CERTSTORE_CKR(CKR_HOST_MEMORY, kUnavailable),
    CERTSTORE_CKR(CKR_SESSION_HANDLE_INVALID, kUnavailable),
    CERTSTORE_CKR(CKR_SESSION_CLOSED, kUnavailable),
    CERTSTORE_CKR(CKR_SESSION_COUNT, kUnavailable),
    CERTSTORE_CKR(CKR_SLOT_ID_INVALID, kUnavailable),
    CERTSTORE_CKR(CKR_USER_NOT_LOGGED_IN, kUnavailable),
    CERTSTORE_CKR(CKR_CRYPTOKI_NOT_INITIALIZED, kUnavailable),
    CERTSTORE_CKR(CKR_FUNCTION_CANCELED, kUnavailable),
    CERTSTORE_CKR(CKR_OPERATION_ACTIVE, kUnavailable),
    CERTSTORE_CKR(CKR_GENERAL_ERROR, kUnavailable),
    CERTSTORE_CKR(CKR_OBJECT_HANDLE_INVALID, kNotFound),
    CERTSTORE_CKR(CKR_KEY_HANDLE_INVALID, kNotFound),
    CERTSTORE_CKR(CKR_ATTRIBUTE_READ_ONLY, kInvalidArgument),
    CERTSTORE_CKR(CKR_ATTRIBUTE_SENSITIVE, kInvalidArgument),
    CERTSTORE_CKR(CKR_ATTRIBUTE_TYPE_INVALID, kInvalidArgument),
    CERTSTORE_CKR(CKR_ATTRIBUTE_VALUE_INVALID, kInvalidArgument),
    CERTSTORE_CKR(CKR_TEMPLATE_INCOMPLETE, kInvalidArgument),
    CERTSTORE_CKR(CKR_TEMPLATE_INCONSISTENT, kInvalidArgument),
    CERTSTORE_CKR(CKR_MECHANISM_INVALID, kInvalidArgument),
    CERTSTORE_CKR(CKR_MECHANISM_PARAM_INVALID, kInvalidArgument),
    CERTSTORE_CKR(CKR_KEY_TYPE_INCONSISTENT, kInvalidArgument),
    CERTSTORE_CKR(CKR_KEY_SIZE_RANGE, kInvalidArgument),
    CERTSTORE_CKR(CKR_CURVE_NOT_SUPPORTED, kInvalidArgument),
    CERTSTORE_CKR(CKR_DOMAIN_PARAMS_INVALID, kInvalidArgument),
    CERTSTORE_CKR(CKR_ARGUMENTS_BAD, kInvalidArgument),
    CERTSTORE_CKR(CKR_FUNCTION_FAILED, kInternal),
    CERTSTORE_CKR(CKR_FUNCTION_NOT_SUPPORTED, kInternal),
    CERTSTORE_CKR(CKR_BUFFER_TOO_SMALL, kInternal),
};

#undef CERTSTORE_CKR

const CkrEntry* Lookup(CK_RV rv) {
  for (const CkrEntry& entry : kCkrTable) {
    if (entry.rv == rv) {
      return &entry;
    }
  }
  return nullptr;
}

}  // namespace

std::string CkrName(CK_RV rv) {
  const CkrEntry* entry = Lookup(rv);
  if (entry != nullptr) {
    return entry->name;
  }
  return absl::StrFormat("CKR_0x%lx", static_cast<unsigned long>(rv));
}

absl::Status CkrStatus(CK_RV rv, absl::string_view call,
                       absl::string_view token_label) {
  const CkrEntry* entry = Lookup(rv);
  const absl::StatusCode code =
      entry != nullptr ? entry->code : absl::StatusCode::kInternal;
  if (code == absl::StatusCode::kOk) {
    return absl::OkStatus();
  }
  return absl::Status(code, absl::StrCat(call, " on token \"", token_label,
                                         "\": ", CkrName(rv)));
}

bool NeedsReconnect(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_DEVICE_ERROR:
    case CKR_SLOT_ID_INVALID:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_GENERAL_ERROR:
      return true;
    default:
      return false;
  }
}

}  // namespace certstore::pkcs11_internal

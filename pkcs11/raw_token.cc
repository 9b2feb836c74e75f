#include "pkcs11/raw_token.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certstore/status_macros.h"
#include "pkcs11/ckr_status.h"

namespace certstore::pkcs11_internal {
namespace {

constexpr CK_ULONG kFindBatch = 64;

absl::string_view TokenLabel(const CK_TOKEN_INFO& info) {
  return absl::StripTrailingAsciiWhitespace(absl::string_view(
      reinterpret_cast<const char*>(info.label), sizeof(info.label)));
}

}  // namespace

Template::~Template() {
  for (std::string& value : values_) {
    OPENSSL_cleanse(value.data(), value.size());
  }
}

Template& Template::Add(CK_ATTRIBUTE_TYPE type, absl::string_view value) {
  values_.emplace_back(value);
  std::string& stored = values_.back();
  attrs_.push_back({type, stored.data(), static_cast<CK_ULONG>(stored.size())});
  return *this;
}

Template& Template::AddBool(CK_ATTRIBUTE_TYPE type, bool value) {
  const CK_BBOOL flag = value ? CK_TRUE : CK_FALSE;
  return Add(type, absl::string_view(reinterpret_cast<const char*>(&flag),
                                     sizeof(flag)));
}

Template& Template::AddUlong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  return Add(type, absl::string_view(reinterpret_cast<const char*>(&value),
                                     sizeof(value)));
}

RawToken::RawToken(std::shared_ptr<ModuleContext> module, std::string label,
                   std::string pin, absl::Duration retry_interval,
                   Instance instance)
    : module_(std::move(module)),
      label_(std::move(label)),
      pin_(std::move(pin)),
      retry_interval_(retry_interval),
      instance_(instance) {}

CK_FUNCTION_LIST* RawToken::functions() const {
  return instance_ == Instance::kSecond ? module().SecondInstance()
                                        : module().functions();
}

RawToken::~RawToken() {
  OPENSSL_cleanse(pin_.data(), pin_.size());
  if (connected_) {
    // Closed at the module's next Prepare: this destructor may run on any
    // thread, with or without the module's mutex.
    module().RetireSession(session_instance_, session_, session_epoch_);
  }
}

namespace {

// SoftHSM (and other modules that keep tokens in files) report a token
// absent or uninitialised, or fail C_Login with CKR_GENERAL_ERROR, when
// they read its files while another process rewrites them: 20 of 160
// concurrent `certstore list` runs failed so. Connect asks again, after
// re-initialising the module it owns, with a short backoff, for up to
// this long before such an answer counts.
constexpr absl::Duration kTransientBudget = absl::Seconds(1);

// Waits before attempt `attempt` + 1 (5 ms doubling, at most 100 ms);
// false once the budget that began at `start` is spent.
bool PauseBeforeRetry(absl::Time start, int attempt) {
  const absl::Duration pause =
      std::min(absl::Milliseconds(5) * (1 << std::min(attempt, 5)),
               absl::Milliseconds(100));
  if (absl::Now() + pause - start > kTransientBudget) {
    return false;
  }
  absl::SleepFor(pause);
  return true;
}

}  // namespace

absl::StatusOr<CK_SLOT_ID> RawToken::FindSlot() {
  CK_FUNCTION_LIST* f = functions();
  CK_ULONG count = 0;
  CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &count);
  std::vector<CK_SLOT_ID> slots(count);
  if (rv == CKR_OK && count > 0) {
    rv = f->C_GetSlotList(CK_TRUE, slots.data(), &count);
    slots.resize(count);
  }
  CERTSTORE_RETURN_IF_ERROR(CkrStatus(rv, "C_GetSlotList", label_));
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (f->C_GetTokenInfo(slot, &info) == CKR_OK &&
        (info.flags & CKF_TOKEN_INITIALIZED) != 0 &&
        TokenLabel(info) == label_) {
      return slot;
    }
  }
  return absl::UnavailableError(absl::StrCat(
      "token \"", label_, "\" is not present in module ", module().path()));
}

absl::StatusOr<CK_SLOT_ID> RawToken::FindSlotOrReinitialize() {
  absl::StatusOr<CK_SLOT_ID> slot = FindSlot();
  const absl::Time now = absl::Now();
  if (slot.ok() || !ever_connected_ || !module().owns_initialization() ||
      now - last_reinitialize_ < retry_interval_) {
    return slot;
  }
  // The token went away under us; a re-created one is only visible to
  // this process after C_Finalize + C_Initialize.
  last_reinitialize_ = now;
  CERTSTORE_RETURN_IF_ERROR(module().Reinitialize());
  return FindSlot();
}

void RawToken::DropSession() {
  if (connected_ && session_epoch_ == module().epoch()) {
    functions()->C_CloseSession(session_);
  }
  connected_ = false;
}

CK_RV RawToken::LoginWith(const std::string& pin) {
  return functions()->C_Login(
      session_, CKU_USER,
      reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data())),
      static_cast<CK_ULONG>(pin.size()));
}

CK_RV RawToken::Login() {
  CK_RV rv = LoginWith(pin_);
  const std::string* verified = module().VerifiedPin(label_);
  if (rv == CKR_USER_ALREADY_LOGGED_IN && verified != nullptr &&
      *verified != pin_) {
    // Someone else's login answered for us: check our own PIN for real,
    // and put their login back when ours is wrong.
    functions()->C_Logout(session_);
    rv = LoginWith(pin_);
    if (rv != CKR_OK) {
      LoginWith(*verified);
      return rv;
    }
  }
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
    module().SetVerifiedPin(label_, pin_);
  }
  return rv;
}

absl::Status RawToken::Connect() {
  DropSession();
  const absl::Time start = absl::Now();
  CK_FUNCTION_LIST* f = functions();
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<CK_SLOT_ID> slot = FindSlotOrReinitialize();
    CK_RV rv = CKR_TOKEN_NOT_PRESENT;
    bool opened = false;
    if (slot.ok()) {
      slot_ = *slot;
      rv = f->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                            nullptr, &session_);
      opened = rv == CKR_OK;
      if (opened) {
        rv = Login();
        if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
          f->C_CloseSession(session_);
        }
      }
    }
    const bool transient =
        rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED ||
        rv == CKR_DEVICE_REMOVED || rv == CKR_SESSION_HANDLE_INVALID ||
        rv == CKR_GENERAL_ERROR || rv == CKR_USER_PIN_NOT_INITIALIZED;
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN || !transient ||
        !module().owns_initialization() || !PauseBeforeRetry(start, attempt)) {
      CERTSTORE_RETURN_IF_ERROR(slot.status());
      CERTSTORE_RETURN_IF_ERROR(
          CkrStatus(rv, opened ? "C_Login" : "C_OpenSession", label_));
      break;
    }
    // The module read the token's files while another process rewrote
    // them, and keeps that view (absent, uninitialised) until it is
    // initialised again.
    CERTSTORE_RETURN_IF_ERROR(module().Reinitialize());
  }
  connected_ = true;
  ever_connected_ = true;
  session_instance_ = f;
  session_epoch_ = module().epoch();
  return absl::OkStatus();
}

absl::Status RawToken::EnsureSession() {
  if (connected_ && session_epoch_ == module().epoch()) {
    return absl::OkStatus();
  }
  connected_ = false;
  return Connect();
}

absl::Status RawToken::CheckToken() {
  CERTSTORE_RETURN_IF_ERROR(EnsureSession());
  CK_TOKEN_INFO info;
  const CK_RV rv = functions()->C_GetTokenInfo(slot_, &info);
  if (rv == CKR_OK && TokenLabel(info) == label_) {
    return absl::OkStatus();
  }
  return Connect();
}

template <typename Call>
absl::Status RawToken::Run(absl::string_view what, Call call) {
  CERTSTORE_RETURN_IF_ERROR(EnsureSession());
  CK_RV rv = call(session_);
  if (NeedsReconnect(rv)) {
    CERTSTORE_RETURN_IF_ERROR(Connect());
    rv = call(session_);
  }
  return CkrStatus(rv, what, label_);
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> RawToken::Find(Template& match) {
  CK_FUNCTION_LIST* f = functions();
  std::vector<CK_OBJECT_HANDLE> found;
  CERTSTORE_RETURN_IF_ERROR(
      Run("C_FindObjects", [&](CK_SESSION_HANDLE session) {
        found.clear();
        CK_RV rv = f->C_FindObjectsInit(session, match.data(), match.size());
        while (rv == CKR_OK) {
          CK_OBJECT_HANDLE batch[kFindBatch];
          CK_ULONG count = 0;
          rv = f->C_FindObjects(session, batch, kFindBatch, &count);
          if (rv != CKR_OK || count == 0) {
            break;
          }
          found.insert(found.end(), batch, batch + count);
        }
        f->C_FindObjectsFinal(session);
        return rv;
      }));
  return found;
}

absl::StatusOr<std::string> RawToken::Attribute(CK_OBJECT_HANDLE object,
                                                CK_ATTRIBUTE_TYPE type) {
  CK_FUNCTION_LIST* f = functions();
  std::string value;
  CERTSTORE_RETURN_IF_ERROR(
      Run("C_GetAttributeValue", [&](CK_SESSION_HANDLE session) {
        CK_ATTRIBUTE attr = {type, nullptr, 0};
        CK_RV rv = f->C_GetAttributeValue(session, object, &attr, 1);
        if (rv != CKR_OK) {
          return rv;
        }
        if (attr.ulValueLen == static_cast<CK_ULONG>(-1)) {
          return static_cast<CK_RV>(CKR_ATTRIBUTE_TYPE_INVALID);
        }
        value.resize(attr.ulValueLen);
        attr.pValue = value.data();
        return f->C_GetAttributeValue(session, object, &attr, 1);
      }));
  return value;
}

absl::Status RawToken::Matches(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type,
                               absl::string_view expected) {
  CK_FUNCTION_LIST* f = functions();
  std::string value(expected.size(), '\0');
  CK_ATTRIBUTE attr = {type, value.data(), static_cast<CK_ULONG>(value.size())};
  CERTSTORE_RETURN_IF_ERROR(
      Run("C_GetAttributeValue", [&](CK_SESSION_HANDLE session) {
        attr.ulValueLen = static_cast<CK_ULONG>(value.size());
        const CK_RV rv = f->C_GetAttributeValue(session, object, &attr, 1);
        return rv == CKR_BUFFER_TOO_SMALL ? static_cast<CK_RV>(CKR_OK) : rv;
      }));
  if (attr.ulValueLen != expected.size() || value != expected) {
    return absl::FailedPreconditionError(
        "token object no longer holds the expected attribute value");
  }
  return absl::OkStatus();
}

absl::StatusOr<CK_OBJECT_HANDLE> RawToken::Create(Template& object) {
  CK_FUNCTION_LIST* f = functions();
  CK_OBJECT_HANDLE handle = 0;
  CERTSTORE_RETURN_IF_ERROR(
      Run("C_CreateObject", [&](CK_SESSION_HANDLE session) {
        return f->C_CreateObject(session, object.data(), object.size(),
                                 &handle);
      }));
  return handle;
}

absl::Status RawToken::Destroy(CK_OBJECT_HANDLE object) {
  CK_FUNCTION_LIST* f = functions();
  return Run("C_DestroyObject", [&](CK_SESSION_HANDLE session) {
    const CK_RV rv = f->C_DestroyObject(session, object);
    return rv == CKR_OBJECT_HANDLE_INVALID ? static_cast<CK_RV>(CKR_OK) : rv;
  });
}

absl::Status RawToken::SetAttributes(CK_OBJECT_HANDLE object,
                                     Template& attributes) {
  CK_FUNCTION_LIST* f = functions();
  return Run("C_SetAttributeValue", [&](CK_SESSION_HANDLE session) {
    return f->C_SetAttributeValue(session, object, attributes.data(),
                                  attributes.size());
  });
}

absl::StatusOr<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>>
RawToken::GenerateKeyPair(CK_MECHANISM_TYPE mechanism,
                          Template& public_template,
                          Template& private_template) {
  CK_FUNCTION_LIST* f = functions();
  CK_MECHANISM mech = {mechanism, nullptr, 0};
  CK_OBJECT_HANDLE public_key = 0;
  CK_OBJECT_HANDLE private_key = 0;
  CERTSTORE_RETURN_IF_ERROR(
      Run("C_GenerateKeyPair", [&](CK_SESSION_HANDLE session) {
        return f->C_GenerateKeyPair(
            session, &mech, public_template.data(), public_template.size(),
            private_template.data(), private_template.size(), &public_key,
            &private_key);
      }));
  return std::make_pair(public_key, private_key);
}

}  // namespace certstore::pkcs11_internal

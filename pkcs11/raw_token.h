// RawToken: the one wrapper around the module's raw function list, for what
// libp11 0.4.12 lacks (EC key generation, C_FindObjects by label / CKA_ID,
// C_DestroyObject, C_GetAttributeValue for cheap handle checks, CKO_DATA
// objects). One session per store, logged in as the user; every call runs
// with the module's mutex held and is retried once after reconnecting when
// the session, the login or the token went away. Project-internal.
#ifndef CERTSTORE_PKCS11_RAW_TOKEN_H_
#define CERTSTORE_PKCS11_RAW_TOKEN_H_

#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pkcs11/module_context.h"

namespace certstore::pkcs11_internal {

// A PKCS#11 attribute template that owns its values. Values are wiped when
// the template is destroyed (templates carry imported key components).
class Template {
 public:
  Template() = default;
  ~Template();
  Template(const Template&) = delete;
  Template& operator=(const Template&) = delete;

  Template& Add(CK_ATTRIBUTE_TYPE type, absl::string_view value);
  Template& AddBool(CK_ATTRIBUTE_TYPE type, bool value);
  Template& AddUlong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);

  CK_ATTRIBUTE* data() { return attrs_.data(); }
  CK_ULONG size() const { return static_cast<CK_ULONG>(attrs_.size()); }

 private:
  std::deque<std::string> values_;  // stable addresses
  std::vector<CK_ATTRIBUTE> attrs_;
};

class RawToken {
 public:
  // `label` selects the token; `pin` logs in (kept in memory for re-login,
  // wiped on destruction). A token that disappears is looked for again at
  // most once per `retry_interval`, re-initialising the module when it owns
  // initialisation (the only way SoftHSM sees a re-created token).
  // kSecond: work on ModuleContext::SecondInstance (the mint lease's own
  // connection to a network module), not on the instance libp11 shares.
  enum class Instance { kShared, kSecond };
  RawToken(std::shared_ptr<ModuleContext> module, std::string label,
           std::string pin, absl::Duration retry_interval,
           Instance instance = Instance::kShared);
  ~RawToken();
  RawToken(const RawToken&) = delete;
  RawToken& operator=(const RawToken&) = delete;

  ModuleContext& module() const { return *module_; }
  const std::shared_ptr<ModuleContext>& module_ptr() const { return module_; }
  const std::string& label() const { return label_; }
  const std::string& pin() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu()) {
    return pin_;
  }

  // Everything below: call with module().mu() held, after module().Prepare().

  // Finds the token, opens a read/write session and logs in (
  // CKR_USER_ALREADY_LOGGED_IN is success). Unavailable when the token is
  // absent; PermissionDenied naming the token (never the PIN) for a bad PIN.
  absl::Status Connect() ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  // OK when the token is still there (C_GetTokenInfo); otherwise reconnects
  // (which may re-initialise the module) and says whether that worked.
  absl::Status CheckToken() ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  // Handles from C_FindObjects for `match` (all of them).
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> Find(Template& match)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  // One attribute's value. NotFound when the handle is no longer valid
  // (object deleted), InvalidArgument when the object lacks the attribute.
  absl::StatusOr<std::string> Attribute(CK_OBJECT_HANDLE object,
                                        CK_ATTRIBUTE_TYPE type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  // The cheap validity check of a cached handle: one C_GetAttributeValue
  // into a buffer of expected.size(). OK when the value equals `expected`;
  // NotFound when the object is gone; FailedPrecondition when it differs.
  absl::Status Matches(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type,
                       absl::string_view expected)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  absl::StatusOr<CK_OBJECT_HANDLE> Create(Template& object)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  // CKR_OBJECT_HANDLE_INVALID (already gone) is success.
  absl::Status Destroy(CK_OBJECT_HANDLE object)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  // C_SetAttributeValue.
  absl::Status SetAttributes(CK_OBJECT_HANDLE object, Template& attributes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  // C_GenerateKeyPair; returns (public, private) handles.
  absl::StatusOr<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>> GenerateKeyPair(
      CK_MECHANISM_TYPE mechanism, Template& public_template,
      Template& private_template) ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  // The module epoch the current session belongs to (object handles found
  // in another epoch are meaningless).
  uint64_t session_epoch() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu()) {
    return session_epoch_;
  }

 private:
  CK_FUNCTION_LIST* functions() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());
  absl::Status EnsureSession() ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());
  absl::StatusOr<CK_SLOT_ID> FindSlot()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());
  absl::StatusOr<CK_SLOT_ID> FindSlotOrReinitialize()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());
  void DropSession() ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());
  CK_RV Login() ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());
  CK_RV LoginWith(const std::string& pin)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());
  // Runs `call` with the session; reconnects and runs it once more when it
  // fails with a reconnect-class CK_RV. Maps the result with CkrStatus.
  template <typename Call>
  absl::Status Run(absl::string_view what, Call call)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(module().mu());

  const std::shared_ptr<ModuleContext> module_;
  const std::string label_;
  std::string pin_;
  const absl::Duration retry_interval_;
  const Instance instance_;
  CK_FUNCTION_LIST* session_instance_ = nullptr;  // where session_ is open
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE session_ = 0;
  bool connected_ = false;
  bool ever_connected_ = false;
  uint64_t session_epoch_ = 0;
  absl::Time last_reinitialize_ = absl::InfinitePast();
};

}  // namespace certstore::pkcs11_internal

#endif  // CERTSTORE_PKCS11_RAW_TOKEN_H_

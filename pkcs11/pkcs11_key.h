// Token keys: generation on the token, import of software keys, and the Key
// whose EVP_PKEY comes from libp11 (so TLS signs on the token).
// Project-internal to pkcs11/.
#ifndef CERTSTORE_PKCS11_PKCS11_KEY_H_
#define CERTSTORE_PKCS11_PKCS11_KEY_H_

#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/key.h"
#include "certstore/openssl_types.h"
#include "pkcs11/module_context.h"
#include "pkcs11/raw_token.h"

namespace certstore::pkcs11_internal {

// Where a key pair lives on the token.
struct TokenKeyRef {
  std::string id;  // CKA_ID shared by the key pair and its certificates
  CK_OBJECT_HANDLE private_handle = 0;
  std::string public_key_der;  // SubjectPublicKeyInfo, read from the token
  std::string algorithm;       // "EC-P256", "RSA-2048"
  // Made as a spare (labelled SpareLabel, token_objects.h): the Put that
  // uses it relabels the pair to its alias first.
  bool spare = false;
};

// A private key on the token. Its EVP_PKEY is taken from libp11 on first
// use (sign, evp_pkey()) and keeps the libp11 generation it came from alive.
class Pkcs11Key final : public Key {
 public:
  Pkcs11Key(std::shared_ptr<RawToken> token, std::string alias, TokenKeyRef ref,
            uint64_t epoch);
  ~Pkcs11Key() override;

  // Signs on the token. FailedPrecondition when the key object is gone,
  // Unavailable when the token cannot be reached. After the module was
  // re-initialised (a restarted network module, a re-created token, a
  // fork) the key is found again by its CKA_ID.
  absl::StatusOr<std::string> Sign(absl::string_view data) const override;
  const std::string& public_key_der() const override {
    return ref_.public_key_der;
  }
  // libp11's key; null when it cannot be loaded (Sign says why).
  EVP_PKEY* evp_pkey() const override;
  std::string algorithm() const override { return ref_.algorithm; }
  std::string location() const override { return location_; }
  absl::StatusOr<std::string> ExportPkcs8Der() const override;

  // Its CKA_ID, public key and algorithm (ref().private_handle is the
  // handle it was found with: use private_handle()).
  const TokenKeyRef& ref() const { return ref_; }
  const RawToken& token() const { return *token_; }

  // With the module's mutex held: the private key's handle in the current
  // module epoch (after CheckOnToken).
  CK_OBJECT_HANDLE private_handle() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu()) {
    return private_handle_;
  }

  // With the module's mutex held: OK when the private-key object is still
  // on the token (one C_GetAttributeValue, or a find by CKA_ID after a
  // re-initialisation); FailedPrecondition when it is gone; Unavailable
  // when the token cannot be reached.
  absl::Status CheckOnToken() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  // The same, taking the module's mutex.
  absl::Status CheckOnTokenLocking() const
      ABSL_LOCKS_EXCLUDED(token_->module().mu());

  // The module's mutex (for callers that hold it through another path to
  // the same module, to tell the thread-safety analysis so).
  absl::Mutex& mu() const ABSL_LOCK_RETURNED(token_->module().mu()) {
    return token_->module().mu();
  }

 private:
  absl::Status LoadLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  // Finds the key again by CKA_ID when its handle is from an older module
  // epoch, dropping the libp11 key taken in that epoch.
  absl::Status Refind() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  absl::StatusOr<EVP_PKEY*> PickLibp11Key(Generation& generation) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  absl::StatusOr<std::string> SignLocked(absl::string_view data) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  void ReopenLibp11Session() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());

  const std::shared_ptr<RawToken> token_;
  const std::string alias_;
  const TokenKeyRef ref_;
  const std::string location_;
  // Guarded by the module's mutex. Declared in this order so that the
  // EVP_PKEY goes before the generation whose objects it points into.
  mutable CK_OBJECT_HANDLE private_handle_;
  mutable uint64_t epoch_;  // the module epoch private_handle_ belongs to
  mutable std::shared_ptr<Generation> generation_;
  mutable UniqueEvpPkey pkey_;
};

// With the module's mutex held: generates a key pair on the token (CKA_TOKEN,
// CKA_PRIVATE, CKA_SENSITIVE, not extractable, CKA_SIGN), labelled `label`
// (the alias, or a spare's label) with a fresh random CKA_ID.
absl::StatusOr<TokenKeyRef> GenerateKeyOnToken(RawToken& token,
                                               absl::string_view label,
                                               KeyType type)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

// With the module's mutex held: copies an exportable (software) key onto
// the token as a sensitive, non-extractable private key plus its public key,
// labelled `alias` with a fresh CKA_ID. Returns the reference and the handle
// of the public-key object (for rollback).
absl::StatusOr<std::pair<TokenKeyRef, CK_OBJECT_HANDLE>> ImportKeyToToken(
    RawToken& token, absl::string_view alias, const Key& key)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

// With the module's mutex held: the SubjectPublicKeyInfo of a key pair,
// from the private object (RSA: modulus, exponent) or the public object
// (EC: CKA_EC_PARAMS, CKA_EC_POINT; `public_handle` 0 when there is none).
absl::StatusOr<std::string> ReadPublicKeyDer(RawToken& token,
                                             CK_OBJECT_HANDLE private_handle,
                                             CK_OBJECT_HANDLE public_handle)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

// "EC-P256", "RSA-2048", … for a SubjectPublicKeyInfo.
std::string AlgorithmOfPublicKey(absl::string_view spki_der);

// Lower-case hex of a CKA_ID, for messages and locations.
std::string HexId(absl::string_view id);

}  // namespace certstore::pkcs11_internal

#endif  // CERTSTORE_PKCS11_PKCS11_KEY_H_

/// \file
/// A private key a binding signs with: in process (software) or on a token.
#ifndef CERTSTORE_KEY_H_
#define CERTSTORE_KEY_H_

#include <openssl/evp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/export.h"

namespace certstore {

enum class KeyType {
  kRsa2048,
  kEcP256,
};

/// "RSA-2048" / "EC-P256".
CERTSTORE_EXPORT absl::string_view KeyTypeName(KeyType type);

/// What CreateKey makes.
struct KeySpec {
  KeyType type = KeyType::kEcP256;
  /// A key made ahead of need (the token client's spare, ready for the next
  /// re-mint). A PKCS#11 store labels it as a spare on the token, so that
  /// the alias's eviction leaves it, adopts it into the alias at the Put
  /// that uses it, and lets RemoveBroken (`certstore gc`) destroy a spare
  /// left unused for a day (its process died). Other stores ignore it.
  bool spare = false;
};

/// A private key. Immutable and thread-safe: Sign may be called from several
/// threads at once. Implementations: SoftwareKey (below) and token keys in
/// pkcs11/.
class CERTSTORE_EXPORT Key {
 public:
  Key() = default;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  virtual ~Key() = default;

  /// Signs SHA-256(data): RSA PKCS#1 v1.5 or ECDSA (DER), by key type.
  /// Fails with FailedPrecondition when the key cannot sign (token object
  /// gone, engine error); the message never holds key material.
  virtual absl::StatusOr<std::string> Sign(absl::string_view data) const = 0;

  /// The public key as DER SubjectPublicKeyInfo. Compared byte for byte with
  /// a certificate's to decide whether key and certificate match.
  virtual const std::string& public_key_der() const = 0;

  /// The key for OpenSSL (SSL_CTX_use_PrivateKey). Owned by this Key and valid
  /// for its lifetime; for token keys, operations run on the token.
  virtual EVP_PKEY* evp_pkey() const = 0;

  /// Algorithm and size, e.g. "EC-P256", "RSA-3072".
  virtual std::string algorithm() const = 0;

  /// Where the key lives: "software" or a token URI without secrets.
  virtual std::string location() const = 0;

  /// The key as unencrypted PKCS#8 DER, for stores that persist software
  /// keys. FailedPrecondition for keys that cannot leave their token.
  virtual absl::StatusOr<std::string> ExportPkcs8Der() const = 0;
};

/// Generates an in-process key. EC-P256 takes ~50 µs, RSA-2048 ~0.3 s.
CERTSTORE_EXPORT absl::StatusOr<std::shared_ptr<const Key>> GenerateSoftwareKey(
    const KeySpec& spec);

/// Wraps an OpenSSL key the caller owns; takes its own reference.
/// InvalidArgument for a null key, a key without private part, or a type
/// other than RSA / EC.
CERTSTORE_EXPORT absl::StatusOr<std::shared_ptr<const Key>> SoftwareKeyFromEvp(
    EVP_PKEY* pkey);

/// Decodes an unencrypted PKCS#8 DER key. Decoding with a known type is ~20x
/// cheaper than auto-detection on OpenSSL 3.0, so stores pass the type they
/// recorded; kAuto detects. InvalidArgument on bad DER, and on an EC key
/// whose recorded public point is not its private scalar's.
enum class KeyTypeHint { kAuto, kRsa, kEc };
CERTSTORE_EXPORT absl::StatusOr<std::shared_ptr<const Key>>
SoftwareKeyFromPkcs8Der(absl::string_view der,
                        KeyTypeHint hint = KeyTypeHint::kAuto);

/// Decodes one PEM private key ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE
/// KEY"); encrypted PEM is refused with InvalidArgument, as is an EC key
/// whose public point is not its private scalar's.
CERTSTORE_EXPORT absl::StatusOr<std::shared_ptr<const Key>> SoftwareKeyFromPem(
    absl::string_view pem);

/// The PEM ("PRIVATE KEY", PKCS#8) of an exportable key.
CERTSTORE_EXPORT absl::StatusOr<std::string> KeyToPem(const Key& key);

}  // namespace certstore

#endif  // CERTSTORE_KEY_H_

// Encryption of private keys at rest with a passphrase. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_KEY_CIPHER_INTERNAL_H_
#define CERTSTORE_SQLITE_KEY_CIPHER_INTERNAL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certstore::sqlite_internal {

inline constexpr int kMinPbkdf2Iterations = 100000;
inline constexpr size_t kKdfSaltBytes = 16;

// The key-derivation parameters recorded once per file.
struct KdfParams {
  std::string salt;  // kKdfSaltBytes random bytes
  int iterations = 0;
};

// Fresh parameters: a random salt and `iterations`.
absl::StatusOr<KdfParams> NewKdfParams(int iterations);

// A string that is wiped (OPENSSL_cleanse) when destroyed: passphrases and
// plaintext keys.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& other) noexcept : value_(std::move(other.value_)) {}
  Secret& operator=(Secret&& other) noexcept {
    value_.swap(other.value_);  // `other` wipes what this held
    return *this;
  }
  ~Secret();

  const std::string& value() const { return value_; }

 private:
  std::string value_;
};

// Encrypts PKCS#8 keys as standard EncryptedPrivateKeyInfo: PBES2 with
// PBKDF2-HMAC-SHA-256 (the file's salt and iteration count) and AES-256-CBC
// with a fresh random IV per key, so `openssl pkcs8 -inform DER` decrypts
// them with the passphrase. The key-encryption key is derived once, when
// the cipher is made, so that lookups never pay PBKDF2; keys are encrypted
// with it directly (the salt is per file, not per key: every key of a file
// shares one passphrase, so per-key salts would not slow a guesser down).
class KeyCipher {
 public:
  // Runs PBKDF2 (the expensive part: ~0.14 s at 600,000 iterations).
  static absl::StatusOr<std::unique_ptr<KeyCipher>> Derive(
      absl::string_view passphrase, KdfParams params);

  KeyCipher(const KeyCipher&) = delete;
  KeyCipher& operator=(const KeyCipher&) = delete;
  ~KeyCipher();  // wipes the derived key

  const KdfParams& params() const { return params_; }

  // HMAC-SHA-256 of a fixed label under the derived key: recorded in the
  // file so that a wrong passphrase is caught at Open, not at the first
  // lookup. Reveals nothing a guesser could not get from any stored key.
  std::string CheckValue() const;

  absl::StatusOr<std::string> Encrypt(absl::string_view pkcs8_der) const;

  // The PKCS#8 DER inside `encrypted_der`. DataLoss when it is not an
  // EncryptedPrivateKeyInfo with this file's parameters, or does not
  // decrypt (the passphrase was checked at Open: damage, not a wrong guess).
  absl::StatusOr<Secret> Decrypt(absl::string_view encrypted_der) const;

 private:
  explicit KeyCipher(KdfParams params) : params_(std::move(params)) {}
  absl::StatusOr<std::string> MatchParams(absl::string_view encrypted_der,
                                          std::string* ciphertext) const;

  KdfParams params_;
  unsigned char kek_[32] = {0};
};

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_KEY_CIPHER_INTERNAL_H_

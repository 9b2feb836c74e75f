#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "certstore/errors.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"
#include "sqlite/key_cipher_internal.h"

namespace certstore::sqlite_internal {
namespace {

using UniqueX509Sig = std::unique_ptr<X509_SIG, OpenSslDeleter<X509_SIG_free>>;
using UniqueAlgor =
    std::unique_ptr<X509_ALGOR, OpenSslDeleter<X509_ALGOR_free>>;
using UniquePbe2 = std::unique_ptr<PBE2PARAM, OpenSslDeleter<PBE2PARAM_free>>;
using UniquePbkdf2 =
    std::unique_ptr<PBKDF2PARAM, OpenSslDeleter<PBKDF2PARAM_free>>;
using UniqueCipherCtx =
    std::unique_ptr<EVP_CIPHER_CTX, OpenSslDeleter<EVP_CIPHER_CTX_free>>;

constexpr size_t kIvBytes = 16;
constexpr char kCheckLabel[] = "certstore sqlite passphrase check v1";

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// AES-256-CBC with PKCS#7 padding. A failure to decrypt is reported with
// `failure_code` and no detail beyond OpenSSL's reason.
absl::StatusOr<std::string> AesCbc(const unsigned char* key,
                                   absl::string_view iv, absl::string_view in,
                                   bool encrypt) {
  UniqueCipherCtx ctx(EVP_CIPHER_CTX_new());
  std::string out(in.size() + kIvBytes, '\0');
  auto* dst = reinterpret_cast<unsigned char*>(&out[0]);
  int head = 0;
  int tail = 0;
  if (ctx == nullptr ||
      EVP_CipherInit_ex(ctx.get(), EVP_aes_256_cbc(), nullptr, key, Bytes(iv),
                        encrypt ? 1 : 0) != 1 ||
      EVP_CipherUpdate(ctx.get(), dst, &head, Bytes(in),
                       static_cast<int>(in.size())) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), dst + head, &tail) != 1) {
    OPENSSL_cleanse(&out[0], out.size());
    return OpenSslError(
        encrypt ? absl::StatusCode::kInternal : absl::StatusCode::kDataLoss,
        encrypt ? "cannot encrypt the key" : "the key does not decrypt");
  }
  out.resize(static_cast<size_t>(head + tail));
  return out;
}

absl::Status BadParams(absl::string_view what) {
  ClearOpenSslErrors();
  return absl::DataLossError(absl::StrCat(
      "encrypted key is not PBES2 with this file's parameters (", what, ")"));
}

// The salt, iterations and PRF of a PBKDF2 AlgorithmIdentifier must be the
// file's; OK when they are.
absl::Status MatchPbkdf2(const X509_ALGOR* keyfunc, const KdfParams& params) {
  if (OBJ_obj2nid(keyfunc->algorithm) != NID_id_pbkdf2) {
    return BadParams("key derivation is not PBKDF2");
  }
  UniquePbkdf2 kdf(static_cast<PBKDF2PARAM*>(ASN1_TYPE_unpack_sequence(
      ASN1_ITEM_rptr(PBKDF2PARAM), keyfunc->parameter)));
  if (kdf == nullptr || kdf->salt->type != V_ASN1_OCTET_STRING) {
    return BadParams("PBKDF2 parameters");
  }
  const ASN1_OCTET_STRING* salt = kdf->salt->value.octet_string;
  if (absl::string_view(reinterpret_cast<const char*>(salt->data),
                        static_cast<size_t>(salt->length)) != params.salt ||
      ASN1_INTEGER_get(kdf->iter) != params.iterations) {
    return BadParams("salt or iteration count");
  }
  if (kdf->keylength != nullptr && ASN1_INTEGER_get(kdf->keylength) != 32) {
    return BadParams("key length");
  }
  if (kdf->prf == nullptr ||
      OBJ_obj2nid(kdf->prf->algorithm) != NID_hmacWithSHA256) {
    return BadParams("PRF is not HMAC-SHA-256");
  }
  return absl::OkStatus();
}

}  // namespace

Secret::~Secret() { OPENSSL_cleanse(&value_[0], value_.size()); }

absl::StatusOr<KdfParams> NewKdfParams(int iterations) {
  KdfParams params;
  params.iterations = iterations;
  params.salt.resize(kKdfSaltBytes);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&params.salt[0]),
                 static_cast<int>(kKdfSaltBytes)) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "RAND_bytes");
  }
  return params;
}

absl::StatusOr<std::unique_ptr<KeyCipher>> KeyCipher::Derive(
    absl::string_view passphrase, KdfParams params) {
  std::unique_ptr<KeyCipher> cipher(new KeyCipher(std::move(params)));
  const KdfParams& p = cipher->params_;
  if (PKCS5_PBKDF2_HMAC(passphrase.data(), static_cast<int>(passphrase.size()),
                        Bytes(p.salt), static_cast<int>(p.salt.size()),
                        p.iterations, EVP_sha256(), sizeof(cipher->kek_),
                        cipher->kek_) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "PBKDF2");
  }
  return cipher;
}

KeyCipher::~KeyCipher() { OPENSSL_cleanse(kek_, sizeof(kek_)); }

std::string KeyCipher::CheckValue() const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kek_, sizeof(kek_), Bytes(kCheckLabel),
       sizeof(kCheckLabel) - 1, mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

absl::StatusOr<std::string> KeyCipher::Encrypt(
    absl::string_view pkcs8_der) const {
  unsigned char iv[kIvBytes];
  if (RAND_bytes(iv, sizeof(iv)) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "RAND_bytes");
  }
  std::string salt = params_.salt;  // PKCS5_pbe2_set_iv takes non-const
  UniqueAlgor algor(
      PKCS5_pbe2_set_iv(EVP_aes_256_cbc(), params_.iterations,
                        reinterpret_cast<unsigned char*>(&salt[0]),
                        static_cast<int>(salt.size()), iv, NID_hmacWithSHA256));
  CERTSTORE_ASSIGN_OR_RETURN(
      std::string ciphertext,
      AesCbc(kek_, absl::string_view(reinterpret_cast<char*>(iv), kIvBytes),
             pkcs8_der, /*encrypt=*/true));
  UniqueX509Sig sig(X509_SIG_new());
  X509_ALGOR* sig_algor = nullptr;
  ASN1_OCTET_STRING* sig_data = nullptr;
  if (algor != nullptr && sig != nullptr) {
    X509_SIG_getm(sig.get(), &sig_algor, &sig_data);
  }
  unsigned char* der = nullptr;
  int len = -1;
  if (sig_algor != nullptr && X509_ALGOR_copy(sig_algor, algor.get()) == 1 &&
      ASN1_OCTET_STRING_set(sig_data, Bytes(ciphertext),
                            static_cast<int>(ciphertext.size())) == 1) {
    len = i2d_X509_SIG(sig.get(), &der);
  }
  if (len <= 0) {
    return OpenSslError(absl::StatusCode::kInternal,
                        "cannot encode the encrypted key");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> KeyCipher::MatchParams(
    absl::string_view encrypted_der, std::string* ciphertext) const {
  const unsigned char* p = Bytes(encrypted_der);
  UniqueX509Sig sig(
      d2i_X509_SIG(nullptr, &p, static_cast<long>(encrypted_der.size())));
  if (sig == nullptr || p != Bytes(encrypted_der) + encrypted_der.size()) {
    return BadParams("not an EncryptedPrivateKeyInfo");
  }
  const X509_ALGOR* algor = nullptr;
  const ASN1_OCTET_STRING* data = nullptr;
  X509_SIG_get0(sig.get(), &algor, &data);
  if (OBJ_obj2nid(algor->algorithm) != NID_pbes2) {
    return BadParams("not PBES2");
  }
  UniquePbe2 pbe2(static_cast<PBE2PARAM*>(
      ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), algor->parameter)));
  if (pbe2 == nullptr ||
      OBJ_obj2nid(pbe2->encryption->algorithm) != NID_aes_256_cbc) {
    return BadParams("cipher is not AES-256-CBC");
  }
  CERTSTORE_RETURN_IF_ERROR(MatchPbkdf2(pbe2->keyfunc, params_));
  unsigned char iv[kIvBytes];
  if (ASN1_TYPE_get_octetstring(pbe2->encryption->parameter, iv, sizeof(iv)) !=
      static_cast<int>(kIvBytes)) {
    return BadParams("IV");
  }
  ciphertext->assign(reinterpret_cast<const char*>(data->data),
                     static_cast<size_t>(data->length));
  return std::string(reinterpret_cast<const char*>(iv), kIvBytes);
}

absl::StatusOr<Secret> KeyCipher::Decrypt(
    absl::string_view encrypted_der) const {
  std::string ciphertext;
  CERTSTORE_ASSIGN_OR_RETURN(std::string iv,
                             MatchParams(encrypted_der, &ciphertext));
  CERTSTORE_ASSIGN_OR_RETURN(std::string plain,
                             AesCbc(kek_, iv, ciphertext, /*encrypt=*/false));
  return Secret(std::move(plain));
}

}  // namespace certstore::sqlite_internal

// EVP_PKEY_get1_EC_KEY / _RSA are deprecated in OpenSSL 3.0 but are the only
// route to its legacy ASN.1 encoders, ~10x cheaper than OSSL_ENCODER for
// public keys and PKCS#8 (byte for byte the same output).
#define OPENSSL_SUPPRESS_DEPRECATED

#include "certstore/key.h"

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <string>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "api/internal/der_walk.h"
#include "api/internal/stored_key.h"
#include "certstore/backend_author.h"
#include "certstore/entry.h"
#include "certstore/errors.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"

namespace certstore {
namespace {

// Far above any key or chain; keeps sizes within BIO's int lengths.
constexpr size_t kMaxPemBytes = size_t{1} << 24;

absl::StatusOr<std::string> EncodePublicKey(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "cannot encode public key");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string AlgorithmOf(EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    return absl::StrCat("RSA-", EVP_PKEY_get_bits(pkey));
  }
  char group[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                     sizeof(group), &len) == 1) {
    absl::string_view name(group, len);
    if (name == "prime256v1") {
      return "EC-P256";
    }
    return absl::StrCat("EC-", name);
  }
  return "EC";
}

// A legacy (non-provider) copy of an RSA or EC key, or null.
UniqueEvpPkey LegacyCopy(EVP_PKEY* pkey) {
  UniqueEvpPkey legacy(EVP_PKEY_new());
  int ok = 0;
  if (legacy != nullptr && EVP_PKEY_is_a(pkey, "EC")) {
    EC_KEY* ec = EVP_PKEY_get1_EC_KEY(pkey);
    ok = ec != nullptr && EVP_PKEY_assign_EC_KEY(legacy.get(), ec);
    if (!ok) {
      EC_KEY_free(ec);
    }
  } else if (legacy != nullptr && EVP_PKEY_is_a(pkey, "RSA")) {
    RSA* rsa = EVP_PKEY_get1_RSA(pkey);
    ok = rsa != nullptr && EVP_PKEY_assign_RSA(legacy.get(), rsa);
    if (!ok) {
      RSA_free(rsa);
    }
  }
  if (!ok) {
    ClearOpenSslErrors();
    return nullptr;
  }
  return legacy;
}

// An in-process key over an OpenSSL EVP_PKEY.
class SoftwareKey final : public Key {
 public:
  // `public_key_der`: the key's SubjectPublicKeyInfo when the caller read it
  // already (from the key's PKCS#8); empty: encoded on first use.
  SoftwareKey(UniqueEvpPkey pkey, std::string public_key_der)
      : pkey_(std::move(pkey)),
        algorithm_(AlgorithmOf(pkey_.get())),
        known_public_key_der_(std::move(public_key_der)) {}

  absl::StatusOr<std::string> Sign(absl::string_view data) const override {
    UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
    size_t sig_len = 0;
    if (ctx == nullptr ||
        EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                           pkey_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                       reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) != 1) {
      return OpenSslError(absl::StatusCode::kFailedPrecondition,
                          "software key cannot sign");
    }
    std::string sig(sig_len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(&sig[0]),
                       &sig_len,
                       reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) != 1) {
      return OpenSslError(absl::StatusCode::kFailedPrecondition,
                          "software key cannot sign");
    }
    sig.resize(sig_len);
    return sig;
  }

  // Read from the PKCS#8 the key came from, or else encoded on first use (a
  // TLS handshake never needs it) through the legacy encoder: i2d_PUBKEY
  // costs as much as the key's decode (≈ 17-37 µs). Empty if encoding
  // fails: it then matches no certificate.
  const std::string& public_key_der() const override {
    if (!known_public_key_der_.empty()) {
      return known_public_key_der_;
    }
    absl::call_once(public_key_once_, [this] {
      UniqueEvpPkey legacy = LegacyCopy(pkey_.get());
      absl::StatusOr<std::string> der =
          EncodePublicKey(legacy != nullptr ? legacy.get() : pkey_.get());
      if (der.ok()) {
        public_key_der_ = *std::move(der);
      }
      ClearOpenSslErrors();
    });
    return public_key_der_;
  }
  EVP_PKEY* evp_pkey() const override { return pkey_.get(); }
  std::string algorithm() const override { return algorithm_; }
  std::string location() const override { return "software"; }

  absl::StatusOr<std::string> ExportPkcs8Der() const override {
    // EVP_PKEY2PKCS8: i2d_PrivateKey would write PKCS#1 / SEC1 instead; on a
    // legacy copy it runs the old ASN.1 code (8 vs 80 us).
    UniqueEvpPkey legacy = LegacyCopy(pkey_.get());
    PKCS8_PRIV_KEY_INFO* p8 =
        EVP_PKEY2PKCS8(legacy != nullptr ? legacy.get() : pkey_.get());
    unsigned char* der = nullptr;
    int len = p8 != nullptr ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (len <= 0) {
      return OpenSslError(absl::StatusCode::kInternal,
                          "cannot encode private key as PKCS#8");
    }
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_clear_free(der, static_cast<size_t>(len));
    return out;
  }

 private:
  UniqueEvpPkey pkey_;
  std::string algorithm_;
  const std::string known_public_key_der_;
  mutable absl::once_flag public_key_once_;
  mutable std::string public_key_der_;
};

bool HasPrivatePart(EVP_PKEY* pkey) {
  BIGNUM* secret = nullptr;
  const char* param = EVP_PKEY_is_a(pkey, "RSA") ? OSSL_PKEY_PARAM_RSA_D
                                                 : OSSL_PKEY_PARAM_PRIV_KEY;
  if (EVP_PKEY_get_bn_param(pkey, param, &secret) != 1) {
    ClearOpenSslErrors();
    return false;
  }
  BN_clear_free(secret);
  return true;
}

absl::StatusOr<std::shared_ptr<const Key>> WrapOwned(
    UniqueEvpPkey pkey, std::string public_key_der = "") {
  if (!EVP_PKEY_is_a(pkey.get(), "RSA") && !EVP_PKEY_is_a(pkey.get(), "EC")) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported key type ",
                     EVP_PKEY_get0_type_name(pkey.get())
                         ? EVP_PKEY_get0_type_name(pkey.get())
                         : "(unknown)",
                     " (expected RSA or EC)"));
  }
  if (!HasPrivatePart(pkey.get())) {
    return absl::InvalidArgumentError(
        "key has no private part (a public key cannot sign)");
  }
  return std::shared_ptr<const Key>(std::make_shared<SoftwareKey>(
      std::move(pkey), std::move(public_key_der)));
}

// One narrowed decoder per thread and key type, created once: OpenSSL 3.0's
// generic decoder setup dominates a key decode otherwise (docs/platform.md).
class Pkcs8Decoder {
 public:
  explicit Pkcs8Decoder(const char* key_type)
      : ctx_(OSSL_DECODER_CTX_new_for_pkey(&out_, "DER", "PrivateKeyInfo",
                                           key_type, EVP_PKEY_KEYPAIR, nullptr,
                                           nullptr)) {}
  ~Pkcs8Decoder() { OSSL_DECODER_CTX_free(ctx_); }
  Pkcs8Decoder(const Pkcs8Decoder&) = delete;
  Pkcs8Decoder& operator=(const Pkcs8Decoder&) = delete;

  UniqueEvpPkey Decode(absl::string_view der) {
    if (ctx_ == nullptr) {
      return nullptr;
    }
    out_ = nullptr;
    auto* data = reinterpret_cast<const unsigned char*>(der.data());
    size_t len = der.size();
    if (OSSL_DECODER_from_data(ctx_, &data, &len) != 1 || len != 0) {
      EVP_PKEY_free(out_);
      out_ = nullptr;
      return nullptr;
    }
    UniqueEvpPkey result(out_);
    out_ = nullptr;
    return result;
  }

 private:
  EVP_PKEY* out_ = nullptr;
  OSSL_DECODER_CTX* ctx_;
};

UniqueEvpPkey DecodePkcs8(absl::string_view der, KeyTypeHint hint) {
  switch (hint) {
    case KeyTypeHint::kRsa: {
      thread_local Pkcs8Decoder decoder("RSA");
      return decoder.Decode(der);
    }
    case KeyTypeHint::kEc: {
      thread_local Pkcs8Decoder decoder("EC");
      return decoder.Decode(der);
    }
    case KeyTypeHint::kAuto:
      break;
  }
  auto* data = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* pkey =
      d2i_AutoPrivateKey(nullptr, &data, static_cast<long>(der.size()));
  if (pkey != nullptr &&
      data != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    EVP_PKEY_free(pkey);
    return nullptr;
  }
  return UniqueEvpPkey(pkey);
}

}  // namespace

absl::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kRsa2048:
      return "RSA-2048";
    case KeyType::kEcP256:
      return "EC-P256";
  }
  return "unknown";
}

absl::StatusOr<std::shared_ptr<const Key>> GenerateSoftwareKey(
    const KeySpec& spec) {
  UniqueEvpPkey pkey;
  switch (spec.type) {
    case KeyType::kRsa2048:
      pkey.reset(EVP_RSA_gen(2048));
      break;
    case KeyType::kEcP256:
      pkey.reset(EVP_EC_gen("P-256"));
      break;
  }
  if (pkey == nullptr) {
    return OpenSslError(
        absl::StatusCode::kInternal,
        absl::StrCat("cannot generate ", KeyTypeName(spec.type), " key"));
  }
  return WrapOwned(std::move(pkey));
}

absl::StatusOr<std::shared_ptr<const Key>> SoftwareKeyFromEvp(EVP_PKEY* pkey) {
  if (pkey == nullptr) {
    return absl::InvalidArgumentError("null EVP_PKEY");
  }
  if (EVP_PKEY_up_ref(pkey) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "EVP_PKEY_up_ref");
  }
  return WrapOwned(UniqueEvpPkey(pkey));
}

namespace {

// An EC key file carries its public point beside the scalar, and OpenSSL
// takes it as written: a point that is not the scalar's would be the public
// key certificates are matched against while signatures come from another
// key. RSA keys hold no second copy to disagree with.
absl::Status CheckEcKeyPair(EVP_PKEY* pkey) {
  if (!EVP_PKEY_is_a(pkey, "EC")) {
    return absl::OkStatus();
  }
  UniqueEvpPkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (check == nullptr || EVP_PKEY_pairwise_check(check.get()) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "EC private key's public point is not the one its "
                        "private scalar gives (damaged or forged key)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Key>> KeyFromPkcs8Der(
    absl::string_view der, KeyTypeHint hint, bool check_pair) {
  UniqueEvpPkey pkey = DecodePkcs8(der, hint);
  if (pkey == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("private key is not valid PKCS#8 DER (",
                                     der.size(), " bytes)"));
  }
  if (check_pair) {
    CERTSTORE_RETURN_IF_ERROR(CheckEcKeyPair(pkey.get()));
  }
  // What OpenSSL decoded is well-formed PKCS#8, so its public parts are
  // readable; an EC key written without its publicKey field falls back to
  // encoding.
  absl::StatusOr<std::string> public_key =
      internal::PublicKeyInfoFromPkcs8(der);
  return WrapOwned(std::move(pkey),
                   public_key.ok() ? *std::move(public_key) : std::string());
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Key>> SoftwareKeyFromPkcs8Der(
    absl::string_view der, KeyTypeHint hint) {
  return KeyFromPkcs8Der(der, hint, /*check_pair=*/true);
}

namespace internal {

absl::StatusOr<std::shared_ptr<const Key>> StoredSoftwareKeyFromPkcs8Der(
    absl::string_view der, KeyTypeHint hint) {
  return KeyFromPkcs8Der(der, hint, /*check_pair=*/false);
}

}  // namespace internal

absl::StatusOr<std::shared_ptr<const Key>> CreateSoftwareKeyFor(
    absl::string_view store, absl::string_view alias, const KeySpec& spec) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(store, "CreateKey", ""));
  }
  absl::StatusOr<std::shared_ptr<const Key>> key = GenerateSoftwareKey(spec);
  if (!key.ok()) {
    return WithContext(key.status(), OpContext(store, "CreateKey", alias));
  }
  return key;
}

absl::StatusOr<std::shared_ptr<const Key>> SoftwareKeyFromPem(
    absl::string_view pem) {
  if (pem.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("PEM input of ", pem.size(), " bytes is too large"));
  }
  UniqueBio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // A null passphrase callback that refuses: encrypted PEM fails instead of
  // prompting on the terminal.
  auto no_passphrase = [](char*, int, int, void*) -> int { return -1; };
  UniqueEvpPkey pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (pkey == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "no usable PEM private key (missing, damaged or "
                        "encrypted)");
  }
  CERTSTORE_RETURN_IF_ERROR(CheckEcKeyPair(pkey.get()));
  return WrapOwned(std::move(pkey));
}

absl::StatusOr<std::string> KeyToPem(const Key& key) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string der, key.ExportPkcs8Der());
  UniqueBio bio(BIO_new(BIO_s_mem()));
  auto* data = reinterpret_cast<const unsigned char*>(der.data());
  int ok = PEM_write_bio(bio.get(), "PRIVATE KEY", "", data,
                         static_cast<long>(der.size()));
  OPENSSL_cleanse(&der[0], der.size());
  if (ok <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "cannot write PEM key");
  }
  char* out = nullptr;
  long len = BIO_get_mem_data(bio.get(), &out);
  return std::string(out, static_cast<size_t>(len));
}

}  // namespace certstore

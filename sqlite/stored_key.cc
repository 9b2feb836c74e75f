// The legacy EC_KEY / RSA calls below are deprecated in OpenSSL 3.0 but are
// the only encoder-free way to PKCS#8 (see ExportForStorage).
#define OPENSSL_SUPPRESS_DEPRECATED

#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "certstore/errors.h"
#include "certstore/openssl_types.h"
#include "sqlite/stored_key_internal.h"

namespace certstore::sqlite_internal {
namespace {

using UniqueDecoderCtx =
    std::unique_ptr<OSSL_DECODER_CTX, OpenSslDeleter<OSSL_DECODER_CTX_free>>;

// A decoder context narrowed to DER PrivateKeyInfo of one key type, made
// once per thread and type (contexts are not shared between threads).
class NarrowedDecoder {
 public:
  explicit NarrowedDecoder(const char* key_type)
      : ctx_(OSSL_DECODER_CTX_new_for_pkey(&out_, "DER", "PrivateKeyInfo",
                                           key_type, EVP_PKEY_KEYPAIR, nullptr,
                                           nullptr)) {}

  UniqueEvpPkey Decode(absl::string_view der) {
    out_ = nullptr;
    auto* data = reinterpret_cast<const unsigned char*>(der.data());
    size_t left = der.size();
    const bool ok = ctx_ != nullptr &&
                    OSSL_DECODER_from_data(ctx_.get(), &data, &left) == 1 &&
                    left == 0;
    UniqueEvpPkey pkey(out_);
    out_ = nullptr;
    return ok ? std::move(pkey) : nullptr;
  }

 private:
  EVP_PKEY* out_ = nullptr;  // where the context writes; declared first
  UniqueDecoderCtx ctx_;
};

UniqueEvpPkey Decode(absl::string_view der, absl::string_view key_type) {
  if (key_type == "RSA") {
    thread_local NarrowedDecoder rsa("RSA");
    return rsa.Decode(der);
  }
  thread_local NarrowedDecoder ec("EC");
  return ec.Decode(der);
}

class StoredKey final : public Key {
 public:
  StoredKey(UniqueEvpPkey pkey, std::string algorithm)
      : pkey_(std::move(pkey)), algorithm_(std::move(algorithm)) {}

  absl::StatusOr<std::string> Sign(absl::string_view data) const override {
    const Key* key = Software();
    if (key == nullptr) {
      return absl::FailedPreconditionError(software_.status().message());
    }
    return key->Sign(data);
  }

  const std::string& public_key_der() const override {
    static const std::string* const kNone = new std::string();
    const Key* key = Software();
    return key != nullptr ? key->public_key_der() : *kNone;
  }

  EVP_PKEY* evp_pkey() const override { return pkey_.get(); }
  std::string algorithm() const override { return algorithm_; }
  std::string location() const override { return "software"; }

  absl::StatusOr<std::string> ExportPkcs8Der() const override {
    const Key* key = Software();
    if (key == nullptr) {
      return software_.status();
    }
    return key->ExportPkcs8Der();
  }

 private:
  // The SoftwareKey over the same EVP_PKEY, made on first use.
  const Key* Software() const {
    absl::call_once(once_,
                    [this] { software_ = SoftwareKeyFromEvp(pkey_.get()); });
    return software_.ok() ? software_->get() : nullptr;
  }

  const UniqueEvpPkey pkey_;
  const std::string algorithm_;
  mutable absl::once_flag once_;
  mutable absl::StatusOr<std::shared_ptr<const Key>> software_;
};

// A legacy (non-provider) copy of `pkey`, whose PKCS#8 encoding runs the
// old ASN.1 code instead of OSSL_ENCODER discovery. Null if not RSA / EC.
UniqueEvpPkey LegacyCopy(EVP_PKEY* pkey) {
  UniqueEvpPkey legacy(EVP_PKEY_new());
  if (legacy == nullptr) {
    return nullptr;
  }
  if (EVP_PKEY_is_a(pkey, "EC")) {
    EC_KEY* ec = EVP_PKEY_get1_EC_KEY(pkey);
    if (ec == nullptr || EVP_PKEY_assign_EC_KEY(legacy.get(), ec) != 1) {
      EC_KEY_free(ec);
      return nullptr;
    }
  } else if (EVP_PKEY_is_a(pkey, "RSA")) {
    RSA* rsa = EVP_PKEY_get1_RSA(pkey);
    if (rsa == nullptr || EVP_PKEY_assign_RSA(legacy.get(), rsa) != 1) {
      RSA_free(rsa);
      return nullptr;
    }
  } else {
    return nullptr;
  }
  return legacy;
}

std::optional<std::string> LegacyPkcs8(EVP_PKEY* pkey) {
  UniqueEvpPkey legacy = LegacyCopy(pkey);
  PKCS8_PRIV_KEY_INFO* info =
      legacy != nullptr ? EVP_PKEY2PKCS8(legacy.get()) : nullptr;
  unsigned char* der = nullptr;
  const int len = info != nullptr ? i2d_PKCS8_PRIV_KEY_INFO(info, &der) : -1;
  PKCS8_PRIV_KEY_INFO_free(info);  // wipes the key it holds
  if (len <= 0) {
    ClearOpenSslErrors();
    return std::nullopt;
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_clear_free(der, static_cast<size_t>(len));
  return out;
}

}  // namespace

absl::StatusOr<std::string> ExportForStorage(const Key& key) {
  if (key.location() == "software" && key.evp_pkey() != nullptr) {
    if (std::optional<std::string> der = LegacyPkcs8(key.evp_pkey())) {
      return *std::move(der);
    }
  }
  return key.ExportPkcs8Der();
}

absl::StatusOr<std::shared_ptr<const Key>> DecodeStoredKey(
    absl::string_view pkcs8_der, const char* key_type, std::string algorithm) {
  UniqueEvpPkey pkey = Decode(pkcs8_der, key_type);
  if (pkey == nullptr) {
    return OpenSslError(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("private key is not valid ", key_type, " PKCS#8 DER (",
                     pkcs8_der.size(), " bytes)"));
  }
  return std::shared_ptr<const Key>(
      std::make_shared<StoredKey>(std::move(pkey), std::move(algorithm)));
}

}  // namespace certstore::sqlite_internal

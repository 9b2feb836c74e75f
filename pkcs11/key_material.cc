// Conversions between OpenSSL keys and PKCS#11 key attributes: the public
// key read back from the token, and software keys copied onto it.
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "pkcs11/pkcs11_key.h"

namespace certstore::pkcs11_internal {
namespace {

using UniqueBn = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_clear_free>>;
using UniqueParamBld =
    std::unique_ptr<OSSL_PARAM_BLD, OpenSslDeleter<OSSL_PARAM_BLD_free>>;
using UniqueParams =
    std::unique_ptr<OSSL_PARAM, OpenSslDeleter<OSSL_PARAM_free>>;
using UniqueObject =
    std::unique_ptr<ASN1_OBJECT, OpenSslDeleter<ASN1_OBJECT_free>>;
using UniqueOctets =
    std::unique_ptr<ASN1_OCTET_STRING, OpenSslDeleter<ASN1_OCTET_STRING_free>>;

constexpr size_t kIdBytes = 16;

UniqueBn BnFrom(absl::string_view bytes) {
  return UniqueBn(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                static_cast<int>(bytes.size()), nullptr));
}

std::string BnBytes(const BIGNUM* bn, int width = 0) {
  const int len = width > 0 ? width : BN_num_bytes(bn);
  std::string out(static_cast<size_t>(len), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len);
  return out;
}

absl::StatusOr<std::string> SpkiFromParams(const char* type,
                                           OSSL_PARAM_BLD* bld) {
  UniqueParams params(OSSL_PARAM_BLD_to_param(bld));
  UniqueEvpPkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (params == nullptr || ctx == nullptr ||
      EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) !=
          1) {
    return OpenSslError(absl::StatusCode::kDataLoss,
                        "token public key attributes do not form a key");
  }
  UniqueEvpPkey owned(pkey);
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(owned.get(), &der);
  if (len <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "i2d_PUBKEY");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> RsaSpki(RawToken& token, CK_OBJECT_HANDLE key)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu()) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string n, token.Attribute(key, CKA_MODULUS));
  CERTSTORE_ASSIGN_OR_RETURN(std::string e,
                             token.Attribute(key, CKA_PUBLIC_EXPONENT));
  UniqueParamBld bld(OSSL_PARAM_BLD_new());
  UniqueBn bn_n = BnFrom(n);
  UniqueBn bn_e = BnFrom(e);
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) !=
          1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) !=
          1) {
    return OpenSslError(absl::StatusCode::kInternal, "RSA public params");
  }
  return SpkiFromParams("RSA", bld.get());
}

absl::StatusOr<std::string> EcSpki(RawToken& token, CK_OBJECT_HANDLE pub)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu()) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string params,
                             token.Attribute(pub, CKA_EC_PARAMS));
  CERTSTORE_ASSIGN_OR_RETURN(std::string point,
                             token.Attribute(pub, CKA_EC_POINT));
  const auto* p = reinterpret_cast<const unsigned char*>(params.data());
  UniqueObject oid(
      d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(params.size())));
  const char* group = oid ? OBJ_nid2sn(OBJ_obj2nid(oid.get())) : nullptr;
  if (group == nullptr) {
    return absl::DataLossError("CKA_EC_PARAMS is not a named curve");
  }
  // CKA_EC_POINT is a DER OCTET STRING holding the point.
  p = reinterpret_cast<const unsigned char*>(point.data());
  UniqueOctets octets(
      d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(point.size())));
  std::string raw = octets
                        ? std::string(reinterpret_cast<const char*>(
                                          ASN1_STRING_get0_data(octets.get())),
                                      ASN1_STRING_length(octets.get()))
                        : point;
  UniqueParamBld bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                      group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                       raw.data(), raw.size()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "EC public params");
  }
  return SpkiFromParams("EC", bld.get());
}

absl::StatusOr<std::string> BnParam(EVP_PKEY* pkey, const char* name,
                                    int width = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("key lacks ", name));
  }
  UniqueBn owned(bn);
  return BnBytes(owned.get(), width);
}

absl::Status AddRsaParts(EVP_PKEY* pkey, Template& priv, Template& pub) {
  static constexpr std::pair<const char*, CK_ATTRIBUTE_TYPE> kParts[] = {
      {OSSL_PKEY_PARAM_RSA_N, CKA_MODULUS},
      {OSSL_PKEY_PARAM_RSA_E, CKA_PUBLIC_EXPONENT},
      {OSSL_PKEY_PARAM_RSA_D, CKA_PRIVATE_EXPONENT},
      {OSSL_PKEY_PARAM_RSA_FACTOR1, CKA_PRIME_1},
      {OSSL_PKEY_PARAM_RSA_FACTOR2, CKA_PRIME_2},
      {OSSL_PKEY_PARAM_RSA_EXPONENT1, CKA_EXPONENT_1},
      {OSSL_PKEY_PARAM_RSA_EXPONENT2, CKA_EXPONENT_2},
      {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, CKA_COEFFICIENT},
  };
  priv.AddUlong(CKA_KEY_TYPE, CKK_RSA);
  pub.AddUlong(CKA_KEY_TYPE, CKK_RSA);
  for (const auto& [name, type] : kParts) {
    CERTSTORE_ASSIGN_OR_RETURN(std::string value, BnParam(pkey, name));
    priv.Add(type, value);
    if (type == CKA_MODULUS || type == CKA_PUBLIC_EXPONENT) {
      pub.Add(type, value);
    }
    OPENSSL_cleanse(value.data(), value.size());
  }
  return absl::OkStatus();
}

absl::Status AddEcParts(EVP_PKEY* pkey, Template& priv, Template& pub) {
  char group[64] = {0};
  size_t group_len = 0;
  unsigned char point[256];
  size_t point_len = 0;
  const int nid =
      EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                     sizeof(group), &group_len) == 1
          ? OBJ_sn2nid(group)
          : NID_undef;
  UniqueObject oid(nid != NID_undef ? OBJ_nid2obj(nid) : nullptr);
  unsigned char* params = nullptr;
  const int params_len = oid ? i2d_ASN1_OBJECT(oid.get(), &params) : -1;
  UniqueOctets octets(ASN1_OCTET_STRING_new());
  unsigned char* point_der = nullptr;
  int point_der_len = -1;
  if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point,
                                      sizeof(point), &point_len) == 1 &&
      octets != nullptr &&
      ASN1_OCTET_STRING_set(octets.get(), point, static_cast<int>(point_len)) ==
          1) {
    point_der_len = i2d_ASN1_OCTET_STRING(octets.get(), &point_der);
  }
  absl::Status status;
  if (params_len <= 0 || point_der_len <= 0) {
    status = OpenSslError(absl::StatusCode::kInvalidArgument,
                          "EC key has no named curve or public point");
  } else {
    const absl::string_view params_view(reinterpret_cast<char*>(params),
                                        params_len);
    priv.AddUlong(CKA_KEY_TYPE, CKK_EC).Add(CKA_EC_PARAMS, params_view);
    pub.AddUlong(CKA_KEY_TYPE, CKK_EC)
        .Add(CKA_EC_PARAMS, params_view)
        .Add(CKA_EC_POINT, absl::string_view(reinterpret_cast<char*>(point_der),
                                             point_der_len));
    absl::StatusOr<std::string> scalar = BnParam(
        pkey, OSSL_PKEY_PARAM_PRIV_KEY, (EVP_PKEY_get_bits(pkey) + 7) / 8);
    status = scalar.status();
    if (scalar.ok()) {
      priv.Add(CKA_VALUE, *scalar);
      OPENSSL_cleanse(scalar->data(), scalar->size());
    }
  }
  OPENSSL_free(params);
  OPENSSL_free(point_der);
  return status;
}

}  // namespace

absl::StatusOr<std::string> ReadPublicKeyDer(RawToken& token,
                                             CK_OBJECT_HANDLE private_handle,
                                             CK_OBJECT_HANDLE public_handle) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string type_bytes,
                             token.Attribute(private_handle, CKA_KEY_TYPE));
  CK_KEY_TYPE type = 0;
  if (type_bytes.size() != sizeof(type)) {
    return absl::DataLossError("CKA_KEY_TYPE has an unexpected size");
  }
  std::memcpy(&type, type_bytes.data(), sizeof(type));
  if (type == CKK_RSA) {
    return RsaSpki(token, private_handle);
  }
  if (type == CKK_EC && public_handle != 0) {
    return EcSpki(token, public_handle);
  }
  return absl::NotFoundError(
      absl::StrCat("no public key object for key type ", type));
}

absl::StatusOr<std::pair<TokenKeyRef, CK_OBJECT_HANDLE>> ImportKeyToToken(
    RawToken& token, absl::string_view alias, const Key& key) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string pkcs8, key.ExportPkcs8Der());
  absl::StatusOr<std::shared_ptr<const Key>> copy =
      SoftwareKeyFromPkcs8Der(pkcs8);
  OPENSSL_cleanse(pkcs8.data(), pkcs8.size());
  CERTSTORE_RETURN_IF_ERROR(copy.status());
  EVP_PKEY* pkey = (*copy)->evp_pkey();
  TokenKeyRef ref;
  ref.id.resize(kIdBytes);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(ref.id.data()), kIdBytes) !=
      1) {
    return OpenSslError(absl::StatusCode::kInternal, "RAND_bytes");
  }
  Template priv;
  Template pub;
  priv.AddUlong(CKA_CLASS, CKO_PRIVATE_KEY)
      .AddBool(CKA_TOKEN, true)
      .AddBool(CKA_PRIVATE, true)
      .AddBool(CKA_SENSITIVE, true)
      .AddBool(CKA_EXTRACTABLE, false)
      .AddBool(CKA_SIGN, true)
      .Add(CKA_ID, ref.id)
      .Add(CKA_LABEL, alias);
  pub.AddUlong(CKA_CLASS, CKO_PUBLIC_KEY)
      .AddBool(CKA_TOKEN, true)
      .AddBool(CKA_VERIFY, true)
      .Add(CKA_ID, ref.id)
      .Add(CKA_LABEL, alias);
  CERTSTORE_RETURN_IF_ERROR(EVP_PKEY_is_a(pkey, "RSA")
                                ? AddRsaParts(pkey, priv, pub)
                                : AddEcParts(pkey, priv, pub));
  CERTSTORE_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE public_handle, token.Create(pub));
  absl::StatusOr<CK_OBJECT_HANDLE> private_handle = token.Create(priv);
  if (!private_handle.ok()) {
    token.Destroy(public_handle).IgnoreError();
    return private_handle.status();
  }
  ref.private_handle = *private_handle;
  ref.public_key_der = key.public_key_der();
  ref.algorithm = key.algorithm();
  return std::make_pair(std::move(ref), public_handle);
}

std::string AlgorithmOfPublicKey(absl::string_view spki_der) {
  const auto* p = reinterpret_cast<const unsigned char*>(spki_der.data());
  UniqueEvpPkey pkey(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
  if (pkey == nullptr) {
    ClearOpenSslErrors();
    return "unknown";
  }
  if (EVP_PKEY_is_a(pkey.get(), "RSA")) {
    return absl::StrCat("RSA-", EVP_PKEY_get_bits(pkey.get()));
  }
  char group[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                     group, sizeof(group), &len) != 1) {
    return "EC";
  }
  const absl::string_view name(group, len);
  return name == "prime256v1" ? "EC-P256" : absl::StrCat("EC-", name);
}

std::string HexId(absl::string_view id) { return absl::BytesToHexString(id); }

}  // namespace certstore::pkcs11_internal

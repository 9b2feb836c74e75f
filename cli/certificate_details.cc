#include "cli/certificate_details.h"

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"

namespace certstore::cli {
namespace {

std::string GeneralNameText(const GENERAL_NAME* name) {
  int type = 0;
  const ASN1_STRING* value =
      static_cast<const ASN1_STRING*>(GENERAL_NAME_get0_value(name, &type));
  auto text = [](const ASN1_STRING* s) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
  };
  switch (type) {
    case GEN_DNS:
      return "DNS:" + text(value);
    case GEN_URI:
      return "URI:" + text(value);
    case GEN_EMAIL:
      return "email:" + text(value);
    case GEN_IPADD: {
      const unsigned char* ip = ASN1_STRING_get0_data(value);
      const int len = ASN1_STRING_length(value);
      if (len == 4) {
        return absl::StrCat("IP:", ip[0], ".", ip[1], ".", ip[2], ".", ip[3]);
      }
      std::string out = "IP:";
      for (int i = 0; i < len; i += 2) {
        absl::StrAppend(&out, i == 0 ? "" : ":",
                        absl::Hex((ip[i] << 8) | ip[i + 1]));
      }
      return out;
    }
    default:
      return "other";
  }
}

std::string PublicKeyText(X509* cert) {
  EVP_PKEY* pkey = X509_get0_pubkey(cert);
  if (pkey == nullptr) {
    return "unknown";
  }
  if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
    char curve[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, "group", curve, sizeof(curve),
                                       &len) == 1) {
      std::string name(curve, len);
      return name == "prime256v1" ? "EC-P256" : "EC-" + name;
    }
    return "EC";
  }
  return absl::StrCat(OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)), "-",
                      EVP_PKEY_get_bits(pkey));
}

}  // namespace

absl::StatusOr<CertificateDetails> DescribeCertificate(absl::string_view der,
                                                       absl::string_view what) {
  CERTSTORE_ASSIGN_OR_RETURN(UniqueX509 cert, DecodeCertificate(der, what));
  CertificateDetails details;
  details.subject = SubjectName(cert.get());
  details.issuer = IssuerName(cert.get());
  details.not_before = NotBefore(cert.get());
  details.not_after = NotAfter(cert.get());
  details.public_key = PublicKeyText(cert.get());
  details.signature_algorithm = OBJ_nid2ln(X509_get_signature_nid(cert.get()));
  details.is_ca = X509_check_ca(cert.get()) != 0;
  if (BIGNUM* bn =
          ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      details.serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    details.subject_alt_names.push_back(
        GeneralNameText(sk_GENERAL_NAME_value(names, i)));
  }
  GENERAL_NAMES_free(names);
  return details;
}

}  // namespace certstore::cli

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "emulator/internal/ca.h"

namespace certstore::emulator::internal {
namespace {

using UniqueBignum = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using UniqueExtension =
    std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION_free>>;

enum class Profile { kCa, kServer, kClient };

struct CertTemplate {
  const X509_NAME* subject = nullptr;
  EVP_PKEY* public_key = nullptr;
  X509* issuer = nullptr;  // null: self-signed
  EVP_PKEY* issuer_key = nullptr;
  absl::Time not_before;
  absl::Time not_after;
  Profile profile = Profile::kClient;
};

absl::Status Failed(absl::string_view what) {
  return OpenSslError(absl::StatusCode::kInternal,
                      absl::StrCat("emulator CA: ", what));
}

absl::Status SetRandomSerial(X509* cert) {
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) {
    return Failed("random serial");
  }
  serial[0] &= 0x7f;  // positive
  UniqueBignum bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  if (bn == nullptr ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return Failed("serial");
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid,
                          const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  UniqueExtension ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return Failed(absl::StrCat("extension ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

absl::Status AddProfileExtensions(X509* cert, X509* issuer, Profile profile) {
  CERTSTORE_RETURN_IF_ERROR(
      AddExtension(cert, issuer, NID_subject_key_identifier, "hash"));
  if (issuer != cert) {
    CERTSTORE_RETURN_IF_ERROR(AddExtension(
        cert, issuer, NID_authority_key_identifier, "keyid:always"));
  }
  if (profile == Profile::kCa) {
    CERTSTORE_RETURN_IF_ERROR(
        AddExtension(cert, issuer, NID_basic_constraints, "critical,CA:TRUE"));
    return AddExtension(cert, issuer, NID_key_usage,
                        "critical,keyCertSign,cRLSign");
  }
  CERTSTORE_RETURN_IF_ERROR(
      AddExtension(cert, issuer, NID_basic_constraints, "critical,CA:FALSE"));
  CERTSTORE_RETURN_IF_ERROR(
      AddExtension(cert, issuer, NID_key_usage, "critical,digitalSignature"));
  if (profile == Profile::kServer) {
    CERTSTORE_RETURN_IF_ERROR(AddExtension(cert, issuer, NID_subject_alt_name,
                                           "IP:127.0.0.1,DNS:localhost"));
    return AddExtension(cert, issuer, NID_ext_key_usage, "serverAuth");
  }
  return AddExtension(cert, issuer, NID_ext_key_usage, "clientAuth");
}

absl::StatusOr<UniqueX509> BuildCert(const CertTemplate& t) {
  UniqueX509 cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), 2) != 1) {
    return Failed("X509_new");
  }
  CERTSTORE_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  X509* issuer = t.issuer != nullptr ? t.issuer : cert.get();
  if (X509_set_subject_name(cert.get(), t.subject) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()),
                    absl::ToTimeT(t.not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()),
                    absl::ToTimeT(t.not_after)) == nullptr ||
      X509_set_pubkey(cert.get(), t.public_key) != 1) {
    return Failed("certificate fields");
  }
  CERTSTORE_RETURN_IF_ERROR(
      AddProfileExtensions(cert.get(), issuer, t.profile));
  if (X509_sign(cert.get(), t.issuer_key, EVP_sha256()) <= 0) {
    return Failed("X509_sign");
  }
  return cert;
}

UniqueX509Name CommonName(const std::string& cn) {
  UniqueX509Name name(X509_NAME_new());
  X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  return name;
}

std::string KeyTypeOf(EVP_PKEY* key) {
  const int bits = EVP_PKEY_get_bits(key);
  if (EVP_PKEY_is_a(key, "RSA")) {
    return absl::StrCat("RSA-", bits);
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t len = 0;
    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                   sizeof(group), &len);
    return std::string(absl::string_view(group) == "prime256v1"
                           ? "EC-P256"
                           : absl::StrCat("EC-", group));
  }
  return absl::StrCat(EVP_PKEY_get0_type_name(key), "-", bits);
}

std::string EntryValue(const X509_NAME_ENTRY* entry) {
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
  std::string out(reinterpret_cast<char*>(utf8), len > 0 ? len : 0);
  OPENSSL_free(utf8);
  return out;
}

std::string Quote(absl::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, 128)), "\"");
}

absl::Status CheckSubject(const X509_NAME* subject, absl::string_view client_id,
                          absl::string_view tenant_id) {
  const int count = X509_NAME_entry_count(subject);
  const std::string expected =
      absl::StrCat("expected exactly CN=", client_id, ", DC=", tenant_id);
  if (count != 2 || X509_NAME_ENTRY_set(X509_NAME_get_entry(subject, 0)) ==
                        X509_NAME_ENTRY_set(X509_NAME_get_entry(subject, 1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("CSR subject has ", count, " attribute(s) in ",
                     count == 2 ? "one RDN" : "total", "; ", expected));
  }
  bool seen_cn = false;
  bool seen_dc = false;
  for (int i = 0; i < 2; ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(subject, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    const std::string value = EntryValue(e);
    if (nid == NID_commonName && !seen_cn) {
      seen_cn = true;
      if (value != client_id) {
        return absl::InvalidArgumentError(
            absl::StrCat("CSR subject CN is ", Quote(value), "; expected ",
                         Quote(client_id), " (the clientId)"));
      }
    } else if (nid == NID_domainComponent && !seen_dc) {
      seen_dc = true;
      if (value != tenant_id) {
        return absl::InvalidArgumentError(
            absl::StrCat("CSR subject DC is ", Quote(value), "; expected ",
                         Quote(tenant_id), " (the tenantId)"));
      }
    }
  }
  if (!seen_cn || !seen_dc) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CSR subject lacks ", seen_cn ? "DC" : "CN", "; ", expected));
  }
  return absl::OkStatus();
}

}  // namespace

std::string CertificateDer(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  std::string out(reinterpret_cast<char*>(der), len > 0 ? len : 0);
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::unique_ptr<EmulatorCa>> EmulatorCa::Create() {
  std::unique_ptr<EmulatorCa> ca(new EmulatorCa());
  CERTSTORE_RETURN_IF_ERROR(ca->Init());
  return ca;
}

absl::Status EmulatorCa::Init() {
  const KeySpec ec{KeyType::kEcP256};
  CERTSTORE_ASSIGN_OR_RETURN(root_key_, GenerateSoftwareKey(ec));
  CERTSTORE_ASSIGN_OR_RETURN(intermediate_key_, GenerateSoftwareKey(ec));
  CERTSTORE_ASSIGN_OR_RETURN(server_key_, GenerateSoftwareKey(ec));
  unsigned char tag[3];
  RAND_bytes(tag, sizeof(tag));
  const std::string suffix = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(tag), sizeof(tag)));
  const absl::Time from = absl::FromUnixSeconds(946684800);    // 2000-01-01
  const absl::Time until = absl::FromUnixSeconds(4102444800);  // 2100-01-01
  UniqueX509Name root_name = CommonName("certstore-emulator root " + suffix);
  UniqueX509Name int_name =
      CommonName("certstore-emulator intermediate " + suffix);
  UniqueX509Name server_name = CommonName("127.0.0.1");
  CERTSTORE_ASSIGN_OR_RETURN(
      root_, BuildCert({root_name.get(), root_key_->evp_pkey(), nullptr,
                        root_key_->evp_pkey(), from, until, Profile::kCa}));
  CERTSTORE_ASSIGN_OR_RETURN(
      intermediate_,
      BuildCert({int_name.get(), intermediate_key_->evp_pkey(), root_.get(),
                 root_key_->evp_pkey(), from, until, Profile::kCa}));
  CERTSTORE_ASSIGN_OR_RETURN(
      server_, BuildCert({server_name.get(), server_key_->evp_pkey(),
                          intermediate_.get(), intermediate_key_->evp_pkey(),
                          from, until, Profile::kServer}));
  root_der_ = CertificateDer(root_.get());
  intermediate_der_ = CertificateDer(intermediate_.get());
  root_pem_ = DerChainToPem({root_der_});
  return absl::OkStatus();
}

absl::StatusOr<UniqueX509Req> EmulatorCa::CheckCsr(
    absl::string_view der, absl::string_view client_id,
    absl::string_view tenant_id) const {
  auto* p = reinterpret_cast<const unsigned char*>(der.data());
  UniqueX509Req csr(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (csr == nullptr ||
      p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError(absl::StrCat(
        "csr is not a DER PKCS#10 request (", der.size(), " bytes)"));
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(csr.get());
  if (key == nullptr || X509_REQ_verify(csr.get(), key) != 1) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError(
        "CSR signature does not verify with the CSR's public key");
  }
  const std::string type = KeyTypeOf(key);
  if (type != "RSA-2048" && type != "EC-P256") {
    return absl::InvalidArgumentError(absl::StrCat(
        "CSR key is ", type, "; expected RSA-2048 or EC-P256 key type"));
  }
  CERTSTORE_RETURN_IF_ERROR(
      CheckSubject(X509_REQ_get_subject_name(csr.get()), client_id, tenant_id));
  return csr;
}

absl::StatusOr<std::string> EmulatorCa::IssueLeaf(X509_REQ* csr,
                                                  absl::Time not_before,
                                                  absl::Time not_after) const {
  CERTSTORE_ASSIGN_OR_RETURN(
      UniqueX509 leaf,
      BuildCert({X509_REQ_get_subject_name(csr), X509_REQ_get0_pubkey(csr),
                 intermediate_.get(), intermediate_key_->evp_pkey(), not_before,
                 not_after, Profile::kClient}));
  return CertificateDer(leaf.get());
}

absl::StatusOr<std::shared_ptr<const Entry>> EmulatorCa::ServerEntry() const {
  EntryParts parts;
  parts.alias = "certstore-emulator-token-endpoint";
  parts.chain_der = {CertificateDer(server_.get()), intermediate_der_};
  parts.key = server_key_;
  parts.created_at = NotBefore(server_.get());
  return Entry::Create(std::move(parts));
}

}  // namespace certstore::emulator::internal

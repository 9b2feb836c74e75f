#include "certstore/chain.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certstore/errors.h"

namespace certstore {
namespace {

// Far above any chain; keeps sizes within BIO's int lengths.
constexpr size_t kMaxPemBytes = size_t{1} << 24;

absl::Time Asn1TimeToAbsl(const ASN1_TIME* t) {
  struct tm tm_value = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm_value) != 1) {
    return absl::InfinitePast();
  }
  return absl::FromTM(tm_value, absl::UTCTimeZone());
}

}  // namespace

std::string NameToString(const X509_NAME* name) {
  UniqueBio bio(BIO_new(BIO_s_mem()));
  // RFC 2253 order (most specific first), ", " between parts, UTF-8 kept.
  X509_NAME_print_ex(
      bio.get(), name, 0,
      (XN_FLAG_RFC2253 & ~XN_FLAG_SEP_MASK & ~ASN1_STRFLGS_ESC_MSB) |
          XN_FLAG_SEP_CPLUS_SPC);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string Thumbprint(absl::string_view cert_der) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(cert_der.data()),
         cert_der.size(), digest);
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::StatusOr<std::vector<std::string>> PemToDerChain(absl::string_view pem) {
  if (pem.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("PEM input of ", pem.size(), " bytes is too large"));
  }
  UniqueBio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<std::string> chain;
  for (int block = 0;; ++block) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      unsigned long err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM &&
          ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        ClearOpenSslErrors();  // clean end of input
        break;
      }
      return OpenSslError(absl::StatusCode::kInvalidArgument,
                          absl::StrCat("PEM block ", block, " is damaged"));
    }
    if (absl::string_view(name) == PEM_STRING_X509 ||
        absl::string_view(name) == PEM_STRING_X509_OLD) {
      chain.emplace_back(reinterpret_cast<char*>(data),
                         static_cast<size_t>(len));
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(data, static_cast<size_t>(len));
  }
  if (chain.empty()) {
    return absl::InvalidArgumentError("no CERTIFICATE block in PEM input");
  }
  return chain;
}

std::string DerChainToPem(const std::vector<std::string>& chain_der) {
  UniqueBio bio(BIO_new(BIO_s_mem()));
  for (const std::string& der : chain_der) {
    PEM_write_bio(bio.get(), PEM_STRING_X509, "",
                  reinterpret_cast<const unsigned char*>(der.data()),
                  static_cast<long>(der.size()));
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<UniqueX509> DecodeCertificate(absl::string_view der,
                                             absl::string_view what) {
  auto* p = reinterpret_cast<const unsigned char*>(der.data());
  UniqueX509 cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(what, " is not a DER certificate (",
                                     der.size(), " bytes)"));
  }
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ",
        der.size() -
            static_cast<size_t>(
                p - reinterpret_cast<const unsigned char*>(der.data())),
        " trailing bytes after the certificate"));
  }
  return cert;
}

absl::Time NotBefore(const X509* cert) {
  return Asn1TimeToAbsl(X509_get0_notBefore(cert));
}

absl::Time NotAfter(const X509* cert) {
  return Asn1TimeToAbsl(X509_get0_notAfter(cert));
}

absl::StatusOr<std::string> PublicKeyDer(const X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len <= 0) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "cannot encode the certificate's public key");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string SubjectName(const X509* cert) {
  return NameToString(X509_get_subject_name(cert));
}

std::string IssuerName(const X509* cert) {
  return NameToString(X509_get_issuer_name(cert));
}

}  // namespace certstore

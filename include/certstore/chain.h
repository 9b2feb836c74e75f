/// \file
/// Certificate chain helpers: PEM <-> DER, decoding, thumbprints.
#ifndef CERTSTORE_CHAIN_H_
#define CERTSTORE_CHAIN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/export.h"
#include "certstore/openssl_types.h"

namespace certstore {

/// The `x5t#S256` thumbprint: base64url (no padding) of SHA-256 of the DER.
CERTSTORE_EXPORT std::string Thumbprint(absl::string_view cert_der);

/// Extracts the DER of every CERTIFICATE block of `pem`, in order, without
/// decoding them. InvalidArgument when there is none or a block is damaged.
/// Other blocks (keys) are skipped.
CERTSTORE_EXPORT absl::StatusOr<std::vector<std::string>> PemToDerChain(
    absl::string_view pem);

/// Encodes DER certificates as concatenated CERTIFICATE PEM blocks.
CERTSTORE_EXPORT std::string DerChainToPem(
    const std::vector<std::string>& chain_der);

/// Decodes one DER certificate. InvalidArgument names `what` and the cause;
/// trailing bytes after the certificate are refused.
CERTSTORE_EXPORT absl::StatusOr<UniqueX509> DecodeCertificate(
    absl::string_view der, absl::string_view what);

/// Validity window of a decoded certificate.
CERTSTORE_EXPORT absl::Time NotBefore(const X509* cert);
CERTSTORE_EXPORT absl::Time NotAfter(const X509* cert);

/// The certificate's public key as DER SubjectPublicKeyInfo.
CERTSTORE_EXPORT absl::StatusOr<std::string> PublicKeyDer(const X509* cert);

/// A name as one line, RFC 2253 order: "CN=app, DC=tenant".
CERTSTORE_EXPORT std::string NameToString(const X509_NAME* name);
/// Subject / issuer of a certificate, as NameToString.
CERTSTORE_EXPORT std::string SubjectName(const X509* cert);
CERTSTORE_EXPORT std::string IssuerName(const X509* cert);

}  // namespace certstore

#endif  // CERTSTORE_CHAIN_H_

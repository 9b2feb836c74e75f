// Reads what a stored entry needs from its leaf certificate's DER without
// decoding it as an X509 (d2i_X509 costs 0.1-0.3 ms on OpenSSL 3.0; this
// walk ~1 µs). Project-internal (Entry, the PEM directory store).
#ifndef CERTSTORE_API_INTERNAL_LEAF_DER_H_
#define CERTSTORE_API_INTERNAL_LEAF_DER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/internal/internal_export.h"
#include "certstore/backend_author.h"
#include "certstore/entry.h"

namespace certstore::internal {

struct LeafDer {
  LeafFacts facts;             // x5t#S256, notBefore, notAfter
  std::string public_key_der;  // subjectPublicKeyInfo, as encoded
};

// The leaf's facts and public key, from the outer structure of the
// certificate (RFC 5280 §4.1). InvalidArgument when `cert_der` does not
// have a certificate's shape; it does not check signatures, extensions or
// anything else.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<LeafDer> ReadLeafDer(
    absl::string_view cert_der);

// What ReadLeafDer accepts, without hashing or copying anything: OK or the
// same InvalidArgument.
CERTSTORE_INTERNAL_EXPORT absl::Status CheckCertificateShape(
    absl::string_view cert_der);

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_LEAF_DER_H_

// Reads what certstore needs from DER without OpenSSL's decoders and
// encoders, which cost 15-300 µs each on OpenSSL 3.0 where these walks take
// about 1 µs: a stored entry's facts from its leaf certificate, and a
// software key's public key from its PKCS#8. Project-internal (Entry, keys,
// the PEM directory store).
#ifndef CERTSTORE_API_INTERNAL_DER_WALK_H_
#define CERTSTORE_API_INTERNAL_DER_WALK_H_

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

// The SubjectPublicKeyInfo DER of the key in an unencrypted PKCS#8
// PrivateKeyInfo, assembled from the public parts the structure holds: an
// RSA key's modulus and exponent, an EC key's publicKey field (RFC 5915),
// with the PKCS#8 algorithm identifier. These are the bytes OpenSSL's
// i2d_PUBKEY writes for that key, since it too encodes the stored public
// parts. InvalidArgument when the DER is not such a structure, or is an EC
// key without its publicKey field (callers then ask OpenSSL).
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<std::string> PublicKeyInfoFromPkcs8(
    absl::string_view pkcs8_der);

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_DER_WALK_H_

// Keys read back from the store. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_STORED_KEY_INTERNAL_H_
#define CERTSTORE_SQLITE_STORED_KEY_INTERNAL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/key.h"

namespace certstore::sqlite_internal {

// Decodes a PKCS#8 private key of the recorded type ("RSA" or "EC") with a
// decoder narrowed to it, and wraps it in a Key that builds everything
// derived from it (the public key DER, the SoftwareKey that signs and
// exports) on first use. A TLS handshake needs only evp_pkey(), so a lookup
// never pays OpenSSL 3.0's encoder for the public key, which costs about as
// much as the decode itself. `algorithm` is the recorded Key::algorithm().
// InvalidArgument when the DER is not a private key of that type.
absl::StatusOr<std::shared_ptr<const Key>> DecodeStoredKey(
    absl::string_view pkcs8_der, const char* key_type, std::string algorithm);

// The PKCS#8 DER of `key`, to be stored. An in-process key (location
// "software", RSA or EC) is encoded through OpenSSL's legacy ASN.1 path:
// byte for byte what Key::ExportPkcs8Der gives, ~10x cheaper on OpenSSL 3.0
// (8 vs 80 us), whose OSSL_ENCODER setup would otherwise be most of a Put's
// CPU. Any other key goes through ExportPkcs8Der (token keys refuse).
absl::StatusOr<std::string> ExportForStorage(const Key& key);

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_STORED_KEY_INTERNAL_H_

// What `certstore show` prints about a certificate: read once from DER.
#ifndef CERTSTORE_CLI_CERTIFICATE_DETAILS_H_
#define CERTSTORE_CLI_CERTIFICATE_DETAILS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace certstore::cli {

struct CertificateDetails {
  std::string subject;  // RFC 2253, e.g. "CN=app,DC=tenant"
  std::string issuer;
  std::string serial;                          // hex
  std::vector<std::string> subject_alt_names;  // "DNS:x", "URI:y", "IP:z"
  absl::Time not_before;
  absl::Time not_after;
  std::string public_key;           // "EC-P256", "RSA-2048"
  std::string signature_algorithm;  // "ecdsa-with-SHA256"
  bool is_ca = false;
};

// InvalidArgument naming `what` when the DER is not a certificate.
absl::StatusOr<CertificateDetails> DescribeCertificate(absl::string_view der,
                                                       absl::string_view what);

}  // namespace certstore::cli

#endif  // CERTSTORE_CLI_CERTIFICATE_DETAILS_H_

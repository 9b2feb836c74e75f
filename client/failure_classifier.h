// A failed token request in terms of the one classification of
// certstore/tls.h (ClassifyHandshakeFailure): a bad credential (evict and
// re-mint), maybe a bad credential (ask ProbeKey), or the network (retry,
// never evict). libcurl's codes are mapped here; the decision is there.
#ifndef CERTSTORE_CLIENT_FAILURE_CLASSIFIER_H_
#define CERTSTORE_CLIENT_FAILURE_CLASSIFIER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "api/internal/internal_export.h"
#include "certstore/tls.h"

namespace certstore {

// What the transport observed. Filled by the mTLS request code from curl's
// result, the TLS info callback and the HTTP response.
struct TransportOutcome {
  int curl_code = 0;  // CURLcode; 0 = the HTTP exchange completed
  RequestPhase phase = RequestPhase::kResponse;
  int tls_alert_received = -1;     // TLS alert description from the server
  bool local_sign_failed = false;  // our key failed in CertificateVerify
  long http_status = 0;            // 0: no HTTP response
  std::string oauth_error;         // "invalid_client", ...
  absl::optional<absl::Duration> retry_after;  // from a 429/503
};

// libcurl's code in transport-neutral terms (certstore/tls.h).
CERTSTORE_INTERNAL_EXPORT TransportError TransportErrorOfCurlCode(int code);
CERTSTORE_INTERNAL_EXPORT ConnectionOutcome
ToConnectionOutcome(const TransportOutcome& outcome);

// ClassifyHandshakeFailure, FailureStatusCode and PeerNotTrusted of the
// public API (certstore/tls.h) on a curl exchange's outcome: the token
// client and `certstore doctor` decide with the same function as any
// other mTLS caller. The status codes (docs/cli.md, "Exit codes"):
//   our key failed to sign                      FailedPrecondition (exit 6)
//   the server refused our credential           Unauthenticated (exit 4)
//   HTTP 403                                    PermissionDenied (exit 4)
//   the server's certificate does not verify    Unavailable (exit 5): our
//     trust in the server, never the key; fix --server-ca or wait
//   network, timeouts, 408, 429, 5xx            Unavailable (exit 5)
//   HTTP 400, 404, 405 and other 4xx            InvalidArgument (exit 2):
//     the request or the endpoint is misconfigured
//   anything else                               Unknown (exit 1)
CERTSTORE_INTERNAL_EXPORT FailureClass
ClassifyFailure(const TransportOutcome& outcome);
CERTSTORE_INTERNAL_EXPORT absl::StatusCode FailureStatusCode(
    const TransportOutcome& outcome);
CERTSTORE_INTERNAL_EXPORT bool ServerNotTrusted(
    const TransportOutcome& outcome);

}  // namespace certstore

#endif  // CERTSTORE_CLIENT_FAILURE_CLASSIFIER_H_

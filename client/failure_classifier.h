// The one place that decides what a failed token request means: a bad
// credential (evict and re-mint), maybe a bad credential (ask ProbeKey), or
// the network (retry, never evict). It looks at error values only.
#ifndef CERTSTORE_CLIENT_FAILURE_CLASSIFIER_H_
#define CERTSTORE_CLIENT_FAILURE_CLASSIFIER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "api/internal/internal_export.h"

namespace certstore {

// Where a request was when it failed.
enum class RequestPhase {
  kConnect,       // DNS / TCP
  kTlsHandshake,  // TLS, including the client's CertificateVerify signature
  kFirstRead,     // first read on a connection whose handshake just finished
                  // (TLS 1.3 delivers client-certificate rejections here)
  kResponse,      // later: request sent, waiting for / reading the response
};

absl::string_view RequestPhaseName(RequestPhase phase);

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

enum class FailureClass {
  kNone,  // success
  // The credential is bad: evict from every layer, mint, retry once.
  kCredential,
  // Ambiguous (a reset or an unexplained abort during the handshake or the
  // first read): a credential failure only if ProbeKey now fails.
  kCredentialIfProbeFails,
  // The network or the server is unwell: retry with backoff, never evict.
  kNetwork,
  // Neither retrying nor re-minting can help (bad request, bad config).
  kFatal,
};

CERTSTORE_INTERNAL_EXPORT absl::string_view FailureClassName(FailureClass c);

CERTSTORE_INTERNAL_EXPORT FailureClass
ClassifyFailure(const TransportOutcome& outcome);

// The code a failed exchange ends with — for the token client once it has
// retried and healed what it could, and for `certstore doctor` — so that
// both say the same (docs/cli.md, "Exit codes"):
//   our key failed to sign                      FailedPrecondition (exit 6)
//   the server refused our credential           Unauthenticated (exit 4)
//   HTTP 403                                    PermissionDenied (exit 4)
//   the server's certificate does not verify    Unavailable (exit 5): our
//     trust in the server, never the key; fix --server-ca or wait
//   network, timeouts, 408, 429, 5xx            Unavailable (exit 5)
//   HTTP 400, 404, 405 and other 4xx            InvalidArgument (exit 2):
//     the request or the endpoint is misconfigured
//   anything else                               Unknown (exit 1)
CERTSTORE_INTERNAL_EXPORT absl::StatusCode FailureStatusCode(
    const TransportOutcome& outcome);

// True when the outcome is the server's certificate failing our checks.
CERTSTORE_INTERNAL_EXPORT bool ServerNotTrusted(
    const TransportOutcome& outcome);

}  // namespace certstore

#endif  // CERTSTORE_CLIENT_FAILURE_CLASSIFIER_H_

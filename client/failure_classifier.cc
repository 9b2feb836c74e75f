#include "client/failure_classifier.h"

#include <curl/curl.h>

namespace certstore {

TransportError TransportErrorOfCurlCode(int code) {
  switch (code) {
    case CURLE_OK:
      return TransportError::kNone;
    case CURLE_SSL_CERTPROBLEM:
      return TransportError::kLocalCredential;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return TransportError::kPeerNotTrusted;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return TransportError::kNetwork;
    default:
      return TransportError::kOther;
  }
}

ConnectionOutcome ToConnectionOutcome(const TransportOutcome& outcome) {
  ConnectionOutcome out;
  out.error = TransportErrorOfCurlCode(outcome.curl_code);
  out.phase = outcome.phase;
  out.tls_alert_received = outcome.tls_alert_received;
  out.local_sign_failed = outcome.local_sign_failed;
  out.http_status = outcome.http_status;
  out.oauth_error = outcome.oauth_error;
  return out;
}

FailureClass ClassifyFailure(const TransportOutcome& outcome) {
  if (outcome.curl_code == CURLE_OK && outcome.http_status == 0) {
    return FailureClass::kFatal;  // an HTTP exchange without a status
  }
  return ClassifyHandshakeFailure(ToConnectionOutcome(outcome));
}

absl::StatusCode FailureStatusCode(const TransportOutcome& outcome) {
  if (outcome.curl_code == CURLE_OK && outcome.http_status == 0 &&
      !outcome.local_sign_failed) {
    return absl::StatusCode::kUnknown;
  }
  return certstore::FailureStatusCode(ToConnectionOutcome(outcome));
}

bool ServerNotTrusted(const TransportOutcome& outcome) {
  return PeerNotTrusted(ToConnectionOutcome(outcome));
}

}  // namespace certstore

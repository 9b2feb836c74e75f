#include "client/failure_classifier.h"

#include <curl/curl.h>

namespace certstore {
namespace {

// TLS alert descriptions (RFC 8446 section 6) that say "your certificate".
constexpr int kBadCertificate = 42;
constexpr int kUnsupportedCertificate = 43;
constexpr int kCertificateRevoked = 44;
constexpr int kCertificateExpired = 45;
constexpr int kCertificateUnknown = 46;
constexpr int kUnknownCa = 48;
constexpr int kAccessDenied = 49;
constexpr int kDecryptError = 51;
constexpr int kCertificateRequired = 116;

bool IsCredentialAlert(int alert) {
  switch (alert) {
    case kBadCertificate:
    case kUnsupportedCertificate:
    case kCertificateRevoked:
    case kCertificateExpired:
    case kCertificateUnknown:
    case kUnknownCa:
    case kAccessDenied:
    case kDecryptError:
    case kCertificateRequired:
      return true;
    default:
      return false;
  }
}

bool IsNetworkCurlCode(int code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

FailureClass ClassifyHttp(const TransportOutcome& outcome) {
  const long status = outcome.http_status;
  if (status >= 200 && status < 300) {
    return FailureClass::kNone;
  }
  if (outcome.oauth_error == "invalid_client" ||
      (status == 401 && outcome.oauth_error.empty())) {
    return FailureClass::kCredential;
  }
  if (status == 429 || status == 408 || status >= 500) {
    return FailureClass::kNetwork;
  }
  return FailureClass::kFatal;
}

}  // namespace

absl::string_view RequestPhaseName(RequestPhase phase) {
  switch (phase) {
    case RequestPhase::kConnect:
      return "connect";
    case RequestPhase::kTlsHandshake:
      return "TLS handshake";
    case RequestPhase::kFirstRead:
      return "first read after the TLS handshake";
    case RequestPhase::kResponse:
      return "response";
  }
  return "unknown";
}

absl::string_view FailureClassName(FailureClass c) {
  switch (c) {
    case FailureClass::kNone:
      return "none";
    case FailureClass::kCredential:
      return "credential";
    case FailureClass::kCredentialIfProbeFails:
      return "credential if ProbeKey fails";
    case FailureClass::kNetwork:
      return "network";
    case FailureClass::kFatal:
      return "fatal";
  }
  return "unknown";
}

FailureClass ClassifyFailure(const TransportOutcome& outcome) {
  if (outcome.curl_code == CURLE_OK) {
    return ClassifyHttp(outcome);
  }
  // Our own key failing to sign, or our chain failing to load, is the
  // clearest credential failure.
  if (outcome.local_sign_failed || outcome.curl_code == CURLE_SSL_CERTPROBLEM) {
    return FailureClass::kCredential;
  }
  const bool credential_phase = outcome.phase == RequestPhase::kTlsHandshake ||
                                outcome.phase == RequestPhase::kFirstRead;
  if (credential_phase && IsCredentialAlert(outcome.tls_alert_received)) {
    return FailureClass::kCredential;
  }
  // Otherwise the server's certificate does not verify against our trust
  // anchors (curl reports a received certificate_expired alert with the
  // same code, hence the alert check first): a configuration problem no
  // re-mint or retry can fix.
  if (outcome.curl_code == CURLE_PEER_FAILED_VERIFICATION ||
      outcome.curl_code == CURLE_SSL_CACERT_BADFILE) {
    return FailureClass::kFatal;
  }
  if (outcome.curl_code == CURLE_OPERATION_TIMEDOUT ||
      outcome.phase == RequestPhase::kConnect) {
    return FailureClass::kNetwork;
  }
  if (credential_phase) {
    // A reset or an unexplained abort while our certificate was in play:
    // only a failing ProbeKey makes it a credential failure, so plain
    // network resets never re-mint.
    return FailureClass::kCredentialIfProbeFails;
  }
  if (IsNetworkCurlCode(outcome.curl_code) ||
      outcome.curl_code == CURLE_RECV_ERROR ||
      outcome.curl_code == CURLE_SSL_CONNECT_ERROR) {
    return FailureClass::kNetwork;
  }
  return FailureClass::kFatal;
}

bool ServerNotTrusted(const TransportOutcome& outcome) {
  return (outcome.curl_code == CURLE_PEER_FAILED_VERIFICATION ||
          outcome.curl_code == CURLE_SSL_CACERT_BADFILE) &&
         !IsCredentialAlert(outcome.tls_alert_received);
}

absl::StatusCode FailureStatusCode(const TransportOutcome& outcome) {
  if (outcome.local_sign_failed) {
    return absl::StatusCode::kFailedPrecondition;
  }
  switch (ClassifyFailure(outcome)) {
    case FailureClass::kNone:
      return absl::StatusCode::kOk;
    case FailureClass::kCredential:
    case FailureClass::kCredentialIfProbeFails:
      return outcome.curl_code == CURLE_SSL_CERTPROBLEM
                 ? absl::StatusCode::kFailedPrecondition  // our chain/key
                 : absl::StatusCode::kUnauthenticated;
    case FailureClass::kNetwork:
      return absl::StatusCode::kUnavailable;
    case FailureClass::kFatal:
      break;
  }
  if (ServerNotTrusted(outcome)) {
    return absl::StatusCode::kUnavailable;
  }
  const long status = outcome.http_status;
  if (status == 401) {
    return absl::StatusCode::kUnauthenticated;  // e.g. invalid_token
  }
  if (status == 403) {
    return absl::StatusCode::kPermissionDenied;
  }
  if (status >= 400 && status < 500) {
    return absl::StatusCode::kInvalidArgument;
  }
  return absl::StatusCode::kUnknown;
}

}  // namespace certstore

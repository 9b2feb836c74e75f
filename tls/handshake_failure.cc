// ClassifyHandshakeFailure and the handshake trace that feeds it. The
// token client (client/failure_classifier.cc maps libcurl's codes onto a
// ConnectionOutcome), `certstore doctor` and HealingCall all decide here.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certstore/tls.h"

namespace certstore {
namespace {

bool IsCredentialAlert(int alert) {
  switch (alert) {
    case tls_alert::kBadCertificate:
    case tls_alert::kUnsupportedCertificate:
    case tls_alert::kCertificateRevoked:
    case tls_alert::kCertificateExpired:
    case tls_alert::kCertificateUnknown:
    case tls_alert::kUnknownCa:
    case tls_alert::kAccessDenied:
    case tls_alert::kDecryptError:
    case tls_alert::kCertificateRequired:
      return true;
    default:
      return false;
  }
}

FailureClass ClassifyHttp(const ConnectionOutcome& outcome) {
  const long status = outcome.http_status;
  if (status == 0 || (status >= 200 && status < 300)) {
    return FailureClass::kNone;  // no HTTP: the caller's protocol completed
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

// SSL ex_data slot of a connection's HandshakeTrace (owned, freed with the
// SSL), and SSL_CTX slot of the optional extra sink.
void FreeTrace(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<HandshakeTrace*>(ptr);
}

int TraceIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeTrace);
  return index;
}

int SinkIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

void Record(HandshakeTrace* trace, const SSL* ssl, int where, int ret) {
  if ((where & SSL_CB_LOOP) != 0 && SSL_get_state(ssl) == TLS_ST_CR_CERT_REQ) {
    trace->certificate_requested = true;
  }
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    trace->handshake_done = true;
  }
  if ((where & SSL_CB_ALERT) != 0) {
    const int description = ret & 0xff;
    if (description == 0) {
      return;  // close_notify says nothing
    }
    if ((where & SSL_CB_READ) != 0) {
      trace->alert_received = description;
    } else if (!trace->handshake_done) {
      trace->alert_sent = description;
    }
  }
}

void InfoCallback(const SSL* ssl, int where, int ret) {
  auto* trace =
      static_cast<HandshakeTrace*>(SSL_get_ex_data(ssl, TraceIndex()));
  if (trace == nullptr) {
    trace = new HandshakeTrace();
    SSL_set_ex_data(const_cast<SSL*>(ssl), TraceIndex(), trace);
  }
  Record(trace, ssl, where, ret);
  if (auto* sink = static_cast<HandshakeTrace*>(
          SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), SinkIndex()));
      sink != nullptr) {
    *sink = *trace;
  }
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

FailureClass ClassifyHandshakeFailure(const ConnectionOutcome& outcome) {
  if (outcome.error == TransportError::kNone) {
    return ClassifyHttp(outcome);
  }
  // Our own key failing to sign, or our chain failing to load, is the
  // clearest credential failure.
  if (outcome.local_sign_failed ||
      outcome.error == TransportError::kLocalCredential) {
    return FailureClass::kCredential;
  }
  const bool credential_phase = outcome.phase == RequestPhase::kTlsHandshake ||
                                outcome.phase == RequestPhase::kFirstRead;
  if (credential_phase && IsCredentialAlert(outcome.tls_alert_received)) {
    return FailureClass::kCredential;
  }
  // Otherwise the peer's certificate does not verify against our trust
  // anchors (a received certificate_expired alert can look the same to a
  // transport, hence the alert check first): a configuration problem no
  // re-mint or retry can fix.
  if (outcome.error == TransportError::kPeerNotTrusted) {
    return FailureClass::kFatal;
  }
  if (outcome.error == TransportError::kTimeout ||
      outcome.phase == RequestPhase::kConnect) {
    return FailureClass::kNetwork;
  }
  if (credential_phase) {
    // A reset or an unexplained abort while our certificate was in play:
    // only a failing ProbeKey makes it a credential failure, so plain
    // network resets never re-mint.
    return FailureClass::kCredentialIfProbeFails;
  }
  if (outcome.error == TransportError::kNetwork) {
    return FailureClass::kNetwork;
  }
  return FailureClass::kFatal;
}

bool PeerNotTrusted(const ConnectionOutcome& outcome) {
  return outcome.error == TransportError::kPeerNotTrusted &&
         !IsCredentialAlert(outcome.tls_alert_received);
}

absl::StatusCode FailureStatusCode(const ConnectionOutcome& outcome) {
  if (outcome.local_sign_failed) {
    return absl::StatusCode::kFailedPrecondition;
  }
  switch (ClassifyHandshakeFailure(outcome)) {
    case FailureClass::kNone:
      return absl::StatusCode::kOk;
    case FailureClass::kCredential:
    case FailureClass::kCredentialIfProbeFails:
      return outcome.error == TransportError::kLocalCredential
                 ? absl::StatusCode::kFailedPrecondition  // our chain/key
                 : absl::StatusCode::kUnauthenticated;
    case FailureClass::kNetwork:
      return absl::StatusCode::kUnavailable;
    case FailureClass::kFatal:
      break;
  }
  if (PeerNotTrusted(outcome)) {
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

void TraceHandshakes(SSL_CTX* ctx, HandshakeTrace* also_into) {
  TraceIndex();  // allocate the slot before any connection runs
  SSL_CTX_set_ex_data(ctx, SinkIndex(), also_into);
  SSL_CTX_set_info_callback(ctx, InfoCallback);
}

HandshakeTrace TraceOf(const SSL* ssl) {
  const auto* trace =
      static_cast<const HandshakeTrace*>(SSL_get_ex_data(ssl, TraceIndex()));
  return trace != nullptr ? *trace : HandshakeTrace{};
}

ConnectionOutcome DescribeSslFailure(const SSL* ssl, int ret) {
  ConnectionOutcome outcome;
  const HandshakeTrace trace = TraceOf(ssl);
  outcome.phase = trace.handshake_done || SSL_is_init_finished(ssl)
                      ? RequestPhase::kFirstRead
                      : RequestPhase::kTlsHandshake;
  outcome.tls_alert_received = trace.alert_received;
  outcome.local_sign_failed = trace.certificate_requested &&
                              trace.alert_sent == tls_alert::kInternalError;
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_NONE:
      outcome.error = TransportError::kNone;
      break;
    case SSL_ERROR_SSL:
      // We refused the peer's certificate: verification failed and the
      // alert that ended the handshake was ours.
      outcome.error = SSL_get_verify_result(ssl) != X509_V_OK &&
                              trace.alert_sent >= 0 && trace.alert_received < 0
                          ? TransportError::kPeerNotTrusted
                          : TransportError::kNetwork;
      break;
    default:  // SYSCALL (reset, EOF), ZERO_RETURN, WANT_* (a deadline)
      outcome.error = TransportError::kNetwork;
      break;
  }
  return outcome;
}

}  // namespace certstore

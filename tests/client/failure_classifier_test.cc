#include "client/failure_classifier.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <string>

namespace certstore {
namespace {

struct Case {
  std::string name;
  TransportOutcome outcome;
  FailureClass expected;
};

TransportOutcome Curl(int code, RequestPhase phase, int alert = -1) {
  TransportOutcome o;
  o.curl_code = code;
  o.phase = phase;
  o.tls_alert_received = alert;
  return o;
}

TransportOutcome Http(long status, std::string oauth_error = "") {
  TransportOutcome o;
  o.http_status = status;
  o.oauth_error = std::move(oauth_error);
  return o;
}

TransportOutcome LocalSignFailure() {
  TransportOutcome o =
      Curl(CURLE_SSL_CONNECT_ERROR, RequestPhase::kTlsHandshake);
  o.local_sign_failed = true;
  return o;
}

class ClassifierTable : public ::testing::TestWithParam<Case> {};

TEST_P(ClassifierTable, Classifies) {
  EXPECT_EQ(ClassifyFailure(GetParam().outcome), GetParam().expected)
      << FailureClassName(ClassifyFailure(GetParam().outcome));
}

constexpr auto kHs = RequestPhase::kTlsHandshake;
constexpr auto kRead = RequestPhase::kFirstRead;

INSTANTIATE_TEST_SUITE_P(
    Outcomes, ClassifierTable,
    ::testing::Values(
        Case{"Http200", Http(200), FailureClass::kNone},
        Case{"InvalidClient", Http(401, "invalid_client"),
             FailureClass::kCredential},
        Case{"InvalidClientOn400", Http(400, "invalid_client"),
             FailureClass::kCredential},
        Case{"Bare401", Http(401), FailureClass::kCredential},
        Case{"InvalidRequest", Http(400, "invalid_request"),
             FailureClass::kFatal},
        Case{"Http500", Http(500), FailureClass::kNetwork},
        Case{"Http503", Http(503), FailureClass::kNetwork},
        Case{"Http429", Http(429), FailureClass::kNetwork},
        Case{"Http404", Http(404), FailureClass::kFatal},
        Case{"LocalSignFailure", LocalSignFailure(), FailureClass::kCredential},
        Case{"AlertBadCertificate", Curl(CURLE_SSL_CONNECT_ERROR, kHs, 42),
             FailureClass::kCredential},
        Case{"AlertUnknownCa", Curl(CURLE_SSL_CONNECT_ERROR, kHs, 48),
             FailureClass::kCredential},
        Case{"AlertCertificateExpired", Curl(CURLE_SSL_CONNECT_ERROR, kHs, 45),
             FailureClass::kCredential},
        Case{"AlertDecryptError", Curl(CURLE_SSL_CONNECT_ERROR, kHs, 51),
             FailureClass::kCredential},
        Case{"AlertRevoked", Curl(CURLE_SSL_CONNECT_ERROR, kHs, 44),
             FailureClass::kCredential},
        Case{"Tls13CertificateRequiredAtFirstRead",
             Curl(CURLE_RECV_ERROR, kRead, 116), FailureClass::kCredential},
        Case{"Tls13BadCertificateAtFirstRead",
             Curl(CURLE_RECV_ERROR, kRead, 42), FailureClass::kCredential},
        Case{"ResetDuringHandshakeAsksTheProbe",
             Curl(CURLE_SSL_CONNECT_ERROR, kHs),
             FailureClass::kCredentialIfProbeFails},
        Case{"ResetAtFirstReadAsksTheProbe", Curl(CURLE_RECV_ERROR, kRead),
             FailureClass::kCredentialIfProbeFails},
        Case{"AlertInternalErrorAsksTheProbe",
             Curl(CURLE_SSL_CONNECT_ERROR, kHs, 80),
             FailureClass::kCredentialIfProbeFails},
        Case{"ConnectionRefused",
             Curl(CURLE_COULDNT_CONNECT, RequestPhase::kConnect),
             FailureClass::kNetwork},
        Case{"DnsFailure",
             Curl(CURLE_COULDNT_RESOLVE_HOST, RequestPhase::kConnect),
             FailureClass::kNetwork},
        Case{"TimeoutInHandshake", Curl(CURLE_OPERATION_TIMEDOUT, kHs),
             FailureClass::kNetwork},
        Case{"TimeoutWaitingForResponse",
             Curl(CURLE_OPERATION_TIMEDOUT, RequestPhase::kResponse),
             FailureClass::kNetwork},
        Case{"ResetLaterInResponse",
             Curl(CURLE_RECV_ERROR, RequestPhase::kResponse),
             FailureClass::kNetwork},
        Case{"CredentialAlertOutsideHandshakeIsNetwork",
             Curl(CURLE_RECV_ERROR, RequestPhase::kResponse, 42),
             FailureClass::kNetwork},
        Case{"ServerCertificateProblemIsFatal",
             Curl(CURLE_PEER_FAILED_VERIFICATION, kHs, -1),
             FailureClass::kFatal},
        Case{"Tls12CertificateExpiredAlertReportedAsPeerVerification",
             Curl(CURLE_PEER_FAILED_VERIFICATION, kHs, 45),
             FailureClass::kCredential},
        Case{"LocalCertificateProblemIsCredential",
             Curl(CURLE_SSL_CERTPROBLEM, kHs), FailureClass::kCredential}),
    [](const ::testing::TestParamInfo<Case>& param_info) {
      return param_info.param.name;
    });

TEST(FailureClassifierNames, AreReadable) {
  EXPECT_EQ(FailureClassName(FailureClass::kCredential), "credential");
  EXPECT_EQ(RequestPhaseName(RequestPhase::kFirstRead),
            "first read after the TLS handshake");
}

}  // namespace
}  // namespace certstore

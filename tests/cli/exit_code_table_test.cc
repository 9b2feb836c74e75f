// One verdict for the token client and `certstore doctor`: every row of
// the table (what the exchange looked like → status code → exit code) is
// pinned here, and the doctor's judgement of the same HTTP answers must
// give the same code. docs/cli.md, "Exit codes", is this table.
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "cli/endpoint_probe_internal.h"
#include "cli/exit_codes.h"
#include "client/failure_classifier.h"

namespace certstore::cli {
namespace {

struct Row {
  std::string name;
  TransportOutcome outcome;
  std::string body;  // an HTTP answer's body (doctor rows)
  absl::StatusCode code;
  int exit_code;
};

TransportOutcome Http(long status, std::string oauth_error = "") {
  TransportOutcome outcome;
  outcome.http_status = status;
  outcome.oauth_error = std::move(oauth_error);
  return outcome;
}

TransportOutcome Tls(int curl_code, int alert = -1, bool local_sign = false) {
  TransportOutcome outcome;
  outcome.curl_code = curl_code;
  outcome.phase = RequestPhase::kTlsHandshake;
  outcome.tls_alert_received = alert;
  outcome.local_sign_failed = local_sign;
  return outcome;
}

std::vector<Row> Table() {
  using C = absl::StatusCode;
  TransportOutcome refused;
  refused.curl_code = CURLE_COULDNT_CONNECT;
  refused.phase = RequestPhase::kConnect;
  return {
      {"InvalidClient", Http(401, "invalid_client"),
       R"({"error":"invalid_client"})", C::kUnauthenticated, 4},
      {"Bare401", Http(401), "", C::kUnauthenticated, 4},
      {"InvalidToken401", Http(401, "invalid_token"),
       R"({"error":"invalid_token"})", C::kUnauthenticated, 4},
      {"Forbidden403", Http(403, "access_denied"),
       R"({"error":"access_denied"})", C::kPermissionDenied, 4},
      {"BadRequest400", Http(400, "invalid_request"),
       R"({"error":"invalid_request"})", C::kInvalidArgument, 2},
      {"NotFound404", Http(404), "not found", C::kInvalidArgument, 2},
      {"MethodNotAllowed405", Http(405), "", C::kInvalidArgument, 2},
      {"Timeout408", Http(408), "", C::kUnavailable, 5},
      {"TooMany429", Http(429), "", C::kUnavailable, 5},
      {"Internal500", Http(500), "", C::kUnavailable, 5},
      {"Unavailable503", Http(503), "", C::kUnavailable, 5},
      {"ServerNotTrusted", Tls(CURLE_PEER_FAILED_VERIFICATION), "",
       C::kUnavailable, 5},
      {"OurKeyCannotSign", Tls(CURLE_SSL_CONNECT_ERROR, -1, true), "",
       C::kFailedPrecondition, 6},
      {"BadCertificateAlert", Tls(CURLE_SSL_CONNECT_ERROR, 42), "",
       C::kUnauthenticated, 4},
      {"UnknownCaAlert", Tls(CURLE_PEER_FAILED_VERIFICATION, 48), "",
       C::kUnauthenticated, 4},
      {"ConnectRefused", refused, "", C::kUnavailable, 5},
  };
}

TEST(ExitCodeTableTest, ClientVerdictAndExitCodeOfEveryRow) {
  for (const Row& row : Table()) {
    SCOPED_TRACE(row.name);
    const absl::StatusCode code = FailureStatusCode(row.outcome);
    EXPECT_EQ(code, row.code);
    EXPECT_EQ(ExitCodeFor(absl::Status(code, row.name)), row.exit_code);
  }
}

TEST(ExitCodeTableTest, DoctorJudgesEveryHttpAnswerTheSame) {
  for (const Row& row : Table()) {
    if (row.outcome.http_status == 0)
      continue;  // TLS rows: endpoint_probe_test
    SCOPED_TRACE(row.name);
    EndpointProbeReport report;
    const absl::Status judged = probe_internal::JudgeTokenResponse(
        static_cast<int>(row.outcome.http_status), row.body, &report);
    EXPECT_EQ(judged.code(), row.code) << judged;
    EXPECT_EQ(ExitCodeFor(judged), row.exit_code);
  }
}

}  // namespace
}  // namespace certstore::cli

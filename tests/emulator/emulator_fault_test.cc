// Every token fault observed from a real client (curl code, HTTP status,
// TLS alert), counted, applied to exactly N requests, and Stop() prompt
// with hung connections.
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/testing/status_matchers.h"
#include "emulator/emulator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/emulator/emulator_test_util.h"

namespace certstore::emulator::testing {
namespace {

using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::HasSubstr;

class FaultTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    auto emulator = Emulator::Start();
    ASSERT_OK(emulator);
    emulator_ = *std::move(emulator);
    binding_ = MintBinding(*emulator_);
  }

  // A fresh connection presenting the binding.
  HttpResult Request(absl::Duration timeout = absl::Seconds(10)) {
    ClientOptions options = WithBinding(*emulator_, binding_, GetParam());
    options.timeout = timeout;
    return Client(options).Token(*emulator_);
  }

  void Inject(FaultKind kind, int count = 1) {
    FaultSpec fault;
    fault.kind = kind;
    fault.count = count;
    ASSERT_OK(emulator_->InjectFault(fault));
  }

  std::unique_ptr<Emulator> emulator_;
  Binding binding_;
};

TEST_P(FaultTest, ResetDuringHandshakeAppliesToExactlyN) {
  Inject(FaultKind::kResetDuringHandshake, 2);
  for (int i = 0; i < 2; ++i) {
    HttpResult reset = Request();
    EXPECT_EQ(reset.curl, CURLE_SSL_CONNECT_ERROR) << reset.Describe();
    EXPECT_THAT(reset.curl_error, HasSubstr("reset"));
    EXPECT_TRUE(reset.tls_version.empty());  // never finished the handshake
  }
  EXPECT_EQ(Request().status, 200);
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.handshakes_failed, 2);
  EXPECT_EQ(counters.faults_applied, 2);
  EXPECT_EQ(counters.tokens_issued, 1);
}

TEST_P(FaultTest, EveryAlertArrivesAsSentAndIsCountedForTheLeaf) {
  for (int a = 0; a <= static_cast<int>(TlsAlert::kInternalError); ++a) {
    const auto alert = static_cast<TlsAlert>(a);
    SCOPED_TRACE(TlsAlertName(alert));
    FaultSpec fault;
    fault.kind = FaultKind::kTlsAlert;
    fault.alert = alert;
    ASSERT_OK(emulator_->InjectFault(fault));
    HttpResult result = Request();
    EXPECT_THAT(result.alerts_received, Contains(TlsAlertNumber(alert)))
        << result.Describe();
    // TLS 1.3 delivers the alert at the first read after the handshake.
    // curl maps a TLS 1.2 certificate_expired alert to 60, like a failed
    // verification of the server.
    const std::vector<CURLcode> expected =
        GetParam() == TLS1_3_VERSION
            ? std::vector<CURLcode>{CURLE_RECV_ERROR}
            : std::vector<CURLcode>{CURLE_SSL_CONNECT_ERROR,
                                    CURLE_PEER_FAILED_VERIFICATION};
    EXPECT_THAT(result.curl, ::testing::AnyOfArray(expected))
        << result.Describe();
    EXPECT_EQ(
        emulator_->GetCounters().For(binding_.thumbprint).handshakes_failed,
        a + 1);
  }
  EXPECT_EQ(Request().status, 200);
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 1);
}

TEST_P(FaultTest, CloseAfterHandshakeResetsAtTheFirstRead) {
  Inject(FaultKind::kCloseAfterHandshake);
  HttpResult result = Request();
  EXPECT_THAT(result.curl,
              AnyOf(CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING))
      << result.Describe();
  EXPECT_EQ(result.tls_version,
            GetParam() == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3");
  EXPECT_EQ(Request().status, 200);
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.handshakes_ok, 2);
  EXPECT_EQ(counters.requests_total, 1);
}

TEST_P(FaultTest, InvalidClientAppliesToExactlyNRequests) {
  Inject(FaultKind::kInvalidClient, 3);
  EXPECT_EQ(emulator_->PendingFaults(), 3);
  for (int i = 0; i < 3; ++i) {
    HttpResult result = Request();
    EXPECT_EQ(result.status, 401) << result.Describe();
    EXPECT_EQ(result.Json()["error"], "invalid_client");
  }
  EXPECT_EQ(emulator_->PendingFaults(), 0);
  EXPECT_EQ(Request().status, 200);
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.invalid_client_responses, 3);
  EXPECT_EQ(counters.For(binding_.thumbprint).invalid_client, 3);
}

TEST_P(FaultTest, DelayDelaysThenAnswers) {
  FaultSpec fault;
  fault.kind = FaultKind::kDelay;
  // Long enough that a busy machine cannot make the undelayed request look
  // delayed: the delay is behaviour, the request's own time is not.
  fault.delay = absl::Milliseconds(1500);
  ASSERT_OK(emulator_->InjectFault(fault));
  HttpResult slow = Request();
  EXPECT_EQ(slow.status, 200);
  EXPECT_GE(slow.elapsed, fault.delay);
  HttpResult fast = Request();
  EXPECT_EQ(fast.status, 200);
  EXPECT_LT(fast.elapsed, fault.delay);
}

TEST_P(FaultTest, AClientThatGaveUpDuringADelayDoesNotHurtTheServer) {
  FaultSpec fault;
  fault.kind = FaultKind::kDelay;
  fault.delay = absl::Milliseconds(400);
  fault.count = 2;
  ASSERT_OK(emulator_->InjectFault(fault));
  for (int i = 0; i < 2; ++i) {
    HttpResult gave_up = Request(absl::Milliseconds(100));
    EXPECT_EQ(gave_up.curl, CURLE_OPERATION_TIMEDOUT) << gave_up.Describe();
  }
  // The server writes its late answers into closed connections (EPIPE,
  // never SIGPIPE) and keeps serving.
  absl::SleepFor(absl::Milliseconds(600));
  EXPECT_EQ(Request().status, 200);
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 3);
}

TEST_P(FaultTest, HttpStatusAndTooManyRequestsInFifoOrder) {
  FaultSpec bad_gateway;
  bad_gateway.kind = FaultKind::kHttpStatus;
  bad_gateway.http_status = 502;
  FaultSpec unavailable = bad_gateway;
  unavailable.http_status = 503;
  FaultSpec slow_down;
  slow_down.kind = FaultKind::kTooManyRequests;
  slow_down.retry_after = absl::Seconds(7);
  for (const FaultSpec& f : {bad_gateway, unavailable, slow_down}) {
    ASSERT_OK(emulator_->InjectFault(f));
  }
  HttpResult first = Request();
  EXPECT_EQ(first.status, 502);
  EXPECT_EQ(first.Json()["error"], "temporarily_unavailable");
  EXPECT_EQ(Request().status, 503);
  HttpResult third = Request();
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(third.headers["retry-after"], "7");
  EXPECT_EQ(Request().status, 200);
}

TEST_P(FaultTest, HangHoldsTheHandshakeUntilTheClientGivesUp) {
  Inject(FaultKind::kHang);
  HttpResult result = Request(absl::Milliseconds(500));
  EXPECT_EQ(result.curl, CURLE_OPERATION_TIMEDOUT) << result.Describe();
  EXPECT_TRUE(result.tls_version.empty());
  EXPECT_LT(result.elapsed, absl::Seconds(3));
  EXPECT_EQ(emulator_->GetCounters().handshakes_failed, 1);
  EXPECT_EQ(Request().status, 200);
}

TEST_P(FaultTest, HangIsInTheTlsHandshakeAndABlackholeInConnect) {
  // curl says "Connection timed out" for both (and reports a connect time
  // of 0); whether the TLS handshake started tells the phases apart.
  Inject(FaultKind::kHang);
  HttpResult hang = Request(absl::Milliseconds(300));
  EXPECT_EQ(hang.curl, CURLE_OPERATION_TIMEDOUT) << hang.Describe();
  EXPECT_TRUE(hang.tls_started);
  EXPECT_TRUE(hang.tls_version.empty());

  auto blackhole = ConnectBlackhole::Start();
  ASSERT_OK(blackhole);
  for (int i = 0; i < 2; ++i) {  // the queue stays full
    ClientOptions options = WithBinding(*emulator_, binding_, GetParam());
    options.timeout = absl::Milliseconds(300);
    HttpResult result =
        Client(options).Post((*blackhole)->url() + "/t/oauth2/v2.0/token", "x");
    EXPECT_EQ(result.curl, CURLE_OPERATION_TIMEDOUT) << result.Describe();
    EXPECT_FALSE(result.tls_started);
    EXPECT_GE(result.elapsed, absl::Milliseconds(290));
    EXPECT_LT(result.elapsed, absl::Seconds(2));
  }
}

TEST_P(FaultTest, HangResponseHoldsTheAnswerUntilTheClientGivesUp) {
  Inject(FaultKind::kHangResponse);
  HttpResult result = Request(absl::Milliseconds(500));
  EXPECT_EQ(result.curl, CURLE_OPERATION_TIMEDOUT) << result.Describe();
  EXPECT_FALSE(result.tls_version.empty());  // the handshake completed
  EXPECT_EQ(Request().status, 200);
  EXPECT_EQ(emulator_->GetCounters().requests_total, 2);
}

TEST_P(FaultTest, ConnectionFaultsWaitForANewConnection) {
  Client kept(WithBinding(*emulator_, binding_, GetParam()));
  ASSERT_EQ(kept.Token(*emulator_).status, 200);
  const int64_t connections = emulator_->GetCounters().connections;
  Inject(FaultKind::kResetDuringHandshake);
  // The open connection is closed at its next request, unanswered (as a
  // server reload does); curl reconnects, and the new connection takes the
  // handshake fault.
  EXPECT_EQ(kept.Token(*emulator_).curl, CURLE_SSL_CONNECT_ERROR);
  EXPECT_EQ(emulator_->PendingFaults(), 0);
  EXPECT_EQ(emulator_->GetCounters().connections, connections + 1);
  // Without a fault pending, kept-alive connections serve as before.
  Client again(WithBinding(*emulator_, binding_, GetParam()));
  ASSERT_EQ(again.Token(*emulator_).status, 200);
  EXPECT_EQ(again.Token(*emulator_).status, 200);
  EXPECT_EQ(emulator_->GetCounters().connections, connections + 2);
}

TEST_P(FaultTest, StopReturnsPromptlyWithHungConnections) {
  Inject(FaultKind::kHang);
  Inject(FaultKind::kHangResponse);
  FaultSpec long_delay;
  long_delay.kind = FaultKind::kDelay;
  long_delay.delay = absl::Hours(1);
  ASSERT_OK(emulator_->InjectFault(long_delay));
  std::vector<HttpResult> results(3);
  std::vector<std::thread> clients;
  for (HttpResult& r : results) {
    clients.emplace_back([&] { r = Request(absl::Seconds(20)); });
    // One at a time, so each connection takes the next fault.
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    const int64_t before = static_cast<int64_t>(clients.size()) - 1;
    while (emulator_->GetCounters().faults_applied == before &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  ASSERT_EQ(emulator_->GetCounters().faults_applied, 3);
  const absl::Time start = absl::Now();
  emulator_->Stop();
  const absl::Duration took = absl::Now() - start;
  for (std::thread& t : clients) {
    t.join();
  }
  EXPECT_LT(took, absl::Seconds(2));
  for (const HttpResult& r : results) {
    EXPECT_NE(r.status, 200) << r.Describe();
    EXPECT_LT(r.elapsed, absl::Seconds(10)) << r.Describe();
  }
  emulator_->Stop();  // idempotent
}

TEST_P(FaultTest, ClearFaultsDropsEverythingQueued) {
  Inject(FaultKind::kInvalidClient, 5);
  Inject(FaultKind::kIssuerError, 2);
  EXPECT_EQ(emulator_->PendingFaults(), 7);
  emulator_->ClearFaults();
  EXPECT_EQ(emulator_->PendingFaults(), 0);
  EXPECT_EQ(Request().status, 200);
}

INSTANTIATE_TEST_SUITE_P(Tls, FaultTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         TlsParamName);

}  // namespace
}  // namespace certstore::emulator::testing

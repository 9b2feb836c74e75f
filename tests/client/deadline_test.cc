// Connect and handshake are separate limits of each token request, as
// RequestDeadlines documents: against a blackholed port the attempt ends
// when `connect` runs out, against a server that accepts and never sends a
// ServerHello, or one that stalls after its ServerHello, when `handshake`
// runs out (counted from the TCP connect) — each within its limit + 10 %,
// naming the phase, and never at the other phase's limit or at the sum
// (curl's own connect timeout covers both).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/memory_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "certstore/token_client.h"
#include "emulator/emulator.h"
#include "tests/support/loopback.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// Different on purpose, so that the test tells which limit ended a phase.
constexpr absl::Duration kConnectLimit = absl::Milliseconds(1500);
constexpr absl::Duration kHandshakeLimit = absl::Milliseconds(2500);

class DeadlineTest : public ::testing::TestWithParam<emulator::TlsVersion> {
 protected:
  void SetUp() override {
    emulator::EmulatorOptions options;
    options.min_tls = GetParam();
    options.max_tls = GetParam();
    auto started = emulator::Emulator::Start(options);
    ASSERT_OK(started);
    emulator_ = *std::move(started);
    // An imported credential, so that the token endpoint is the only peer.
    EntryParts parts;
    parts.alias = "deadline-client";
    parts.key = PoolKey(KeyType::kEcP256, 0);
    LeafOptions leaf;
    leaf.not_before = absl::Now() - absl::Hours(1);
    leaf.not_after = absl::Now() + absl::Hours(24 * 7);
    parts.chain_der = pki_.IssueChain(*parts.key, leaf);
    auto entry = Entry::Create(std::move(parts));
    ASSERT_OK(entry);
    ASSERT_OK(store_->Put(*entry));
  }

  // One attempt at `url` with a long total: only the phase limits can
  // end it early. Returns the status and how long GetToken took.
  std::pair<absl::Status, absl::Duration> TokenFrom(const std::string& url) {
    TokenClientOptions options;
    options.token_endpoint.url = url;
    options.token_endpoint.client_id = "deadline-client";
    options.server_ca_pem = emulator_->ca_root_pem();
    options.deadlines.connect = kConnectLimit;
    options.deadlines.handshake = kHandshakeLimit;
    options.deadlines.total = absl::Seconds(30);
    options.max_attempts = 1;
    auto client = TokenClient::Create(store_.get(), options);
    if (!client.ok()) return {client.status(), absl::ZeroDuration()};
    const absl::Time start = absl::Now();
    absl::Status status = (*client)->GetToken("api://deadline").status();
    return {status, absl::Now() - start};
  }

  static void ExpectEndedBy(const std::pair<absl::Status, absl::Duration>& r,
                            absl::string_view phase, absl::Duration limit) {
    EXPECT_THAT(
        r.first,
        StatusIs(
            absl::StatusCode::kDeadlineExceeded,
            AllOf(HasSubstr(
                      absl::StrCat("in ", phase, " with https://127.0.0.1:")),
                  HasSubstr(absl::StrCat(phase, " timed out (limit ",
                                         absl::FormatDuration(limit), ")")))));
    EXPECT_GE(r.second, limit);
    EXPECT_LE(r.second, limit * 1.1);
  }

  TestPki pki_;
  std::unique_ptr<CertStore> store_ = NewMemoryStore();
  std::unique_ptr<emulator::Emulator> emulator_;
};

TEST_P(DeadlineTest, BlackholedConnectEndsAtTheConnectLimit) {
  auto blackhole = emulator::ConnectBlackhole::Start();
  ASSERT_OK(blackhole);
  ExpectEndedBy(TokenFrom((*blackhole)->url() + "/token"), "connect",
                kConnectLimit);
}

TEST_P(DeadlineTest, ServerThatNeverSendsAServerHelloEndsAtTheHandshakeLimit) {
  SilentListener silent;
  ExpectEndedBy(
      TokenFrom(absl::StrCat("https://127.0.0.1:", silent.port(), "/token")),
      "TLS handshake", kHandshakeLimit);
}

TEST_P(DeadlineTest, HandshakeStalledAfterTheServerHelloEndsAtTheLimit) {
  ServerHelloStall stall(emulator_->token_port());
  ExpectEndedBy(
      TokenFrom(absl::StrCat("https://127.0.0.1:", stall.port(), "/token")),
      "TLS handshake", kHandshakeLimit);
  EXPECT_EQ(stall.server_hellos_passed(), 1);  // it did get that far
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 0);
}

// The control: the same limits get a token from the emulator (a mint
// and a token, each a full handshake), so they do not cut a working
// exchange.
TEST_P(DeadlineTest, TheSameLimitsLetWorkingExchangesThrough) {
  TokenClientOptions options;
  options.issuing_url = emulator_->issuing_url();
  options.server_ca_pem = emulator_->ca_root_pem();
  options.deadlines.connect = kConnectLimit;
  options.deadlines.handshake = kHandshakeLimit;
  options.max_attempts = 1;
  auto client = TokenClient::Create(store_.get(), options);
  ASSERT_OK(client);
  EXPECT_OK((*client)->GetToken("api://deadline").status());
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 1);
}

INSTANTIATE_TEST_SUITE_P(Tls, DeadlineTest,
                         ::testing::Values(emulator::TlsVersion::kTls12,
                                           emulator::TlsVersion::kTls13),
                         [](const auto& param) {
                           return param.param == emulator::TlsVersion::kTls12
                                      ? std::string("Tls12")
                                      : std::string("Tls13");
                         });

}  // namespace
}  // namespace certstore::testing

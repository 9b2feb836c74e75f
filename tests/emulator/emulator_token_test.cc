// The mTLS token endpoint over real sockets with libcurl (OpenSSL) clients
// presenting certificates minted through the issuing endpoint.
#include <openssl/ssl.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "certstore/chain.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "emulator/emulator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/emulator/emulator_test_util.h"

namespace certstore::emulator::testing {
namespace {

using ::certstore::testing::LeafOptions;
using ::certstore::testing::PoolKey;
using ::certstore::testing::StatusIs;
using ::certstore::testing::TestNow;
using ::certstore::testing::TestPki;
using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::HasSubstr;

constexpr int kAlertHandshakeFailure = 40;
constexpr int kAlertUnknownCa = 48;
constexpr int kAlertCertificateExpired = 45;
constexpr int kAlertCertificateRequired = 116;

class TokenTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    auto emulator = Emulator::Start(options_);
    ASSERT_OK(emulator);
    emulator_ = *std::move(emulator);
  }
  int tls_max() const { return GetParam(); }
  std::string ExpectedVersion() const {
    return tls_max() == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3";
  }

  EmulatorOptions options_;
  std::unique_ptr<Emulator> emulator_;
};

TEST_P(TokenTest, TokenIsBoundToThePresentedCertificate) {
  for (KeyType type : {KeyType::kEcP256, KeyType::kRsa2048}) {
    SCOPED_TRACE(KeyTypeName(type));
    Binding binding = MintBinding(*emulator_, type);
    Client client(WithBinding(*emulator_, binding, tls_max()));
    HttpResult result = client.Token(*emulator_);
    ASSERT_EQ(result.status, 200) << result.Describe();
    EXPECT_EQ(result.tls_version, ExpectedVersion());
    const nlohmann::json json = result.Json();
    EXPECT_EQ(json["token_type"], "mtls_pop");
    EXPECT_EQ(json["expires_in"], 3600);
    const std::string token = json["access_token"].get<std::string>();
    EXPECT_THAT(emulator_->TokenBinding(token),
                ::certstore::testing::IsOkAndHolds(binding.thumbprint));
    auto claims = emulator_->DecodeToken(token);
    ASSERT_OK(claims);
    EXPECT_EQ(claims->scope, "https://vault.test/.default");
    EXPECT_EQ(claims->client_id, emulator_->client_id());
    EXPECT_EQ(emulator_->GetCounters().For(binding.thumbprint).tokens, 1);
  }
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.tokens_issued, 2);
  EXPECT_EQ(counters.handshakes_ok, 2);
  EXPECT_EQ(counters.handshakes_failed, 0);
}

TEST_P(TokenTest, ServerSendsItsCaNamesInTheCertificateRequest) {
  Binding binding = MintBinding(*emulator_);
  HttpResult result =
      Client(WithBinding(*emulator_, binding, tls_max())).Token(*emulator_);
  ASSERT_EQ(result.status, 200) << result.Describe();
  ASSERT_EQ(result.acceptable_cas.size(), 2u);
  EXPECT_THAT(result.acceptable_cas[0], HasSubstr("certstore-emulator root"));
  EXPECT_THAT(result.acceptable_cas[1],
              HasSubstr("certstore-emulator intermediate"));
}

TEST_P(TokenTest, NoClientCertificateFailsTheHandshakeAndIsCounted) {
  ClientOptions options;
  options.ca_pem = emulator_->ca_root_pem();
  options.tls_max = tls_max();
  HttpResult result = Client(options).Token(*emulator_);
  EXPECT_THAT(result.curl, AnyOf(CURLE_SSL_CONNECT_ERROR, CURLE_RECV_ERROR))
      << result.Describe();
  EXPECT_THAT(
      result.alerts_received,
      Contains(tls_max() == TLS1_2_VERSION ? kAlertHandshakeFailure
                                           : kAlertCertificateRequired));
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.handshakes_failed, 1);
  EXPECT_EQ(counters.tokens_issued, 0);
}

TEST_P(TokenTest, ASelfSignedOrForeignCertificateIsRejectedWithUnknownCa) {
  TestPki foreign;
  std::shared_ptr<const Key> key = PoolKey(KeyType::kEcP256);
  LeafOptions leaf;
  leaf.common_name = emulator_->client_id();
  leaf.tenant = emulator_->tenant_id();
  leaf.not_before = absl::Now() - absl::Hours(1);
  leaf.not_after = absl::Now() + absl::Hours(24);
  ClientOptions options;
  options.chain_der = foreign.IssueChain(*key, leaf);
  options.key = key;
  options.ca_pem = emulator_->ca_root_pem();
  options.tls_max = tls_max();
  HttpResult result = Client(options).Token(*emulator_);
  EXPECT_NE(result.curl, CURLE_OK);
  EXPECT_THAT(result.alerts_received, Contains(kAlertUnknownCa))
      << result.Describe();
  EXPECT_EQ(emulator_->GetCounters()
                .For(Thumbprint(options.chain_der[0]))
                .handshakes_failed,
            1);

  // A leaf of another emulator, with that emulator's intermediate.
  auto other = Emulator::Start();
  ASSERT_OK(other);
  Binding binding = MintBinding(**other);
  HttpResult foreign_emulator =
      Client(WithBinding(*emulator_, binding, tls_max())).Token(*emulator_);
  EXPECT_THAT(foreign_emulator.alerts_received, Contains(kAlertUnknownCa))
      << foreign_emulator.Describe();
  EXPECT_EQ(emulator_->GetCounters().handshakes_failed, 2);
}

TEST_P(TokenTest, ALeafSentWithoutItsIntermediateIsRejected) {
  Binding binding = MintBinding(*emulator_);
  binding.chain_der.resize(1);
  HttpResult result =
      Client(WithBinding(*emulator_, binding, tls_max())).Token(*emulator_);
  EXPECT_THAT(result.alerts_received, Contains(kAlertUnknownCa))
      << result.Describe();
}

TEST_P(TokenTest, AnExpiredLeafGetsCertificateExpired) {
  FaultSpec expired;
  expired.kind = FaultKind::kIssueExpired;
  ASSERT_OK(emulator_->InjectFault(expired));
  Binding binding = MintBinding(*emulator_);
  HttpResult result =
      Client(WithBinding(*emulator_, binding, tls_max())).Token(*emulator_);
  EXPECT_THAT(result.alerts_received, Contains(kAlertCertificateExpired))
      << result.Describe();
  EXPECT_EQ(emulator_->GetCounters().For(binding.thumbprint).handshakes_failed,
            1);
}

TEST_P(TokenTest, ARevokedThumbprintGetsInvalidClientUntilReset) {
  Binding revoked = MintBinding(*emulator_);
  Binding healthy = MintBinding(*emulator_);
  emulator_->Revoke(revoked.thumbprint);
  HttpResult result =
      Client(WithBinding(*emulator_, revoked, tls_max())).Token(*emulator_);
  EXPECT_EQ(result.status, 401) << result.Describe();
  EXPECT_EQ(result.Json()["error"], "invalid_client");
  EXPECT_THAT(result.Json()["error_description"].get<std::string>(),
              HasSubstr("revoked"));
  EXPECT_EQ(emulator_->GetCounters().For(revoked.thumbprint).invalid_client, 1);
  EXPECT_EQ(Client(WithBinding(*emulator_, healthy, tls_max()))
                .Token(*emulator_)
                .status,
            200);
  emulator_->Reset();
  EXPECT_EQ(Client(WithBinding(*emulator_, revoked, tls_max()))
                .Token(*emulator_)
                .status,
            200);
}

TEST_P(TokenTest, BadRequestsGetOAuthErrors) {
  Binding binding = MintBinding(*emulator_);
  Client client(WithBinding(*emulator_, binding, tls_max()));
  const std::string endpoint = emulator_->token_endpoint();
  const std::string form = TokenForm(emulator_->client_id());
  struct Case {
    const char* name;
    std::string url;
    std::string body;
    long status;
    const char* error;
  };
  const Case cases[] = {
      {"unknown client", endpoint, TokenForm("someone-else"), 401,
       "invalid_client"},
      {"wrong tenant",
       absl::StrReplaceAll(endpoint, {{emulator_->tenant_id(), "tenant-x"}}),
       form, 401, "invalid_client"},
      {"password grant", endpoint,
       absl::StrReplaceAll(form, {{"client_credentials", "password"}}), 400,
       "invalid_request"},
      {"bearer token type", endpoint,
       absl::StrReplaceAll(form, {{"mtls_pop", "bearer"}}), 400,
       "invalid_request"},
      {"scope without /.default", endpoint,
       absl::StrReplaceAll(form, {{"%2F.default", ""}}), 400,
       "invalid_request"},
      {"bad escape", endpoint, "%zz", 400, "invalid_request"},
      {"unknown path", emulator_->token_url() + "/token", form, 404,
       "not_found"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    HttpResult result = client.Post(c.url, c.body);
    EXPECT_EQ(result.status, c.status) << result.Describe();
    EXPECT_EQ(result.Json()["error"], c.error);
  }
  EXPECT_EQ(client.Get(endpoint).status, 405);
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.tokens_issued, 0);
  EXPECT_EQ(counters.invalid_client_responses, 2);
  EXPECT_EQ(counters.connections, 1);  // all on one kept-alive connection
  EXPECT_EQ(counters.requests_total,
            static_cast<int64_t>(std::size(cases)) + 1);
}

TEST_P(TokenTest, TheInjectedClockJudgesClientCertificates) {
  ManualClock clock(TestNow());
  EmulatorOptions options;
  options.clock = &clock;
  auto emulator = Emulator::Start(options);
  ASSERT_OK(emulator);
  Binding binding = MintBinding(**emulator);  // valid from 2030
  Client client(WithBinding(**emulator, binding, tls_max()));
  HttpResult result = client.Token(**emulator);
  EXPECT_EQ(result.status, 200) << result.Describe();
  auto claims = (*emulator)->DecodeToken(result.Json()["access_token"]);
  ASSERT_OK(claims);
  EXPECT_EQ(claims->expires_at, TestNow() + absl::Hours(1));
  clock.Advance(absl::Hours(24 * 8));  // past not_after
  HttpResult late =
      Client(WithBinding(**emulator, binding, tls_max())).Token(**emulator);
  EXPECT_THAT(late.alerts_received, Contains(kAlertCertificateExpired))
      << late.Describe();
}

TEST_P(TokenTest, KeepAliveCanBeTurnedOff) {
  options_.keep_alive = false;
  auto emulator = Emulator::Start(options_);
  ASSERT_OK(emulator);
  Binding binding = MintBinding(**emulator);
  Client client(WithBinding(**emulator, binding, tls_max()));
  EXPECT_EQ(client.Token(**emulator).status, 200);
  HttpResult second = client.Token(**emulator);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.headers["connection"], "close");
  EXPECT_EQ((*emulator)->GetCounters().connections, 2);
}

TEST_P(TokenTest, ServerRestrictedToOneVersionNegotiatesIt) {
  EmulatorOptions options;
  options.min_tls = options.max_tls =
      tls_max() == TLS1_2_VERSION ? TlsVersion::kTls12 : TlsVersion::kTls13;
  auto emulator = Emulator::Start(options);
  ASSERT_OK(emulator);
  Binding binding = MintBinding(**emulator);
  HttpResult result =
      Client(WithBinding(**emulator, binding)).Token(**emulator);
  EXPECT_EQ(result.status, 200) << result.Describe();
  EXPECT_EQ(result.tls_version, ExpectedVersion());
}

TEST_P(TokenTest, ConcurrentClientsAreAllCounted) {
  Binding binding = MintBinding(*emulator_);
  constexpr int kThreads = 8;
  constexpr int kRequests = 5;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      Client client(WithBinding(*emulator_, binding, tls_max()));
      for (int i = 0; i < kRequests; ++i) {
        ok += client.Token(*emulator_).status == 200 ? 1 : 0;
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), kThreads * kRequests);
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.tokens_issued, kThreads * kRequests);
  EXPECT_EQ(counters.For(binding.thumbprint).tokens, kThreads * kRequests);
  EXPECT_EQ(counters.connections, kThreads);
}

TEST(TokenDecodeTest, ForgedOrForeignTokensAreRefused) {
  auto a = Emulator::Start();
  auto b = Emulator::Start();
  ASSERT_OK(a);
  ASSERT_OK(b);
  Binding binding = MintBinding(**a);
  HttpResult result = Client(WithBinding(**a, binding)).Token(**a);
  ASSERT_EQ(result.status, 200);
  const std::string token = result.Json()["access_token"];
  EXPECT_OK((*a)->TokenBinding(token));
  EXPECT_THAT((*b)->TokenBinding(token),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::string forged = token;
  forged[3] = forged[3] == 'A' ? 'B' : 'A';
  EXPECT_THAT((*a)->TokenBinding(forged),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*a)->TokenBinding("not a token"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

INSTANTIATE_TEST_SUITE_P(Tls, TokenTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         TlsParamName);

}  // namespace
}  // namespace certstore::emulator::testing

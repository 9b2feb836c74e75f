// ProbeEndpoint against the real emulator on loopback: every phase's
// success and failure, with faults injected by the emulator, on TLS 1.2 and
// 1.3 where the protocol makes a difference.
#include "cli/endpoint_probe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/chain.h"
#include "certstore/testing/status_matchers.h"
#include "emulator/emulator.h"
#include "tests/emulator/emulator_test_util.h"
#include "tests/support/loopback.h"

namespace certstore::cli {
namespace {

using certstore::testing::StatusIs;
using emulator::Emulator;
using emulator::EmulatorOptions;
using emulator::FaultKind;
using emulator::FaultSpec;
using emulator::TlsAlert;
using emulator::TlsVersion;
using emulator::testing::Binding;
using emulator::testing::MintBinding;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kMargin = absl::Milliseconds(1500);

// A key whose EVP_PKEY holds only the public half: it matches the leaf, so
// OpenSSL accepts it, but it cannot sign — what a reaped token key or a
// corrupted key file looks like to TLS.
class PublicOnlyKey final : public Key {
 public:
  explicit PublicOnlyKey(const Key& real) : der_(real.public_key_der()) {
    const auto* p = reinterpret_cast<const unsigned char*>(der_.data());
    pkey_.reset(d2i_PUBKEY(nullptr, &p, static_cast<long>(der_.size())));
  }
  absl::StatusOr<std::string> Sign(absl::string_view) const override {
    return absl::FailedPreconditionError("public key only");
  }
  const std::string& public_key_der() const override { return der_; }
  EVP_PKEY* evp_pkey() const override { return pkey_.get(); }
  std::string algorithm() const override { return "EC-P256"; }
  std::string location() const override { return "public-only-test-key"; }
  absl::StatusOr<std::string> ExportPkcs8Der() const override {
    return absl::FailedPreconditionError("public key only");
  }

 private:
  std::string der_;
  UniqueEvpPkey pkey_;
};

std::shared_ptr<const Entry> EntryOf(const Binding& binding,
                                     std::shared_ptr<const Key> key = nullptr) {
  EntryParts parts;
  parts.alias = "probe#att=0";
  parts.chain_der = binding.chain_der;
  parts.key = key != nullptr ? key : binding.key;
  absl::StatusOr<std::shared_ptr<const Entry>> entry =
      Entry::Create(std::move(parts));
  EXPECT_OK(entry);
  return entry.ok() ? *entry : nullptr;
}

std::string SubjectOfDer(const std::string& der) {
  absl::StatusOr<UniqueX509> cert = DecodeCertificate(der, "test");
  return cert.ok() ? SubjectName(cert->get()) : "";
}

// A 127.0.0.1 port nothing listens on: bound, then closed.
uint16_t ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

class EndpointProbeTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    EmulatorOptions options;
    options.max_tls =
        GetParam() == TLS1_2_VERSION ? TlsVersion::kTls12 : TlsVersion::kTls13;
    auto started = Emulator::Start(options);
    ASSERT_OK(started);
    emulator_ = *std::move(started);
    binding_ = MintBinding(*emulator_);
    entry_ = EntryOf(binding_);
    ASSERT_NE(entry_, nullptr);
  }
  void TearDown() override {
    if (emulator_ != nullptr) {
      emulator_->Stop();
    }
  }

  EndpointProbeOptions Options(bool request_token = true) const {
    EndpointProbeOptions options;
    options.endpoint = emulator_->token_url();
    options.server_ca_pem = emulator_->ca_root_pem();
    options.client_entry = entry_.get();
    options.connect_timeout = absl::Seconds(1);
    options.handshake_timeout = absl::Seconds(1);
    options.token_timeout = absl::Seconds(5);
    options.deadline = absl::Now() + absl::Seconds(20);
    options.request_token = request_token;
    options.tenant_id = emulator_->tenant_id();
    options.client_id = emulator_->client_id();
    options.scope = "https://vault.test";
    return options;
  }

  std::string TlsName() const {
    return GetParam() == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3";
  }

  std::unique_ptr<Emulator> emulator_;
  Binding binding_;
  std::shared_ptr<const Entry> entry_;
};

TEST_P(EndpointProbeTest, HealthyEndpointIssuesAToken) {
  const EndpointProbeReport report = ProbeEndpoint(Options());
  EXPECT_TRUE(report.ok());
  EXPECT_OK(report.resolve.status);
  EXPECT_OK(report.connect.status);
  EXPECT_OK(report.handshake.status);
  EXPECT_OK(report.token.status);
  EXPECT_EQ(report.address,
            absl::StrCat("127.0.0.1:", emulator_->token_port()));
  EXPECT_EQ(report.tls_version, TlsName());
  EXPECT_TRUE(report.certificate_requested);
  const std::vector<std::string>& ca = emulator_->ca_chain_der();
  EXPECT_THAT(report.acceptable_ca_names, Contains(SubjectOfDer(ca[0])));
  EXPECT_THAT(report.acceptable_ca_names, Contains(SubjectOfDer(ca[1])));
  EXPECT_EQ(report.acceptable_ca_names.size(),
            report.acceptable_ca_names_der.size());
  EXPECT_EQ(report.http_status, 200);
  EXPECT_EQ(report.token_type, "mtls_pop");
  EXPECT_GT(report.expires_in, 0);
  std::string matched;
  EXPECT_TRUE(ChainIssuerAccepted(binding_.chain_der,
                                  report.acceptable_ca_names_der, &matched));
  EXPECT_THAT(report.acceptable_ca_names, Contains(matched));
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 1);
}

TEST_P(EndpointProbeTest, HostNameIsResolvedAndVerified) {
  EndpointProbeOptions options = Options();
  options.endpoint =
      absl::StrCat("https://localhost:", emulator_->token_port(), "/");
  const EndpointProbeReport report = ProbeEndpoint(options);
  EXPECT_TRUE(report.ok()) << report.connect.status << " "
                           << report.handshake.status << " "
                           << report.token.status;
  EXPECT_EQ(report.address,
            absl::StrCat("127.0.0.1:", emulator_->token_port()));
}

TEST_P(EndpointProbeTest, HandshakeOnlyLeavesTheTokenPhaseNotRun) {
  const EndpointProbeReport report = ProbeEndpoint(Options(false));
  EXPECT_TRUE(report.ok());
  EXPECT_OK(report.handshake.status);
  EXPECT_FALSE(report.token.reached);
  EXPECT_FALSE(report.token.ok());
  EXPECT_THAT(report.token.status, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(report.http_status, 0);
  EXPECT_EQ(emulator_->GetCounters().requests_total, 0);
}

TEST_P(EndpointProbeTest, ChainFromAnotherCaIsNotAcceptedAndIsRejected) {
  auto other = Emulator::Start();
  ASSERT_OK(other);
  const Binding foreign = MintBinding(**other);
  std::shared_ptr<const Entry> entry = EntryOf(foreign);
  ASSERT_NE(entry, nullptr);
  for (const bool request_token : {true, false}) {
    SCOPED_TRACE(request_token ? "with token request" : "handshake only");
    EndpointProbeOptions options = Options(request_token);
    options.client_entry = entry.get();
    const EndpointProbeReport report = ProbeEndpoint(options);
    std::string matched = "unchanged";
    EXPECT_FALSE(ChainIssuerAccepted(foreign.chain_der,
                                     report.acceptable_ca_names_der, &matched));
    EXPECT_EQ(matched, "");
    EXPECT_THAT(
        report.handshake.status,
        StatusIs(absl::StatusCode::kUnauthenticated,
                 AllOf(HasSubstr("unknown_ca"), HasSubstr(report.address))));
    EXPECT_FALSE(report.token.reached);
    EXPECT_FALSE(report.ok());
  }
  (*other)->Stop();
}

TEST_P(EndpointProbeTest, AlertFromTheServerIsNamed) {
  for (const bool request_token : {true, false}) {
    SCOPED_TRACE(request_token ? "with token request" : "handshake only");
    FaultSpec fault;
    fault.kind = FaultKind::kTlsAlert;
    fault.alert = TlsAlert::kBadCertificate;
    ASSERT_OK(emulator_->InjectFault(fault));
    const EndpointProbeReport report = ProbeEndpoint(Options(request_token));
    EXPECT_THAT(report.handshake.status,
                StatusIs(absl::StatusCode::kUnauthenticated,
                         HasSubstr("bad_certificate")));
    if (GetParam() == TLS1_3_VERSION) {
      EXPECT_THAT(report.handshake.status.message(),
                  HasSubstr("server rejected our certificate after the "
                            "handshake: bad_certificate"));
    }
    EXPECT_TRUE(report.certificate_requested);
    EXPECT_FALSE(report.token.reached);
    EXPECT_EQ(emulator_->PendingFaults(), 0);
  }
}

TEST_P(EndpointProbeTest, ResetDuringHandshakeIsUnavailable) {
  ASSERT_OK(emulator_->InjectFault({FaultKind::kResetDuringHandshake}));
  const EndpointProbeReport report = ProbeEndpoint(Options());
  EXPECT_OK(report.connect.status);
  EXPECT_THAT(report.handshake.status,
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("TLS handshake with 127.0.0.1:"),
                             HasSubstr("reset"))));
  EXPECT_FALSE(report.token.reached);
}

TEST_P(EndpointProbeTest, ResetAfterTheHandshakeFailsTheTokenPhase) {
  ASSERT_OK(emulator_->InjectFault({FaultKind::kCloseAfterHandshake}));
  const EndpointProbeReport report = ProbeEndpoint(Options());
  EXPECT_OK(report.handshake.status);
  EXPECT_EQ(report.http_status, 0);
  EXPECT_THAT(report.token.status,
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("token request"),
                             ::testing::AnyOf(HasSubstr("reset"),
                                              HasSubstr("Broken pipe")))));
  if (GetParam() == TLS1_3_VERSION) {
    EXPECT_THAT(report.token.status.message(),
                HasSubstr("rejects the client certificate"));
  }
}

TEST_P(EndpointProbeTest, ResetAfterTheHandshakeIsSeenWithoutATokenOnTls13) {
  ASSERT_OK(emulator_->InjectFault({FaultKind::kCloseAfterHandshake}));
  const EndpointProbeReport report = ProbeEndpoint(Options(false));
  if (GetParam() == TLS1_2_VERSION) {
    EXPECT_OK(report.handshake.status);  // nothing after it is looked at
    return;
  }
  EXPECT_THAT(report.handshake.status,
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("reset"),
                             HasSubstr("rejects the client certificate"))));
}

TEST_P(EndpointProbeTest, HangingHandshakeTimesOutInTheHandshakePhase) {
  ASSERT_OK(emulator_->InjectFault({FaultKind::kHang}));
  const EndpointProbeOptions options = Options();
  const absl::Time start = absl::Now();
  const EndpointProbeReport report = ProbeEndpoint(options);
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_THAT(
      report.handshake.status,
      StatusIs(absl::StatusCode::kDeadlineExceeded,
               HasSubstr(absl::StrCat("TLS handshake with ", report.address,
                                      " did not complete within 1s"))));
  EXPECT_GE(report.handshake.elapsed, options.handshake_timeout);
  EXPECT_LT(elapsed, options.handshake_timeout + kMargin);
}

// A handshake that stalls after the ServerHello (a relay passes only that
// record) ends at the handshake limit, within 10 %.
TEST_P(EndpointProbeTest, HandshakeStalledAfterServerHelloEndsAtTheLimit) {
  certstore::testing::ServerHelloStall stall(emulator_->token_port());
  EndpointProbeOptions options = Options();
  options.endpoint = absl::StrCat("https://127.0.0.1:", stall.port());
  const EndpointProbeReport report = ProbeEndpoint(options);
  EXPECT_THAT(report.handshake.status,
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("did not complete within 1s")));
  EXPECT_GE(report.handshake.elapsed, options.handshake_timeout);
  EXPECT_LE(report.handshake.elapsed, options.handshake_timeout * 1.1);
  EXPECT_EQ(stall.server_hellos_passed(), 1);
}

TEST_P(EndpointProbeTest, OverallDeadlineCutsAPhase) {
  ASSERT_OK(emulator_->InjectFault({FaultKind::kHang}));
  EndpointProbeOptions options = Options();
  options.handshake_timeout = absl::Seconds(30);
  const absl::Time start = absl::Now();
  options.deadline = start + absl::Milliseconds(700);
  const EndpointProbeReport report = ProbeEndpoint(options);
  EXPECT_THAT(report.handshake.status,
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("TLS handshake")));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(700) + kMargin);
}

TEST_P(EndpointProbeTest, InvalidClientFailsTheTokenPhase) {
  ASSERT_OK(emulator_->InjectFault({FaultKind::kInvalidClient}));
  const EndpointProbeReport report = ProbeEndpoint(Options());
  EXPECT_OK(report.handshake.status);
  EXPECT_EQ(report.http_status, 401);
  EXPECT_THAT(report.token.status,
              StatusIs(absl::StatusCode::kUnauthenticated,
                       AllOf(HasSubstr("401"), HasSubstr("invalid_client"))));
  EXPECT_EQ(report.token_type, "");
  EXPECT_FALSE(report.ok());
}

TEST_P(EndpointProbeTest, HangingResponseTimesOutInTheTokenPhase) {
  ASSERT_OK(emulator_->InjectFault({FaultKind::kHangResponse}));
  EndpointProbeOptions options = Options();
  options.token_timeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  const EndpointProbeReport report = ProbeEndpoint(options);
  EXPECT_LT(absl::Now() - start, options.token_timeout + kMargin);
  EXPECT_OK(report.handshake.status);
  EXPECT_THAT(report.token.status,
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr("token request"),
                             HasSubstr("no complete response within 1s"))));
}

TEST_P(EndpointProbeTest, KeyThatCannotSignIsFailedPrecondition) {
  std::shared_ptr<const Entry> entry =
      EntryOf(binding_, std::make_shared<PublicOnlyKey>(*binding_.key));
  ASSERT_NE(entry, nullptr);
  EndpointProbeOptions options = Options();
  options.client_entry = entry.get();
  const EndpointProbeReport report = ProbeEndpoint(options);
  EXPECT_THAT(
      report.handshake.status,
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("key unusable"), HasSubstr(report.address))));
  EXPECT_TRUE(report.certificate_requested);
  EXPECT_FALSE(report.token.reached);
}

TEST_P(EndpointProbeTest, WrongServerCaFailsVerification) {
  auto other = Emulator::Start();
  ASSERT_OK(other);
  EndpointProbeOptions options = Options();
  options.server_ca_pem = (*other)->ca_root_pem();
  const EndpointProbeReport report = ProbeEndpoint(options);
  // Our trust in the server, not our key: retryable, never "key unusable"
  // (the token client says the same).
  EXPECT_THAT(report.handshake.status,
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("server certificate verification "
                                       "failed"),
                             HasSubstr("issuer"))));
  (*other)->Stop();
}

INSTANTIATE_TEST_SUITE_P(Tls, EndpointProbeTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         emulator::testing::TlsParamName);

TEST(EndpointProbeNetworkTest, BlackholedConnectTimesOutInTheConnectPhase) {
  auto blackhole = emulator::ConnectBlackhole::Start();
  ASSERT_OK(blackhole);
  EndpointProbeOptions options;
  options.endpoint = (*blackhole)->url();
  options.connect_timeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  const EndpointProbeReport report = ProbeEndpoint(options);
  EXPECT_LT(absl::Now() - start, options.connect_timeout + kMargin);
  EXPECT_THAT(
      report.connect.status,
      StatusIs(
          absl::StatusCode::kDeadlineExceeded,
          AllOf(HasSubstr("TCP connect"),
                HasSubstr(absl::StrCat("127.0.0.1:", (*blackhole)->port())))));
  EXPECT_FALSE(report.handshake.reached);
}

TEST(EndpointProbeNetworkTest, RefusedPortIsUnavailableNamingTheAddress) {
  const uint16_t port = ClosedPort();
  EndpointProbeOptions options;
  options.endpoint = absl::StrCat("https://127.0.0.1:", port, "/");
  const EndpointProbeReport report = ProbeEndpoint(options);
  EXPECT_OK(report.resolve.status);
  EXPECT_THAT(report.connect.status,
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat(
                           "connection refused by 127.0.0.1:", port))));
  EXPECT_FALSE(report.handshake.reached);
  EXPECT_FALSE(report.ok());
}

TEST(EndpointProbeNetworkTest, BadUrlIsInvalidArgumentNamingIt) {
  for (const std::string url :
       {"http://127.0.0.1:443", "https://", "https://host:99999",
        "https://[::1", "127.0.0.1:443"}) {
    SCOPED_TRACE(url);
    EndpointProbeOptions options;
    options.endpoint = url;
    const EndpointProbeReport report = ProbeEndpoint(options);
    EXPECT_THAT(report.resolve.status,
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(absl::StrCat("\"", url, "\""))));
    EXPECT_FALSE(report.connect.reached);
    EXPECT_THAT(report.connect.status, Not(StatusIs(absl::StatusCode::kOk)));
  }
}

TEST(EndpointProbeNetworkTest, UnknownHostIsUnavailable) {
  EndpointProbeOptions options;
  options.endpoint = "https://no-such-host.invalid:443";
  options.resolve_timeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  const EndpointProbeReport report = ProbeEndpoint(options);
  // Unavailable from the resolver, or DeadlineExceeded when no resolver
  // answers in time: both name the host.
  EXPECT_THAT(report.resolve.status,
              ::testing::AnyOf(StatusIs(absl::StatusCode::kUnavailable,
                                        HasSubstr("no-such-host.invalid")),
                               StatusIs(absl::StatusCode::kDeadlineExceeded,
                                        HasSubstr("no-such-host.invalid"))));
  EXPECT_LT(absl::Now() - start, options.resolve_timeout + kMargin);
}

TEST(ChainIssuerAcceptedTest, EmptyListAcceptsAnyIssuer) {
  std::string matched = "unchanged";
  EXPECT_TRUE(ChainIssuerAccepted({"not a certificate"}, {}, &matched));
  EXPECT_EQ(matched, "");
}

}  // namespace
}  // namespace certstore::cli

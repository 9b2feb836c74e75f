// The issuing endpoint over real sockets: metadata, CSR validation, leaf
// issuance, issuing faults, the admin endpoints, and start-up options.
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "emulator/emulator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/emulator/emulator_test_util.h"

namespace certstore::emulator::testing {
namespace {

using ::certstore::testing::IsOk;
using ::certstore::testing::PoolKey;
using ::certstore::testing::StatusIs;
using ::certstore::testing::TestNow;
using ::testing::HasSubstr;

constexpr char kMetadata[] =
    "/metadata/identity/getplatformmetadata?cred-api-version=2.0";
constexpr char kIssue[] =
    "/metadata/identity/issuecredential?cred-api-version=2.0";

class IssuingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto emulator = Emulator::Start(options_);
    ASSERT_OK(emulator);
    emulator_ = *std::move(emulator);
  }

  CsrOptions Subject() const { return SubjectOf(*emulator_); }

  EmulatorOptions options_;
  std::unique_ptr<Emulator> emulator_;
};

TEST_F(IssuingTest, MetadataRequiresTheMetadataHeader) {
  Client client;
  HttpResult without = client.Get(emulator_->issuing_url() + kMetadata);
  EXPECT_EQ(without.status, 400) << without.Describe();
  EXPECT_EQ(without.Json()["error"], "invalid_request");
  EXPECT_THAT(without.body, HasSubstr("Metadata: true"));
  EXPECT_EQ(emulator_->GetCounters().metadata_requests, 0);

  HttpResult with = Imds(*emulator_, kMetadata);
  ASSERT_EQ(with.status, 200) << with.Describe();
  const nlohmann::json json = with.Json();
  EXPECT_EQ(json["clientId"], options_.client_id);
  EXPECT_EQ(json["tenantId"], options_.tenant_id);
  EXPECT_EQ(json["cuId"]["vmId"], options_.vm_id);
  EXPECT_EQ(json["attestationEndpoint"], "");
  EXPECT_EQ(emulator_->GetCounters().metadata_requests, 1);
}

TEST_F(IssuingTest, MetadataRequiresTheApiVersionAndGet) {
  HttpResult no_version =
      Imds(*emulator_, "/metadata/identity/getplatformmetadata");
  EXPECT_EQ(no_version.status, 400);
  EXPECT_THAT(no_version.body, HasSubstr("cred-api-version=2.0"));
  const std::string body = "{}";
  HttpResult post = Imds(*emulator_, kMetadata, &body);
  EXPECT_EQ(post.status, 405);
  HttpResult unknown = Imds(*emulator_, "/metadata/other");
  EXPECT_EQ(unknown.status, 404);
}

TEST_F(IssuingTest, GoodCsrGetsALeafThatChainsToTheRootForItsKey) {
  for (KeyType type : {KeyType::kEcP256, KeyType::kRsa2048}) {
    for (bool dc_first : {true, false}) {
      SCOPED_TRACE(absl::StrCat(KeyTypeName(type), " dc_first=", dc_first));
      std::shared_ptr<const Key> key = PoolKey(type);
      CsrOptions csr = Subject();
      csr.dc_first = dc_first;
      HttpResult result = PostCsr(*emulator_, MakeCsrDer(*key, csr));
      ASSERT_EQ(result.status, 200) << result.Describe();
      const nlohmann::json json = result.Json();
      EXPECT_EQ(json["client_id"], options_.client_id);
      EXPECT_EQ(json["tenant_id"], options_.tenant_id);
      EXPECT_EQ(json["mtls_authentication_endpoint"], emulator_->token_url());
      std::string leaf_der;
      std::string intermediate_der;
      ASSERT_TRUE(absl::Base64Unescape(json["certificate"].get<std::string>(),
                                       &leaf_der));
      ASSERT_TRUE(absl::Base64Unescape(
          json["certificate_chain"][0].get<std::string>(), &intermediate_der));
      EXPECT_EQ(intermediate_der, emulator_->ca_chain_der()[1]);

      auto leaf = DecodeCertificate(leaf_der, "leaf");
      ASSERT_OK(leaf);
      EXPECT_THAT(PublicKeyDer(leaf->get()),
                  ::certstore::testing::IsOkAndHolds(key->public_key_der()));
      EXPECT_EQ(NotAfter(leaf->get()) - NotBefore(leaf->get()),
                absl::Hours(24 * 7));
      EXPECT_NE(X509_get_extended_key_usage(leaf->get()) & XKU_SSL_CLIENT, 0u);

      EXPECT_EQ(VerifyClientChain({leaf_der, intermediate_der},
                                  emulator_->ca_chain_der()[0]),
                "");
      EXPECT_NE(VerifyClientChain({leaf_der}, emulator_->ca_chain_der()[0]),
                "");  // the intermediate is needed
      EXPECT_EQ(emulator_->GetCounters().For(Thumbprint(leaf_der)).mints, 1);
    }
  }
  EXPECT_EQ(emulator_->GetCounters().mints, 4);
}

struct BadCsrCase {
  const char* name;
  std::string body;
  const char* message;
};

TEST_F(IssuingTest, BadCsrsAreRefusedNamingTheFailedCheck) {
  std::shared_ptr<const Key> key = PoolKey(KeyType::kEcP256);
  std::shared_ptr<const Key> other = PoolKey(KeyType::kEcP256, 1);
  auto body = [](const std::string& der) {
    return nlohmann::json{{"csr", absl::Base64Escape(der)}}.dump();
  };
  CsrOptions bad_signature = Subject();
  bad_signature.sign_with = other.get();
  CsrOptions wrong_cn = Subject();
  wrong_cn.cn = "someone-else";
  CsrOptions wrong_dc = Subject();
  wrong_dc.dc = "tenant-9999";
  CsrOptions extra = Subject();
  extra.extra_ou = "ops";
  UniqueEvpPkey rsa1024(EVP_RSA_gen(1024));
  UniqueEvpPkey p384(EVP_EC_gen("secp384r1"));
  auto weak = SoftwareKeyFromEvp(rsa1024.get());
  auto big_ec = SoftwareKeyFromEvp(p384.get());
  ASSERT_OK(weak);
  ASSERT_OK(big_ec);

  const BadCsrCase cases[] = {
      {"bad signature", body(MakeCsrDer(*key, bad_signature)), "signature"},
      {"wrong CN", body(MakeCsrDer(*key, wrong_cn)), "CN is \"someone-else\""},
      {"wrong DC", body(MakeCsrDer(*key, wrong_dc)), "DC is \"tenant-9999\""},
      {"extra attribute", body(MakeCsrDer(*key, extra)), "3 attribute"},
      {"RSA-1024", body(MakeCsrDer(**weak, Subject())), "RSA-1024"},
      {"EC P-384", body(MakeCsrDer(**big_ec, Subject())), "EC-secp384r1"},
      {"garbage base64", R"({"csr":"%%%not base64%%%"})", "base64"},
      {"not a CSR", body("just some bytes"), "PKCS#10"},
      {"trailing bytes", body(MakeCsrDer(*key, Subject()) + "x"), "PKCS#10"},
      {"no csr field", R"({"certificate_request":"x"})", "{\"csr\""},
      {"not JSON", "csr=abc", "{\"csr\""},
  };
  for (const BadCsrCase& c : cases) {
    SCOPED_TRACE(c.name);
    HttpResult result = Imds(*emulator_, kIssue, &c.body);
    EXPECT_EQ(result.status, 400) << result.Describe();
    EXPECT_EQ(result.Json()["error"], "invalid_request");
    EXPECT_THAT(result.Json()["error_description"].get<std::string>(),
                HasSubstr(c.message));
  }
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.mints, 0);
  EXPECT_EQ(counters.mint_requests, static_cast<int64_t>(std::size(cases)));
}

TEST_F(IssuingTest, IssueRequiresTheMetadataHeaderAndPost) {
  Client client;
  const std::string body = nlohmann::json{
      {"csr", absl::Base64Escape(MakeCsrDer(
                  *PoolKey(KeyType::kEcP256),
                  Subject()))}}.dump();
  HttpResult without = client.Post(emulator_->issuing_url() + kIssue, body);
  EXPECT_EQ(without.status, 400);
  EXPECT_THAT(without.body, HasSubstr("Metadata"));
  HttpResult get = Imds(*emulator_, kIssue);
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(emulator_->GetCounters().mints, 0);
}

TEST(IssuingClockTest, ValidityFollowsTheInjectedClockAndOption) {
  ManualClock clock(TestNow());
  EmulatorOptions options;
  options.clock = &clock;
  options.cert_validity = absl::Hours(48);
  auto emulator = Emulator::Start(options);
  ASSERT_OK(emulator);
  Binding binding = MintBinding(**emulator);
  auto leaf = DecodeCertificate(binding.chain_der[0], "leaf");
  ASSERT_OK(leaf);
  EXPECT_EQ(NotBefore(leaf->get()), TestNow());
  EXPECT_EQ(NotAfter(leaf->get()), TestNow() + absl::Hours(48));
}

TEST_F(IssuingTest, IssuerErrorAppliesToExactlyNRequests) {
  FaultSpec fault;
  fault.kind = FaultKind::kIssuerError;
  fault.count = 2;
  fault.http_status = 503;
  ASSERT_OK(emulator_->InjectFault(fault));
  const std::string csr = MakeCsrDer(*PoolKey(KeyType::kEcP256), Subject());
  for (int i = 0; i < 2; ++i) {
    HttpResult refused = PostCsr(*emulator_, csr);
    EXPECT_EQ(refused.status, 503) << refused.Describe();
    EXPECT_EQ(refused.Json()["error"], "temporarily_unavailable");
  }
  EXPECT_EQ(PostCsr(*emulator_, csr).status, 200);
  const Counters counters = emulator_->GetCounters();
  EXPECT_EQ(counters.mints, 1);
  EXPECT_EQ(counters.mint_requests, 3);
  EXPECT_EQ(counters.faults_applied, 2);
  EXPECT_EQ(emulator_->PendingFaults(), 0);
}

TEST_F(IssuingTest, IssueExpiredMakesExpiredNotYetValidOrShortLivedLeaves) {
  FaultSpec expired;
  expired.kind = FaultKind::kIssueExpired;
  FaultSpec future = expired;
  future.not_before_offset = absl::Hours(24);
  FaultSpec short_lived = expired;
  short_lived.not_before_offset = absl::ZeroDuration();
  short_lived.validity = absl::Minutes(10);
  for (const FaultSpec& f : {expired, future, short_lived}) {
    ASSERT_OK(emulator_->InjectFault(f));
  }
  const absl::Time now = absl::Now();
  auto window = [&]() {
    Binding binding = MintBinding(*emulator_);
    auto leaf = DecodeCertificate(binding.chain_der[0], "leaf");
    EXPECT_OK(leaf);
    return std::pair(NotBefore(leaf->get()), NotAfter(leaf->get()));
  };
  auto [nb1, na1] = window();
  EXPECT_LT(na1, now - absl::Hours(23));
  auto [nb2, na2] = window();
  EXPECT_GT(nb2, now + absl::Hours(23));
  auto [nb3, na3] = window();
  EXPECT_EQ(na3 - nb3, absl::Minutes(10));
  auto [nb4, na4] = window();
  EXPECT_EQ(na4 - nb4, absl::Hours(24 * 7));
  EXPECT_EQ(emulator_->GetCounters().mints, 4);
}

TEST_F(IssuingTest, AdminEndpointsDriveFaultsCountersAndRevocation) {
  Client admin;
  const std::string base = emulator_->issuing_url() + "/admin/";
  HttpResult bad_kind = admin.Post(base + "faults", R"({"kind":"explode"})");
  EXPECT_EQ(bad_kind.status, 400);
  EXPECT_THAT(bad_kind.body, HasSubstr("tls_alert"));  // lists known kinds
  HttpResult typo =
      admin.Post(base + "faults", R"({"kind":"delay","delay":5})");
  EXPECT_EQ(typo.status, 400);
  EXPECT_THAT(typo.body, HasSubstr("\\\"delay\\\" is unknown"));
  HttpResult zero =
      admin.Post(base + "faults", R"({"kind":"invalid_client","count":0})");
  EXPECT_EQ(zero.status, 400);
  EXPECT_THAT(zero.body, HasSubstr("count"));
  HttpResult bad_alert =
      admin.Post(base + "faults", R"({"kind":"tls_alert","alert":"nope"})");
  EXPECT_EQ(bad_alert.status, 400);
  EXPECT_EQ(emulator_->PendingFaults(), 0);

  HttpResult ok =
      admin.Post(base + "faults",
                 R"({"kind":"tls_alert","alert":"unknown_ca","count":3})");
  EXPECT_EQ(ok.status, 200) << ok.Describe();
  EXPECT_EQ(emulator_->PendingFaults(), 3);

  Binding binding = MintBinding(*emulator_);
  EXPECT_EQ(admin
                .Post(base + "revoke",
                      nlohmann::json{{"thumbprint", binding.thumbprint}}.dump())
                .status,
            200);
  HttpResult counters = admin.Get(base + "counters");
  ASSERT_EQ(counters.status, 200);
  EXPECT_EQ(counters.Json()["mints"], 1);
  EXPECT_EQ(counters.Json()["by_thumbprint"][binding.thumbprint]["mints"], 1);

  EXPECT_EQ(admin.Get(base + "ca").body, emulator_->ca_root_pem());
  EXPECT_EQ(admin.Post(base + "reset", "").status, 200);
  EXPECT_EQ(emulator_->PendingFaults(), 0);
  EXPECT_EQ(emulator_->GetCounters().mints, 0);
  EXPECT_EQ(admin.Get(base + "nothing").status, 404);
  EXPECT_EQ(
      admin.Post(base + "token-binding", R"({"access_token":"x.y"})").status,
      400);
}

TEST_F(IssuingTest, MalformedAndOversizedRequestsGetAnswersNotHangs) {
  const uint16_t port = emulator_->issuing_port();
  EXPECT_THAT(RawExchange(port, "NONSENSE\r\n\r\n"), HasSubstr("HTTP/1.1 400"));
  EXPECT_THAT(RawExchange(port, "GET / HTTP/2.0\r\n\r\n"),
              HasSubstr("HTTP/1.1 400"));
  EXPECT_THAT(RawExchange(port, "GET /admin/ca HTTP/1.1\r\nX: " +
                                    std::string(20000, 'a') + "\r\n\r\n"),
              HasSubstr("HTTP/1.1 431"));
  EXPECT_THAT(RawExchange(port,
                          "POST /admin/reset HTTP/1.1\r\n"
                          "Content-Length: 100000\r\n\r\n"),
              HasSubstr("HTTP/1.1 413"));
  EXPECT_THAT(RawExchange(port,
                          "POST /admin/reset HTTP/1.1\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"),
              HasSubstr("HTTP/1.1 400"));
  EXPECT_THAT(RawExchange(port, "GET /admin/ca?a=%zz HTTP/1.1\r\n\r\n"),
              HasSubstr("HTTP/1.1 400"));
  // Two pipelined requests on one connection, then close.
  const std::string two =
      RawExchange(port,
                  "GET /admin/counters HTTP/1.1\r\n\r\n"
                  "GET /admin/ca HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(two, HasSubstr("\"mints\":0"));
  EXPECT_THAT(two, HasSubstr("BEGIN CERTIFICATE"));
}

TEST(EmulatorOptionsTest, BadOptionsAreRefusedNamingTheOption) {
  struct Case {
    void (*edit)(EmulatorOptions&);
    const char* option;
  };
  const Case cases[] = {
      {[](EmulatorOptions& o) { o.tenant_id = "a/b"; }, "tenant_id"},
      {[](EmulatorOptions& o) { o.tenant_id = ""; }, "tenant_id"},
      {[](EmulatorOptions& o) { o.client_id = ""; }, "client_id"},
      {[](EmulatorOptions& o) { o.cert_validity = absl::ZeroDuration(); },
       "cert_validity"},
      {[](EmulatorOptions& o) { o.token_lifetime = absl::Milliseconds(10); },
       "token_lifetime"},
      {[](EmulatorOptions& o) { o.max_connections = 0; }, "max_connections"},
      {[](EmulatorOptions& o) {
         o.min_tls = TlsVersion::kTls13;
         o.max_tls = TlsVersion::kTls12;
       },
       "min_tls"},
  };
  for (const Case& c : cases) {
    EmulatorOptions options;
    c.edit(options);
    EXPECT_THAT(
        Emulator::Start(options),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.option)));
  }
}

TEST(EmulatorOptionsTest, ABusyPortIsUnavailableNamingThePort) {
  auto first = Emulator::Start();
  ASSERT_OK(first);
  EmulatorOptions options;
  options.token_port = (*first)->token_port();
  EXPECT_THAT(Emulator::Start(options),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat((*first)->token_port()))));
}

TEST(EmulatorOptionsTest, InjectFaultRefusesOutOfRangeSpecs) {
  auto emulator = Emulator::Start();
  ASSERT_OK(emulator);
  FaultSpec zero;
  zero.count = 0;
  FaultSpec ok_status;
  ok_status.kind = FaultKind::kHttpStatus;
  ok_status.http_status = 200;
  FaultSpec issuer_404;
  issuer_404.kind = FaultKind::kIssuerError;
  issuer_404.http_status = 404;
  FaultSpec negative;
  negative.kind = FaultKind::kDelay;
  negative.delay = absl::Seconds(-1);
  for (const FaultSpec& f : {zero, ok_status, issuer_404, negative}) {
    EXPECT_THAT((*emulator)->InjectFault(f),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(std::string(FaultKindName(f.kind)))));
  }
  EXPECT_EQ((*emulator)->PendingFaults(), 0);
}

TEST(EmulatorNamesTest, FaultKindsAndAlertsRoundTrip) {
  for (int i = 0; i <= static_cast<int>(FaultKind::kIssueExpired); ++i) {
    const auto kind = static_cast<FaultKind>(i);
    EXPECT_THAT(ParseFaultKind(FaultKindName(kind)),
                ::certstore::testing::IsOkAndHolds(kind));
  }
  for (int i = 0; i <= static_cast<int>(TlsAlert::kInternalError); ++i) {
    const auto alert = static_cast<TlsAlert>(i);
    EXPECT_THAT(ParseTlsAlert(TlsAlertName(alert)),
                ::certstore::testing::IsOkAndHolds(alert));
  }
  EXPECT_EQ(TlsAlertNumber(TlsAlert::kBadCertificate), 42);
  EXPECT_THAT(ParseFaultKind("nope"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hang")));
}

}  // namespace
}  // namespace certstore::emulator::testing

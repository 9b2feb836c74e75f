// Generic RFC 8705 mode against a real third-party token endpoint: nginx
// (Debian's nginx-light), configured here to require client certificates
// from the issuer's CA and to answer a JSON token, or invalid_client for
// certificates listed by SHA-1 fingerprint. The credential lives in
// sqlite, a PEM directory or a SoftHSM token, minted by the IMDS issuer
// (the emulator) or imported.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/open_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "certstore/token_client.h"
#include "emulator/emulator.h"
#include "tests/cli/cli_runner.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/files.h"
#include "tests/support/loopback.h"
#include "tests/support/nginx.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// nginx's $ssl_client_fingerprint: SHA-1 of the DER, lower-case hex.
std::string Sha1Hex(const std::string& der) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(der.data(), der.size(), digest, &size, EVP_sha1(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), size));
}

const SoftHsmToken& Token() {
  static SoftHsmToken* const token = [] {
    auto created = SoftHsmToken::Create("generic-nginx");
    if (!created.ok()) {
      fprintf(stderr, "%s\n", created.status().ToString().c_str());
      abort();
    }
    return created->release();
  }();
  return *token;
}

class GenericEndpointTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto emulator = emulator::Emulator::Start(emulator::EmulatorOptions{});
    ASSERT_OK(emulator);
    emulator_ = *std::move(emulator);
    const std::string dir = dir_.path();
    ASSERT_OK(NginxTokenEndpoint::WriteServerCertificate(dir));
    // Client certificates from the issuer, and from the test PKI (imports).
    WriteFile(dir + "/client-ca.pem",
              emulator_->ca_root_pem() +
                  DerChainToPem({pki_.root_der(), pki_.intermediate_der()}));
    nginx_ = std::make_unique<NginxTokenEndpoint>(dir, FreeLoopbackPort());
    ASSERT_OK(nginx_->Start());
    const std::string& backend = GetParam();
    uri_ = backend == "pkcs11" ? absl::StrCat("memory:,", Token().Uri())
           : backend == "file"
               ? absl::StrCat("memory:,file:", dir, "/certs")
               : absl::StrCat("memory:,sqlite:", dir, "/store.db");
    ASSERT_NO_FATAL_FAILURE(NewProcess(Options()));
  }

  void TearDown() override {
    if (store_ != nullptr) {
      store_->DeleteAllForAlias(kAlias).IgnoreError();
      store_->DeleteAllForAlias("imported").IgnoreError();
    }
  }

  TokenClientOptions Options() {
    TokenClientOptions options;
    options.issuing_url = emulator_->issuing_url();
    options.server_ca_pem = ReadFile(dir_.path() + "/server.pem");
    options.token_endpoint.url = nginx_->Url("/oauth2/v2.0/token");
    options.token_endpoint.client_id = kAlias;
    options.token_endpoint.extra_parameters = {{"audience", "api a&b"}};
    options.initial_backoff = absl::Milliseconds(20);
    options.state_dir = dir_.path();
    return options;
  }

  void NewProcess(const TokenClientOptions& options) {
    client_.reset();
    store_.reset();
    auto store = OpenStore(uri_);
    ASSERT_OK(store);
    store_ = *std::move(store);
    auto client = TokenClient::Create(store_.get(), options);
    ASSERT_OK(client);
    client_ = *std::move(client);
  }

  static constexpr char kAlias[] = "svc-generic";
  TempDir dir_;
  TestPki pki_;
  std::unique_ptr<emulator::Emulator> emulator_;
  std::unique_ptr<NginxTokenEndpoint> nginx_;
  std::string uri_;
  std::unique_ptr<LayeredStore> store_;
  std::unique_ptr<TokenClient> client_;
};

TEST_P(GenericEndpointTest, MintedCredentialGetsATokenFromNginx) {
  auto token = client_->GetToken("api://orders/read api://orders/write");
  ASSERT_OK(token);
  EXPECT_THAT(token->access_token, StartsWith("nginx-"));
  EXPECT_EQ(token->token_type, "Bearer");
  EXPECT_EQ(token->alias, kAlias);
  EXPECT_EQ(emulator_->GetCounters().mints, 1);
  auto stored = store_->Find(kAlias);
  ASSERT_OK(stored);
  EXPECT_EQ((*stored)->thumbprint(), token->thumbprint);
  // nginx saw the certificate the store holds: the token names its serial.
  auto leaf = DecodeCertificate((*stored)->chain_der()[0], "leaf");
  ASSERT_OK(leaf);
  // A second process reuses the binding; nothing is minted again.
  ASSERT_NO_FATAL_FAILURE(NewProcess(Options()));
  auto again = client_->GetToken("api://orders/read");
  ASSERT_OK(again);
  EXPECT_EQ(again->thumbprint, token->thumbprint);
  EXPECT_EQ(emulator_->GetCounters().mints, 1);
}

TEST_P(GenericEndpointTest, InvalidClientFromNginxEvictsMintsAndRetriesOnce) {
  auto first = client_->GetToken("api://orders/read");
  ASSERT_OK(first);
  auto stored = store_->Find(kAlias);
  ASSERT_OK(stored);
  ASSERT_OK(nginx_->Stop());
  nginx_->Reject(Sha1Hex((*stored)->chain_der()[0]));
  ASSERT_OK(nginx_->Start());
  auto healed = client_->GetToken("api://orders/write");
  ASSERT_OK(healed);
  EXPECT_TRUE(healed->healed);
  EXPECT_NE(healed->thumbprint, first->thumbprint);
  const TokenClientMetrics metrics = client_->Metrics();
  EXPECT_EQ(metrics.evictions, 1);
  EXPECT_EQ(metrics.token_requests, 3);  // first, refused, retried
  EXPECT_EQ(emulator_->GetCounters().mints, 2);
}

TEST_P(GenericEndpointTest, TokenBoundToAnotherCertificateIsRefusedNotCached) {
  TokenClientOptions options = Options();
  options.token_endpoint.url = nginx_->Url("/bound-elsewhere/token");
  ASSERT_NO_FATAL_FAILURE(NewProcess(options));
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(client_->GetToken("api://orders/read"),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("not to the one presented")));
  }
  EXPECT_EQ(client_->Metrics().token_requests, 2);  // never served cached
}

TEST_P(GenericEndpointTest, ImportedCredentialWithoutAnIssuer) {
  TokenClientOptions options = Options();
  options.issuing_url.clear();
  options.token_endpoint.alias = "imported";
  ASSERT_NO_FATAL_FAILURE(NewProcess(options));
  EXPECT_THAT(client_->GetToken("api://orders/read"),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("imported"), HasSubstr("no issuing"))));
  if (GetParam() == "pkcs11") {
    return;  // a software key is not imported without x-allow-import
  }
  EntryParts parts;
  parts.alias = "imported";
  parts.key = PoolKey(KeyType::kEcP256, 3);
  LeafOptions leaf;
  leaf.not_before = absl::Now() - absl::Hours(1);
  leaf.not_after = absl::Now() + absl::Hours(24 * 7);
  parts.chain_der = pki_.IssueChain(*parts.key, leaf);
  auto entry = Entry::Create(std::move(parts));
  ASSERT_OK(entry);
  ASSERT_OK(store_->Put(*entry));
  auto token = client_->GetToken("api://orders/read");
  ASSERT_OK(token);
  EXPECT_EQ(token->thumbprint, (*entry)->thumbprint());
  EXPECT_EQ(emulator_->GetCounters().mints, 0);
}

// The same from the command line: `certstore token --token-endpoint`,
// minted by the issuer, then an imported credential with no issuer.
class CliGenericEndpointTest : public GenericEndpointTest {};

TEST_P(CliGenericEndpointTest, CommandLineGenericMode) {
  const std::string store = "sqlite:" + dir_.path() + "/cli.db";
  const std::string server_ca = dir_.path() + "/server.pem";
  ProcessResult minted = RunCli(
      {"--store", store, "--output", "json", "token", "--token-endpoint",
       nginx_->Url("/oauth2/v2.0/token"), "--client-id", "cli-svc", "--scope",
       "api://orders/read api://orders/write", "--param", "audience=orders",
       "--server-ca", server_ca, "--issuing-url", emulator_->issuing_url()});
  ASSERT_EQ(minted.exit_code, 0) << minted.err;
  auto tokens = JsonOfKind(minted.out, "token");
  ASSERT_EQ(tokens.size(), 1u) << minted.out;
  EXPECT_EQ(tokens[0].value("token_type", ""), "Bearer");
  EXPECT_EQ(tokens[0].value("alias", ""), "cli-svc");

  const std::string bundle = dir_.path() + "/imported.pem";
  auto key = PoolKey(KeyType::kEcP256, 4);
  LeafOptions leaf;
  leaf.not_before = absl::Now() - absl::Hours(1);
  leaf.not_after = absl::Now() + absl::Hours(24 * 7);
  WriteFile(bundle,
            DerChainToPem(pki_.IssueChain(*key, leaf)) + *KeyToPem(*key));
  ASSERT_EQ(RunCli({"--store", store, "import", "imported", bundle}).exit_code,
            0);
  ProcessResult imported = RunCli(
      {"--store", store, "token", "--token-endpoint",
       nginx_->Url("/oauth2/v2.0/token"), "--client-id", "cli-svc", "--alias",
       "imported", "--scope", "api://orders/read", "--server-ca", server_ca});
  EXPECT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out, HasSubstr("Bearer"));
  // doctor walks the same path in generic mode, through the token step.
  ProcessResult doctor = RunCli(
      {"--store", store, "--output", "json", "doctor", "cli-svc",
       "--token-endpoint", nginx_->Url("/oauth2/v2.0/token"), "--client-id",
       "cli-svc", "--scope", "api://orders/read", "--server-ca", server_ca});
  EXPECT_EQ(doctor.exit_code, 0) << doctor.out << doctor.err;
  bool token_step_ok = false;
  for (const auto& check : JsonOfKind(doctor.out, "check")) {
    if (check.value("step", "") == "token") {
      token_step_ok = check.value("result", "") == "passed";
    }
  }
  EXPECT_TRUE(token_step_ok) << doctor.out;
  // A wrong path is configuration (exit 2), for doctor and token alike.
  const std::string wrong = nginx_->Url("/no/such/token");
  ProcessResult doctor_404 = RunCli(
      {"--store", store, "doctor", "cli-svc", "--token-endpoint", wrong,
       "--client-id", "cli-svc", "--scope", "x", "--server-ca", server_ca});
  EXPECT_EQ(doctor_404.exit_code, 2) << doctor_404.out << doctor_404.err;
  ProcessResult token_404 = RunCli(
      {"--store", store, "token", "--token-endpoint", wrong, "--client-id",
       "cli-svc", "--scope", "x", "--server-ca", server_ca});
  EXPECT_EQ(token_404.exit_code, 2) << token_404.err << token_404.out;
  EXPECT_THAT(token_404.err, HasSubstr("404"));
  ProcessResult bad_param =
      RunCli({"--store", store, "token", "--token-endpoint",
              nginx_->Url("/oauth2/v2.0/token"), "--client-id", "cli-svc",
              "--scope", "x", "--param", "audience"});
  EXPECT_EQ(bad_param.exit_code, 2) << bad_param.err;
  EXPECT_THAT(bad_param.err, HasSubstr("is not name=value"));
  ProcessResult generic_flag_alone =
      RunCli({"--store", store, "token", "--client-id", "cli-svc", "--scope",
              "x", "--issuing-url", emulator_->issuing_url()});
  EXPECT_EQ(generic_flag_alone.exit_code, 2) << generic_flag_alone.err;
  EXPECT_THAT(generic_flag_alone.err, HasSubstr("--token-endpoint"));
  ProcessResult cleartext = RunCli(
      {"--store", store, "token", "--token-endpoint",
       "http://127.0.0.1:1/token", "--client-id", "cli-svc", "--scope", "x"});
  EXPECT_EQ(cleartext.exit_code, 2) << cleartext.err;
  EXPECT_THAT(cleartext.err, HasSubstr("is not https://"));
}

TEST(GenericEndpointOptionsTest, RefusesWhatCannotWork) {
  auto store = OpenStore("memory:");
  ASSERT_OK(store);
  TokenClientOptions options;
  options.token_endpoint.url = "http://127.0.0.1:1/token";
  options.token_endpoint.client_id = "c";
  EXPECT_THAT(TokenClient::Create(store->get(), options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("is not https://")));
  options.token_endpoint.url = "https://127.0.0.1:1/token";
  options.token_endpoint.client_id = "";
  EXPECT_THAT(
      TokenClient::Create(store->get(), options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("client_id")));
  options.token_endpoint.client_id = "c";
  EXPECT_OK(TokenClient::Create(store->get(), options));  // no issuer: ok
  options.issuing_url = "http://issuer.example";
  EXPECT_THAT(
      TokenClient::Create(store->get(), options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("issuing_url")));
}

// The command line is driven on one backend; the library on all three.
INSTANTIATE_TEST_SUITE_P(Sqlite, CliGenericEndpointTest,
                         ::testing::Values("sqlite"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });
INSTANTIATE_TEST_SUITE_P(Backends, GenericEndpointTest,
                         ::testing::Values("sqlite", "file", "pkcs11"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });

}  // namespace
}  // namespace certstore::testing

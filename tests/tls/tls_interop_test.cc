// certstore::tls with real third-party peers: our server (its key in
// sqlite, a PEM directory or on a SoftHSM token) verified by curl and
// `openssl s_client` presenting client certificates; our client, through
// the libcurl adapter, against nginx requiring client certificates.
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/curl_tls.h"
#include "certstore/pem_dir_store.h"
#include "certstore/pkcs11_store.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/tls.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/loopback.h"
#include "tests/support/mtls_peers.h"
#include "tests/support/nginx.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/tls/tls_test_util.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;

const TestPki& Pki() {
  static const TestPki* pki = new TestPki();
  return *pki;
}

const SoftHsmToken& Token() {
  static const SoftHsmToken* token = [] {
    auto created = SoftHsmToken::Create("tls-interop");
    if (!created.ok()) {
      fprintf(stderr, "%s\n", created.status().ToString().c_str());
      abort();
    }
    return created->release();
  }();
  return *token;
}

// The serial as nginx's $ssl_client_serial prints it (upper-case hex).
std::string SerialHex(const Entry& entry) {
  X509* leaf = (*entry.Chain())[0];
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(leaf), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex;
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

// Our side's credentials in the backend under test: "server" and
// "client", with keys where that backend keeps them (on the token for
// pkcs11).
class InteropTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string& backend = GetParam();
    absl::StatusOr<std::unique_ptr<CertStore>> opened;
    if (backend == "sqlite") {
      opened = OpenSqliteStore(dir_.path() + "/store.db");
    } else if (backend == "file") {
      ASSERT_EQ(mkdir((dir_.path() + "/pem").c_str(), 0700), 0);
      opened = OpenPemDirStore(dir_.path() + "/pem");
    } else {
      Token();
      opened = OpenPkcs11Store(Token().Options());
    }
    ASSERT_OK(opened.status());
    store_ = *std::move(opened);
    ASSERT_OK(store_->DeleteAllForAlias("server").status());
    ASSERT_OK(store_->DeleteAllForAlias("client").status());
    server_entry_ = Put("server", 0);
    client_entry_ = Put("client", 0);
    root_ = dir_.path() + "/root.pem";
    WriteText(root_, Pki().root_pem());
  }

  // A new credential for `alias`, its key where the backend keeps keys.
  std::shared_ptr<const Entry> Put(const std::string& alias, int n) {
    std::shared_ptr<const Key> key =
        GetParam() == "pkcs11"
            ? *store_->CreateKey(alias, KeySpec{KeyType::kEcP256})
            : PoolKey(KeyType::kEcP256, 20 + n);
    std::shared_ptr<const Entry> entry =
        alias == "server"
            ? ServerEntry(Pki(), alias, key, 30 + n)
            : ClientEntry(Pki(), alias, key, "client", "", 30 + n);
    EXPECT_OK(store_->Put(entry));
    return entry;
  }

  std::shared_ptr<PeerPolicy> ClientsOfThePki() {
    PeerPolicyConfig config;
    config.trust_bundle_files = {root_};
    config.required_usage = RequiredUsage::kClientAuth;
    absl::StatusOr<std::shared_ptr<PeerPolicy>> policy =
        PeerPolicy::Create(config);
    EXPECT_OK(policy.status());
    return *policy;
  }

  std::shared_ptr<TlsIdentity> Identity(const std::string& alias) {
    absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
        TlsIdentity::Create(store_, alias);
    EXPECT_OK(identity.status());
    return *identity;
  }

  // A third-party client's own software credential, as files.
  void WriteThirdPartyClient() {
    std::shared_ptr<const Entry> entry =
        ClientEntry(Pki(), "curl", PoolKey(KeyType::kEcP256, 30), "curl");
    third_party_thumbprint_ = entry->thumbprint();
    WriteText(dir_.path() + "/tp-chain.pem", ChainPem(*entry));
    WriteText(dir_.path() + "/tp-leaf.pem",
              DerChainToPem({entry->chain_der()[0]}));
    WriteText(dir_.path() + "/tp-intermediate.pem",
              DerChainToPem({entry->chain_der()[1]}));
    WriteText(dir_.path() + "/tp-key.pem", KeyPem(*entry->key()));
  }

  TempDir dir_;
  std::string root_;
  std::shared_ptr<CertStore> store_;
  std::shared_ptr<const Entry> server_entry_;
  std::shared_ptr<const Entry> client_entry_;
  std::string third_party_thumbprint_;
};

TEST_P(InteropTest, CurlVerifiesOurServerAndPresentsItsCertificate) {
  MtlsServer server(Identity("server"), ClientsOfThePki());
  WriteThirdPartyClient();
  const ProcessResult curl =
      RunProcess({"curl", "-sS", "--max-time", "20", "--cacert", root_,
                  "--cert", dir_.path() + "/tp-chain.pem", "--key",
                  dir_.path() + "/tp-key.pem", server.Url()});
  ASSERT_EQ(curl.exit_code, 0) << curl.err;
  EXPECT_THAT(curl.out,
              HasSubstr(absl::StrCat("client=", third_party_thumbprint_)));
  EXPECT_THAT(curl.out,
              HasSubstr(absl::StrCat("server=", server_entry_->thumbprint())));

  // Without a client certificate, curl is refused.
  const ProcessResult anonymous = RunProcess(
      {"curl", "-sS", "--max-time", "20", "--cacert", root_, server.Url()});
  EXPECT_NE(anonymous.exit_code, 0) << anonymous.out;
  const auto seen = server.WaitForHandshakes(2);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].ok);
  EXPECT_FALSE(seen[1].ok);
}

TEST_P(InteropTest, OpensslSClientVerifiesOurServerAndPresentsItsCertificate) {
  MtlsServer server(Identity("server"), ClientsOfThePki());
  WriteThirdPartyClient();
  ProcessOptions options;
  options.stdin_text =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  options.timeout = absl::Seconds(30);
  const ProcessResult s_client =
      RunProcess({"openssl", "s_client", "-connect",
                  absl::StrCat("127.0.0.1:", server.port()), "-CAfile", root_,
                  "-verify_return_error", "-verify_ip", "127.0.0.1", "-cert",
                  dir_.path() + "/tp-leaf.pem", "-cert_chain",
                  dir_.path() + "/tp-intermediate.pem", "-key",
                  dir_.path() + "/tp-key.pem", "-quiet", "-ign_eof"},
                 options);
  ASSERT_EQ(s_client.exit_code, 0) << s_client.err;
  EXPECT_THAT(s_client.out,
              HasSubstr(absl::StrCat("client=", third_party_thumbprint_)));
  EXPECT_THAT(s_client.out,
              HasSubstr(absl::StrCat("server=", server_entry_->thumbprint())));
}

// nginx (ssl_verify_client on) answers with the serial of the certificate
// it verified; after a renewal in the store, the next connection presents
// the new one.
TEST_P(InteropTest, OurClientThroughCurlAgainstNginx) {
  ASSERT_OK(NginxTokenEndpoint::WriteServerCertificate(dir_.path()));
  WriteText(dir_.path() + "/client-ca.pem", Pki().root_pem());
  NginxTokenEndpoint nginx(dir_.path(), FreeLoopbackPort());
  ASSERT_OK(nginx.Start());

  CurlTls tls;
  tls.identity = Identity("client");
  auto get_token = [&](std::string* body) {
    CURL* curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL,
                     nginx.Url("/oauth2/v2.0/token").c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "grant_type=client_credentials");
    curl_easy_setopt(curl, CURLOPT_CAINFO,
                     (dir_.path() + "/server.pem").c_str());
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION,
        +[](char* data, size_t size, size_t n, void* out) {
          static_cast<std::string*>(out)->append(data, size * n);
          return size * n;
        });
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    EXPECT_OK(ConfigureCurlHandle(curl, &tls));
    const CURLcode code = curl_easy_perform(curl);
    const ConnectionOutcome outcome = DescribeCurlResult(curl, code, tls);
    curl_easy_cleanup(curl);
    return outcome;
  };
  std::string body;
  ConnectionOutcome outcome = get_token(&body);
  EXPECT_EQ(outcome.error, TransportError::kNone);
  EXPECT_EQ(outcome.http_status, 200) << body;
  EXPECT_EQ(ClassifyHandshakeFailure(outcome), FailureClass::kNone);
  EXPECT_THAT(absl::AsciiStrToUpper(body),
              HasSubstr(absl::StrCat("NGINX-", SerialHex(*client_entry_))));

  std::shared_ptr<const Entry> renewed = Put("client", 1);
  ASSERT_OK(tls.identity->Refresh());
  body.clear();
  outcome = get_token(&body);
  EXPECT_EQ(outcome.http_status, 200) << body;
  EXPECT_THAT(absl::AsciiStrToUpper(body),
              HasSubstr(absl::StrCat("NGINX-", SerialHex(*renewed))));
  EXPECT_TRUE(tls.handshake.certificate_requested);
  EXPECT_OK(nginx.Stop());
}

TEST(CurlTlsTest, BadInputIsRefused) {
  CurlTls tls;
  EXPECT_THAT(ConfigureCurlHandle(nullptr, &tls),
              StatusIs(absl::StatusCode::kInvalidArgument));
  CURL* curl = curl_easy_init();
  EXPECT_THAT(ConfigureCurlHandle(curl, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ConfigureCurlHandle(curl, &tls),  // no identity
              StatusIs(absl::StatusCode::kInvalidArgument));
  curl_easy_cleanup(curl);
}

INSTANTIATE_TEST_SUITE_P(Backends, InteropTest,
                         ::testing::Values("sqlite", "file", "pkcs11"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });

}  // namespace
}  // namespace certstore::testing

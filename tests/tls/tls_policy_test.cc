// PeerPolicy through real handshakes: a table of allowed and refused
// clients, each with the verdict the server recorded, the alert the client
// received and how the client classifies it; the server refused by a
// client; reloads; bad configurations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "certstore/memory_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/tls.h"
#include "tests/support/mtls_peers.h"
#include "tests/support/temp_dir.h"
#include "tests/tls/tls_test_util.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;

const TestPki& Pki() {
  static const TestPki* pki = new TestPki();
  return *pki;
}

// Another PKI: different CA keys and names.
const TestPki& OtherPki() {
  static const TestPki* pki = new TestPki(KeyType::kEcP256, 1010);
  return *pki;
}

std::shared_ptr<const Key> ClientKey() { return PoolKey(KeyType::kEcP256, 1); }
std::shared_ptr<const Key> ServerKey() { return PoolKey(KeyType::kEcP256, 2); }

std::shared_ptr<TlsIdentity> IdentityOf(std::shared_ptr<const Entry> entry) {
  std::shared_ptr<CertStore> store = NewMemoryStore();
  EXPECT_OK(store->Put(entry));
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, entry->alias());
  EXPECT_OK(identity.status());
  return *identity;
}

struct Row {
  std::string name;
  // The client's leaf.
  std::function<std::shared_ptr<const Entry>()> client;
  // Changes the server's policy (anchors: the test PKI's root).
  std::function<void(PeerPolicyConfig&, const Entry& client)> policy;
  PeerRefusal refusal;  // kNone: allowed
  int alert;            // what the client receives; -1 when allowed
};

class PolicyTableTest
    : public ::testing::TestWithParam<std::tuple<Row, int /*TLS version*/>> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    WriteText(dir_->path() + "/root.pem", Pki().root_pem());
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* PolicyTableTest::dir_ = nullptr;

// Where a row writes its CRL (removed at exit).
std::string PolicyTableTest_CrlPath(const std::string& name) {
  static TempDir dir;
  return absl::StrCat(dir.path(), "/", name, ".crl");
}

std::vector<Row> Rows() {
  auto plain = [] { return ClientEntry(Pki(), "client", ClientKey()); };
  auto spiffe = [] {
    return ClientEntry(Pki(), "client", ClientKey(), "workload",
                       "URI:spiffe://prod.example/ns/pay/sa/api");
  };
  auto none = [](PeerPolicyConfig&, const Entry&) {};
  return {
      {"valid_client", plain, none, PeerRefusal::kNone, -1},
      {"wrong_ca",
       [] { return ClientEntry(OtherPki(), "client", ClientKey()); }, none,
       PeerRefusal::kUntrusted, tls_alert::kUnknownCa},
      {"expired",
       [] {
         LeafOptions o = LiveLeaf("client", "clientAuth");
         o.not_before = absl::Now() - absl::Hours(48);
         o.not_after = absl::Now() - absl::Hours(1);
         return EntryFor("client", ClientKey(),
                         Pki().IssueChain(*ClientKey(), o));
       },
       none, PeerRefusal::kExpired, tls_alert::kCertificateExpired},
      {"not_yet_valid",
       [] {
         LeafOptions o = LiveLeaf("client", "clientAuth");
         o.not_before = absl::Now() + absl::Hours(1);
         return EntryFor("client", ClientKey(),
                         Pki().IssueChain(*ClientKey(), o));
       },
       none, PeerRefusal::kNotYetValid, tls_alert::kBadCertificate},
      {"revoked_by_crl", plain,
       [](PeerPolicyConfig& c, const Entry& client) {
         const std::string path = PolicyTableTest_CrlPath("revoked");
         WriteText(path, Pki().IssueCrl({client.chain_der()}));
         c.crl_files = {path};
       },
       PeerRefusal::kRevoked, tls_alert::kCertificateRevoked},
      {"not_on_crl", plain,
       [](PeerPolicyConfig& c, const Entry&) {
         const std::string path = PolicyTableTest_CrlPath("empty");
         WriteText(path, Pki().IssueCrl({}));
         c.crl_files = {path};
       },
       PeerRefusal::kNone, -1},
      {"wrong_eku",
       [] {
         return EntryFor(
             "client", ClientKey(),
             Pki().IssueChain(*ClientKey(), LiveLeaf("client", "serverAuth")));
       },
       [](PeerPolicyConfig& c, const Entry&) {
         c.required_usage = RequiredUsage::kClientAuth;
       },
       PeerRefusal::kWrongUsage, tls_alert::kUnsupportedCertificate},
      {"no_eku_but_required",
       [] {
         return EntryFor(
             "client", ClientKey(),
             Pki().IssueChain(*ClientKey(), LiveLeaf("client", "")));
       },
       [](PeerPolicyConfig& c, const Entry&) {
         c.required_usage = RequiredUsage::kClientAuth;
       },
       PeerRefusal::kWrongUsage, tls_alert::kUnsupportedCertificate},
      {"thumbprint_listed", plain,
       [](PeerPolicyConfig& c, const Entry& client) {
         c.allowed_thumbprints = {client.thumbprint()};
       },
       PeerRefusal::kNone, -1},
      {"thumbprint_not_listed", plain,
       [](PeerPolicyConfig& c, const Entry&) {
         c.allowed_thumbprints = {
             ClientEntry(Pki(), "other", PoolKey(KeyType::kEcP256, 3))
                 ->thumbprint()};
       },
       PeerRefusal::kNotAllowed, tls_alert::kBadCertificate},
      {"spiffe_id_match", spiffe,
       [](PeerPolicyConfig& c, const Entry&) {
         c.allowed_uris = {"spiffe://prod.example/ns/pay/sa/api"};
       },
       PeerRefusal::kNone, -1},
      {"spiffe_id_mismatch", spiffe,
       [](PeerPolicyConfig& c, const Entry&) {
         c.allowed_uris = {"spiffe://prod.example/ns/pay/sa/worker"};
       },
       PeerRefusal::kNotAllowed, tls_alert::kBadCertificate},
      {"spiffe_trust_domain_match", spiffe,
       [](PeerPolicyConfig& c, const Entry&) {
         c.allowed_uris = {"spiffe://prod.example/*"};
       },
       PeerRefusal::kNone, -1},
      {"spiffe_trust_domain_mismatch", spiffe,
       [](PeerPolicyConfig& c, const Entry&) {
         c.allowed_uris = {"spiffe://staging.example/*"};
       },
       PeerRefusal::kNotAllowed, tls_alert::kBadCertificate},
      {"dns_name_match",
       [] {
         return ClientEntry(Pki(), "client", ClientKey(), "client",
                            "DNS:Api.Internal.Example");
       },
       [](PeerPolicyConfig& c, const Entry&) {
         c.allowed_dns_names = {"api.internal.example"};
       },
       PeerRefusal::kNone, -1},
      {"common_name_match", plain,
       [](PeerPolicyConfig& c, const Entry&) {
         c.allowed_common_names = {"client"};
       },
       PeerRefusal::kNone, -1},
      {"common_name_mismatch", plain,
       [](PeerPolicyConfig& c, const Entry&) {
         c.allowed_common_names = {"someone-else"};
       },
       PeerRefusal::kNotAllowed, tls_alert::kBadCertificate},
      {"chain_too_deep", plain,
       [](PeerPolicyConfig& c, const Entry&) { c.max_chain_length = 2; },
       PeerRefusal::kChainTooLong, tls_alert::kUnknownCa},
      {"chain_at_limit", plain,
       [](PeerPolicyConfig& c, const Entry&) { c.max_chain_length = 3; },
       PeerRefusal::kNone, -1},
      {"custom_check_refuses", plain,
       [](PeerPolicyConfig& c, const Entry&) {
         c.custom_check = [](const PeerIdentity& peer) {
           return peer.common_name == "client"
                      ? absl::PermissionDeniedError("client is on leave")
                      : absl::OkStatus();
         };
       },
       PeerRefusal::kCustomCheck, tls_alert::kBadCertificate},
  };
}

TEST_P(PolicyTableTest, VerdictAlertAndClassification) {
  const Row& row = std::get<0>(GetParam());
  const int version = std::get<1>(GetParam());
  std::shared_ptr<const Entry> client = row.client();

  PeerPolicyConfig server_config;
  server_config.trust_bundle_files = {dir_->path() + "/root.pem"};
  row.policy(server_config, *client);
  absl::StatusOr<std::shared_ptr<PeerPolicy>> server_policy =
      PeerPolicy::Create(server_config);
  ASSERT_OK(server_policy.status());
  MtlsServer server(IdentityOf(ServerEntry(Pki(), "server", ServerKey())),
                    *server_policy);

  PeerPolicyConfig client_config;
  client_config.trust_bundle_files = {dir_->path() + "/root.pem"};
  client_config.required_usage = RequiredUsage::kServerAuth;
  absl::StatusOr<std::shared_ptr<PeerPolicy>> client_policy =
      PeerPolicy::Create(client_config);
  ASSERT_OK(client_policy.status());
  // The client presents the row's certificate as loaded (a store would not
  // serve an expired one), and verifies the server with its policy.
  UniqueSslCtx ctx = NewStaticClientContext(*client);
  ASSERT_OK((*client_policy)->Install(ctx.get()));
  SSL_CTX_set_min_proto_version(ctx.get(), version);
  SSL_CTX_set_max_proto_version(ctx.get(), version);

  const MtlsResponse response = MtlsGet(ctx.get(), server.port());
  const std::vector<MtlsServer::Handshake> seen = server.WaitForHandshakes(1);
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_TRUE(seen[0].verdict.has_value());
  const PeerVerdict& verdict = *seen[0].verdict;
  EXPECT_EQ(verdict.peer.thumbprint, client->thumbprint());
  if (row.refusal == PeerRefusal::kNone) {
    EXPECT_TRUE(verdict.allowed) << verdict.reason;
    ASSERT_TRUE(response.ok) << response.error;
    EXPECT_THAT(response.body,
                HasSubstr(absl::StrCat("client=", client->thumbprint())));
    return;
  }
  EXPECT_FALSE(verdict.allowed);
  EXPECT_EQ(PeerRefusalName(verdict.refusal), PeerRefusalName(row.refusal))
      << verdict.reason;
  EXPECT_FALSE(verdict.reason.empty());
  EXPECT_EQ(verdict.alert, row.alert);
  ASSERT_FALSE(response.ok);
  EXPECT_EQ(response.trace.alert_received, row.alert) << response.error;
  EXPECT_EQ(response.outcome.tls_alert_received, row.alert);
  EXPECT_EQ(response.outcome.phase, version == TLS1_3_VERSION
                                        ? RequestPhase::kFirstRead
                                        : RequestPhase::kTlsHandshake);
  EXPECT_EQ(FailureClassName(ClassifyHandshakeFailure(response.outcome)),
            FailureClassName(FailureClass::kCredential));
  EXPECT_EQ(FailureStatusCode(response.outcome),
            absl::StatusCode::kUnauthenticated);
}

INSTANTIATE_TEST_SUITE_P(Rows, PolicyTableTest,
                         ::testing::Combine(::testing::ValuesIn(Rows()),
                                            ::testing::Values(TLS1_2_VERSION,
                                                              TLS1_3_VERSION)),
                         [](const auto& param_info) {
                           return absl::StrCat(
                               std::get<0>(param_info.param).name,
                               std::get<1>(param_info.param) == TLS1_3_VERSION
                                   ? "_tls13"
                                   : "_tls12");
                         });

class PeerPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() + "/root.pem";
    WriteText(root_, Pki().root_pem());
  }
  PeerPolicyConfig Config() const {
    PeerPolicyConfig c;
    c.trust_bundle_files = {root_};
    return c;
  }
  TempDir dir_;
  std::string root_;
};

// The client's side: a server from another PKI, or without serverAuth, is
// refused by the client; that is our trust in the server (fatal, never a
// reason to evict our credential).
TEST_F(PeerPolicyTest, ClientRefusesAServerItDoesNotTrust) {
  PeerPolicyConfig server_config = Config();
  absl::StatusOr<std::shared_ptr<PeerPolicy>> server_policy =
      PeerPolicy::Create(server_config);
  ASSERT_OK(server_policy.status());
  PeerPolicyConfig client_config = Config();
  client_config.required_usage = RequiredUsage::kServerAuth;
  absl::StatusOr<std::shared_ptr<PeerPolicy>> client_policy =
      PeerPolicy::Create(client_config);
  ASSERT_OK(client_policy.status());
  UniqueSslCtx ctx = NewClientContext(
      IdentityOf(ClientEntry(Pki(), "client", ClientKey())), *client_policy);

  for (const bool other_ca : {true, false}) {
    std::shared_ptr<const Entry> server_entry =
        other_ca
            ? ServerEntry(OtherPki(), "server", ServerKey())
            : EntryFor("server", ServerKey(),
                       Pki().IssueChain(*ServerKey(),
                                        LiveLeaf("127.0.0.1", "clientAuth")));
    MtlsServer server(IdentityOf(server_entry), *server_policy);
    const MtlsResponse response = MtlsGet(ctx.get(), server.port());
    ASSERT_FALSE(response.ok);
    EXPECT_EQ(response.outcome.error, TransportError::kPeerNotTrusted)
        << response.error;
    EXPECT_TRUE(PeerNotTrusted(response.outcome));
    EXPECT_EQ(ClassifyHandshakeFailure(response.outcome), FailureClass::kFatal);
    EXPECT_EQ(FailureStatusCode(response.outcome),
              absl::StatusCode::kUnavailable);
  }
}

TEST_F(PeerPolicyTest, AllowlistAndAnchorsReloadAtRuntime) {
  std::shared_ptr<const Entry> a = ClientEntry(Pki(), "client", ClientKey());
  std::shared_ptr<const Entry> b =
      ClientEntry(OtherPki(), "client", PoolKey(KeyType::kEcP256, 3));
  PeerPolicyConfig config = Config();
  config.allowed_thumbprints = {a->thumbprint()};
  absl::StatusOr<std::shared_ptr<PeerPolicy>> policy =
      PeerPolicy::Create(config);
  ASSERT_OK(policy.status());
  MtlsServer server(IdentityOf(ServerEntry(Pki(), "server", ServerKey())),
                    *policy);
  UniqueSslCtx ctx_a = NewClientContext(IdentityOf(a), nullptr);
  UniqueSslCtx ctx_b = NewClientContext(IdentityOf(b), nullptr);
  EXPECT_TRUE(MtlsGet(ctx_a.get(), server.port()).ok);
  EXPECT_FALSE(MtlsGet(ctx_b.get(), server.port()).ok);

  // The other PKI's root joins the bundle file; B joins the allowlist.
  WriteText(root_, Pki().root_pem() + OtherPki().root_pem());
  ASSERT_OK((*policy)->Reload());
  EXPECT_FALSE(MtlsGet(ctx_b.get(), server.port()).ok);  // not listed yet
  config.allowed_thumbprints = {a->thumbprint(), b->thumbprint()};
  ASSERT_OK((*policy)->Reload(config));
  EXPECT_TRUE(MtlsGet(ctx_b.get(), server.port()).ok);
  EXPECT_TRUE(MtlsGet(ctx_a.get(), server.port()).ok);

  // A reload that fails keeps the policy in force.
  WriteText(root_, "not a certificate");
  EXPECT_THAT((*policy)->Reload(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(root_)));
  EXPECT_TRUE(MtlsGet(ctx_b.get(), server.port()).ok);
}

TEST_F(PeerPolicyTest, AnchorsFromADirectoryAndFromStoreEntries) {
  TempDir anchors;
  WriteText(anchors.path() + "/a.pem", OtherPki().root_pem());
  WriteText(anchors.path() + "/b.crt", Pki().root_pem());
  WriteText(anchors.path() + "/ignored.txt", "not read");
  PeerPolicyConfig from_dir;
  from_dir.trust_directories = {anchors.path()};
  absl::StatusOr<std::shared_ptr<PeerPolicy>> dir_policy =
      PeerPolicy::Create(from_dir);
  ASSERT_OK(dir_policy.status());
  std::shared_ptr<const Entry> client =
      ClientEntry(Pki(), "client", ClientKey());
  const std::vector<X509*> chain(client->Chain()->begin(),
                                 client->Chain()->end());
  EXPECT_TRUE((*dir_policy)->Check(chain, true, absl::Now()).allowed);

  // The last certificate of an entry's chain (here the intermediate) is an
  // anchor.
  std::shared_ptr<CertStore> store = NewMemoryStore();
  ASSERT_OK(store->Put(ClientEntry(Pki(), "ca", PoolKey(KeyType::kEcP256, 4))));
  PeerPolicyConfig from_store;
  from_store.trust_store = store;
  from_store.trust_aliases = {"ca"};
  absl::StatusOr<std::shared_ptr<PeerPolicy>> store_policy =
      PeerPolicy::Create(from_store);
  ASSERT_OK(store_policy.status());
  const PeerVerdict ok = (*store_policy)->Check(chain, true, absl::Now());
  EXPECT_TRUE(ok.allowed) << ok.reason;
  EXPECT_EQ(ok.peer.common_name, "client");
  std::shared_ptr<const Entry> stranger =
      ClientEntry(OtherPki(), "client", ClientKey());
  const PeerVerdict refused =
      (*store_policy)
          ->Check({stranger->Chain()->begin(), stranger->Chain()->end()}, true,
                  absl::Now());
  EXPECT_EQ(refused.refusal, PeerRefusal::kUntrusted) << refused.reason;
  EXPECT_EQ(refused.alert, tls_alert::kUnknownCa);
}

TEST_F(PeerPolicyTest, BadConfigurationsAreRefusedNamingTheCulprit) {
  auto refused = [](const PeerPolicyConfig& c) {
    return PeerPolicy::Create(c).status();
  };
  PeerPolicyConfig c;
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("no trust anchor")));
  c.trust_bundle_files = {dir_.path() + "/missing.pem"};
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("missing.pem")));
  WriteText(dir_.path() + "/empty.pem", "");
  c.trust_bundle_files = {dir_.path() + "/empty.pem"};
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("empty.pem")));
  WriteText(dir_.path() + "/damaged.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  c.trust_bundle_files = {dir_.path() + "/damaged.pem"};
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("damaged.pem")));
  c = Config();
  c.trust_directories = {dir_.path() + "/no-such-dir"};
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("no-such-dir")));
  c = Config();
  c.allowed_thumbprints = {"not-a-thumbprint"};
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("not-a-thumbprint")));
  c = Config();
  c.allowed_uris = {"no-scheme"};
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("no-scheme")));
  c = Config();
  c.max_chain_length = 0;
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("max_chain_length")));
  c = Config();
  c.trust_aliases = {"ca"};
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("trust_store")));
  c.trust_store = NewMemoryStore();
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("\"ca\"")));
  c = Config();
  WriteText(dir_.path() + "/bad.crl", "garbage");
  c.crl_files = {dir_.path() + "/bad.crl"};
  EXPECT_THAT(refused(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("bad.crl")));
  absl::StatusOr<std::shared_ptr<PeerPolicy>> policy =
      PeerPolicy::Create(Config());
  ASSERT_OK(policy.status());
  EXPECT_THAT((*policy)->Install(nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ((*policy)->Check({}, true, absl::Now()).refusal,
            PeerRefusal::kNoCertificate);
}

}  // namespace
}  // namespace certstore::testing

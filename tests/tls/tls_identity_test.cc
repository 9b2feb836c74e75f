// TlsIdentity: new handshakes present the store's current credential; a
// renewal in this process (NotifyChanged) or in another one (the poll)
// switches them; open connections keep theirs; a PKCS#11 key presents on
// both sides; bad input is refused.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/memory_store.h"
#include "certstore/pem_dir_store.h"
#include "certstore/pkcs11_store.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/tls.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/mtls_peers.h"
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

// The generation moved past `from` (bounded: 10 s).
bool WaitForSwitch(const TlsIdentity& identity, uint64_t from) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (identity.generation() == from && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  return identity.generation() != from;
}

// The n-th server leaf (later n: later not_after, so the store serves it).
std::shared_ptr<const Entry> NthServerEntry(int n) {
  return ServerEntry(Pki(), "server", PoolKey(KeyType::kEcP256, 10 + n % 4),
                     30 + n);
}

// Without polling there is no background thread: NotifyChanged re-reads
// the store before it returns.
TEST(TlsIdentityTest, WithoutPollingNotifyChangedSwitchesBeforeReturning) {
  std::shared_ptr<CertStore> store = NewMemoryStore();
  std::shared_ptr<const Entry> first = NthServerEntry(0);
  ASSERT_OK(store->Put(first));
  TlsIdentityOptions no_polling;
  no_polling.poll_interval = absl::InfiniteDuration();
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "server", no_polling);
  ASSERT_OK(identity.status());
  EXPECT_EQ((*identity)->Current()->thumbprint(), first->thumbprint());
  std::shared_ptr<const Entry> second = NthServerEntry(1);
  ASSERT_OK(store->Put(second));
  (*identity)->NotifyChanged();
  EXPECT_EQ((*identity)->Current()->thumbprint(), second->thumbprint());
  std::shared_ptr<const Entry> third = NthServerEntry(2);
  ASSERT_OK(store->Put(third));
  TlsIdentity::NotifyChanged("server");  // the static form too
  EXPECT_EQ((*identity)->Current()->thumbprint(), third->thumbprint());
  MtlsServer server(*identity, nullptr);
  UniqueSslCtx client = NewClientContext(nullptr, nullptr);
  MtlsResponse response = MtlsGet(client.get(), server.port());
  ASSERT_TRUE(response.ok) << response.error;
  EXPECT_EQ(response.server_thumbprint, third->thumbprint());
}

TEST(TlsIdentityTest, RenewalInProcessSwitchesNewHandshakesOnly) {
  std::shared_ptr<CertStore> store = NewMemoryStore();
  std::shared_ptr<const Entry> first = NthServerEntry(0);
  ASSERT_OK(store->Put(first));
  TlsIdentityOptions slow;
  slow.poll_interval = absl::Hours(1);  // only the notification can switch
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "server", slow);
  ASSERT_OK(identity.status());
  MtlsServer server(*identity, nullptr);
  UniqueSslCtx client = NewClientContext(nullptr, nullptr);

  MtlsResponse before = MtlsGet(client.get(), server.port());
  ASSERT_TRUE(before.ok) << before.error;
  EXPECT_EQ(before.server_thumbprint, first->thumbprint());

  // A connection whose handshake is done before the renewal.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(server.port()));
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  UniqueSsl open(SSL_new(client.get()));
  SSL_set_fd(open.get(), fd);
  ASSERT_EQ(SSL_connect(open.get()), 1);

  std::shared_ptr<const Entry> second = NthServerEntry(1);
  ASSERT_OK(store->Put(second));
  const uint64_t generation = (*identity)->generation();
  TlsIdentity::NotifyChanged("server");  // every identity of the alias
  ASSERT_TRUE(WaitForSwitch(**identity, generation));
  EXPECT_EQ((*identity)->Current()->thumbprint(), second->thumbprint());

  // The open connection is undisturbed: it completes with the old one.
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(
      SSL_write(open.get(), request.data(), static_cast<int>(request.size())),
      0);
  char buf[4096];
  const int n = SSL_read(open.get(), buf, sizeof(buf));
  ASSERT_GT(n, 0);
  EXPECT_THAT(std::string(buf, static_cast<size_t>(n)),
              HasSubstr(absl::StrCat("server=", first->thumbprint())));
  open.reset();
  close(fd);

  MtlsResponse after = MtlsGet(client.get(), server.port());
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_EQ(after.server_thumbprint, second->thumbprint());
}

TEST(TlsIdentityTest, AStoreErrorKeepsTheCredentialInForce) {
  std::shared_ptr<CertStore> store = NewMemoryStore();
  std::shared_ptr<const Entry> entry = NthServerEntry(0);
  ASSERT_OK(store->Put(entry));
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "server");
  ASSERT_OK(identity.status());
  ASSERT_OK(store->DeleteAllForAlias("server").status());
  EXPECT_THAT((*identity)->Refresh(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"server\"")));
  EXPECT_EQ((*identity)->Current()->thumbprint(), entry->thumbprint());
  MtlsServer server(*identity, nullptr);
  UniqueSslCtx client = NewClientContext(nullptr, nullptr);
  MtlsResponse r = MtlsGet(client.get(), server.port());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.server_thumbprint, entry->thumbprint());
}

TEST(TlsIdentityTest, BadInputIsRefused) {
  std::shared_ptr<CertStore> store = NewMemoryStore();
  ASSERT_OK(store->Put(NthServerEntry(0)));
  EXPECT_THAT(TlsIdentity::Create(nullptr, "server").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(TlsIdentity::Create(store, "").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  TlsIdentityOptions fast;
  fast.poll_interval = absl::Milliseconds(1);
  EXPECT_THAT(
      TlsIdentity::Create(store, "server", fast).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("poll_interval")));
  EXPECT_THAT(TlsIdentity::Create(store, "absent").status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("\"absent\" in memory:")));
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "server");
  ASSERT_OK(identity.status());
  EXPECT_THAT(
      (*identity)->Install(nullptr),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"server\"")));
}

// Another process (the certstore command) renews the credential in a
// shared sqlite file or PEM directory; the identity's poll picks it up.
class OtherProcessRenewalTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OtherProcessRenewalTest, ThePollSwitchesNewHandshakes) {
  TempDir dir;
  const std::string uri = GetParam() == "sqlite"
                              ? absl::StrCat("sqlite:", dir.path(), "/s.db")
                              : absl::StrCat("file:", dir.path(), "/pem");
  absl::StatusOr<std::unique_ptr<CertStore>> opened =
      GetParam() == "sqlite" ? OpenSqliteStore(dir.path() + "/s.db")
                             : (mkdir((dir.path() + "/pem").c_str(), 0700) == 0
                                    ? OpenPemDirStore(dir.path() + "/pem")
                                    : absl::InternalError("mkdir"));
  ASSERT_OK(opened.status());
  std::shared_ptr<CertStore> store = *std::move(opened);
  std::shared_ptr<const Entry> first = NthServerEntry(0);
  ASSERT_OK(store->Put(first));
  TlsIdentityOptions options;
  options.poll_interval = absl::Milliseconds(50);
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "server", options);
  ASSERT_OK(identity.status());
  MtlsServer server(*identity, nullptr);
  UniqueSslCtx client = NewClientContext(nullptr, nullptr);
  EXPECT_EQ(MtlsGet(client.get(), server.port()).server_thumbprint,
            first->thumbprint());

  std::shared_ptr<const Entry> second = NthServerEntry(1);
  WriteText(dir.path() + "/chain.pem", ChainPem(*second));
  WriteText(dir.path() + "/key.pem", KeyPem(*second->key()));
  const uint64_t generation = (*identity)->generation();
  ProcessOptions cli;
  cli.env = {"XDG_STATE_HOME=" + dir.path()};
  const ProcessResult imported = RunProcess(
      {CERTSTORE_CLI_BIN, "--store", uri, "import", "server", "--cert",
       dir.path() + "/chain.pem", "--key", dir.path() + "/key.pem"},
      cli);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  ASSERT_TRUE(WaitForSwitch(**identity, generation));
  MtlsResponse r = MtlsGet(client.get(), server.port());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.server_thumbprint, second->thumbprint());
}

INSTANTIATE_TEST_SUITE_P(Stores, OtherProcessRenewalTest,
                         ::testing::Values("sqlite", "file"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });

// A key made on a SoftHSM token signs both sides' handshakes.
TEST(TlsIdentityPkcs11Test, TokenKeysPresentOnBothSides) {
  absl::StatusOr<std::unique_ptr<SoftHsmToken>> token =
      SoftHsmToken::Create("tls-identity");
  ASSERT_OK(token.status());
  absl::StatusOr<std::unique_ptr<CertStore>> opened =
      OpenPkcs11Store((*token)->Options());
  ASSERT_OK(opened.status());
  std::shared_ptr<CertStore> store = *std::move(opened);
  for (const char* alias : {"server", "client"}) {
    absl::StatusOr<std::shared_ptr<const Key>> key =
        store->CreateKey(alias, KeySpec{KeyType::kEcP256});
    ASSERT_OK(key.status());
    std::shared_ptr<const Entry> entry = std::string(alias) == "server"
                                             ? ServerEntry(Pki(), alias, *key)
                                             : ClientEntry(Pki(), alias, *key);
    ASSERT_OK(store->Put(entry));
  }
  absl::StatusOr<std::shared_ptr<TlsIdentity>> server_identity =
      TlsIdentity::Create(store, "server");
  absl::StatusOr<std::shared_ptr<TlsIdentity>> client_identity =
      TlsIdentity::Create(store, "client");
  ASSERT_OK(server_identity.status());
  ASSERT_OK(client_identity.status());
  TempDir dir;
  WriteText(dir.path() + "/root.pem", Pki().root_pem());
  PeerPolicyConfig config;
  config.trust_bundle_files = {dir.path() + "/root.pem"};
  absl::StatusOr<std::shared_ptr<PeerPolicy>> policy =
      PeerPolicy::Create(config);
  ASSERT_OK(policy.status());
  MtlsServer server(*server_identity, *policy);
  UniqueSslCtx client = NewClientContext(*client_identity, *policy);
  for (int i = 0; i < 3; ++i) {
    MtlsResponse r = MtlsGet(client.get(), server.port());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.server_thumbprint, (*server_identity)->Current()->thumbprint());
    EXPECT_THAT(r.body,
                HasSubstr(absl::StrCat(
                    "client=", (*client_identity)->Current()->thumbprint())));
  }
}

}  // namespace
}  // namespace certstore::testing

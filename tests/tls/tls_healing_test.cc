// HealingCall on real failures: a key deleted on the token and a revoked
// certificate each evict once, re-mint and succeed on the one retry; a
// connection reset with a healthy key, and a refused connection, evict
// nothing.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "certstore/memory_store.h"
#include "certstore/pkcs11_store.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/tls.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/loopback.h"
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

// Accepts connections on 127.0.0.1 and resets each at once (SO_LINGER 0).
class ResettingListener {
 public:
  ResettingListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 16) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      perror("ResettingListener");
      abort();
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
          continue;
        }
        const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          // Wait for the ClientHello, then reset.
          pollfd q{c, POLLIN, 0};
          poll(&q, 1, 2000);
          const linger hard{1, 0};
          setsockopt(c, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
          close(c);
        }
      }
    });
  }
  ~ResettingListener() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class HealingCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() + "/root.pem";
    WriteText(root_, Pki().root_pem());
  }

  std::shared_ptr<PeerPolicy> Policy(std::vector<std::string> crls = {}) {
    PeerPolicyConfig config;
    config.trust_bundle_files = {root_};
    config.crl_files = std::move(crls);
    absl::StatusOr<std::shared_ptr<PeerPolicy>> policy =
        PeerPolicy::Create(config);
    EXPECT_OK(policy.status());
    return *policy;
  }

  std::shared_ptr<TlsIdentity> ServerIdentity() {
    std::shared_ptr<CertStore> store = NewMemoryStore();
    EXPECT_OK(
        store->Put(ServerEntry(Pki(), "server", PoolKey(KeyType::kEcP256, 2))));
    return *TlsIdentity::Create(store, "server");
  }

  // One GET with the identity's credential, as a caller's request function.
  static std::function<CallAttempt()> Request(
      std::shared_ptr<TlsIdentity> identity, int port) {
    return [identity, port] {
      UniqueSslCtx ctx = NewClientContext(identity, nullptr);
      MtlsResponse r = MtlsGet(ctx.get(), port);
      CallAttempt attempt;
      attempt.outcome = r.outcome;
      attempt.status =
          r.ok ? absl::OkStatus() : absl::UnavailableError(r.error);
      return attempt;
    };
  }

  // Mints a software credential for the alias (a new pool key each time).
  static HealingCall::Mint SoftwareMint(int* minted) {
    return [minted](CertStore& store, const std::string& alias) {
      ++*minted;
      return store.Put(ClientEntry(Pki(), alias,
                                   PoolKey(KeyType::kEcP256, 50 + *minted),
                                   "client", "", 30 + *minted));
    };
  }

  TempDir dir_;
  std::string root_;
};

TEST_F(HealingCallTest, KeyDeletedOnTheTokenEvictsOnceAndHeals) {
  absl::StatusOr<std::unique_ptr<SoftHsmToken>> token =
      SoftHsmToken::Create("tls-healing");
  ASSERT_OK(token.status());
  absl::StatusOr<std::unique_ptr<CertStore>> opened =
      OpenPkcs11Store((*token)->Options());
  ASSERT_OK(opened.status());
  std::shared_ptr<CertStore> store = *std::move(opened);
  absl::StatusOr<std::shared_ptr<const Key>> key =
      store->CreateKey("client", KeySpec{KeyType::kEcP256});
  ASSERT_OK(key.status());
  std::shared_ptr<const Entry> original = ClientEntry(Pki(), "client", *key);
  ASSERT_OK(store->Put(original));
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "client");
  ASSERT_OK(identity.status());
  MtlsServer server(ServerIdentity(), Policy());
  ASSERT_TRUE(Request(*identity, server.port())().status.ok());

  // An operator (or a token policy) deletes the private key.
  ASSERT_OK((*token)
                ->Pkcs11Tool(absl::StrCat(
                    "--delete-object --type privkey --id ", KeyIdHex(**key)))
                .status());
  int minted = 0;
  HealingCall call(*identity, [&](CertStore& s, const std::string& alias) {
    ++minted;
    absl::StatusOr<std::shared_ptr<const Key>> fresh =
        s.CreateKey(alias, KeySpec{KeyType::kEcP256});
    if (!fresh.ok()) {
      return fresh.status();
    }
    return s.Put(ClientEntry(Pki(), alias, *fresh, "client", "", 31));
  });
  HealingReport report;
  EXPECT_OK(call.Run(Request(*identity, server.port()), &report));
  EXPECT_EQ(report.evictions, 1);
  EXPECT_EQ(report.attempts, 2);
  EXPECT_EQ(minted, 1);
  EXPECT_EQ(report.first_failure, FailureClass::kCredential);
  EXPECT_NE((*identity)->Current()->thumbprint(), original->thumbprint());
  const auto seen = server.WaitForHandshakes(3);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_FALSE(seen[1].ok);
  EXPECT_EQ(seen[2].client_thumbprint, (*identity)->Current()->thumbprint());
}

TEST_F(HealingCallTest, RevokedCertificateEvictsOnceAndHeals) {
  absl::StatusOr<std::unique_ptr<CertStore>> opened =
      OpenSqliteStore(dir_.path() + "/store.db");
  ASSERT_OK(opened.status());
  std::shared_ptr<CertStore> store = *std::move(opened);
  std::shared_ptr<const Entry> revoked =
      ClientEntry(Pki(), "client", PoolKey(KeyType::kEcP256, 50));
  ASSERT_OK(store->Put(revoked));
  WriteText(dir_.path() + "/revoked.crl",
            Pki().IssueCrl({revoked->chain_der()}));
  MtlsServer server(ServerIdentity(), Policy({dir_.path() + "/revoked.crl"}));
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "client");
  ASSERT_OK(identity.status());

  int minted = 0;
  HealingCall call(*identity, SoftwareMint(&minted));
  HealingReport report;
  EXPECT_OK(call.Run(Request(*identity, server.port()), &report));
  EXPECT_EQ(report.evictions, 1);
  EXPECT_EQ(minted, 1);
  const auto seen = server.WaitForHandshakes(2);
  ASSERT_EQ(seen.size(), 2u);
  ASSERT_TRUE(seen[0].verdict.has_value());
  EXPECT_EQ(seen[0].verdict->refusal, PeerRefusal::kRevoked);
  EXPECT_TRUE(seen[1].ok);
  EXPECT_NE(seen[1].client_thumbprint, revoked->thumbprint());
}

TEST_F(HealingCallTest, ResetWithAHealthyKeyAndRefusedConnectionEvictNothing) {
  std::shared_ptr<CertStore> store = NewMemoryStore();
  std::shared_ptr<const Entry> healthy =
      ClientEntry(Pki(), "client", PoolKey(KeyType::kEcP256, 50));
  ASSERT_OK(store->Put(healthy));
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "client");
  ASSERT_OK(identity.status());
  int minted = 0;
  HealingCall call(*identity, SoftwareMint(&minted));

  ResettingListener resetting;
  HealingReport report;
  EXPECT_THAT(call.Run(Request(*identity, resetting.port()), &report),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(report.first_failure, FailureClass::kCredentialIfProbeFails);
  EXPECT_EQ(report.evictions, 0);
  EXPECT_EQ(report.attempts, 1);

  const int closed_port = FreeLoopbackPort();
  EXPECT_THAT(call.Run(Request(*identity, closed_port), &report),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(report.first_failure, FailureClass::kNetwork);
  EXPECT_EQ(report.evictions, 0);
  EXPECT_EQ(minted, 0);
  absl::StatusOr<std::shared_ptr<const Entry>> still = store->Find("client");
  ASSERT_OK(still.status());
  EXPECT_EQ((*still)->thumbprint(), healthy->thumbprint());
}

TEST_F(HealingCallTest, AMintFailureNamesTheAlias) {
  std::shared_ptr<CertStore> store = NewMemoryStore();
  std::shared_ptr<const Entry> revoked =
      ClientEntry(Pki(), "client", PoolKey(KeyType::kEcP256, 50));
  ASSERT_OK(store->Put(revoked));
  WriteText(dir_.path() + "/revoked.crl",
            Pki().IssueCrl({revoked->chain_der()}));
  MtlsServer server(ServerIdentity(), Policy({dir_.path() + "/revoked.crl"}));
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, "client");
  ASSERT_OK(identity.status());
  HealingCall call(*identity, [](CertStore&, const std::string&) {
    return absl::UnavailableError("issuer down");
  });
  HealingReport report;
  EXPECT_THAT(call.Run(Request(*identity, server.port()), &report),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("alias \"client\": minting")));
  EXPECT_EQ(report.evictions, 1);
  EXPECT_EQ(report.attempts, 1);
}

}  // namespace
}  // namespace certstore::testing

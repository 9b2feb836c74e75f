// Rotation under load: a client makes at least 2,000 requests, each on a
// new connection, while another process (the certstore command) renews
// the server's and the client's credentials 20 times each in the shared
// SQLite store. No handshake fails, and every handshake that starts later
// than a renewal's bound after it presents that renewal or a newer one
// (the server records client thumbprints; the client records the
// server's).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/tls.h"
#include "tests/support/mtls_peers.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/tls/tls_test_util.h"

namespace certstore::testing {
namespace {

constexpr int kRequests = 2000;
constexpr int kRenewals = 20;  // per side
constexpr absl::Duration kPoll = absl::Milliseconds(50);
// How long after a renewal new handshakes may still present the previous
// credential: the poll interval, plus room for a busy machine to run the
// poller (the benchmark measures the real delay: bench/README.md).
constexpr absl::Duration kBound = absl::Seconds(2);

const TestPki& Pki() {
  static const TestPki* pki = new TestPki();
  return *pki;
}

struct Renewal {
  absl::Time done;  // the importing process exited
  std::string thumbprint;
  int index = 0;  // 0: the initial credential
};

TEST(RotationUnderLoadTest, NoHandshakeFailsAndNewHandshakesFollowRenewals) {
  TempDir dir;
  const std::string db = dir.path() + "/shared.db";
  absl::StatusOr<std::unique_ptr<CertStore>> opened = OpenSqliteStore(db);
  ASSERT_OK(opened.status());
  std::shared_ptr<CertStore> store = *std::move(opened);
  // The renewals, made up front: credential n of each side has a later
  // not_after than n - 1, so the store serves the newest.
  std::map<std::string, std::vector<std::shared_ptr<const Entry>>> planned;
  for (int n = 0; n <= kRenewals; ++n) {
    planned["server"].push_back(ServerEntry(
        Pki(), "server", PoolKey(KeyType::kEcP256, 60 + n % 6), 30 + n));
    planned["client"].push_back(
        ClientEntry(Pki(), "client", PoolKey(KeyType::kEcP256, 70 + n % 6),
                    "client", "", 30 + n));
  }
  ASSERT_OK(store->Put(planned["server"][0]));
  ASSERT_OK(store->Put(planned["client"][0]));
  std::map<std::string, std::map<std::string, int>> index_of;
  for (auto& [side, entries] : planned) {
    for (int n = 0; n <= kRenewals; ++n) {
      index_of[side][entries[n]->thumbprint()] = n;
    }
  }

  WriteText(dir.path() + "/root.pem", Pki().root_pem());
  PeerPolicyConfig config;
  config.trust_bundle_files = {dir.path() + "/root.pem"};
  absl::StatusOr<std::shared_ptr<PeerPolicy>> policy =
      PeerPolicy::Create(config);
  ASSERT_OK(policy.status());
  TlsIdentityOptions options;
  options.poll_interval = kPoll;
  absl::StatusOr<std::shared_ptr<TlsIdentity>> server_identity =
      TlsIdentity::Create(store, "server", options);
  absl::StatusOr<std::shared_ptr<TlsIdentity>> client_identity =
      TlsIdentity::Create(store, "client", options);
  ASSERT_OK(server_identity.status());
  ASSERT_OK(client_identity.status());
  MtlsServer server(*server_identity, *policy);
  UniqueSslCtx client = NewClientContext(*client_identity, *policy);

  // Another process renews: `certstore import`, alternating sides.
  std::map<std::string, std::vector<Renewal>> renewals;
  std::atomic<bool> renewing{true};
  std::string renew_error;
  std::thread renewer([&] {
    for (int n = 1; n <= kRenewals && renew_error.empty(); ++n) {
      for (const std::string side : {"server", "client"}) {
        const Entry& entry = *planned[side][n];
        const std::string chain = absl::StrCat(dir.path(), "/", side, ".pem");
        const std::string key = absl::StrCat(dir.path(), "/", side, ".key");
        WriteText(chain, ChainPem(entry));
        WriteText(key, KeyPem(*entry.key()));
        ProcessOptions cli;
        cli.env = {"XDG_STATE_HOME=" + dir.path()};
        const ProcessResult r =
            RunProcess({CERTSTORE_CLI_BIN, "--store", "sqlite:" + db, "import",
                        side, "--cert", chain, "--key", key},
                       cli);
        if (r.exit_code != 0) {
          renew_error = absl::StrCat(side, " renewal ", n, ": ", r.err);
          break;
        }
        renewals[side].push_back({absl::Now(), entry.thumbprint(), n});
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    renewing = false;
  });

  struct Request {
    absl::Time started;
    MtlsResponse response;
  };
  std::vector<Request> requests;
  absl::Time quiet_since = absl::InfiniteFuture();
  // At least kRequests, and on until the last renewal's bound has passed
  // with handshakes after it (bounded: 10 minutes).
  const absl::Time give_up = absl::Now() + absl::Minutes(10);
  while (absl::Now() < give_up) {
    if (!renewing && quiet_since == absl::InfiniteFuture()) {
      quiet_since = absl::Now();
    }
    if (static_cast<int>(requests.size()) >= kRequests &&
        absl::Now() > quiet_since + kBound + absl::Milliseconds(500)) {
      break;
    }
    Request r;
    r.started = absl::Now();
    r.response = MtlsGet(client.get(), server.port());
    requests.push_back(std::move(r));
  }
  renewer.join();
  ASSERT_TRUE(renew_error.empty()) << renew_error;
  ASSERT_EQ(renewals["server"].size(), static_cast<size_t>(kRenewals));
  ASSERT_EQ(renewals["client"].size(), static_cast<size_t>(kRenewals));
  ASSERT_GE(requests.size(), static_cast<size_t>(kRequests));

  int failed = 0;
  for (const Request& r : requests) {
    failed += r.response.ok ? 0 : 1;
  }
  EXPECT_EQ(failed, 0) << "of " << requests.size();

  // What each side presented on each request.
  auto presented = [&](const Request& r, const std::string& side) {
    if (side == "server") {
      return index_of["server"][r.response.server_thumbprint];
    }
    const size_t at = r.response.body.find("client=");
    const std::string thumbprint =
        at == std::string::npos ? "" : r.response.body.substr(at + 7, 43);
    auto it = index_of["client"].find(thumbprint);
    return it == index_of["client"].end() ? -1 : it->second;
  };
  for (const std::string side : {"server", "client"}) {
    int late = 0;
    int previous = 0;
    int regressions = 0;
    for (const Request& r : requests) {
      if (!r.response.ok) {
        continue;
      }
      const int seen = presented(r, side);
      regressions += seen < previous ? 1 : 0;
      previous = std::max(previous, seen);
      for (const Renewal& renewal : renewals[side]) {
        if (r.started > renewal.done + kBound && seen < renewal.index) {
          ++late;
          break;
        }
      }
    }
    EXPECT_EQ(late, 0) << side << ": handshakes later than the bound that "
                       << "presented an older credential";
    EXPECT_EQ(regressions, 0) << side << ": went back to an older credential";
    EXPECT_EQ(previous, kRenewals) << side << ": the last renewal never showed";
  }
}

}  // namespace
}  // namespace certstore::testing

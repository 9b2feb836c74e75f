// The fleet topology of docs/fleet.md: hosts sharing one token through
// `p11-kit server` (SoftHSM behind a unix socket) and p11-kit-client.so.
// Each host is a forked process with its own lock directory, so only the
// token's lease (x-token-lease) can keep them from minting twice.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certstore/pkcs11_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "certstore/token_client.h"
#include "emulator/emulator.h"
#include "tests/pkcs11/p11kit_server.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using emulator::Emulator;
using ::testing::HasSubstr;

constexpr int kHosts = 8;
constexpr absl::string_view kScope = "https://vault.example";

const SoftHsmToken& FleetToken() {
  static SoftHsmToken* const token = [] {
    auto created = SoftHsmToken::Create("fleet");
    if (!created.ok()) {
      fprintf(stderr, "%s\n", created.status().ToString().c_str());
      abort();
    }
    return created->release();
  }();
  return *token;
}

absl::StatusOr<std::unique_ptr<CertStore>> OpenUri(const std::string& uri) {
  auto options = ParsePkcs11Uri(uri);
  if (!options.ok()) {
    return options.status();
  }
  return OpenPkcs11Store(*options);
}

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<P11KitServer>(FleetToken());
    ASSERT_OK(server_->Start());
    auto emu = Emulator::Start();
    ASSERT_OK(emu);
    emulator_ = *std::move(emu);
  }

  // Host `n`'s URI: the remote token, its own lock directory.
  std::string HostUri(int n) {
    const std::string locks = absl::StrCat(dir_.path(), "/host", n, "-locks");
    return server_->ClientUri(absl::StrCat(
        "&x-allow-import=true&x-lock-dir=", locks, "&x-token-lease=60"));
  }

  TokenClientOptions Options(int host) {
    TokenClientOptions options;
    options.issuing_url = emulator_->issuing_url();
    options.server_ca_pem = emulator_->ca_root_pem();
    options.initial_backoff = absl::Milliseconds(20);
    options.deadlines.total = absl::Seconds(60);
    // Hosts wait for each other's mint however busy the machine.
    options.mint_lock_timeout = absl::Seconds(120);
    options.state_dir = absl::StrCat(dir_.path(), "/host", host, "-state");
    return options;
  }

  TempDir dir_;
  std::unique_ptr<P11KitServer> server_;
  std::unique_ptr<Emulator> emulator_;
};

// 8 hosts x 4 threads ask for a token with no binding on the shared
// token: one mint between them, and every host's token is bound to it.
// Each host then keeps a credential of its own on the token (a key made
// there, Put, ProbeKey, Find): none is lost.
TEST_F(FleetTest, EightHostsMintOnceAndLoseNoWrite) {
  static const TestPki* const pki = new TestPki();
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> hosts;
  for (int n = 0; n < kHosts; ++n) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char byte;
      (void)!read(go[0], &byte, 1);
      auto store = OpenUri(HostUri(n));
      if (!store.ok()) _exit(2);
      auto client = TokenClient::Create(store->get(), Options(n));
      if (!client.ok()) _exit(3);
      std::atomic<int> failures{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
          absl::StatusOr<AccessToken> token = (*client)->GetToken(kScope);
          if (!token.ok()) {
            fprintf(stderr, "host %d: %s\n", n,
                    token.status().ToString().c_str());
            failures++;
          }
        });
      }
      for (auto& thread : threads) thread.join();
      if (failures.load() != 0) _exit(4);
      client->reset();
      // A credential of this host's own.
      const std::string alias = absl::StrCat("host-", n);
      auto key = (*store)->CreateKey(alias, KeySpec{KeyType::kEcP256});
      if (!key.ok()) _exit(5);
      auto entry = pki->MakeEntry(alias, *key, absl::Now() - absl::Hours(1),
                                  absl::Now() + absl::Hours(24 * 7));
      if (!(*store)->Put(entry).ok()) _exit(6);
      if (!(*store)->ProbeKey(*entry).ok()) _exit(7);
      auto found = (*store)->Find(alias);
      if (!found.ok() || (*found)->thumbprint() != entry->thumbprint())
        _exit(8);
      WriteFile(absl::StrCat(dir_.path(), "/host", n, ".thumbprint"),
                entry->thumbprint());
      _exit(0);
    }
    hosts.push_back(pid);
  }
  close(go[0]);
  close(go[1]);
  for (pid_t pid : hosts) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << (WIFEXITED(status) ? "exit " : "signal ")
        << (WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
  EXPECT_EQ(emulator_->GetCounters().mints, 1);
  EXPECT_EQ(emulator_->GetCounters().by_thumbprint.size(), 1u);
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, kHosts);
  // Every host's write is there, seen from a ninth host.
  auto store = OpenUri(HostUri(kHosts));
  ASSERT_OK(store);
  for (int n = 0; n < kHosts; ++n) {
    auto found = (*store)->Find(absl::StrCat("host-", n));
    ASSERT_OK(found);
    std::ifstream file(absl::StrCat(dir_.path(), "/host", n, ".thumbprint"));
    std::stringstream written;
    written << file.rdbuf();
    EXPECT_EQ((*found)->thumbprint(), written.str());
    EXPECT_OK((*store)->ProbeKey(**found));
    EXPECT_THAT((*store)->DeleteAllForAlias(absl::StrCat("host-", n)),
                IsOkAndHolds(1));
  }
  ASSERT_OK((*store)->DeleteAllForAlias(
      absl::StrCat(emulator_->client_id(), "#att=0")));
}

// Mutual exclusion itself: 8 hosts x 10 rounds take the lease of one
// alias and, while holding it, create a marker file that must not exist
// (O_EXCL) and remove it. Any overlap of two holders fails a round.
TEST_F(FleetTest, TokenLeaseIsExclusiveAcrossEightHosts) {
  constexpr int kRounds = 10;
  const std::string marker = dir_.path() + "/holder";
  std::vector<pid_t> hosts;
  for (int n = 0; n < kHosts; ++n) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = OpenUri(HostUri(n));
      if (!store.ok()) _exit(2);
      for (int round = 0; round < kRounds; ++round) {
        auto lock = (*store)->LockAlias("exclusive", absl::Seconds(120));
        if (!lock.ok()) _exit(3);
        const int fd = open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
        if (fd < 0) _exit(4);  // another host holds it too
        close(fd);
        absl::SleepFor(absl::Milliseconds(2));
        if (unlink(marker.c_str()) != 0) _exit(5);
        lock->reset();
      }
      _exit(0);
    }
    hosts.push_back(pid);
  }
  for (pid_t pid : hosts) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << (WIFEXITED(status) ? "exit " : "signal ")
        << (WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
}

// The lease itself: a live lease held by another host keeps LockAlias
// waiting (Unavailable at its timeout, naming the holder); a released one
// is free at once; one whose holder died is taken over once it expires.
TEST_F(FleetTest, TokenLeaseExcludesOtherHostsAndIsTakenOverWhenExpired) {
  auto host_a = OpenUri(HostUri(0));
  auto host_b = OpenUri(HostUri(1));
  ASSERT_OK(host_a);
  ASSERT_OK(host_b);
  auto held = (*host_a)->LockAlias("lease-test", absl::Seconds(5));
  ASSERT_OK(held);
  const absl::Time start = absl::Now();
  EXPECT_THAT((*host_b)->LockAlias("lease-test", absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("held by")));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  // Other aliases are independent.
  EXPECT_OK((*host_b)->LockAlias("lease-other", absl::Seconds(5)).status());
  held->reset();
  auto after = (*host_b)->LockAlias("lease-test", absl::Seconds(5));
  EXPECT_OK(after);
  after->reset();
  // A lease left by a host that died (written as it would have, expired a
  // second ago) does not block for longer than its expiry.
  ASSERT_OK(FleetToken().Pkcs11Tool(absl::StrCat(
      "--write-object ",
      WriteTempFile(
          "stale-lease",
          absl::StrCat("certstore-lease v1\nowner=dead\nholder=gone "
                       "pid 1\nexpires_unix_ms=",
                       absl::ToUnixMillis(absl::Now() - absl::Seconds(1)),
                       "\n")),
      " --type data --label lease-test --application-label certstore-lease "
      "--private")));
  auto taken = (*host_b)->LockAlias("lease-test", absl::Seconds(5));
  EXPECT_OK(taken);
  taken->reset();
  // The lease objects are gone; the alias's entries never saw them.
  EXPECT_THAT((*host_b)->DeleteAllForAlias("lease-test"), IsOkAndHolds(0));
  auto listed = FleetToken().Pkcs11Tool("--list-objects --type data");
  ASSERT_OK(listed);
  EXPECT_THAT(*listed, ::testing::Not(HasSubstr("lease-test")));
}

// The server is killed under a live store: calls fail Unavailable (no
// eviction, no hang past the deadline); once it is back, the same store
// serves again without being reopened, and keys found before still sign.
TEST_F(FleetTest, ServerRestartIsUnavailableThenRecovers) {
  static const TestPki* const pki = new TestPki();
  auto store = OpenUri(HostUri(0));
  ASSERT_OK(store);
  auto key = (*store)->CreateKey("restart", KeySpec{KeyType::kEcP256});
  ASSERT_OK(key);
  auto entry = pki->MakeEntry("restart", *key, absl::Now() - absl::Hours(1),
                              absl::Now() + absl::Hours(24 * 7));
  ASSERT_OK((*store)->Put(entry));
  ASSERT_OK((*store)->ProbeKey(*entry));
  ASSERT_OK(server_->Kill());
  const absl::Time start = absl::Now();
  EXPECT_THAT((*store)->Find("restart"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT((*store)->ProbeKey(*entry),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  ASSERT_OK(server_->Start());
  // The next calls reconnect (bounded: a few tries over at most 30 s).
  absl::StatusOr<std::shared_ptr<const Entry>> found =
      absl::UnavailableError("not tried");
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (int i = 0; i < 50 && absl::Now() < deadline && !found.ok(); ++i) {
    found = (*store)->Find("restart");
    if (!found.ok()) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
  EXPECT_OK((*store)->ProbeKey(**found));
  // The entry taken before the outage signs too: its key is found again by
  // CKA_ID (a memory layer above the token keeps such entries).
  EXPECT_OK((*store)->ProbeKey(*entry));
  EXPECT_OK(entry->key()->Sign("after the restart").status());
  EXPECT_THAT((*store)->DeleteAllForAlias("restart"), IsOkAndHolds(1));
}

}  // namespace
}  // namespace certstore::testing

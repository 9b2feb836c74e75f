// TokenClient against the emulator on loopback, over real stores — layered
// (memory over a backend, as OpenStore opens them) and plain (one backend
// alone, no LayeredStore): mint, cache, restart, the recovery matrix,
// network failures, deadlines, and single-flight across processes.
// Counters come from the emulator.
#include "certstore/token_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/clock.h"
#include "certstore/layered_store.h"
#include "certstore/open_store.h"
#include "certstore/pem_dir_store.h"
#include "certstore/pkcs11_store.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "emulator/emulator.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/files.h"
#include "tests/support/loopback.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using emulator::Emulator;
using emulator::FaultKind;
using emulator::FaultSpec;
using emulator::TlsAlert;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr absl::string_view kScope = "https://vault.example";

// One private SoftHSM token for the whole binary ("{pkcs11}" in a URI).
const SoftHsmToken& MatrixToken() {
  static SoftHsmToken* const token = [] {
    auto created = SoftHsmToken::Create("client-matrix");
    if (!created.ok()) {
      fprintf(stderr, "%s\n", created.status().ToString().c_str());
      abort();
    }
    return created->release();
  }();
  return *token;
}

// A URI starting with "memory:," is opened by OpenStore (a LayeredStore);
// any other names one backend, opened by its own Open function.
absl::StatusOr<std::unique_ptr<CertStore>> OpenUri(const std::string& uri) {
  if (absl::StartsWith(uri, "memory:,")) {
    auto layered = OpenStore(uri);
    if (!layered.ok()) {
      return layered.status();
    }
    return std::unique_ptr<CertStore>(*std::move(layered));
  }
  if (absl::StartsWith(uri, "sqlite:")) {
    return OpenSqliteStore(uri.substr(7));
  }
  if (absl::StartsWith(uri, "file:")) {
    return OpenPemDirStore(uri.substr(5));
  }
  auto options = ParsePkcs11Uri(uri);
  if (!options.ok()) {
    return options.status();
  }
  return OpenPkcs11Store(*options);
}

// Where a binding lives: every layer of a LayeredStore, or the store.
std::vector<CertStore*> PlacesOf(CertStore* store) {
  if (auto* layered = dynamic_cast<LayeredStore*>(store)) {
    return layered->layers();
  }
  return {store};
}

// A binding of another platform (client id) that a test puts in the store.
constexpr char kOtherPlatformAlias[] =
    "99999999-8888-7777-6666-555555555555#att=0";

class TokenClientTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto emu = Emulator::Start();
    ASSERT_OK(emu);
    emulator_ = *std::move(emu);
    uri_ = GetParam();
    for (size_t pos; (pos = uri_.find("{dir}")) != std::string::npos;) {
      uri_.replace(pos, 5, dir_.path());
    }
    if (size_t pos = uri_.find("{pkcs11}"); pos != std::string::npos) {
      uri_.replace(pos, 8, MatrixToken().Uri());
    }
    ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient());
    // A token outlives the test: start without a binding (nor another
    // platform's, which a test adds).
    ASSERT_OK(store_->DeleteAllForAlias(
        absl::StrCat(emulator_->client_id(), "#att=0")));
    ASSERT_OK(store_->DeleteAllForAlias(kOtherPlatformAlias));
  }

  TokenClientOptions Options() {
    TokenClientOptions options;
    options.issuing_url = emulator_->issuing_url();
    options.server_ca_pem = emulator_->ca_root_pem();
    options.initial_backoff = absl::Milliseconds(20);
    options.deadlines.total = absl::Seconds(20);
    // Rejection and platform records of this test only (the SoftHSM token,
    // and so the store's name, is shared by the tests of this binary).
    options.state_dir = dir_.path();
    return options;
  }

  // A fresh store on the same URI and a fresh client: what a restarted
  // process has.
  void NewProcessLikeClient(TokenClientOptions options = {}) {
    client_.reset();
    store_.reset();
    auto store = OpenUri(uri_);
    ASSERT_OK(store);
    store_ = *std::move(store);
    if (options.issuing_url.empty()) {
      options = Options();
    }
    auto client = TokenClient::Create(store_.get(), options);
    ASSERT_OK(client);
    client_ = *std::move(client);
  }

  absl::StatusOr<AccessToken> Token() { return client_->GetToken(kScope); }

  std::string BoundThumbprint(const AccessToken& token) {
    auto bound = emulator_->TokenBinding(token.access_token);
    return bound.ok() ? *bound : bound.status().ToString();
  }

  // The first token, minted; returns its thumbprint.
  std::string FirstToken() {
    auto token = Token();
    EXPECT_OK(token);
    return token.ok() ? token->thumbprint : "";
  }

  TempDir dir_;
  std::string uri_;
  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<CertStore> store_;
  std::unique_ptr<TokenClient> client_;
};

TEST_P(TokenClientTest, MintsOnceAndBindsTheTokenToTheCertificate) {
  auto token = Token();
  ASSERT_OK(token);
  EXPECT_EQ(token->token_type, "mtls_pop");
  EXPECT_EQ(token->alias, absl::StrCat(emulator_->client_id(), "#att=0"));
  EXPECT_EQ(BoundThumbprint(*token), token->thumbprint);
  EXPECT_FALSE(token->from_cache);
  EXPECT_EQ(emulator_->GetCounters().mints, 1);
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 1);
}

TEST_P(TokenClientTest, SecondCallIsServedFromTheTokenCache) {
  ASSERT_OK(Token());
  auto again = Token();
  ASSERT_OK(again);
  EXPECT_TRUE(again->from_cache);
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 1);
  // Another scope: a new token on the same binding.
  auto other = client_->GetToken("https://storage.example");
  ASSERT_OK(other);
  EXPECT_EQ(other->thumbprint, again->thumbprint);
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 2);
  EXPECT_EQ(emulator_->GetCounters().mints, 1);
}

TEST_P(TokenClientTest, RestartedProcessReusesThePersistedBinding) {
  const std::string first = FirstToken();
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient());
  auto token = Token();
  ASSERT_OK(token);
  EXPECT_EQ(token->thumbprint, first);
  EXPECT_EQ(emulator_->GetCounters().mints, 1);
  EXPECT_EQ(client_->Metrics().probes, 1);  // first use in this process
}

// The issuing endpoint is down, a new process has a servable binding: it
// gets a token without a single request to the issuer (which is needed
// only to mint).
TEST_P(TokenClientTest, IssuerDownACachedBindingStillServesANewProcess) {
  const std::string first = FirstToken();
  const auto before = emulator_->GetCounters();
  // The issuer's address now holds a listener that never answers and
  // counts connections: not one is made.
  CountingListener issuer;
  TokenClientOptions options = Options();
  options.issuing_url = absl::StrCat("http://127.0.0.1:", issuer.port());
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  auto token = client_->GetToken("https://issuer-down.example");
  ASSERT_OK(token);
  EXPECT_EQ(token->thumbprint, first);
  EXPECT_EQ(BoundThumbprint(*token), first);
  EXPECT_EQ(issuer.Connections(), 0);
  const auto after = emulator_->GetCounters();
  EXPECT_EQ(after.metadata_requests, before.metadata_requests);
  EXPECT_EQ(after.mint_requests, before.mint_requests);
  // With nothing cached, the issuer is needed, and says so.
  options.issuing_url = "http://127.0.0.1:1";  // nothing listens there
  ASSERT_OK(store_->DeleteAllForAlias(token->alias));
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  EXPECT_THAT(
      client_->GetToken("https://issuer-down.example"),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("127.0.0.1:1")));
}

// Persistent invalid_client: the first process to meet it evicts, re-mints
// once and records the rejection; the next ones get the recorded error at
// once and mint nothing. A token served clears the record.
TEST_P(TokenClientTest, PersistentInvalidClientCostsOneReMintAcrossProcesses) {
  TokenClientOptions options = Options();
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  FirstToken();
  FaultSpec fault;
  fault.kind = FaultKind::kInvalidClient;
  fault.count = 100;
  ASSERT_OK(emulator_->InjectFault(fault));
  for (int process = 0; process < 3; ++process) {
    SCOPED_TRACE(absl::StrCat("process ", process));
    ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
    auto token =
        client_->GetToken(absl::StrCat("https://refused.example/", process));
    EXPECT_THAT(token, StatusIs(absl::StatusCode::kUnauthenticated));
    if (process > 0) {
      EXPECT_THAT(
          token.status().message(),
          AllOf(HasSubstr("rejected since"), HasSubstr("invalid_client"),
                HasSubstr("certstore evict")));
      EXPECT_EQ(client_->Metrics().token_requests, 0);
    }
  }
  EXPECT_EQ(emulator_->GetCounters().mints, 2);  // one re-mint in total
  // The window ends (a clock 2 minutes on): the next process asks again,
  // the server accepts the binding, and the record is gone for everyone.
  emulator_->ClearFaults();
  ManualClock later(absl::Now() + absl::Minutes(2));
  options.clock = &later;
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  ASSERT_OK(client_->GetToken("https://refused.example/after"));
  options.clock = nullptr;
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  EXPECT_OK(client_->GetToken("https://refused.example/cleared"));
  EXPECT_EQ(emulator_->GetCounters().mints, 2);
}

// One credential failure: exactly one eviction, one new mint, one retry.
struct CredentialFault {
  std::string name;
  FaultSpec fault;
};

class CredentialRecovery : public TokenClientTest {
 protected:
  // A scope with no cached token, so the request goes out.
  void ExpectHealed(const std::string& old_thumbprint) {
    auto token = client_->GetToken("https://heal.example");
    ASSERT_OK(token);
    EXPECT_TRUE(token->healed);
    EXPECT_NE(token->thumbprint, old_thumbprint);
    EXPECT_EQ(BoundThumbprint(*token), token->thumbprint);
    EXPECT_EQ(emulator_->GetCounters().mints, 2);  // the first + the heal
    EXPECT_EQ(client_->Metrics().evictions, 1);
    for (CertStore* layer : PlacesOf(store_.get())) {
      auto found = layer->Find(token->alias);
      ASSERT_OK(found) << layer->Name();
      EXPECT_EQ((*found)->thumbprint(), token->thumbprint) << layer->Name();
    }
  }
};

TEST_P(CredentialRecovery, InvalidClientHeals) {
  const std::string old = FirstToken();
  ASSERT_OK(client_->GetToken("https://a.example"));  // warm binding
  FaultSpec fault;
  fault.kind = FaultKind::kInvalidClient;
  ASSERT_OK(emulator_->InjectFault(fault));
  auto before = emulator_->GetCounters().tokens_issued;
  ASSERT_NO_FATAL_FAILURE(ExpectHealed(old));
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, before + 1);
}

TEST_P(CredentialRecovery, BadCertificateAlertHeals) {
  const std::string old = FirstToken();
  FaultSpec fault;
  fault.kind = FaultKind::kTlsAlert;
  fault.alert = TlsAlert::kBadCertificate;
  ASSERT_OK(emulator_->InjectFault(fault));
  ASSERT_NO_FATAL_FAILURE(ExpectHealed(old));
}

TEST_P(CredentialRecovery, UnknownCaAlertHeals) {
  const std::string old = FirstToken();
  FaultSpec fault;
  fault.kind = FaultKind::kTlsAlert;
  fault.alert = TlsAlert::kUnknownCa;
  ASSERT_OK(emulator_->InjectFault(fault));
  ASSERT_NO_FATAL_FAILURE(ExpectHealed(old));
}

TEST_P(CredentialRecovery, CertificateExpiredAlertHeals) {
  const std::string old = FirstToken();
  FaultSpec fault;
  fault.kind = FaultKind::kTlsAlert;
  fault.alert = TlsAlert::kCertificateExpired;
  ASSERT_OK(emulator_->InjectFault(fault));
  ASSERT_NO_FATAL_FAILURE(ExpectHealed(old));
}

TEST_P(CredentialRecovery, RevokedThumbprintHeals) {
  const std::string old = FirstToken();
  emulator_->Revoke(old);
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient());  // no cached token
  ASSERT_NO_FATAL_FAILURE(ExpectHealed(old));
}

TEST_P(CredentialRecovery, SecondFailureAfterTheRetryPropagates) {
  const std::string old = FirstToken();
  FaultSpec fault;
  fault.kind = FaultKind::kInvalidClient;
  fault.count = 2;
  ASSERT_OK(emulator_->InjectFault(fault));
  auto token = client_->GetToken("https://c.example");
  EXPECT_THAT(token,
              StatusIs(absl::StatusCode::kUnauthenticated,
                       AllOf(HasSubstr("invalid_client"),
                             HasSubstr("re-minted once"), HasSubstr(old))));
  EXPECT_EQ(emulator_->GetCounters().mints, 2);  // one heal, no loop
  EXPECT_EQ(client_->Metrics().evictions, 1);
}

// Network failures never evict and never mint.
class NetworkFailures : public TokenClientTest {
 protected:
  void ExpectRecoveredWithoutEviction(const FaultSpec& fault) {
    FirstToken();
    ASSERT_OK(emulator_->InjectFault(fault));
    auto token = client_->GetToken("https://net.example");
    ASSERT_OK(token);
    EXPECT_FALSE(token->healed);
    EXPECT_EQ(emulator_->GetCounters().mints, 1);
    EXPECT_EQ(client_->Metrics().evictions, 0);
    EXPECT_GE(client_->Metrics().network_retries, 1);
  }
};

TEST_P(NetworkFailures, ResetDuringHandshakeWithAHealthyKey) {
  FaultSpec fault;
  fault.kind = FaultKind::kResetDuringHandshake;
  ExpectRecoveredWithoutEviction(fault);
  EXPECT_GE(client_->Metrics().probes, 1);  // the probe cleared the key
}

TEST_P(NetworkFailures, ServiceUnavailable) {
  FaultSpec fault;
  fault.kind = FaultKind::kHttpStatus;
  fault.http_status = 503;
  ExpectRecoveredWithoutEviction(fault);
}

TEST_P(NetworkFailures, TooManyRequestsHonoursRetryAfter) {
  FaultSpec fault;
  fault.kind = FaultKind::kTooManyRequests;
  fault.retry_after = absl::Seconds(1);
  const absl::Time start = absl::Now();
  ExpectRecoveredWithoutEviction(fault);
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
}

TEST_P(NetworkFailures, RefusedIssuingEndpointMintsNothing) {
  TokenClientOptions options = Options();
  options.issuing_url = "http://127.0.0.1:1";  // nothing listens on port 1
  options.deadlines.total = absl::Seconds(2);
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  EXPECT_THAT(Token(), StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("127.0.0.1:1")));
  EXPECT_EQ(emulator_->GetCounters().mints, 0);
}

TEST_P(NetworkFailures, BlackholeEndsWithinTheDeadlineNamingThePhase) {
  FirstToken();
  TokenClientOptions options = Options();
  options.deadlines.total = absl::Seconds(2);
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  FaultSpec fault;
  fault.kind = FaultKind::kHang;
  fault.count = 10;
  ASSERT_OK(emulator_->InjectFault(fault));
  const absl::Time start = absl::Now();
  auto token = client_->GetToken("https://hang.example");
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(token, StatusIs(absl::StatusCode::kDeadlineExceeded,
                              AllOf(HasSubstr("TLS handshake"),
                                    HasSubstr("127.0.0.1"))));
  EXPECT_LE(took, absl::Milliseconds(2200));
  EXPECT_EQ(client_->Metrics().evictions, 0);
  emulator_->ClearFaults();
}

// Token requests with one binding share one kept-alive mTLS connection;
// when the binding is evicted (here: revoked, invalid_client) its
// connection goes with it, and the new binding gets its own.
TEST_P(TokenClientTest, ConnectionIsKeptPerBindingAndDroppedWithIt) {
  const std::string first = FirstToken();
  for (int i = 1; i <= 3; ++i) {
    ASSERT_OK(client_->GetToken(absl::StrCat("https://kept", i, ".example")));
  }
  EXPECT_EQ(client_->Metrics().connections_reused, 3);
  EXPECT_EQ(emulator_->GetCounters().connections, 1);
  emulator_->Revoke(first);
  auto healed = client_->GetToken("https://after-revoke.example");
  ASSERT_OK(healed);
  EXPECT_TRUE(healed->healed);
  EXPECT_NE(healed->thumbprint, first);
  EXPECT_EQ(emulator_->GetCounters().connections, 2);
  ASSERT_OK(client_->GetToken("https://after-revoke2.example"));
  EXPECT_EQ(emulator_->GetCounters().connections, 2);
  EXPECT_EQ(client_->Metrics().connections_reused, 5);
  EXPECT_EQ(emulator_->GetCounters().For(healed->thumbprint).tokens, 2);
}

// After a mint, the next key is made in the background (in process, or on
// the token labelled as a spare): the re-mint after a revocation uses it
// instead of waiting for key generation, and on a token the eviction
// before it leaves the spare in place.
TEST_P(TokenClientTest, ReMintUsesTheSpareKeyMadeAhead) {
  const std::string first = FirstToken();
  for (int i = 0; i < 500 && client_->Metrics().spare_keys_made == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(client_->Metrics().spare_keys_made, 1);
  emulator_->Revoke(first);
  auto healed = client_->GetToken("https://after-spare.example");
  ASSERT_OK(healed);
  EXPECT_TRUE(healed->healed);
  EXPECT_NE(healed->thumbprint, first);
  EXPECT_EQ(client_->Metrics().spare_keys_used, 1);
  EXPECT_EQ(BoundThumbprint(*healed), healed->thumbprint);
}

// A caller asking for ever new scopes does not grow the token cache
// without end: once it holds more than 256 tokens, expired ones go.
TEST_P(TokenClientTest, ExpiredTokensLeaveTheCache) {
  ManualClock clock(absl::Now());
  TokenClientOptions options = Options();
  options.clock = &clock;
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  for (int i = 0; i < 300; ++i) {
    ASSERT_OK(client_->GetToken(absl::StrCat("https://many", i, ".example")));
  }
  EXPECT_EQ(client_->Metrics().cached_tokens, 300);
  clock.Advance(absl::Hours(2));  // every one of them has expired
  ASSERT_OK(client_->GetToken("https://one-more.example"));
  EXPECT_EQ(client_->Metrics().cached_tokens, 1);
  client_.reset();  // before the clock it uses
}

// A cached token in its refresh-ahead window is served at once while one
// background request replaces it (the endpoint takes a second to answer:
// nobody waits for that), and the replacement is served after.
TEST_P(TokenClientTest, RefreshAheadServesTheCachedTokenMeanwhile) {
  ManualClock clock(absl::Now());
  TokenClientOptions options = Options();
  options.clock = &clock;
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  auto first = Token();
  ASSERT_OK(first);
  const int64_t issued = emulator_->GetCounters().tokens_issued;
  FaultSpec slow;
  slow.kind = FaultKind::kDelay;
  slow.delay = absl::Seconds(1);
  ASSERT_OK(emulator_->InjectFault(slow));
  clock.Advance(absl::Minutes(56));  // 4 of its 60 minutes left
  for (int i = 0; i < 10; ++i) {
    auto again = Token();
    ASSERT_OK(again);
    EXPECT_TRUE(again->from_cache);
    EXPECT_EQ(again->access_token, first->access_token);
  }
  // Served before the (delayed) refresh could land.
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, issued);
  for (int i = 0; i < 300 && client_->Metrics().refreshes_ahead == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(client_->Metrics().refreshes_ahead, 1);
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, issued + 1);
  auto refreshed = Token();
  ASSERT_OK(refreshed);
  EXPECT_TRUE(refreshed->from_cache);
  EXPECT_NE(refreshed->access_token, first->access_token);
  EXPECT_EQ(client_->Metrics().token_requests, 2);
  client_.reset();  // before the clock it uses
}

// The platform the issuer named is kept per store with its age: a new
// process that has to mint asks the issuer to mint, not who it is.
TEST_P(TokenClientTest, ANewProcessTakesThePlatformFromTheStoreRecord) {
  const std::string first = FirstToken();
  const auto before = emulator_->GetCounters();
  EXPECT_EQ(before.metadata_requests, 1);
  ASSERT_OK(store_->DeleteAllForAlias(
      absl::StrCat(emulator_->client_id(), "#att=0")));
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient());
  auto token = Token();
  ASSERT_OK(token);
  EXPECT_NE(token->thumbprint, first);
  const auto after = emulator_->GetCounters();
  EXPECT_EQ(after.metadata_requests, before.metadata_requests);
  EXPECT_EQ(after.mints, before.mints + 1);
  // A record older than platform_refresh is checked with the issuer.
  TokenClientOptions options = Options();
  options.platform_refresh = absl::ZeroDuration();
  ASSERT_OK(store_->DeleteAllForAlias(token->alias));
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  ASSERT_OK(Token());
  EXPECT_EQ(emulator_->GetCounters().metadata_requests,
            before.metadata_requests + 1);
}

// The issuer answers 503 and the store holds bindings of two platforms (so
// no binding says which is this machine's): an old record of the platform
// still serves the cached binding; without the record the call fails.
TEST_P(TokenClientTest, IssuerDownAnOldPlatformRecordStillServes) {
  const std::string first = FirstToken();
  // Another platform's binding in the same store (another tenant's).
  const std::string other_alias = kOtherPlatformAlias;
  auto key = store_->CreateKey(other_alias, KeySpec{});
  ASSERT_OK(key);
  TestPki pki;
  LeafOptions leaf;
  leaf.not_before = absl::Now() - absl::Hours(1);
  leaf.not_after = absl::Now() + absl::Hours(24 * 7);
  EntryParts parts;
  parts.alias = other_alias;
  parts.key = *key;
  parts.chain_der = pki.IssueChain(**key, leaf);
  parts.metadata.client_id = "99999999-8888-7777-6666-555555555555";
  parts.metadata.tenant_id = "tenant-0002";
  parts.metadata.endpoint = "https://127.0.0.1:1";
  auto entry = Entry::Create(std::move(parts));
  ASSERT_OK(entry);
  ASSERT_OK(store_->Put(*entry));
  TokenClientOptions options = Options();
  options.platform_refresh = absl::ZeroDuration();  // every record is old
  FaultSpec down;
  down.kind = FaultKind::kRawIssuing;
  down.raw = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
  down.count = 100;
  ASSERT_OK(emulator_->InjectFault(down));
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  auto token = Token();
  ASSERT_OK(token);
  EXPECT_EQ(token->thumbprint, first);
  EXPECT_GT(emulator_->GetCounters().faults_applied, 0);  // it did ask
  // The control: with the record damaged (as good as none) the issuer's
  // answer is needed.
  int damaged = 0;
  for (const auto& file :
       std::filesystem::directory_iterator(dir_.path() + "/platform")) {
    WriteFile(file.path().string(), "{\"client_id\": 7, \"fetched");
    ++damaged;
  }
  EXPECT_EQ(damaged, 1);
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient(options));
  EXPECT_THAT(Token(), StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("platform metadata")));
  emulator_->ClearFaults();
}

// The cached path serves each thread's copy without a lock; what the
// client changes (a new token, an eviction) is seen at once, what happens
// to the store behind its back (a binding deleted by an operator or
// another process) within HotTokens::kRecheck (1 s).
TEST_P(TokenClientTest,
       CachedPathSeesABindingDeletedBehindItsBackWithinASecond) {
  const std::string first = FirstToken();
  ASSERT_FALSE(first.empty());
  std::vector<std::thread> threads;
  std::atomic<int> served{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        auto token = Token();
        if (token.ok() && token->from_cache && token->thumbprint == first) {
          served++;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(served.load(), 400);
  EXPECT_EQ(client_->Metrics().cache_hits, 400);
  // The shared form: the same token, the same errors.
  auto shared = client_->GetSharedToken(kScope);
  ASSERT_OK(shared);
  EXPECT_EQ((*shared)->thumbprint, first);
  EXPECT_TRUE((*shared)->from_cache);
  EXPECT_EQ(client_->Metrics().cache_hits, 401);
  EXPECT_THAT(client_->GetSharedToken("has space"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scope")));
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 1);
  // Deleted in every layer, not through the client.
  for (CertStore* place : PlacesOf(store_.get())) {
    ASSERT_OK(place->DeleteAllForAlias(
        absl::StrCat(emulator_->client_id(), "#att=0")));
  }
  absl::SleepFor(absl::Milliseconds(1100));
  auto after = Token();
  ASSERT_OK(after);
  EXPECT_NE(after->thumbprint, first);
  EXPECT_EQ(emulator_->GetCounters().mints, 2);
}

TEST_P(TokenClientTest, BadScopeIsRefusedBeforeAnyNetworkCall) {
  for (const char* scope : {"", "has space", "a&b", "a=b"}) {
    EXPECT_THAT(
        client_->GetToken(scope),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scope")));
  }
  EXPECT_EQ(emulator_->GetCounters().metadata_requests, 0);
}

// Processes that share a persistent store mint once between them, through
// its LockAlias.
class CrossProcessTest : public TokenClientTest {};

// 4 processes x 16 threads, cold, on one persistent store: one mint at the
// emulator, one binding for all 64 callers.
TEST_P(CrossProcessTest, SixtyFourThreadsInFourProcessesMintOnce) {
  client_.reset();
  store_.reset();
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> children;
  for (int p = 0; p < 4; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char byte;
      (void)!read(go[0], &byte, 1);
      auto store = OpenUri(uri_);
      if (!store.ok()) {
        _exit(2);
      }
      // Each waits for the others' mint lock however busy the machine.
      TokenClientOptions options = Options();
      options.mint_lock_timeout = absl::Seconds(60);
      auto client = TokenClient::Create(store->get(), options);
      if (!client.ok()) {
        _exit(3);
      }
      std::atomic<int> failures{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < 16; ++t) {
        threads.emplace_back([&] {
          if (!(*client)->GetToken(kScope).ok()) {
            failures++;
          }
        });
      }
      for (auto& thread : threads) {
        thread.join();
      }
      _exit(failures.load() == 0 ? 0 : 1);
    }
    children.push_back(pid);
  }
  close(go[0]);
  close(go[1]);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(emulator_->GetCounters().mints, 1);
  EXPECT_EQ(emulator_->GetCounters().by_thumbprint.size(), 1u);
}

// 4 processes x 64 threads ask for a token of a new scope at once, while
// the token endpoint takes 300 ms to answer: one token request per
// process; then the token expires (each process's clock is moved past it)
// and the same 64 callers ask again: one request per process again. Every
// caller gets the token its process's one request brought.
TEST_P(CrossProcessTest, SixtyFourThreadsInFourProcessesSendOneRequestEach) {
  client_.reset();
  store_.reset();
  constexpr int kProcesses = 4;
  constexpr int kThreads = 64;
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char byte;
      (void)!read(go[0], &byte, 1);
      auto store = OpenUri(uri_);
      if (!store.ok()) _exit(2);
      ManualClock clock(absl::Now());
      TokenClientOptions options = Options();
      options.clock = &clock;
      auto client = TokenClient::Create(store->get(), options);
      if (!client.ok()) _exit(3);
      // Exit code: 0, or which check failed.
      auto round = [&]() -> int {
        std::atomic<bool> start{false};
        std::vector<absl::StatusOr<AccessToken>> results(
            kThreads, absl::UnknownError("not run"));
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
          threads.emplace_back([&, t] {
            while (!start.load()) std::this_thread::yield();
            results[t] = (*client)->GetToken("https://flight.example");
          });
        }
        start = true;
        for (auto& thread : threads) thread.join();
        for (const auto& r : results) {
          if (!r.ok()) return 10;
          if (r->access_token != results[0]->access_token) return 11;
        }
        return 0;
      };
      if (int failed = round(); failed != 0) _exit(failed);
      if ((*client)->Metrics().token_requests != 1) _exit(12);
      clock.Advance(absl::Hours(1));  // the emulator's tokens live 3600 s
      if (int failed = round(); failed != 0) _exit(20 + failed);
      if ((*client)->Metrics().token_requests != 2) _exit(32);
      client->reset();
      _exit(0);
    }
    children.push_back(pid);
  }
  // The children were forked while the emulator was idle (a fork while one
  // of its threads is inside OpenSSL could leave a lock held in the child);
  // now the binding is made, in this process, before they start.
  ASSERT_NO_FATAL_FAILURE(NewProcessLikeClient());
  FirstToken();  // the binding exists; only tokens are asked for below
  client_.reset();
  store_.reset();
  const int64_t issued_before = emulator_->GetCounters().tokens_issued;
  FaultSpec slow;
  slow.kind = FaultKind::kDelay;
  slow.delay = absl::Milliseconds(300);
  slow.count = 8;
  ASSERT_OK(emulator_->InjectFault(slow));
  close(go[0]);
  close(go[1]);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "exit " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  EXPECT_EQ(emulator_->GetCounters().tokens_issued - issued_before,
            2 * kProcesses);
  emulator_->ClearFaults();
}

TEST(TokenClientCreateTest, RefusesBadOptions) {
  TempDir dir;
  auto store = OpenStore("memory:");
  ASSERT_OK(store);
  TokenClientOptions options;
  options.issuing_url = "ftp://x";
  EXPECT_THAT(
      TokenClient::Create(store->get(), options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ftp://x")));
  options.issuing_url = "http://127.0.0.1:1";
  options.max_attempts = 0;
  EXPECT_THAT(TokenClient::Create(store->get(), options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(TokenClient::Create(nullptr, TokenClientOptions{}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options.max_attempts = 3;
  options.platform_refresh = absl::Seconds(-1);
  EXPECT_THAT(TokenClient::Create(store->get(), options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("platform_refresh")));
  options.platform_refresh = absl::Hours(24);
  options.state_dir = "relative/state";
  EXPECT_THAT(
      TokenClient::Create(store->get(), options),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("relative/state"), HasSubstr("absolute path"))));
  options.state_dir = "";
  EXPECT_OK(TokenClient::Create(store->get(), options).status());
}

const auto kBackends = ::testing::Values(
    "memory:,sqlite:{dir}/s.db", "memory:,file:{dir}/certs", "memory:,{pkcs11}",
    "sqlite:{dir}/s.db", "file:{dir}/certs", "{pkcs11}");
std::string BackendName(const ::testing::TestParamInfo<std::string>& p) {
  const std::string shape =
      absl::StartsWith(p.param, "memory:,") ? "memory_over_" : "plain_";
  if (p.param.find("sqlite") != std::string::npos) {
    return shape + "sqlite";
  }
  return shape +
         (p.param.find("file") != std::string::npos ? "file" : "pkcs11");
}

INSTANTIATE_TEST_SUITE_P(Backends, TokenClientTest, kBackends, BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, CredentialRecovery, kBackends, BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, NetworkFailures, kBackends, BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, CrossProcessTest, kBackends, BackendName);

}  // namespace
}  // namespace certstore::testing

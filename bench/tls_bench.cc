// certstore::tls beside bare OpenSSL, in the same run:
//   BM_Floor_MtlsHandshake/{ec,rsa}     a full mTLS handshake (TLS 1.3)
//                          between two bare SSL_CTXs, each with its
//                          certificate and key loaded once and the test
//                          root in its X509_STORE
//   BM_Tls_Identity_MtlsHandshake/...   the same, both sides presenting
//                          through TlsIdentity (memory store)
//   BM_Tls_IdentityPolicy_MtlsHandshake/...  TlsIdentity and PeerPolicy
//                          (anchors, clientAuth/serverAuth required, an
//                          allowlist of one thumbprint) on both sides
//   BM_Tls_PairedHandshake/rsa:{0,1}/mode:{1,2}  the floor and ours
//                          (mode 1: TlsIdentity; 2: with PeerPolicy)
//                          alternating in one loop, so that the machine's
//                          drift falls on both (ratio_reporter.h, paired
//                          runs): the ratio the bar is checked on
//   BM_Tls_IdentityLookup  the per-handshake lookup: the thread's copy of
//                          the current credential (1 and 2 threads)
//   BM_Tls_RotationToVisibility/{in_process,other_process}  from a renewal
//                          to the first handshake presenting it: a Put +
//                          NotifyChanged here, or `certstore import` into
//                          the shared SQLite file by another process
//                          (poll_interval 100 ms); median and p99 counters
// The handshakes run over an in-memory BIO pair in one thread: no kernel,
// no scheduler between the two sides, so the ratio is the TLS work alone
// (a loopback socket adds the same time to both and only dilutes it).
#include <benchmark/benchmark.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/internal/ssl_types.h"
#include "bench/bench_util.h"
#include "bench/ratio_reporter.h"
#include "certstore/chain.h"
#include "certstore/memory_store.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/test_pki.h"
#include "certstore/tls.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/tls/tls_test_util.h"
#include "tls/shared_snapshot.h"

namespace certstore::bench {
namespace {

using testing::ClientEntry;
using testing::PoolKey;
using testing::ServerEntry;
using testing::TestPki;

const TestPki& Pki(int key_kind) {
  static const TestPki* ec = new TestPki(KeyType::kEcP256);
  static const TestPki* rsa = new TestPki(KeyType::kRsa2048);
  return key_kind == 0 ? *ec : *rsa;
}

KeyType KindOf(int key_kind) {
  return key_kind == 0 ? KeyType::kEcP256 : KeyType::kRsa2048;
}

void Die(const char* what) {
  fprintf(stderr, "tls_bench: %s\n", what);
  ERR_print_errors_fp(stderr);
  abort();
}

void NoResumption(SSL_CTX* ctx) {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  static constexpr unsigned char kContext[] = "tls-bench";
  SSL_CTX_set_session_id_context(ctx, kContext, sizeof(kContext) - 1);
}

// Bare: certificate, chain and key loaded into the context once; the root
// in the context's store; the peer verified by OpenSSL.
UniqueSslCtx BareContext(bool server, const Entry& entry, int key_kind) {
  UniqueSslCtx ctx(
      SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  absl::StatusOr<absl::Span<X509* const>> chain = entry.Chain();
  if (ctx == nullptr || !chain.ok() ||
      SSL_CTX_use_certificate(ctx.get(), (*chain)[0]) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), entry.key()->evp_pkey()) != 1) {
    Die("bare context");
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    SSL_CTX_add1_chain_cert(ctx.get(), (*chain)[i]);
  }
  absl::StatusOr<UniqueX509> root =
      DecodeCertificate(Pki(key_kind).root_der(), "root");
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), root->get());
  SSL_CTX_set_verify(
      ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  NoResumption(ctx.get());
  return ctx;
}

struct Sides {
  UniqueSslCtx server;
  UniqueSslCtx client;
};

std::string RootFile(int key_kind) {
  static testing::TempDir* dir = new testing::TempDir();
  const std::string path = absl::StrCat(dir->path(), "/root", key_kind, ".pem");
  testing::WriteText(path, DerChainToPem({Pki(key_kind).root_der()}));
  return path;
}

// How the two contexts are made: 0 bare, 1 TlsIdentity, 2 + PeerPolicy.
Sides MakeSides(int mode, int key_kind) {
  const TestPki& pki = Pki(key_kind);
  std::shared_ptr<const Entry> server_entry =
      ServerEntry(pki, "server", PoolKey(KindOf(key_kind), 0));
  std::shared_ptr<const Entry> client_entry =
      ClientEntry(pki, "client", PoolKey(KindOf(key_kind), 1));
  Sides sides{BareContext(true, *server_entry, key_kind),
              BareContext(false, *client_entry, key_kind)};
  if (mode == 0) {
    return sides;
  }
  // Same contexts, credentials from a store instead (the loaded ones are
  // replaced on every handshake by the identity's).
  std::shared_ptr<CertStore> store = NewMemoryStore();
  if (!store->Put(server_entry).ok() || !store->Put(client_entry).ok()) {
    Die("put");
  }
  for (auto [ctx, alias] : {std::pair{sides.server.get(), "server"},
                            std::pair{sides.client.get(), "client"}}) {
    auto identity = TlsIdentity::Create(store, alias);
    if (!identity.ok() || !(*identity)->Install(ctx).ok()) {
      Die("identity");
    }
  }
  if (mode == 2) {
    for (bool server : {true, false}) {
      PeerPolicyConfig config;
      config.trust_bundle_files = {RootFile(key_kind)};
      config.required_usage =
          server ? RequiredUsage::kClientAuth : RequiredUsage::kServerAuth;
      config.allowed_thumbprints = {server ? client_entry->thumbprint()
                                           : server_entry->thumbprint()};
      auto policy = PeerPolicy::Create(config);
      if (!policy.ok() ||
          !(*policy)
               ->Install(server ? sides.server.get() : sides.client.get())
               .ok()) {
        Die("policy");
      }
    }
  }
  return sides;
}

// One full handshake between the two contexts over a BIO pair; with
// `server_thumbprint`, also the thumbprint of the certificate the client
// saw (for the rotation rows).
bool Handshake(const Sides& sides, std::string* server_thumbprint = nullptr) {
  UniqueSsl server(SSL_new(sides.server.get()));
  UniqueSsl client(SSL_new(sides.client.get()));
  BIO* server_bio = nullptr;
  BIO* client_bio = nullptr;
  BIO_new_bio_pair(&server_bio, 0, &client_bio, 0);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_accept_state(server.get());
  SSL_set_connect_state(client.get());
  bool server_done = false;
  bool client_done = false;
  for (int round = 0; round < 16 && !(server_done && client_done); ++round) {
    if (!client_done) {
      const int r = SSL_do_handshake(client.get());
      client_done = r == 1;
      if (r <= 0 && SSL_get_error(client.get(), r) != SSL_ERROR_WANT_READ) {
        Die("client handshake");
      }
    }
    if (!server_done) {
      const int r = SSL_do_handshake(server.get());
      server_done = r == 1;
      if (r <= 0 && SSL_get_error(server.get(), r) != SSL_ERROR_WANT_READ) {
        Die("server handshake");
      }
    }
  }
  // TLS 1.3: the client's Finished reaches the server after the client is
  // done; one more server step above completes it.
  if (!(server_done && client_done)) {
    Die("handshake did not finish");
  }
  if (server_thumbprint != nullptr) {
    unsigned char* der = nullptr;
    const int len = i2d_X509(SSL_get0_peer_certificate(client.get()), &der);
    *server_thumbprint = Thumbprint(absl::string_view(
        reinterpret_cast<char*>(der), static_cast<size_t>(len)));
    OPENSSL_free(der);
  }
  return true;
}

void HandshakeLoop(benchmark::State& state, int mode) {
  const int key_kind = static_cast<int>(state.range(0));
  Sides sides = MakeSides(mode, key_kind);
  for (auto _ : state) {
    benchmark::DoNotOptimize(Handshake(sides));
  }
  state.SetLabel(key_kind == 0 ? "ec" : "rsa");
}

void BM_Floor_MtlsHandshake(benchmark::State& state) {
  HandshakeLoop(state, 0);
}
void BM_Tls_Identity_MtlsHandshake(benchmark::State& state) {
  HandshakeLoop(state, 1);
}
void BM_Tls_IdentityPolicy_MtlsHandshake(benchmark::State& state) {
  HandshakeLoop(state, 2);
}
BENCHMARK(BM_Floor_MtlsHandshake)
    ->ArgName("rsa")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Tls_Identity_MtlsHandshake)
    ->ArgName("rsa")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Tls_IdentityPolicy_MtlsHandshake)
    ->ArgName("rsa")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

void BM_Tls_PairedHandshake(benchmark::State& state) {
  const int key_kind = static_cast<int>(state.range(0));
  Sides floor = MakeSides(0, key_kind);
  Sides ours = MakeSides(static_cast<int>(state.range(1)), key_kind);
  auto timed = [](const Sides& sides) {
    return std::optional<double>(
        SecondsOf([&] { benchmark::DoNotOptimize(Handshake(sides)); }));
  };
  RunPaired(
      state, [&] { return timed(ours); }, [&] { return timed(floor); },
      "handshake failed");
}
BENCHMARK(BM_Tls_PairedHandshake)
    ->ArgNames({"rsa", "mode"})
    ->ArgsProduct({{0, 1}, {1, 2}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// The lookup each handshake makes (tls/shared_snapshot.h), on a snapshot
// shared by the threads.
void BM_Tls_IdentityLookup(benchmark::State& state) {
  static auto* snapshot = new tls_internal::SharedSnapshot<Entry>(
      ClientEntry(Pki(0), "client", PoolKey(KeyType::kEcP256, 1)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(snapshot->Read());
  }
}
BENCHMARK(BM_Tls_IdentityLookup)->Threads(1)->Threads(2)->UseRealTime();

// From a renewal to the first handshake that presents it.
void BM_Tls_RotationToVisibility(benchmark::State& state) {
  const bool other_process = state.range(0) == 1;
  testing::TempDir dir;
  const std::string db = dir.path() + "/shared.db";
  absl::StatusOr<std::unique_ptr<CertStore>> opened = OpenSqliteStore(db);
  if (!opened.ok()) {
    Die("sqlite");
  }
  std::shared_ptr<CertStore> store = *std::move(opened);
  int n = 0;
  auto next_server = [&] {
    ++n;
    return ServerEntry(Pki(0), "server", PoolKey(KeyType::kEcP256, 2 + n % 4),
                       30 + n);
  };
  if (!store->Put(next_server()).ok()) {
    Die("put");
  }
  Sides sides = MakeSides(0, 0);
  TlsIdentityOptions options;
  options.poll_interval = absl::Milliseconds(100);
  auto identity = TlsIdentity::Create(store, "server", options);
  if (!identity.ok() || !(*identity)->Install(sides.server.get()).ok()) {
    Die("identity");
  }
  std::vector<double> delays_ms;
  for (auto _ : state) {
    state.PauseTiming();
    std::shared_ptr<const Entry> renewed = next_server();
    absl::Time renewed_at;
    if (other_process) {
      testing::WriteText(dir.path() + "/s.pem", testing::ChainPem(*renewed));
      testing::WriteText(dir.path() + "/s.key",
                         testing::KeyPem(*renewed->key()));
      testing::ProcessOptions cli;
      cli.env = {"XDG_STATE_HOME=" + dir.path()};
      const testing::ProcessResult r = testing::RunProcess(
          {CERTSTORE_CLI_BINARY, "--store", "sqlite:" + db, "import", "server",
           "--cert", dir.path() + "/s.pem", "--key", dir.path() + "/s.key"},
          cli);
      if (r.exit_code != 0) {
        Die(r.err.c_str());
      }
      renewed_at = absl::Now();
    } else {
      if (!store->Put(renewed).ok()) {
        Die("put");
      }
      renewed_at = absl::Now();
      (*identity)->NotifyChanged();
    }
    state.ResumeTiming();
    const std::string want = renewed->thumbprint();
    std::string seen;
    for (int i = 0; i < 100000 && seen != want; ++i) {
      Handshake(sides, &seen);
    }
    delays_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - renewed_at));
  }
  std::sort(delays_ms.begin(), delays_ms.end());
  if (!delays_ms.empty()) {
    state.counters["median_ms"] = delays_ms[delays_ms.size() / 2];
    state.counters["p99_ms"] = delays_ms[std::min(
        delays_ms.size() - 1, static_cast<size_t>(delays_ms.size() * 0.99))];
  }
  state.SetLabel(other_process ? "other_process" : "in_process");
}
BENCHMARK(BM_Tls_RotationToVisibility)
    ->ArgName("other_process")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(50)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

bool RegisterTlsRatios() {
  // Issue 21: a handshake presenting through TlsIdentity costs <= 1.05x
  // the bare context with the same certificate and key loaded once.
  for (const char* key : {"rsa:0", "rsa:1"}) {
    const std::string identity =
        absl::StrCat("BM_Tls_PairedHandshake/", key, "/mode:1/manual_time");
    const std::string policy =
        absl::StrCat("BM_Tls_PairedHandshake/", key, "/mode:2/manual_time");
    RegisterRatio(identity + "/ours", identity + "/floor", 1.05);
    RegisterRatio(policy + "/ours", policy + "/floor");
  }
  RegisterRatio("BM_Tls_Identity_MtlsHandshake", "BM_Floor_MtlsHandshake");
  RegisterRatio("BM_Tls_IdentityPolicy_MtlsHandshake",
                "BM_Floor_MtlsHandshake");
  RegisterRatio("BM_Tls_IdentityLookup/real_time/threads:2",
                "BM_Tls_IdentityLookup/real_time/threads:1");
  return true;
}

[[maybe_unused]] const bool kTlsRatiosRegistered = RegisterTlsRatios();

}  // namespace
}  // namespace certstore::bench

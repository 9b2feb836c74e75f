// TokenClient against the emulator on loopback, memory over SQLite:
//   BM_Client_GetToken_Cached     token served from the token cache (1 and
//                                 2 threads)
//   BM_Client_GetSharedToken_Cached  the same, shared rather than copied
//   BM_Floor_MemoryStore_FindHit  a Find hit on the memory layer that holds
//                                 the binding: the cached path's floor
//   BM_Client_GetToken_Fetch      cached binding, token fetched over mTLS
//                                 (a new connection and full handshake:
//                                 reuse_connections = false)
//   BM_Floor_Curl_MtlsToken       the same request with bare libcurl and the
//                                 same certificate and key (PEM files)
//   BM_Client_MintAndToken        evict, mint (key, CSR, issue, Put), token
//   BM_Client_Recovery            invalid_client, evict, mint, retry once
// and in generic RFC 8705 mode against nginx (nginx-light) requiring client
// certificates, the same binding:
//   BM_Client_Generic_Fetch       cached binding, token over a new connection
//   BM_Floor_Curl_NginxToken      bare libcurl, same request, same files
//   BM_Client_Generic_Reused      the same over the kept-alive connection
//   BM_Floor_Curl_NginxReused     bare libcurl reusing its connection
//   BM_Paired_Reused              the two alternated in one loop (the ratio
//                                 that decides)
// and a cold start: a new `certstore token` process with the binding
// persisted (sqlite, PEM directory, SoftHSM) gets its first token from nginx:
//   BM_Client_ColdStart/{sqlite,file,token}
//   BM_Floor_ColdStart/{sqlite,file,token}  the `curl` command doing the same
//                                 request with the same files (a new process,
//                                 a full handshake) + a cold Find here; on
//                                 the token, curl with the key on the token
//                                 (libp11's engine), which is its cold Find
//   BM_Paired_ColdStart/{sqlite,file,token}  the two alternated in one loop
//                                 (the ratio that decides)
//   BM_ColdStart_Part_*           where the time goes: process start,
//                                 store open, open + cold Find
// and recovery with RSA-2048 keys (invalid_client, evict, mint, retry):
//   BM_Client_RecoveryRsa/spare:{0,1}  without and with a spare key
//   BM_Floor_IssueAndTwoTokens    bare libcurl: one issuecredential request
//                                 (CSR made beforehand) + two token requests
//                                 on new connections
//   BM_Paired_RecoveryRsa/floor_first_kept:{0,1}  the spare:1 row and that
//                                 floor alternated in one loop (0: the
//                                 ratio that decides; 1: the floor's first
//                                 request on a kept-alive connection, as
//                                 the failing request of a self-heal is)
//   BM_Client_RecoveryRsaToken/spare:{0,1}  the same recovery with the
//                                 binding's key on a SoftHSM token (memory
//                                 over pkcs11): the spare is a key pair
//                                 made on the token ahead of need
#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/internal/percent_encoding.h"
#include "bench/bench_util.h"
#include "bench/ratio_reporter.h"
#include "certstore/chain.h"
#include "certstore/open_store.h"
#include "certstore/token_client.h"
#include "client/csr.h"
#include "emulator/emulator.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/files.h"
#include "tests/support/loopback.h"
#include "tests/support/nginx.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace certstore::bench {
namespace {

using emulator::Emulator;

struct ClientFixture {
  testing::TempDir dir;
  std::unique_ptr<Emulator> emulator;
  std::unique_ptr<LayeredStore> store;
  std::unique_ptr<TokenClient> client;
  std::string cert_file, key_file, ca_file, body;
  std::atomic<int64_t> scope_counter{0};

  std::string NextScope() {
    return absl::StrCat("https://s", scope_counter++, ".example");
  }
};

ClientFixture& Fixture() {
  static ClientFixture* const fixture = [] {
    auto* f = new ClientFixture();
    auto emu = Emulator::Start();
    CheckOk(emu.status(), "Emulator::Start");
    f->emulator = *std::move(emu);
    auto store =
        OpenStore(absl::StrCat("memory:,sqlite:", f->dir.path(), "/s.db"));
    CheckOk(store.status(), "OpenStore");
    f->store = *std::move(store);
    TokenClientOptions options;
    options.issuing_url = f->emulator->issuing_url();
    options.server_ca_pem = f->emulator->ca_root_pem();
    options.reuse_connections = false;  // a full handshake per token
    auto client = TokenClient::Create(f->store.get(), options);
    CheckOk(client.status(), "TokenClient::Create");
    f->client = *std::move(client);
    auto token = f->client->GetToken(f->NextScope());
    CheckOk(token.status(), "GetToken");
    // The same binding as files, for the bare libcurl floor.
    auto entry = f->store->Find(token->alias);
    CheckOk(entry.status(), "Find");
    auto key_pem = KeyToPem(*(*entry)->key());
    CheckOk(key_pem.status(), "KeyToPem");
    f->cert_file = f->dir.path() + "/chain.pem";
    f->key_file = f->dir.path() + "/key.pem";
    f->ca_file = f->dir.path() + "/ca.pem";
    std::ofstream(f->cert_file) << DerChainToPem((*entry)->chain_der());
    std::ofstream(f->key_file) << *key_pem;
    std::ofstream(f->ca_file) << f->emulator->ca_root_pem();
    f->body = absl::StrCat(
        "grant_type=client_credentials&client_id=", f->emulator->client_id(),
        "&scope=https://floor.example/.default"
        "&token_type=mtls_pop");
    return f;
  }();
  return *fixture;
}

// One scope for every thread of the cached runs, its token fetched once.
const std::string& CachedScope() {
  static const std::string* const scope = [] {
    ClientFixture& f = Fixture();
    auto* made = new std::string(f.NextScope());
    CheckOk(f.client->GetToken(*made).status(), "warm-up token");
    return made;
  }();
  return *scope;
}

void BM_Client_GetToken_Cached(benchmark::State& state) {
  ClientFixture& f = Fixture();
  const std::string& scope = CachedScope();
  for (auto _ : state) {
    auto token = f.client->GetToken(scope);
    benchmark::DoNotOptimize(token);
  }
}

void BM_Client_GetSharedToken_Cached(benchmark::State& state) {
  ClientFixture& f = Fixture();
  const std::string& scope = CachedScope();
  for (auto _ : state) {
    auto token = f.client->GetSharedToken(scope);
    benchmark::DoNotOptimize(token);
  }
}

// The cached path's floor: a hit on the memory layer holding the binding.
void BM_Floor_MemoryStore_FindHit(benchmark::State& state) {
  ClientFixture& f = Fixture();
  static const std::string* const alias = [] {
    auto token = Fixture().client->GetToken(CachedScope());
    CheckOk(token.status(), "GetToken");
    return new std::string(token->alias);
  }();
  CertStore* memory = f.store->layers()[0];
  for (auto _ : state) {
    auto entry = memory->Find(*alias);
    benchmark::DoNotOptimize(entry);
  }
}

void BM_Client_GetToken_Fetch(benchmark::State& state) {
  ClientFixture& f = Fixture();
  for (auto _ : state) {
    auto token = f.client->GetToken(f.NextScope());  // never cached
    if (!token.ok()) {
      state.SkipWithError(token.status().ToString().c_str());
      break;
    }
  }
}

size_t Discard(char*, size_t size, size_t count, void*) { return size * count; }

// One POST the way a user of bare libcurl writes it: the client
// certificate and key as PEM files (`cert_file` empty: none), the server's
// CA file. `curl` is the handle to use (it keeps its connection), or null
// for a new handle and connection. True on HTTP 200.
bool BareCurlPost(CURL* curl, const std::string& url,
                  const std::string& cert_file, const std::string& key_file,
                  const std::string& ca_file, const std::string& body,
                  curl_slist* headers = nullptr) {
  CURL* const c = curl != nullptr ? curl : curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  if (!cert_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, cert_file.c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, key_file.c_str());
    curl_easy_setopt(c, CURLOPT_CAINFO, ca_file.c_str());
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, curl != nullptr ? 0L : 1L);
  const CURLcode code = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (curl == nullptr) {
    curl_easy_cleanup(c);
  }
  return code == CURLE_OK && status == 200;
}

void BM_Floor_Curl_MtlsToken(benchmark::State& state) {
  ClientFixture& f = Fixture();
  const std::string url = f.emulator->token_endpoint();
  for (auto _ : state) {
    if (!BareCurlPost(nullptr, url, f.cert_file, f.key_file, f.ca_file,
                      f.body)) {
      state.SkipWithError("bare libcurl token request failed");
      break;
    }
  }
}

// nginx in front of the same binding: its client CA is the issuer's, its
// server certificate self-signed.
struct NginxFixture {
  testing::TempDir dir;
  std::unique_ptr<testing::NginxTokenEndpoint> nginx;
  std::unique_ptr<TokenClient> client;   // generic mode, same store
  std::unique_ptr<TokenClient> reusing;  // the same, connections kept
  std::string url, server_ca_file, body;
};

NginxFixture& Nginx() {
  static NginxFixture* const fixture = [] {
    ClientFixture& f = Fixture();
    auto* n = new NginxFixture();
    CheckOk(testing::NginxTokenEndpoint::WriteServerCertificate(n->dir.path()),
            "server certificate");
    std::ofstream(n->dir.path() + "/client-ca.pem")
        << f.emulator->ca_root_pem();
    n->nginx = std::make_unique<testing::NginxTokenEndpoint>(
        n->dir.path(), testing::FreeLoopbackPort());
    CheckOk(n->nginx->Start(), "nginx");
    // The fixture lives until exit; nginx, a process of its own, must not
    // outlive the benchmark.
    std::atexit([] { Nginx().nginx->Stop().IgnoreError(); });
    n->url = n->nginx->Url("/oauth2/v2.0/token");
    n->server_ca_file = n->dir.path() + "/server.pem";
    TokenClientOptions options;
    options.token_endpoint.url = n->url;
    options.token_endpoint.client_id = "bench-client";
    options.token_endpoint.alias =
        absl::StrCat(f.emulator->client_id(), "#att=0");
    std::ifstream ca(n->server_ca_file);
    options.server_ca_pem.assign(std::istreambuf_iterator<char>(ca), {});
    options.reuse_connections = false;
    auto client = TokenClient::Create(f.store.get(), options);
    CheckOk(client.status(), "TokenClient::Create (generic)");
    n->client = *std::move(client);
    options.reuse_connections = true;
    auto reusing = TokenClient::Create(f.store.get(), options);
    CheckOk(reusing.status(), "TokenClient::Create (generic, reusing)");
    n->reusing = *std::move(reusing);
    n->body =
        "grant_type=client_credentials&client_id=bench-client"
        "&scope=https%3A%2F%2Ffloor.example";
    return n;
  }();
  return *fixture;
}

void BM_Client_Generic_Fetch(benchmark::State& state) {
  ClientFixture& f = Fixture();
  NginxFixture& n = Nginx();
  for (auto _ : state) {
    auto token = n.client->GetToken(f.NextScope());  // never cached
    if (!token.ok()) {
      state.SkipWithError(token.status().ToString().c_str());
      break;
    }
  }
}

void BM_Floor_Curl_NginxToken(benchmark::State& state) {
  ClientFixture& f = Fixture();
  NginxFixture& n = Nginx();
  for (auto _ : state) {
    if (!BareCurlPost(nullptr, n.url, f.cert_file, f.key_file, n.server_ca_file,
                      n.body)) {
      state.SkipWithError("bare libcurl token request to nginx failed");
      break;
    }
  }
}

void BM_Client_Generic_Reused(benchmark::State& state) {
  ClientFixture& f = Fixture();
  NginxFixture& n = Nginx();
  CheckOk(n.reusing->GetToken(f.NextScope()).status(), "warm-up token");
  for (auto _ : state) {
    auto token = n.reusing->GetToken(f.NextScope());  // never cached
    if (!token.ok()) {
      state.SkipWithError(token.status().ToString().c_str());
      break;
    }
  }
}

void BM_Floor_Curl_NginxReused(benchmark::State& state) {
  ClientFixture& f = Fixture();
  NginxFixture& n = Nginx();
  CURL* curl = curl_easy_init();  // its connection cache keeps the connection
  for (auto _ : state) {
    if (!BareCurlPost(curl, n.url, f.cert_file, f.key_file, n.server_ca_file,
                      n.body)) {
      state.SkipWithError("bare libcurl token request to nginx failed");
      break;
    }
  }
  curl_easy_cleanup(curl);
}

// The two above alternated in one loop (bench_util.h, RunPaired), each on
// its own kept-alive connection: run one after the other, they read 1.06x
// in one run and 1.33x in another.
void BM_Paired_Reused(benchmark::State& state) {
  ClientFixture& f = Fixture();
  NginxFixture& n = Nginx();
  CheckOk(n.reusing->GetToken(f.NextScope()).status(), "warm-up token");
  CURL* curl = curl_easy_init();  // its connection cache keeps the connection
  auto bare = [&] {
    return BareCurlPost(curl, n.url, f.cert_file, f.key_file, n.server_ca_file,
                        n.body);
  };
  bare();  // connects
  RunPaired(
      state,
      [&] {
        return SecondsIfOk(
            [&] { return n.reusing->GetToken(f.NextScope()).ok(); });
      },
      [&] { return SecondsIfOk(bare); },
      "a token request over a kept-alive connection failed");
  curl_easy_cleanup(curl);
}

// The binding of Fixture() persisted in a sqlite file, a PEM directory and
// on a SoftHSM token (its key imported), for new processes.
struct ColdStartFixture {
  testing::TempDir dir;
  std::unique_ptr<testing::SoftHsmToken> token;
  std::string alias;
  std::string uris[3];  // sqlite, file, pkcs11
  std::string state_env;
  // The token row's floor: curl with the binding's key on the same token
  // through libp11's OpenSSL engine, told the module and the PIN by this
  // configuration (0600).
  std::string engine_conf_env;
  std::string token_key_uri;
};

void ColdStartArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("sqlite0_file1_token2")->Arg(0)->Arg(1)->Arg(2);
}

ColdStartFixture& ColdStart() {
  static ColdStartFixture* const fixture = [] {
    ClientFixture& f = Fixture();
    auto* c = new ColdStartFixture();
    c->alias = absl::StrCat(f.emulator->client_id(), "#att=0");
    auto entry = f.store->Find(c->alias);
    CheckOk(entry.status(), "Find");
    c->uris[0] = absl::StrCat("sqlite:", c->dir.path(), "/cold.db");
    c->uris[1] = absl::StrCat("file:", c->dir.path(), "/cold-certs");
    auto token = testing::SoftHsmToken::Create("bench-cold-start");
    CheckOk(token.status(), "SoftHSM token");
    c->token = *std::move(token);
    c->uris[2] = c->token->Uri() + "&x-allow-import=true";
    for (const std::string& uri : c->uris) {
      auto store = OpenStore(uri);
      CheckOk(store.status(), "OpenStore");
      CheckOk((*store)->Put(*entry), "Put");
    }
    c->state_env = absl::StrCat("XDG_STATE_HOME=", c->dir.path(), "/state");
    const std::string engine_conf = c->dir.path() + "/openssl-engine.cnf";
    testing::WriteFile(
        engine_conf,
        absl::StrCat("openssl_conf = openssl_init\n"
                     "[openssl_init]\nengines = engine_section\n"
                     "[engine_section]\npkcs11 = pkcs11_section\n"
                     "[pkcs11_section]\nengine_id = pkcs11\nMODULE_PATH = ",
                     testing::kSoftHsmModule, "\nPIN = ", c->token->pin(),
                     "\ninit = 0\n"),
        0600);
    c->engine_conf_env = "OPENSSL_CONF=" + engine_conf;
    c->token_key_uri = absl::StrCat(
        "pkcs11:token=", internal::PercentEncode(c->token->label()),
        ";object=", internal::PercentEncode(c->alias), ";type=private");
    return c;
  }();
  return *fixture;
}

void CheckExit(const testing::ProcessResult& r, benchmark::State& state,
               const char* what) {
  if (r.exit_code != 0) {
    state.SkipWithError(absl::StrCat(what, " failed: ", r.err).c_str());
  }
}

// One cold start: a new `certstore token` process on store `arg`. False
// (and the run marked failed) when it did not exit 0.
bool ColdToken(benchmark::State& state, int64_t arg) {
  ClientFixture& f = Fixture();
  NginxFixture& n = Nginx();
  ColdStartFixture& c = ColdStart();
  testing::ProcessOptions options;
  options.env = {c.state_env};
  testing::ProcessResult r = testing::RunProcess(
      {CERTSTORE_CLI_BINARY, "--store", c.uris[arg], "token",
       "--token-endpoint", n.url, "--client-id", "bench-client", "--alias",
       c.alias, "--server-ca", n.server_ca_file, "--scope", f.NextScope()},
      options);
  CheckExit(r, state, "certstore token");
  return r.exit_code == 0;
}

// Its floor: the `curl` command making the same mTLS request with the same
// files, then a cold Find of the binding in store `arg` here. On the token
// (arg 2) a cold Find means loading the module and logging in, in the new
// process: there the floor is curl signing with the binding's key on the
// token itself (libp11's engine: module load, login, key lookup), the
// certificate chain from the same file.
bool ColdFloor(benchmark::State& state, int64_t arg) {
  ClientFixture& f = Fixture();
  NginxFixture& n = Nginx();
  ColdStartFixture& c = ColdStart();
  const bool on_token = arg == 2;
  testing::ProcessOptions options;
  if (on_token) options.env = {c.engine_conf_env};
  std::vector<std::string> argv = {"curl",      "-sf",    "-o",
                                   "/dev/null", "--cert", f.cert_file};
  if (on_token) {
    argv.insert(argv.end(), {"--engine", "pkcs11", "--key-type", "ENG", "--key",
                             c.token_key_uri});
  } else {
    argv.insert(argv.end(), {"--key", f.key_file});
  }
  argv.insert(argv.end(), {"--cacert", n.server_ca_file, "-d", n.body, n.url});
  testing::ProcessResult r = testing::RunProcess(argv, options);
  CheckExit(r, state, "curl");
  if (!on_token) {
    auto store = OpenStore(c.uris[arg]);
    auto entry = (*store)->Find(c.alias);
    benchmark::DoNotOptimize(entry);
  }
  return r.exit_code == 0;
}

void BM_Client_ColdStart(benchmark::State& state) {
  Nginx();  // both set up before the first timed run
  ColdStart();
  for (auto _ : state) {
    if (!ColdToken(state, state.range(0))) break;
  }
}

void BM_Floor_ColdStart(benchmark::State& state) {
  Nginx();  // both set up before the first timed run
  ColdStart();
  for (auto _ : state) {
    if (!ColdFloor(state, state.range(0))) break;
  }
}

// The two above alternated in one loop (bench_util.h, RunPaired): run one
// after the other, they read up to 4 ms (13 %) apart on this VM.
void BM_Paired_ColdStart(benchmark::State& state) {
  Nginx();  // both set up before the first timed run
  ColdStart();
  const int64_t arg = state.range(0);
  RunPaired(
      state, [&] { return SecondsIfOk([&] { return ColdToken(state, arg); }); },
      [&] { return SecondsIfOk([&] { return ColdFloor(state, arg); }); },
      "a cold start or its floor failed");
}

void BM_ColdStart_Part_ProcessStart(benchmark::State& state) {
  for (auto _ : state) {
    testing::ProcessResult r =
        testing::RunProcess({CERTSTORE_CLI_BINARY, "--help"});
    CheckExit(r, state, "certstore --help");
    if (r.exit_code != 0) break;
  }
}

void BM_ColdStart_Part_StoreOpen(benchmark::State& state) {
  ColdStartFixture& c = ColdStart();
  for (auto _ : state) {
    auto store = OpenStore(c.uris[state.range(0)]);
    benchmark::DoNotOptimize(store);
  }
}

void BM_ColdStart_Part_OpenAndFind(benchmark::State& state) {
  ColdStartFixture& c = ColdStart();
  for (auto _ : state) {
    auto store = OpenStore(c.uris[state.range(0)]);
    auto entry = (*store)->Find(c.alias);
    benchmark::DoNotOptimize(entry);
  }
}

void BM_Client_MintAndToken(benchmark::State& state) {
  ClientFixture& f = Fixture();
  const std::string alias = absl::StrCat(f.emulator->client_id(), "#att=0");
  for (auto _ : state) {
    CheckOk(f.store->DeleteAllForAlias(alias).status(), "evict");
    auto token = f.client->GetToken(f.NextScope());
    if (!token.ok()) {
      state.SkipWithError(token.status().ToString().c_str());
      break;
    }
  }
}

// The emulator refuses the next token request with invalid_client.
void InjectInvalidClient() {
  emulator::FaultSpec fault;
  fault.kind = emulator::FaultKind::kInvalidClient;
  CheckOk(Fixture().emulator->InjectFault(fault), "inject");
}

void BM_Client_Recovery(benchmark::State& state) {
  ClientFixture& f = Fixture();
  for (auto _ : state) {
    InjectInvalidClient();
    auto token = f.client->GetToken(f.NextScope());
    if (!token.ok() || !token->healed) {
      state.SkipWithError("recovery did not heal");
      break;
    }
  }
}

// A client of its own with RSA-2048 keys, over its own SQLite file (or,
// on_token, a SoftHSM token).
struct RsaFixture {
  testing::TempDir dir;
  std::unique_ptr<testing::SoftHsmToken> token;
  std::unique_ptr<LayeredStore> store;
  std::unique_ptr<TokenClient> clients[2];  // spare_keys off, on
  std::string csr_body;                     // for the floor's issue request
};

RsaFixture* MakeRsaFixture(bool on_token) {
  ClientFixture& f = Fixture();
  auto* r = new RsaFixture();
  std::string uri = absl::StrCat("memory:,sqlite:", r->dir.path(), "/rsa.db");
  if (on_token) {
    auto token = testing::SoftHsmToken::Create("bench-rsa-recovery");
    CheckOk(token.status(), "SoftHSM token");
    r->token = *std::move(token);
    uri = absl::StrCat("memory:,", r->token->Uri());
  }
  auto store = OpenStore(uri);
  CheckOk(store.status(), "OpenStore");
  r->store = *std::move(store);
  for (int spare = 0; spare < 2; ++spare) {
    TokenClientOptions options;
    options.issuing_url = f.emulator->issuing_url();
    options.server_ca_pem = f.emulator->ca_root_pem();
    options.key_spec.type = KeyType::kRsa2048;
    options.spare_keys = spare == 1;
    options.state_dir = r->dir.path();
    auto client = TokenClient::Create(r->store.get(), options);
    CheckOk(client.status(), "TokenClient::Create (RSA)");
    r->clients[spare] = *std::move(client);
  }
  auto key = GenerateSoftwareKey(KeySpec{KeyType::kRsa2048});
  CheckOk(key.status(), "RSA key");
  auto csr = client_internal::MakeCsr(**key, f.emulator->client_id(),
                                      f.emulator->tenant_id());
  CheckOk(csr.status(), "CSR");
  r->csr_body = absl::StrCat("{\"csr\":\"", absl::Base64Escape(*csr), "\"}");
  return r;
}

RsaFixture& Rsa() {
  static RsaFixture* const fixture = MakeRsaFixture(false);
  return *fixture;
}

RsaFixture& RsaOnToken() {
  static RsaFixture* const fixture = MakeRsaFixture(true);
  return *fixture;
}

// Waits (at most 10 s) until the spare key made after the last mint is
// ready; false if it is not.
bool AwaitSpareKey(const TokenClient& client) {
  for (int i = 0; i < 2000; ++i) {
    const TokenClientMetrics m = client.Metrics();
    if (m.spare_keys_made > m.spare_keys_used) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

// One self-heal, untimed: the clients of a fixture share its store, so
// the binding a client finds may have been minted by the other one; a
// client makes its spare key after a mint of its own.
void HealOnce(TokenClient& client) {
  ClientFixture& f = Fixture();
  InjectInvalidClient();
  CheckOk(client.GetToken(f.NextScope()).status(), "warm-up self-heal");
}

void RecoveryLoop(benchmark::State& state, RsaFixture& r) {
  ClientFixture& f = Fixture();
  TokenClient& client = *r.clients[state.range(0)];
  const bool spare = state.range(0) == 1;
  CheckOk(client.GetToken(f.NextScope()).status(), "first RSA token");
  if (spare) HealOnce(client);
  for (auto _ : state) {
    state.PauseTiming();
    if (spare && !AwaitSpareKey(client)) {
      state.SkipWithError("no spare key 10 s after the last mint");
      break;
    }
    InjectInvalidClient();
    state.ResumeTiming();
    auto token = client.GetToken(f.NextScope());
    if (!token.ok() || !token->healed) {
      const std::string why =
          token.ok()
              ? std::string("recovery did not heal")
              : absl::StrCat("recovery failed: ", token.status().ToString());
      state.SkipWithError(why.c_str());
      break;
    }
  }
  // The fixture outlives main(): a key generation still running when
  // exit() tears OpenSSL down would crash the process.
  if (spare) {
    AwaitSpareKey(client);
  }
}

void BM_Client_RecoveryRsa(benchmark::State& state) {
  RecoveryLoop(state, Rsa());
}

void BM_Client_RecoveryRsaToken(benchmark::State& state) {
  RecoveryLoop(state, RsaOnToken());
}

// The floor of a self-heal: bare libcurl sends one issuecredential request
// (its CSR made beforehand) and two token requests, on new connections —
// or, with `first_on_kept_connection`, the first token request on a
// connection kept from the previous run, as a self-heal's failing request
// is (the retry presents a new certificate: a new connection either way).
class IssueAndTwoTokens {
 public:
  explicit IssueAndTwoTokens(bool first_on_kept_connection = false) {
    ClientFixture& f = Fixture();
    token_url_ = f.emulator->token_endpoint();
    issue_url_ =
        absl::StrCat(f.emulator->issuing_url(),
                     "/metadata/identity/issuecredential?cred-api-version=2.0");
    headers_ = curl_slist_append(nullptr, "Metadata: true");
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    if (first_on_kept_connection) {
      kept_ = curl_easy_init();  // its connection cache keeps the connection
      BareCurlPost(kept_, token_url_, f.cert_file, f.key_file, f.ca_file,
                   f.body);
    }
  }
  ~IssueAndTwoTokens() {
    curl_slist_free_all(headers_);
    if (kept_ != nullptr) curl_easy_cleanup(kept_);
  }
  IssueAndTwoTokens(const IssueAndTwoTokens&) = delete;
  IssueAndTwoTokens& operator=(const IssueAndTwoTokens&) = delete;

  bool Run() const {
    ClientFixture& f = Fixture();
    RsaFixture& r = Rsa();
    return BareCurlPost(kept_, token_url_, f.cert_file, f.key_file, f.ca_file,
                        f.body) &&
           BareCurlPost(nullptr, issue_url_, "", "", "", r.csr_body,
                        headers_) &&
           BareCurlPost(nullptr, token_url_, f.cert_file, f.key_file, f.ca_file,
                        f.body);
  }

 private:
  std::string token_url_;
  std::string issue_url_;
  curl_slist* headers_ = nullptr;
  CURL* kept_ = nullptr;  // null: a new connection each time
};

void BM_Floor_IssueAndTwoTokens(benchmark::State& state) {
  const IssueAndTwoTokens floor;
  for (auto _ : state) {
    if (!floor.Run()) {
      state.SkipWithError("bare libcurl issue + tokens failed");
      break;
    }
  }
}

// The RSA self-heal with a spare and its floor alternated in one loop
// (bench_util.h, RunPaired): run one after the other, they read 1.01x in
// one run and 1.56x in the next.
void BM_Paired_RecoveryRsa(benchmark::State& state) {
  ClientFixture& f = Fixture();
  TokenClient& client = *Rsa().clients[1];
  CheckOk(client.GetToken(f.NextScope()).status(), "first RSA token");
  HealOnce(client);
  const IssueAndTwoTokens floor(/*first_on_kept_connection=*/state.range(0) ==
                                1);
  // Neither side is timed while the spare key made after the last heal is
  // still being generated (it would take a core from either).
  RunPaired(
      state,
      [&]() -> std::optional<double> {
        if (!AwaitSpareKey(client)) return std::nullopt;
        InjectInvalidClient();
        return SecondsIfOk([&] {
          auto token = client.GetToken(f.NextScope());
          return token.ok() && token->healed;
        });
      },
      [&]() -> std::optional<double> {
        if (!AwaitSpareKey(client)) return std::nullopt;
        return SecondsIfOk([&] { return floor.Run(); });
      },
      "recovery or its floor failed (or no spare key 10 s after a mint)");
  AwaitSpareKey(client);  // see RecoveryLoop
}

BENCHMARK(BM_Client_GetToken_Cached)->ThreadRange(1, 2)->UseRealTime();
BENCHMARK(BM_Client_GetSharedToken_Cached)->ThreadRange(1, 2)->UseRealTime();
BENCHMARK(BM_Floor_MemoryStore_FindHit)->ThreadRange(1, 2)->UseRealTime();
BENCHMARK(BM_Client_GetToken_Fetch)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Floor_Curl_MtlsToken)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Client_Generic_Fetch)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Floor_Curl_NginxToken)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Client_Generic_Reused)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Floor_Curl_NginxReused)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Paired_Reused)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(BM_Client_ColdStart)
    ->Apply(ColdStartArgs)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Floor_ColdStart)
    ->Apply(ColdStartArgs)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Paired_ColdStart)
    ->Apply(ColdStartArgs)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();
BENCHMARK(BM_ColdStart_Part_ProcessStart)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ColdStart_Part_StoreOpen)
    ->Apply(ColdStartArgs)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ColdStart_Part_OpenAndFind)
    ->Apply(ColdStartArgs)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Client_RecoveryRsa)
    ->ArgName("spare")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Client_RecoveryRsaToken)
    ->ArgName("spare")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Floor_IssueAndTwoTokens)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Paired_RecoveryRsa)
    ->ArgName("floor_first_kept")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();
BENCHMARK(BM_Client_MintAndToken)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Client_Recovery)->Unit(benchmark::kMicrosecond)->UseRealTime();

bool RegisterClientRatios() {
  // A cached token is a lookup (issue 22): <= 2x a memory-layer hit, and
  // two threads cost each other little.
  RegisterRatio("BM_Client_GetSharedToken_Cached/real_time/threads:1",
                "BM_Floor_MemoryStore_FindHit/real_time/threads:1", 2.0);
  RegisterRatio("BM_Client_GetSharedToken_Cached/real_time/threads:2",
                "BM_Client_GetSharedToken_Cached/real_time/threads:1", 1.3);
  // GetToken copies the token (five strings) out of the same lookup.
  RegisterRatio("BM_Client_GetToken_Cached/real_time/threads:1",
                "BM_Floor_MemoryStore_FindHit/real_time/threads:1");
  RegisterRatio("BM_Client_GetToken_Cached/real_time/threads:2",
                "BM_Client_GetToken_Cached/real_time/threads:1", 1.3);
  RegisterRatio("BM_Floor_MemoryStore_FindHit/real_time/threads:2",
                "BM_Floor_MemoryStore_FindHit/real_time/threads:1");
  RegisterRatio("BM_Client_GetToken_Fetch/real_time",
                "BM_Floor_Curl_MtlsToken/real_time", 1.3);
  RegisterRatio("BM_Client_Generic_Fetch/real_time",
                "BM_Floor_Curl_NginxToken/real_time", 1.2);
  // The paired rows decide; the consecutive ones are shown for context.
  RegisterRatio("BM_Paired_Reused/manual_time/ours",
                "BM_Paired_Reused/manual_time/floor", 1.2);
  RegisterRatio("BM_Client_Generic_Reused/real_time",
                "BM_Floor_Curl_NginxReused/real_time", kNoBar);
  // The paired rows decide; the consecutive ones are shown for context.
  for (const char* arg : {"0", "1", "2"}) {
    const std::string paired = absl::StrCat(
        "BM_Paired_ColdStart/sqlite0_file1_token2:", arg, "/manual_time");
    RegisterRatio(paired + "/ours", paired + "/floor", 1.2);
  }
  RegisterRatio("BM_Client_ColdStart", "BM_Floor_ColdStart", kNoBar);
  // The issue's floor: issue + two token requests on new connections.
  // With the floor's first request on a kept connection too: info.
  RegisterRatio("BM_Paired_RecoveryRsa/floor_first_kept:0/manual_time/ours",
                "BM_Paired_RecoveryRsa/floor_first_kept:0/manual_time/floor",
                1.2);
  RegisterRatio("BM_Paired_RecoveryRsa/floor_first_kept:1/manual_time/ours",
                "BM_Paired_RecoveryRsa/floor_first_kept:1/manual_time/floor",
                kNoBar);
  RegisterRatio("BM_Client_RecoveryRsa/spare:1/real_time",
                "BM_Floor_IssueAndTwoTokens/real_time", kNoBar);
  RegisterRatio("BM_Client_RecoveryRsa/spare:0/real_time",
                "BM_Floor_IssueAndTwoTokens/real_time");
  RegisterRatio("BM_Client_RecoveryRsaToken/spare:1/real_time",
                "BM_Floor_IssueAndTwoTokens/real_time");
  RegisterRatio("BM_Client_RecoveryRsaToken/spare:0/real_time",
                "BM_Floor_IssueAndTwoTokens/real_time");
  RegisterRatio("BM_Client_MintAndToken/real_time",
                "BM_Floor_Curl_MtlsToken/real_time");
  RegisterRatio("BM_Client_Recovery/real_time",
                "BM_Floor_Curl_MtlsToken/real_time");
  return true;
}

[[maybe_unused]] const bool kClientRatiosRegistered = RegisterClientRatios();

}  // namespace
}  // namespace certstore::bench

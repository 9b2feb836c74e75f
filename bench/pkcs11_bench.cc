// Pkcs11Store benchmarks beside the raw PKCS#11 calls they are built on, on
// private SoftHSM2 tokens holding N entries (key pair + certificate + record).
//
// Workloads:
//   BM_Floor_P11_FindByLabel/N     bare C_FindObjectsInit(CKA_LABEL) +
//                                  C_FindObjects + Final for one alias (what
//                                  an uncached Find costs: a linear scan)
//   BM_Floor_P11_GetAttribute/N    one C_GetAttributeValue(CKA_ID) on a
//                                  private-key handle (the cache check)
//   BM_Pkcs11_Find/N               Pkcs11Store::Find, warm (cached entry,
//                                  handles checked on the token)
//   BM_Bar_200us                   a 200 µs busy wait: the absolute bar for
//                                  warm Find at 1,000 pairs, as a ratio
//   BM_Pkcs11_ColdFind/N           a new store (session + login) and its
//                                  first Find (module already loaded)
//   BM_Pkcs11_FirstSign/N          the first sign of a key read back from
//                                  the token: libp11 enumerates the token's
//                                  keys to give it an EVP_PKEY
//   BM_Floor_P11_SignVerify/{ec,rsa}  bare C_Sign on the token (CKM_ECDSA on
//                                  a SHA-256 digest / CKM_SHA256_RSA_PKCS) +
//                                  OpenSSL verify with the public key
//   BM_Pkcs11_ProbeKey/{ec,rsa}    Pkcs11Store::ProbeKey of a token entry
//
// Setup (tokens filled through Put with imported keys) never runs in a
// timed loop; its duration is printed ("setup: …").
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "bench/ratio_reporter.h"
#include "certstore/backend_author.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/openssl_types.h"
#include "certstore/pkcs11_store.h"
#include "certstore/testing/test_pki.h"
#include "tests/pkcs11/p11kit_server.h"
#include "tests/pkcs11/softhsm_token.h"

namespace certstore::bench {
namespace {

constexpr int64_t kSizes[] = {10, 100, 1000};

// Every token exists before the module is loaded (SoftHSM lists tokens at
// C_Initialize): one per size, one for the probes.
const testing::SoftHsmToken& Token(int64_t size) {
  static auto* tokens = [] {
    auto* made = new std::map<int64_t, const testing::SoftHsmToken*>();
    // -1: the token served by p11-kit server (the remote benchmarks).
    for (int64_t n :
         {int64_t{-1}, int64_t{0}, int64_t{10}, int64_t{100}, int64_t{1000}}) {
      auto token =
          testing::SoftHsmToken::Create(absl::StrFormat("bench-%d", n));
      CheckOk(token.status(), "SoftHsmToken::Create");
      (*made)[n] = token->release();
    }
    return made;
  }();
  return *tokens->at(size);
}

// The raw function list and a logged-in session of our own on a token.
struct RawSession {
  explicit RawSession(
      const testing::SoftHsmToken& token,
      const std::string& module = std::string(testing::kSoftHsmModule)) {
    void* dl = dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
    auto get =
        reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl, "C_GetFunctionList"));
    get(&f);
    // ALREADY_INITIALIZED: a store has it (p11-kit-client.so gives each
    // caller a new instance: this one is ours to initialise).
    f->C_Initialize(nullptr);
    CK_SLOT_ID slots[16];
    CK_ULONG count = 16;
    f->C_GetSlotList(CK_TRUE, slots, &count);
    for (CK_ULONG i = 0; i < count; ++i) {
      CK_TOKEN_INFO info;
      f->C_GetTokenInfo(slots[i], &info);
      std::string label(reinterpret_cast<char*>(info.label), 32);
      if (label.substr(0, token.label().size()) == token.label() &&
          label[token.label().size()] == ' ') {
        f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr,
                         &session);
        f->C_Login(session, CKU_USER,
                   reinterpret_cast<CK_UTF8CHAR*>(
                       const_cast<char*>(token.pin().data())),
                   token.pin().size());
        return;
      }
    }
    std::abort();
  }

  std::vector<CK_OBJECT_HANDLE> FindByLabel(const std::string& label) const {
    CK_ATTRIBUTE match = {CKA_LABEL, const_cast<char*>(label.data()),
                          label.size()};
    std::vector<CK_OBJECT_HANDLE> found;
    f->C_FindObjectsInit(session, &match, 1);
    CK_OBJECT_HANDLE batch[16];
    CK_ULONG n = 0;
    while (f->C_FindObjects(session, batch, 16, &n) == CKR_OK && n > 0) {
      found.insert(found.end(), batch, batch + n);
    }
    f->C_FindObjectsFinal(session);
    return found;
  }

  CK_OBJECT_HANDLE PrivateKeyOf(const std::string& label) const {
    for (CK_OBJECT_HANDLE h : FindByLabel(label)) {
      CK_OBJECT_CLASS cls = 0;
      CK_ATTRIBUTE attr = {CKA_CLASS, &cls, sizeof(cls)};
      if (f->C_GetAttributeValue(session, h, &attr, 1) == CKR_OK &&
          cls == CKO_PRIVATE_KEY) {
        return h;
      }
    }
    std::abort();
  }

  CK_FUNCTION_LIST* f = nullptr;
  CK_SESSION_HANDLE session = 0;
};

absl::Time NotBefore() { return testing::TestNow() - absl::Hours(24); }
absl::Time NotAfter() { return testing::TestNow() + absl::Hours(6 * 24); }

std::string Alias(int64_t i) { return absl::StrFormat("%08d-client#att=0", i); }

// A token with N entries, a store on it with every entry cached, and a raw
// session for the floors.
struct Filled {
  explicit Filled(int64_t n) : clock(testing::TestNow()) {
    const testing::SoftHsmToken& token = Token(n);
    Pkcs11StoreOptions options = token.Options();
    options.clock = &clock;
    options.allow_import = true;
    {
      SetupTimer timer(
          absl::StrFormat("open store on bench-%d (first open "
                          "loads the module)",
                          n));
      auto opened = OpenPkcs11Store(options);
      CheckOk(opened.status(), "OpenPkcs11Store");
      store = *std::move(opened);
    }
    SetupTimer timer(absl::StrFormat("Put of %d entries", n));
    testing::TestPki pki;
    for (int64_t i = 0; i < n; ++i) {
      auto entry = pki.MakeEntry(
          Alias(i), testing::PoolKey(KeyType::kEcP256, static_cast<int>(i % 8)),
          NotBefore(), NotAfter());
      CheckOk(store->Put(entry), "Put");
    }
    raw = std::make_unique<RawSession>(token);
    probe_key = raw->PrivateKeyOf(Alias(n / 2));
  }
  ManualClock clock;
  std::unique_ptr<CertStore> store;
  std::unique_ptr<RawSession> raw;
  CK_OBJECT_HANDLE probe_key = 0;
};

void BM_Floor_P11_FindByLabel(benchmark::State& state) {
  const Filled& filled = BuiltOnce<Filled>(state.range(0));
  int64_t i = 0;
  for (auto _ : state) {
    auto found = filled.raw->FindByLabel(Alias(i++ % state.range(0)));
    if (found.size() < 2) {
      state.SkipWithError("key and certificate not found");
      break;
    }
  }
}

void BM_Floor_P11_GetAttribute(benchmark::State& state) {
  const Filled& filled = BuiltOnce<Filled>(state.range(0));
  unsigned char id[64];
  for (auto _ : state) {
    CK_ATTRIBUTE attr = {CKA_ID, id, sizeof(id)};
    if (filled.raw->f->C_GetAttributeValue(
            filled.raw->session, filled.probe_key, &attr, 1) != CKR_OK) {
      state.SkipWithError("C_GetAttributeValue");
      break;
    }
  }
}

void BM_Pkcs11_Find(benchmark::State& state) {
  const Filled& filled = BuiltOnce<Filled>(state.range(0));
  int64_t i = 0;
  for (auto _ : state) {
    auto entry = filled.store->Find(Alias(i++ % state.range(0)));
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(entry);
  }
}

void BM_Bar_200us(benchmark::State& state) {
  for (auto _ : state) {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    while (std::chrono::steady_clock::now() < until) {
    }
  }
}

void BM_Pkcs11_ColdFind(benchmark::State& state) {
  const Filled& filled = BuiltOnce<Filled>(state.range(0));
  Pkcs11StoreOptions options = Token(state.range(0)).Options();
  ManualClock clock(testing::TestNow());
  options.clock = &clock;
  int64_t i = 0;
  for (auto _ : state) {
    auto store = OpenPkcs11Store(options);
    auto entry = store.ok() ? (*store)->Find(Alias(i++ % state.range(0)))
                            : store.status();
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
  }
  benchmark::DoNotOptimize(filled);
}

void BM_Pkcs11_FirstSign(benchmark::State& state) {
  const Filled& filled = BuiltOnce<Filled>(state.range(0));
  Pkcs11StoreOptions options = Token(state.range(0)).Options();
  ManualClock clock(testing::TestNow());
  options.clock = &clock;
  auto store = OpenPkcs11Store(options);
  CheckOk(store.status(), "OpenPkcs11Store");
  int64_t i = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto reopened = OpenPkcs11Store(options);  // an empty cache
    auto entry = (*reopened)->Find(Alias(i++ % state.range(0)));
    state.ResumeTiming();
    if (!entry.ok() || !(*entry)->key()->Sign("first").ok()) {
      state.SkipWithError("first sign failed");
      break;
    }
  }
  benchmark::DoNotOptimize(filled);
}

void SizeArgs(benchmark::internal::Benchmark* b) {
  for (int64_t n : kSizes) {
    b->Arg(n);
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_Floor_P11_FindByLabel)->Apply(SizeArgs);
BENCHMARK(BM_Floor_P11_GetAttribute)->Apply(SizeArgs);
BENCHMARK(BM_Pkcs11_Find)->Apply(SizeArgs);
BENCHMARK(BM_Bar_200us)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Pkcs11_ColdFind)->Apply(SizeArgs)->Iterations(5);
BENCHMARK(BM_Pkcs11_FirstSign)->Apply(SizeArgs)->Iterations(3);

// Token entries (keys made by CreateKey) for the probe workloads.
struct ProbeFixture {
  explicit ProbeFixture(int64_t type) : clock(testing::TestNow()) {
    const testing::SoftHsmToken& token = Token(0);
    Pkcs11StoreOptions options = token.Options();
    options.clock = &clock;
    auto opened = OpenPkcs11Store(options);
    CheckOk(opened.status(), "OpenPkcs11Store");
    store = *std::move(opened);
    const std::string alias = absl::StrFormat("probe-%d", type);
    auto key = store->CreateKey(alias, KeySpec{static_cast<KeyType>(type)});
    CheckOk(key.status(), "CreateKey");
    testing::TestPki pki;
    entry = pki.MakeEntry(alias, *key, NotBefore(), NotAfter());
    CheckOk(store->Put(entry), "Put");
    CheckOk(store->ProbeKey(*entry), "ProbeKey");
    raw = std::make_unique<RawSession>(token);
    private_key = raw->PrivateKeyOf(alias);
    public_key = X509_get0_pubkey((*entry->Chain())[0]);
  }
  ManualClock clock;
  std::unique_ptr<CertStore> store;
  std::shared_ptr<const Entry> entry;
  std::unique_ptr<RawSession> raw;
  CK_OBJECT_HANDLE private_key = 0;
  EVP_PKEY* public_key = nullptr;  // owned by the entry's leaf
};

// r || s from the token as the DER ECDSA-Sig-Value OpenSSL verifies.
std::string EcdsaDer(const unsigned char* raw, size_t len) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(raw, static_cast<int>(len / 2), nullptr),
                 BN_bin2bn(raw + len / 2, static_cast<int>(len / 2), nullptr));
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig, &der);
  std::string out(reinterpret_cast<char*>(der), der_len > 0 ? der_len : 0);
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

bool TokenSignVerify(const RawSession& raw, CK_OBJECT_HANDLE private_key,
                     EVP_PKEY* public_key, KeyType type,
                     const std::string& message) {
  CK_FUNCTION_LIST* f = raw.f;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
         digest);
  CK_MECHANISM mech = {
      type == KeyType::kEcP256 ? CKM_ECDSA : CKM_SHA256_RSA_PKCS, nullptr, 0};
  unsigned char sig[512];
  CK_ULONG sig_len = sizeof(sig);
  const bool ec = type == KeyType::kEcP256;
  if (f->C_SignInit(raw.session, &mech, private_key) != CKR_OK ||
      f->C_Sign(raw.session,
                ec ? digest
                   : reinterpret_cast<unsigned char*>(
                         const_cast<char*>(message.data())),
                ec ? sizeof(digest) : message.size(), sig,
                &sig_len) != CKR_OK) {
    return false;
  }
  const std::string der =
      ec ? EcdsaDer(sig, sig_len)
         : std::string(reinterpret_cast<char*>(sig), sig_len);
  UniqueEvpMdCtx verify(EVP_MD_CTX_new());
  return EVP_DigestVerifyInit(verify.get(), nullptr, EVP_sha256(), nullptr,
                              public_key) == 1 &&
         EVP_DigestVerify(
             verify.get(), reinterpret_cast<const unsigned char*>(der.data()),
             der.size(), reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

void BM_Floor_P11_SignVerify(benchmark::State& state, KeyType type) {
  const ProbeFixture& p = BuiltOnce<ProbeFixture>(static_cast<int64_t>(type));
  const std::string message(54, 'm');  // ProbeEntryKey's challenge size
  for (auto _ : state) {
    if (!TokenSignVerify(*p.raw, p.private_key, p.public_key, type, message)) {
      state.SkipWithError("token sign + verify failed");
      break;
    }
  }
}

void BM_Pkcs11_ProbeKey(benchmark::State& state, KeyType type) {
  const ProbeFixture& p = BuiltOnce<ProbeFixture>(static_cast<int64_t>(type));
  for (auto _ : state) {
    absl::Status status = p.store->ProbeKey(*p.entry);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
}

BENCHMARK_CAPTURE(BM_Floor_P11_SignVerify, ec, KeyType::kEcP256)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Floor_P11_SignVerify, rsa, KeyType::kRsa2048)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Pkcs11_ProbeKey, ec, KeyType::kEcP256)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Pkcs11_ProbeKey, rsa, KeyType::kRsa2048)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The servers started for RemoteFixture, stopped when the process exits:
// fixtures live as long as the process (BuiltOnce), and a server, which
// detaches, would outlive it.
std::vector<testing::P11KitServer*>& RunningServers() {
  static auto* servers = [] {
    std::atexit([] {
      for (testing::P11KitServer* server : RunningServers()) {
        (void)server->Stop();
      }
    });
    return new std::vector<testing::P11KitServer*>();
  }();
  return *servers;
}

// The same token behind `p11-kit server` on a unix socket, reached through
// p11-kit-client.so (docs/fleet.md): a store with one entry whose key was
// made on the token, and a raw session of its own through the client module.
struct RemoteFixture {
  explicit RemoteFixture(int64_t type) : clock(testing::TestNow()) {
    const testing::SoftHsmToken& token = Token(-1);
    server = std::make_unique<testing::P11KitServer>(token);
    CheckOk(server->Start(), "p11-kit server");
    RunningServers().push_back(server.get());
    auto options = ParsePkcs11Uri(
        server->ClientUri("&x-lock-dir=" + testing::SoftHsmToken::LockDir()));
    CheckOk(options.status(), "ParsePkcs11Uri");
    options->clock = &clock;
    auto opened = OpenPkcs11Store(*options);
    CheckOk(opened.status(), "OpenPkcs11Store (remote)");
    store = *std::move(opened);
    const std::string alias = absl::StrFormat("remote-%d", type);
    auto key = store->CreateKey(alias, KeySpec{static_cast<KeyType>(type)});
    CheckOk(key.status(), "CreateKey (remote)");
    testing::TestPki pki;
    entry = pki.MakeEntry(alias, *key, NotBefore(), NotAfter());
    CheckOk(store->Put(entry), "Put (remote)");
    CheckOk(store->ProbeKey(*entry), "ProbeKey (remote)");
    auto module = testing::P11KitClientModule();
    CheckOk(module.status(), "p11-kit-client.so");
    raw = std::make_unique<RawSession>(token, *module);
    private_key = raw->PrivateKeyOf(alias);
    public_key = X509_get0_pubkey((*entry->Chain())[0]);
  }
  ManualClock clock;
  std::unique_ptr<testing::P11KitServer> server;
  std::unique_ptr<CertStore> store;
  std::shared_ptr<const Entry> entry;
  std::unique_ptr<RawSession> raw;
  CK_OBJECT_HANDLE private_key = 0;
  EVP_PKEY* public_key = nullptr;  // owned by the entry's leaf
};

const RemoteFixture& Remote(KeyType type) {
  return BuiltOnce<RemoteFixture>(static_cast<int64_t>(type));
}

void BM_Floor_P11Remote_GetAttribute(benchmark::State& state) {
  const RemoteFixture& r = Remote(KeyType::kEcP256);
  unsigned char id[64];
  for (auto _ : state) {
    CK_ATTRIBUTE attr = {CKA_ID, id, sizeof(id)};
    if (r.raw->f->C_GetAttributeValue(r.raw->session, r.private_key, &attr,
                                      1) != CKR_OK) {
      state.SkipWithError("C_GetAttributeValue");
      break;
    }
  }
}

void BM_Pkcs11Remote_Find(benchmark::State& state) {
  const RemoteFixture& r = Remote(KeyType::kEcP256);
  for (auto _ : state) {
    auto entry = r.store->Find(r.entry->alias());
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
  }
}

void BM_Floor_P11Remote_SignVerify(benchmark::State& state, KeyType type) {
  const RemoteFixture& r = Remote(type);
  const std::string message(54, 'm');
  for (auto _ : state) {
    if (!TokenSignVerify(*r.raw, r.private_key, r.public_key, type, message)) {
      state.SkipWithError("remote token sign + verify failed");
      break;
    }
  }
}

void BM_Pkcs11Remote_ProbeKey(benchmark::State& state, KeyType type) {
  const RemoteFixture& r = Remote(type);
  for (auto _ : state) {
    absl::Status status = r.store->ProbeKey(*r.entry);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
}

BENCHMARK(BM_Floor_P11Remote_GetAttribute)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Pkcs11Remote_Find)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Floor_P11Remote_SignVerify, ec, KeyType::kEcP256)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Pkcs11Remote_ProbeKey, ec, KeyType::kEcP256)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

std::string Run(absl::string_view family, int64_t n) {
  return absl::StrFormat("%s/%d/real_time", family, n);
}

bool RegisterPkcs11Ratios() {
  // The absolute bar: warm Find at 1,000 pairs <= 0.2 ms.
  RegisterRatio(Run("BM_Pkcs11_Find", 1000), "BM_Bar_200us/real_time", 1.0);
  for (int64_t n : kSizes) {
    RegisterRatio(Run("BM_Pkcs11_Find", n), Run("BM_Floor_P11_FindByLabel", n));
    RegisterRatio(Run("BM_Pkcs11_Find", n),
                  Run("BM_Floor_P11_GetAttribute", n));
  }
  RegisterRatio("BM_Pkcs11_ProbeKey", "BM_Floor_P11_SignVerify", 1.2);
  // Through p11-kit server: ours against the same calls made raw through
  // the client module, and remote against local (context: the socket).
  RegisterRatio("BM_Pkcs11Remote_Find/real_time",
                "BM_Floor_P11Remote_GetAttribute/real_time");
  RegisterRatio("BM_Pkcs11Remote_ProbeKey", "BM_Floor_P11Remote_SignVerify");
  RegisterRatio("BM_Pkcs11Remote_Find/real_time", Run("BM_Pkcs11_Find", 10));
  RegisterRatio("BM_Pkcs11Remote_ProbeKey", "BM_Pkcs11_ProbeKey");
  return true;
}

[[maybe_unused]] const bool kPkcs11RatiosRegistered = RegisterPkcs11Ratios();

}  // namespace
}  // namespace certstore::bench

// SqliteStore benchmarks beside the raw primitives they are built on.
//
// Workloads:
//   BM_Floor_Sqlite_Select/{ec,rsa}/N     bare prepared SELECT of one row's
//                                         chain and key bytes by alias
//   BM_Floor_Sqlite_NaiveFind/{ec,rsa}/N  that SELECT + d2i_X509 of leaf and
//                                         intermediate + d2i_AutoPrivateKey
//   BM_Sqlite_Find/{ec,rsa}/N             SqliteStore::Find, cold: nobody
//                                         holds the entry, so each call
//                                         decodes it
//   BM_Sqlite_FindEncrypted/ec/1000       the same, keys encrypted at rest
//   BM_Floor_Sqlite_Insert                bare BEGIN IMMEDIATE; INSERT OR
//                                         REPLACE; COMMIT of one row (WAL,
//                                         synchronous=FULL)
//   BM_Sqlite_Put                         SqliteStore::Put of that entry
//
// N aliases are filled in one transaction by a bare INSERT of rows the row
// codec made from 64 issued entries, exactly as Put writes them; lookups
// walk the aliases in a fixed shuffled order. Setup never runs in a timed
// loop. Floors use plain sqlite3 calls on their own connection.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "bench/ratio_reporter.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/entry.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/test_pki.h"
#include "sqlite/connection_internal.h"
#include "sqlite/database_internal.h"
#include "sqlite/passphrase_internal.h"
#include "sqlite/row_codec_internal.h"

namespace certstore::bench {
namespace {

using sqlite_internal::StoredRow;
using sqlite_internal::UniqueSqlite;
using sqlite_internal::UniqueStatement;

constexpr int kDistinctEntries = 64;
constexpr int kEc = 0;  // benchmark capture: key type
constexpr int kRsa = 1;
constexpr char kPassphrase[] = "bench passphrase";
constexpr char kSelectBytesSql[] =
    "SELECT chain, key_der FROM entries WHERE alias = ?1";

void CheckSqlite(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    CheckOk(absl::InternalError(db != nullptr ? sqlite3_errmsg(db)
                                              : sqlite3_errstr(rc)),
            what);
  }
}

// The directory of every file of the run, removed at exit.
std::string BenchFile(const std::string& name) {
  struct Dir {
    Dir() {
      path = "/tmp/certstore-bench-XXXXXX";
      CheckOk(mkdtemp(&path[0]) != nullptr ? absl::OkStatus()
                                           : absl::InternalError("mkdtemp"),
              "bench directory");
    }
    ~Dir() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
    std::string path;
  };
  static Dir dir;
  return absl::StrFormat("%s/%s", dir.path, name);
}

SqliteStoreOptions StoreOptions(const std::string& path, const Clock* clock,
                                bool encrypted) {
  SqliteStoreOptions options;
  options.path = path;
  options.clock = clock;
  if (encrypted) {
    options.passphrase_callback = [] {
      return absl::StatusOr<std::string>(kPassphrase);
    };
  }
  return options;
}

std::unique_ptr<CertStore> OpenStore(const SqliteStoreOptions& options) {
  auto store = OpenSqliteStore(options);
  CheckOk(store.status(), "OpenSqliteStore");
  return *std::move(store);
}

// The cipher a store with kPassphrase uses for `path` (recorded by Open).
std::unique_ptr<sqlite_internal::KeyCipher> FileCipher(
    const std::string& path) {
  sqlite_internal::DatabaseOptions options;
  options.path = path;
  options.name = "sqlite:" + path;
  auto db = sqlite_internal::Database::Open(options);
  CheckOk(db.status(), "Database::Open");
  auto cipher = sqlite_internal::SetUpKeyCipher(
      **db, sqlite_internal::Secret(kPassphrase),
      sqlite_internal::kMinPbkdf2Iterations);
  CheckOk(cipher.status(), "SetUpKeyCipher");
  return *std::move(cipher);
}

// Plain sqlite3: WAL, synchronous=FULL, nothing else.
UniqueSqlite RawOpen(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  UniqueSqlite owned(db);
  CheckSqlite(rc, db, "sqlite3_open_v2");
  CheckSqlite(
      sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
                   nullptr, nullptr, nullptr),
      db, "pragmas");
  return owned;
}

UniqueStatement RawPrepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  CheckSqlite(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), db, sql);
  return UniqueStatement(stmt);
}

bool Step(sqlite3_stmt* stmt) {
  const int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  return rc == SQLITE_DONE;
}

// Binds a row to kInsertRowSql with plain sqlite3 calls.
void BindRaw(const StoredRow& row, sqlite3_stmt* insert) {
  auto blob = [insert](int index, const std::string& value) {
    sqlite3_bind_blob(insert, index, value.data(),
                      static_cast<int>(value.size()), SQLITE_STATIC);
  };
  auto text = [insert](int index, const std::string& value) {
    sqlite3_bind_text(insert, index, value.data(),
                      static_cast<int>(value.size()), SQLITE_STATIC);
  };
  blob(1, row.alias);
  text(2, row.thumbprint);
  sqlite3_bind_int64(insert, 3, row.not_before);
  sqlite3_bind_int64(insert, 4, row.not_after);
  sqlite3_bind_int64(insert, 5, row.created_at_ns);
  sqlite3_bind_int64(insert, 6, row.key_type);
  text(7, row.key_algorithm);
  sqlite3_bind_int64(insert, 8, row.key_encrypted ? 1 : 0);
  blob(9, row.key_der);
  blob(10, row.chain);
  text(11, row.endpoint);
  text(12, row.client_id);
  text(13, row.tenant_id);
  blob(14, row.digest);
}

// Entries valid around TestNow(): 64 EC keys, or 4 RSA keys (RSA keygen is
// slow) under 64 certificates.
struct Issued {
  explicit Issued(int64_t type) {
    testing::TestPki pki;
    const absl::Time from = testing::TestNow() - absl::Hours(24);
    for (int i = 0; i < kDistinctEntries; ++i) {
      auto key = type == kRsa ? testing::PoolKey(KeyType::kRsa2048, i % 4)
                              : testing::PoolKey(KeyType::kEcP256, i);
      entries.push_back(pki.MakeEntry(absl::StrFormat("issued-%d", i), key,
                                      from, from + absl::Hours(24 * 7)));
    }
  }
  std::vector<std::shared_ptr<const Entry>> entries;
};

std::string AliasOf(int64_t i) {
  return absl::StrFormat("%08d-client#att=0", i);
}

// A store file with N aliases, a cold store on it and the floors'
// connection. key = N * 4 + type * 2 + encrypted.
struct Filled {
  explicit Filled(int64_t key) : clock(testing::TestNow()) {
    const int64_t n = key / 4;
    const bool encrypted = key % 2 == 1;
    const std::string path = BenchFile(absl::StrFormat("find-%d.db", key));
    const SqliteStoreOptions options = StoreOptions(path, &clock, encrypted);
    OpenStore(options).reset();  // the schema (and key parameters)
    Fill(path, n, BuiltOnce<Issued>((key / 2) % 2),
         encrypted ? FileCipher(path).get() : nullptr);
    store = OpenStore(options);
    raw = RawOpen(path);
    select = RawPrepare(raw.get(), kSelectBytesSql);
    for (int64_t i = 0; i < n; ++i) {
      order.push_back(AliasOf(i));
    }
    std::shuffle(order.begin(), order.end(), std::mt19937_64(n));
  }

  static void Fill(const std::string& path, int64_t n, const Issued& issued,
                   const sqlite_internal::KeyCipher* cipher) {
    std::vector<StoredRow> rows;
    for (const auto& entry : issued.entries) {
      auto row = sqlite_internal::EncodeEntry(*entry, cipher);
      CheckOk(row.status(), "EncodeEntry");
      rows.push_back(*std::move(row));
    }
    UniqueSqlite db = RawOpen(path);
    UniqueStatement insert =
        RawPrepare(db.get(), sqlite_internal::kInsertRowSql);
    CheckSqlite(sqlite3_exec(db.get(), "BEGIN", nullptr, nullptr, nullptr),
                db.get(), "BEGIN");
    for (int64_t i = 0; i < n; ++i) {
      StoredRow& row = rows[i % kDistinctEntries];
      row.alias = AliasOf(i);
      row.digest = sqlite_internal::RowDigest(row);
      BindRaw(row, insert.get());
      CheckSqlite(Step(insert.get()) ? SQLITE_OK : SQLITE_ERROR, db.get(),
                  "INSERT");
    }
    CheckSqlite(sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr),
                db.get(), "COMMIT");
  }

  const std::string& Next() {
    const std::string& alias = order[next];
    next = (next + 1) % order.size();
    return alias;
  }

  ManualClock clock;
  std::unique_ptr<CertStore> store;
  UniqueSqlite raw;
  UniqueStatement select;
  std::vector<std::string> order;
  size_t next = 0;
};

Filled& FindFixture(const benchmark::State& state, int type,
                    bool encrypted = false) {
  return BuiltOnce<Filled>(state.range(0) * 4 + type * 2 + (encrypted ? 1 : 0));
}

// The floor's lookup: a bare prepared SELECT of the bytes a lookup needs.
bool SelectBytes(Filled& f, std::string* chain, std::string* key) {
  sqlite3_stmt* select = f.select.get();
  const std::string& alias = f.Next();
  sqlite3_bind_blob(select, 1, alias.data(), static_cast<int>(alias.size()),
                    SQLITE_STATIC);
  const bool found = sqlite3_step(select) == SQLITE_ROW;
  if (found) {
    chain->assign(static_cast<const char*>(sqlite3_column_blob(select, 0)),
                  static_cast<size_t>(sqlite3_column_bytes(select, 0)));
    key->assign(static_cast<const char*>(sqlite3_column_blob(select, 1)),
                static_cast<size_t>(sqlite3_column_bytes(select, 1)));
  }
  sqlite3_reset(select);
  return found;
}

// The obvious decode: every certificate, and let OpenSSL guess the key.
bool NaiveDecode(const std::string& chain, const std::string& key) {
  auto certs = sqlite_internal::UnframeChain(chain);
  bool ok = certs.ok();
  for (size_t i = 0; ok && i < certs->size(); ++i) {
    const auto* p = reinterpret_cast<const unsigned char*>((*certs)[i].data());
    X509* cert = d2i_X509(nullptr, &p, static_cast<long>((*certs)[i].size()));
    ok = cert != nullptr;
    X509_free(cert);
  }
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  EVP_PKEY* pkey =
      d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(key.size()));
  EVP_PKEY_free(pkey);
  return ok && pkey != nullptr;
}

void BM_Floor_Sqlite_Select(benchmark::State& state, int type) {
  Filled& f = FindFixture(state, type);
  std::string chain;
  std::string key;
  for (auto _ : state) {
    if (!SelectBytes(f, &chain, &key)) {
      state.SkipWithError("SELECT found no row");
      break;
    }
    benchmark::DoNotOptimize(key.data());
  }
}

void BM_Floor_Sqlite_NaiveFind(benchmark::State& state, int type) {
  Filled& f = FindFixture(state, type);
  std::string chain;
  std::string key;
  for (auto _ : state) {
    if (!SelectBytes(f, &chain, &key) || !NaiveDecode(chain, key)) {
      state.SkipWithError("naive lookup failed");
      break;
    }
  }
}

void RunFind(benchmark::State& state, Filled& f) {
  for (auto _ : state) {
    auto entry = f.store->Find(f.Next());
    if (!entry.ok()) {
      state.SkipWithError(entry.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(entry);
  }
}

void BM_Sqlite_Find(benchmark::State& state, int type) {
  RunFind(state, FindFixture(state, type));
}

void BM_Sqlite_FindEncrypted(benchmark::State& state, int type) {
  RunFind(state, FindFixture(state, type, /*encrypted=*/true));
}

void FindArgs(benchmark::internal::Benchmark* b) {
  b->Arg(1000)->Arg(100000)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_Floor_Sqlite_Select, ec, kEc)->Apply(FindArgs);
BENCHMARK_CAPTURE(BM_Floor_Sqlite_Select, rsa, kRsa)->Apply(FindArgs);
BENCHMARK_CAPTURE(BM_Floor_Sqlite_NaiveFind, ec, kEc)->Apply(FindArgs);
BENCHMARK_CAPTURE(BM_Floor_Sqlite_NaiveFind, rsa, kRsa)->Apply(FindArgs);
BENCHMARK_CAPTURE(BM_Sqlite_Find, ec, kEc)->Apply(FindArgs);
BENCHMARK_CAPTURE(BM_Sqlite_Find, rsa, kRsa)->Apply(FindArgs);
BENCHMARK_CAPTURE(BM_Sqlite_FindEncrypted, ec, kEc)
    ->Arg(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// One entry; a store file for Put and one with the same schema for the bare
// statements.
struct PutFixture {
  explicit PutFixture(int64_t) : clock(testing::TestNow()) {
    entry = BuiltOnce<Issued>(kEc).entries[0];
    store = OpenStore(StoreOptions(BenchFile("put.db"), &clock, false));
    const SqliteStoreOptions floor_options =
        StoreOptions(BenchFile("insert.db"), &clock, false);
    OpenStore(floor_options).reset();
    floor = RawOpen(floor_options.path);
    begin = RawPrepare(floor.get(), "BEGIN IMMEDIATE");
    insert = RawPrepare(floor.get(), sqlite_internal::kInsertRowSql);
    commit = RawPrepare(floor.get(), "COMMIT");
    auto encoded = sqlite_internal::EncodeEntry(*entry, nullptr);
    CheckOk(encoded.status(), "EncodeEntry");
    row = *std::move(encoded);
  }
  ManualClock clock;
  std::shared_ptr<const Entry> entry;
  std::unique_ptr<CertStore> store;
  UniqueSqlite floor;
  UniqueStatement begin;
  UniqueStatement insert;
  UniqueStatement commit;
  StoredRow row;
};

void BM_Floor_Sqlite_Insert(benchmark::State& state) {
  PutFixture& f = BuiltOnce<PutFixture>(0);
  for (auto _ : state) {
    BindRaw(f.row, f.insert.get());
    if (!Step(f.begin.get()) || !Step(f.insert.get()) ||
        !Step(f.commit.get())) {
      state.SkipWithError(sqlite3_errmsg(f.floor.get()));
      break;
    }
  }
}

void BM_Sqlite_Put(benchmark::State& state) {
  PutFixture& f = BuiltOnce<PutFixture>(0);
  for (auto _ : state) {
    absl::Status status = f.store->Put(f.entry);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
}

BENCHMARK(BM_Floor_Sqlite_Insert)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Sqlite_Put)->UseRealTime()->Unit(benchmark::kMicrosecond);

bool RegisterSqliteRatios() {
  // The bars: a cold Find at least 3x faster than the naive lookup, and Put
  // within 1.2x of the bare transaction.
  RegisterRatio("BM_Sqlite_Find", "BM_Floor_Sqlite_NaiveFind", 1.0 / 3);
  RegisterRatio("BM_Sqlite_Put", "BM_Floor_Sqlite_Insert", 1.2);
  RegisterRatio("BM_Sqlite_Find", "BM_Floor_Sqlite_Select");
  RegisterRatio("BM_Sqlite_FindEncrypted", "BM_Floor_Sqlite_NaiveFind");
  return true;
}

[[maybe_unused]] const bool kSqliteRatiosRegistered = RegisterSqliteRatios();

}  // namespace
}  // namespace certstore::bench

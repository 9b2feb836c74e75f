// Helpers for the SQLite store's tests: temp directories, stores that own
// their files, raw access to a database file, child processes.
#ifndef CERTSTORE_TESTS_SQLITE_SQLITE_TEST_UTIL_H_
#define CERTSTORE_TESTS_SQLITE_SQLITE_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/test_pki.h"
#include "sqlite/connection_internal.h"
#include "sqlite/row_codec_internal.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {

// `name` inside `dir`.
inline std::string FileIn(const TempDir& dir, const std::string& name) {
  return dir.path() + "/" + name;
}

// A store that owns the temp directory its file lives in.
class OwningStore final : public CertStoreWrapper {
 public:
  OwningStore(std::unique_ptr<TempDir> dir, std::unique_ptr<CertStore> store)
      : CertStoreWrapper(store.get()),
        dir_(std::move(dir)),
        store_(std::move(store)) {}
  ~OwningStore() override { store_.reset(); }

 private:
  std::unique_ptr<TempDir> dir_;  // destroyed after the store closes
  std::unique_ptr<CertStore> store_;
};

// Test options: `clock`, the minimum PBKDF2 count (fast opens).
SqliteStoreOptions TestOptions(const std::string& path,
                               const Clock* clock = nullptr);

// Opens `options` and dies (ADD_FAILURE + nullptr) on error.
std::unique_ptr<CertStore> OpenOrDie(const SqliteStoreOptions& options);

// A connection straight to a database file, bypassing the store (for
// inspecting and damaging files), leaving its journal mode as it is.
// Fails the test (and returns null) when the file cannot be opened.
std::unique_ptr<sqlite_internal::Connection> RawConnection(
    const std::string& path);

// PRAGMA integrity_check's verdict ("ok" when sound).
std::string IntegrityCheck(const std::string& path);

// Every row of the entries table, by id.
std::vector<sqlite_internal::StoredRow> ReadAllRows(const std::string& path);

// Rewrites row `id` with `edit` applied; the digest is recomputed when
// `fix_digest` (damage the digest cannot see) or kept (damage it sees).
void EditRow(const std::string& path, int64_t id,
             const std::function<void(sqlite_internal::StoredRow&)>& edit,
             bool fix_digest);

// Runs `body` in a forked child that exits with its return value (never
// returning into the test). Returns the child's pid.
pid_t ForkChild(const std::function<int()>& body);

// Waits up to `timeout` for `pid`; its exit code, or -signal when killed,
// or -1000 after SIGKILLing it at the timeout.
int WaitChild(pid_t pid, absl::Duration timeout);

inline constexpr absl::Duration kOneWeek = absl::Hours(24 * 7);

// A store file in a fresh temp directory, a manual clock at TestNow() and
// the binary's test PKI.
class SqliteFixture : public ::testing::Test {
 protected:
  static const TestPki& Pki();

  SqliteStoreOptions Options() const { return TestOptions(path_, &clock_); }
  std::unique_ptr<CertStore> Open() const { return OpenOrDie(Options()); }

  // An entry valid from a day ago for `lifetime`, certifying pool key
  // `key_index` of `type`.
  std::shared_ptr<const Entry> Fresh(const std::string& alias,
                                     int key_index = 0,
                                     KeyType type = KeyType::kEcP256,
                                     absl::Duration lifetime = kOneWeek) const;

  TempDir dir_;
  const std::string path_ = FileIn(dir_, "store.db");
  ManualClock clock_{TestNow()};
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SQLITE_SQLITE_TEST_UTIL_H_

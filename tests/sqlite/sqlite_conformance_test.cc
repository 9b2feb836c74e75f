// The conformance suite instantiated for SqliteStore: WAL, the rollback
// journal, and keys encrypted with a passphrase. Each case gets a new file
// in its own temp directory, removed with the store.
#include <memory>
#include <string>
#include <utility>

#include "certstore/sqlite_store.h"
#include "certstore/testing/cert_store_conformance.h"
#include "tests/sqlite/sqlite_test_util.h"

namespace certstore::testing {
namespace {

ConformanceBackend Variant(std::string name, SqliteJournal journal,
                           bool encrypted) {
  return ConformanceBackend{
      std::move(name),
      [journal, encrypted](
          const Clock* clock) -> absl::StatusOr<std::unique_ptr<CertStore>> {
        auto dir = std::make_unique<TempDir>();
        SqliteStoreOptions options =
            TestOptions(FileIn(*dir, "store.db"), clock);
        options.journal = journal;
        if (encrypted) {
          options.passphrase_callback = []() -> absl::StatusOr<std::string> {
            return std::string("conformance passphrase");
          };
        }
        auto store = OpenSqliteStore(options);
        if (!store.ok()) {
          return store.status();
        }
        return std::unique_ptr<CertStore>(
            new OwningStore(std::move(dir), *std::move(store)));
      }};
}

INSTANTIATE_TEST_SUITE_P(
    Sqlite, CertStoreConformanceTest,
    ::testing::Values(Variant("wal", SqliteJournal::kAuto, false),
                      Variant("rollback", SqliteJournal::kRollback, false),
                      Variant("encrypted", SqliteJournal::kAuto, true)),
    ConformanceBackendName);

}  // namespace
}  // namespace certstore::testing

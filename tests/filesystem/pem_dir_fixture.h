// The fixture of the PemDirStore tests: a temp directory, a manual clock at
// TestNow(), a store opened on "<temp>/store", and entries from the test PKI.
#ifndef CERTSTORE_TESTS_FILESYSTEM_PEM_DIR_FIXTURE_H_
#define CERTSTORE_TESTS_FILESYSTEM_PEM_DIR_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/entry.h"
#include "certstore/pem_dir_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "filesystem/alias_names.h"
#include "tests/filesystem/fs_test_util.h"

namespace certstore::testing {

class PemDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Open();
    ASSERT_OK(store);
    store_ = *std::move(store);
  }

  // Another store on the same directory.
  absl::StatusOr<std::unique_ptr<CertStore>> Open(
      PemDirStoreOptions options = {}) {
    options.directory = StoreDir();
    options.clock = &clock_;
    return OpenPemDirStore(options);
  }

  std::string StoreDir() const { return PathIn(temp_, "store"); }
  std::string DirOf(absl::string_view alias) const {
    return AliasDir(StoreDir(), alias);
  }
  // Where the store keeps `entry`.
  std::string FileOf(const Entry& entry) const {
    return absl::StrCat(DirOf(entry.alias()), "/",
                        filesystem_internal::EntryFileName(entry.thumbprint()));
  }

  static const TestPki& Pki() {
    static const TestPki* const pki = new TestPki(KeyType::kEcP256);
    return *pki;
  }

  // Valid from a day ago for a week plus `extra`, with pool key `key_index`.
  std::shared_ptr<const Entry> Fresh(
      const std::string& alias, int key_index = 0,
      absl::Duration extra = absl::ZeroDuration(),
      KeyType type = KeyType::kEcP256) {
    const absl::Time start = clock_.Now() - absl::Hours(24);
    return Pki().MakeEntry(alias, PoolKey(type, key_index), start,
                           start + absl::Hours(24 * 7) + extra);
  }

  // `entry` under `alias` with `metadata` (same chain and key).
  static std::shared_ptr<const Entry> With(const Entry& entry,
                                           const std::string& alias,
                                           const EntryMetadata& metadata) {
    EntryParts parts;
    parts.alias = alias;
    parts.chain_der = entry.chain_der();
    parts.key = entry.key();
    parts.metadata = metadata;
    parts.created_at = entry.created_at();
    auto made = Entry::Create(std::move(parts));
    EXPECT_OK(made);
    return made.ok() ? *made : nullptr;
  }

  std::string FoundThumbprint(CertStore& store, const std::string& alias) {
    auto found = store.Find(alias);
    if (!found.ok()) {
      return std::string(absl::StatusCodeToString(found.status().code()));
    }
    return (*found)->thumbprint();
  }

  TempDir temp_;
  ManualClock clock_{TestNow()};
  std::unique_ptr<CertStore> store_;
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_FILESYSTEM_PEM_DIR_FIXTURE_H_

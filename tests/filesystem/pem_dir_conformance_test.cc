// The conformance suite instantiated for PemDirStore: each test gets a new
// store in a fresh temp directory, removed with the store.
#include <memory>

#include "certstore/pem_dir_store.h"
#include "certstore/testing/cert_store_conformance.h"
#include "tests/filesystem/fs_test_util.h"

namespace certstore::testing {
namespace {

absl::StatusOr<std::unique_ptr<CertStore>> OpenInTempDir(const Clock* clock) {
  auto dir = std::make_unique<TempDir>();
  PemDirStoreOptions options;
  options.directory = PathIn(*dir, "store");
  options.clock = clock;
  absl::StatusOr<std::unique_ptr<CertStore>> store = OpenPemDirStore(options);
  if (!store.ok()) {
    return store.status();
  }
  return std::unique_ptr<CertStore>(
      new TempDirStore(std::move(dir), *std::move(store)));
}

INSTANTIATE_TEST_SUITE_P(Filesystem, CertStoreConformanceTest,
                         ::testing::Values(ConformanceBackend{"filesystem",
                                                              OpenInTempDir}),
                         ConformanceBackendName);

}  // namespace
}  // namespace certstore::testing

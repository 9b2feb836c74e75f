// The conformance suite instantiated for MemoryStore.
#include "certstore/memory_store.h"
#include "certstore/testing/cert_store_conformance.h"

namespace certstore::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Memory, CertStoreConformanceTest,
    ::testing::Values(ConformanceBackend{
        "memory",
        [](const Clock* clock) -> absl::StatusOr<std::unique_ptr<CertStore>> {
          MemoryStoreOptions options;
          options.clock = clock;
          return NewMemoryStore(options);
        }}),
    ConformanceBackendName);

}  // namespace
}  // namespace certstore::testing

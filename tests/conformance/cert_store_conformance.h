// The backend conformance suite: one parameterised GoogleTest suite that
// every CertStore must pass. A backend instantiates it with a factory:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, CertStoreConformanceTest,
//       ::testing::Values(ConformanceBackend{"memory", [](const Clock* c) {
//         return OpenMyStore(c); }}),
//       ConformanceBackendName);
#ifndef CERTSTORE_TESTS_CONFORMANCE_CERT_STORE_CONFORMANCE_H_
#define CERTSTORE_TESTS_CONFORMANCE_CERT_STORE_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"

namespace certstore::testing {

struct ConformanceBackend {
  std::string name;  // test-name suffix: letters, digits, underscores
  // Opens a new, empty store whose selection uses `clock`. Called once per
  // test; the factory owns any temp directory or token it needs.
  std::function<absl::StatusOr<std::unique_ptr<CertStore>>(const Clock*)> open;
};

std::string ConformanceBackendName(
    const ::testing::TestParamInfo<ConformanceBackend>& info);

class CertStoreConformanceTest
    : public ::testing::TestWithParam<ConformanceBackend> {};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_CONFORMANCE_CERT_STORE_CONFORMANCE_H_

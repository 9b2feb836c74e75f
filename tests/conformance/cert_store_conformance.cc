#include "tests/conformance/cert_store_conformance.h"

namespace certstore::testing {

std::string ConformanceBackendName(
    const ::testing::TestParamInfo<ConformanceBackend>& info) {
  return info.param.name;
}

}  // namespace certstore::testing

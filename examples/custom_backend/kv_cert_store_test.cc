// The example backend proves itself the way every certstore backend does:
// the conformance suite, instantiated with a factory for an empty store,
// plus the tests of what is its own (here: a damaged value).
#include "kv_cert_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "absl/strings/escaping.h"
#include "certstore/testing/cert_store_conformance.h"
#include "certstore/testing/status_matchers.h"

namespace kvstore {
namespace {

using certstore::testing::CertStoreConformanceTest;
using certstore::testing::ConformanceBackend;
using certstore::testing::StatusIs;
using ::testing::HasSubstr;

INSTANTIATE_TEST_SUITE_P(
    KeyValue, CertStoreConformanceTest,
    ::testing::Values(ConformanceBackend{
        "kv",
        [](const certstore::Clock* clock)
            -> absl::StatusOr<std::unique_ptr<certstore::CertStore>> {
          return NewKvCertStore("conformance",
                                std::make_shared<InMemoryBucket>(), clock);
        }}),
    certstore::testing::ConformanceBackendName);

TEST(KvCertStoreTest, DamagedValueIsDataLossForItsAliasOnly) {
  auto bucket = std::make_shared<InMemoryBucket>();
  auto store = NewKvCertStore("damage", bucket);
  // Where the store keeps an entry of "app#att=0": its hex, a thumbprint.
  ASSERT_TRUE(bucket
                  ->Set(absl::BytesToHexString("app#att=0") + "/thumbprint",
                        "not a record")
                  .ok());
  EXPECT_THAT(store->Find("app#att=0"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("kv:damage")));
  EXPECT_THAT(store->Find("other#att=0"),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace kvstore

/// \file
/// The backend conformance suite: one parameterised GoogleTest suite that
/// every CertStore must pass. A backend instantiates it with a factory:
///
/// \code
///   INSTANTIATE_TEST_SUITE_P(Memory, CertStoreConformanceTest,
///       ::testing::Values(ConformanceBackend{"memory", [](const Clock* c) {
///         return OpenMyStore(c); }}),
///       ConformanceBackendName);
/// \endcode
#ifndef CERTSTORE_TESTING_CERT_STORE_CONFORMANCE_H_
#define CERTSTORE_TESTING_CERT_STORE_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/entry.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"

namespace certstore::testing {

struct ConformanceBackend {
  std::string name;  ///< test-name suffix: letters, digits, underscores
  /// Opens a new, empty store whose selection uses `clock`. Called once per
  /// test; the factory owns any temp directory or token it needs.
  std::function<absl::StatusOr<std::unique_ptr<CertStore>>(const Clock*)> open;
};

/// So failures print "memory", not the struct's bytes.
inline void PrintTo(const ConformanceBackend& backend, std::ostream* os) {
  *os << backend.name;
}

std::string ConformanceBackendName(
    const ::testing::TestParamInfo<ConformanceBackend>& info);

inline constexpr absl::Duration kWeek = absl::Hours(24 * 7);

/// Fixture state shared by every conformance test: a manual clock at
/// TestNow(), a fresh store, and the binary-wide test PKI.
class CertStoreConformanceTest
    : public ::testing::TestWithParam<ConformanceBackend> {
 protected:
  void SetUp() override {
    auto store = GetParam().open(&clock_);
    ASSERT_OK(store);
    store_ = *std::move(store);
  }

  static const TestPki& Pki() {
    static const TestPki* const pki = new TestPki(KeyType::kEcP256);
    return *pki;
  }

  absl::Time Now() const { return clock_.Now(); }

  /// An entry valid from a day ago for `lifetime`.
  std::shared_ptr<const Entry> Fresh(const std::string& alias,
                                     absl::Duration lifetime = kWeek,
                                     int key_index = 0,
                                     KeyType type = KeyType::kEcP256) {
    return Pki().MakeEntry(alias, PoolKey(type, key_index),
                           Now() - absl::Hours(24),
                           Now() - absl::Hours(24) + lifetime);
  }

  std::shared_ptr<const Entry> Window(const std::string& alias,
                                      absl::Time not_before,
                                      absl::Time not_after, int key_index = 0) {
    return Pki().MakeEntry(alias, PoolKey(KeyType::kEcP256, key_index),
                           not_before, not_after);
  }

  /// An entry whose leaf certifies PoolKey(key_index) but which carries
  /// another key.
  std::shared_ptr<const Entry> Mismatched(const std::string& alias) {
    LeafOptions leaf;
    leaf.not_before = Now() - absl::Hours(1);
    leaf.not_after = Now() + kWeek;
    EntryParts parts;
    parts.alias = alias;
    parts.chain_der = Pki().IssueChain(*PoolKey(KeyType::kEcP256, 0), leaf);
    parts.key = PoolKey(KeyType::kEcP256, 1);
    auto entry = Entry::Create(std::move(parts));
    EXPECT_OK(entry);
    return *entry;
  }

  std::string FoundThumbprint(const std::string& alias,
                              const FindOptions& options = {}) {
    auto found = store_->Find(alias, options);
    if (!found.ok()) {
      return std::string(absl::StatusCodeToString(found.status().code()));
    }
    return (*found)->thumbprint();
  }

  size_t ListedCount(const std::string& prefix = "") {
    ListOptions options;
    options.alias_prefix = prefix;
    auto listed = store_->List(options);
    EXPECT_OK(listed);
    return listed.ok() ? listed->size() : 0;
  }

  ManualClock clock_{TestNow()};
  std::unique_ptr<CertStore> store_;
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTING_CERT_STORE_CONFORMANCE_H_

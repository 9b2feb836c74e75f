/// \file
/// A test PKI minted in process: root -> intermediate -> leaves, RSA and EC,
/// with chosen validity windows. Keys are generated once per test binary
/// (RSA-2048 costs ~0.3 s) and handed out from a small pool.
#ifndef CERTSTORE_TESTING_TEST_PKI_H_
#define CERTSTORE_TESTING_TEST_PKI_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "certstore/entry.h"
#include "certstore/key.h"

namespace certstore::testing {

/// A fixed, pre-generated key: index i of the pool for its type. The same
/// (type, index) always returns the same key within a binary.
std::shared_ptr<const Key> PoolKey(KeyType type, int index = 0);

struct LeafOptions {
  std::string common_name = "test-client";
  std::string tenant = "test-tenant";
  absl::Time not_before;
  absl::Time not_after;
  bool include_intermediate = true;  ///< chain = leaf, intermediate
  /// The leaf's extendedKeyUsage (OpenSSL config syntax); empty: none.
  std::string extended_key_usage = "clientAuth";
  /// The leaf's subjectAltName (OpenSSL config syntax, e.g.
  /// "DNS:localhost,IP:127.0.0.1,URI:spiffe://example.org/a"); empty: none.
  std::string subject_alt_name;
};

class TestPki {
 public:
  /// Root and intermediate of type `ca_type`, valid 2000..2100. PKIs with
  /// different `ca_key_slot`s (pool slots, two per PKI) have different CA
  /// keys and names, so that one does not verify the other's leaves.
  explicit TestPki(KeyType ca_type = KeyType::kEcP256, int ca_key_slot = 1000);
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  /// A DER chain (leaf first) whose leaf certifies `key`.
  std::vector<std::string> IssueChain(const Key& key,
                                      const LeafOptions& options) const;

  /// An entry for `alias` with a leaf for `key` valid [not_before, not_after].
  std::shared_ptr<const Entry> MakeEntry(const std::string& alias,
                                         std::shared_ptr<const Key> key,
                                         absl::Time not_before,
                                         absl::Time not_after) const;

  /// A CRL (PEM) signed by the intermediate, valid [now - 1 h, now + 1 d],
  /// revoking the leaves of `revoked_chains` (each a chain from IssueChain).
  std::string IssueCrl(
      const std::vector<std::vector<std::string>>& revoked_chains) const;

  /// The root (and intermediate) in PEM, for trust bundles.
  std::string root_pem() const;
  std::string intermediate_pem() const;

  const std::string& root_der() const;
  const std::string& intermediate_der() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A fixed "now" for tests that use a ManualClock: 2030-06-01T00:00:00Z.
absl::Time TestNow();

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTING_TEST_PKI_H_

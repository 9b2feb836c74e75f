// Shared by the certstore::tls tests: a test PKI with server and client
// leaves valid around the real clock (TLS verifies at the real time), and
// files for third-party peers.
#ifndef CERTSTORE_TESTS_TLS_TLS_TEST_UTIL_H_
#define CERTSTORE_TESTS_TLS_TLS_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "certstore/entry.h"
#include "certstore/key.h"
#include "certstore/testing/test_pki.h"

namespace certstore::testing {

// Leaf options valid from an hour ago for `days`.
inline LeafOptions LiveLeaf(const std::string& cn, std::string eku,
                            std::string san = "", int days = 30) {
  LeafOptions o;
  o.common_name = cn;
  o.not_before = absl::Now() - absl::Hours(1);
  o.not_after = absl::Now() + absl::Hours(24 * days);
  o.extended_key_usage = std::move(eku);
  o.subject_alt_name = std::move(san);
  return o;
}

// An entry for `alias` whose chain (leaf, intermediate) certifies `key`.
std::shared_ptr<const Entry> EntryFor(const std::string& alias,
                                      std::shared_ptr<const Key> key,
                                      const std::vector<std::string>& chain);

// A server entry for 127.0.0.1 / localhost (serverAuth).
std::shared_ptr<const Entry> ServerEntry(const TestPki& pki,
                                         const std::string& alias,
                                         std::shared_ptr<const Key> key,
                                         int days = 30);

// A client entry (clientAuth).
std::shared_ptr<const Entry> ClientEntry(const TestPki& pki,
                                         const std::string& alias,
                                         std::shared_ptr<const Key> key,
                                         const std::string& cn = "client",
                                         const std::string& san = "",
                                         int days = 30);

// Writes `text` to `path` (mode 0600); aborts on failure.
void WriteText(const std::string& path, const std::string& text);

// The entry's leaf + intermediate as PEM, and its software key as PKCS#8
// PEM: the files curl / openssl take.
std::string ChainPem(const Entry& entry);
std::string KeyPem(const Key& key);

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_TLS_TLS_TEST_UTIL_H_

#include "tests/tls/tls_test_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "certstore/chain.h"

namespace certstore::testing {

std::shared_ptr<const Entry> EntryFor(const std::string& alias,
                                      std::shared_ptr<const Key> key,
                                      const std::vector<std::string>& chain) {
  EntryParts parts;
  parts.alias = alias;
  parts.chain_der = chain;
  parts.key = std::move(key);
  parts.metadata = {"https://127.0.0.1/", "tls-test", "tls-test"};
  parts.created_at = absl::Now();
  absl::StatusOr<std::shared_ptr<const Entry>> entry =
      Entry::Create(std::move(parts));
  if (!entry.ok()) {
    fprintf(stderr, "EntryFor: %s\n", entry.status().ToString().c_str());
    abort();
  }
  return *entry;
}

std::shared_ptr<const Entry> ServerEntry(const TestPki& pki,
                                         const std::string& alias,
                                         std::shared_ptr<const Key> key,
                                         int days) {
  const auto chain = pki.IssueChain(
      *key,
      LiveLeaf("127.0.0.1", "serverAuth", "DNS:localhost,IP:127.0.0.1", days));
  return EntryFor(alias, std::move(key), chain);
}

std::shared_ptr<const Entry> ClientEntry(const TestPki& pki,
                                         const std::string& alias,
                                         std::shared_ptr<const Key> key,
                                         const std::string& cn,
                                         const std::string& san, int days) {
  const auto chain =
      pki.IssueChain(*key, LiveLeaf(cn, "clientAuth", san, days));
  return EntryFor(alias, std::move(key), chain);
}

void WriteText(const std::string& path, const std::string& text) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, text.data(), text.size()) !=
                    static_cast<ssize_t>(text.size())) {
    perror(path.c_str());
    abort();
  }
  close(fd);
}

std::string ChainPem(const Entry& entry) {
  return DerChainToPem(entry.chain_der());
}

std::string KeyPem(const Key& key) {
  absl::StatusOr<std::string> pem = KeyToPem(key);
  if (!pem.ok()) {
    fprintf(stderr, "KeyPem: %s\n", pem.status().ToString().c_str());
    abort();
  }
  return *pem;
}

}  // namespace certstore::testing

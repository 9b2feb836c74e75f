// An example backend: a CertStore kept in a key-value service, written only
// against certstore's public headers (certstore/backend_author.h for the
// parts every backend shares). Replace InMemoryBucket with a client of
// your service (etcd, Redis, a table) and the store works the same; the
// conformance suite (kv_cert_store_test.cc) proves it.
#ifndef CERTSTORE_EXAMPLES_CUSTOM_BACKEND_KV_CERT_STORE_H_
#define CERTSTORE_EXAMPLES_CUSTOM_BACKEND_KV_CERT_STORE_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"

namespace kvstore {

// What the store needs from a key-value service: atomic single-key writes
// and a listing by key prefix. Thread-safe.
class KeyValueBucket {
 public:
  virtual ~KeyValueBucket() = default;
  virtual absl::Status Set(const std::string& key, std::string value) = 0;
  // Removes the key; false when it was absent.
  virtual absl::StatusOr<bool> Remove(const std::string& key) = 0;
  // Every (key, value) whose key starts with `prefix`, in key order.
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      const std::string& prefix) = 0;
};

// A bucket in process memory, standing in for a real service.
class InMemoryBucket final : public KeyValueBucket {
 public:
  absl::Status Set(const std::string& key, std::string value) override;
  absl::StatusOr<bool> Remove(const std::string& key) override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      const std::string& prefix) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::string> values_;
};

// A CertStore named "kv:<bucket name>" over `bucket` (shared: the store
// keeps it alive). One value per entry, under
// "<hex of the alias>/<thumbprint>", holding chain, PKCS#8 key and
// metadata. A value that does not decode is DataLoss for its alias only.
// `clock` (null: the system clock) decides what Find serves.
std::unique_ptr<certstore::CertStore> NewKvCertStore(
    std::string bucket_name, std::shared_ptr<KeyValueBucket> bucket,
    const certstore::Clock* clock = nullptr);

}  // namespace kvstore

#endif  // CERTSTORE_EXAMPLES_CUSTOM_BACKEND_KV_CERT_STORE_H_

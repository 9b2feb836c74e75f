/// \file
/// Keys that fail on purpose, wrapping a real key whose public key (and
/// EVP_PKEY) they keep, so stores accept them as matching the certificate:
/// FailingKey cannot sign (ProbeKey and the token client's recovery path);
/// UnexportableKey cannot be exported, like a token key (what stores that
/// write key bytes must refuse).
#ifndef CERTSTORE_TESTING_FAILING_KEY_H_
#define CERTSTORE_TESTING_FAILING_KEY_H_

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "certstore/key.h"

namespace certstore::testing {

class FailingKey final : public Key {
 public:
  explicit FailingKey(std::shared_ptr<const Key> real,
                      absl::Status failure = absl::FailedPreconditionError(
                          "injected fault: key cannot sign"))
      : real_(std::move(real)), failure_(std::move(failure)) {}

  absl::StatusOr<std::string> Sign(absl::string_view) const override {
    sign_calls_.fetch_add(1);
    return failure_;
  }
  const std::string& public_key_der() const override {
    return real_->public_key_der();
  }
  EVP_PKEY* evp_pkey() const override { return real_->evp_pkey(); }
  std::string algorithm() const override { return real_->algorithm(); }
  std::string location() const override { return "failing-test-key"; }
  absl::StatusOr<std::string> ExportPkcs8Der() const override {
    return real_->ExportPkcs8Der();
  }

  int sign_calls() const { return sign_calls_.load(); }

 private:
  std::shared_ptr<const Key> real_;
  absl::Status failure_;
  mutable std::atomic<int> sign_calls_{0};
};

class UnexportableKey final : public Key {
 public:
  explicit UnexportableKey(std::shared_ptr<const Key> real)
      : real_(std::move(real)) {}

  absl::StatusOr<std::string> Sign(absl::string_view data) const override {
    return real_->Sign(data);
  }
  const std::string& public_key_der() const override {
    return real_->public_key_der();
  }
  EVP_PKEY* evp_pkey() const override { return real_->evp_pkey(); }
  std::string algorithm() const override { return real_->algorithm(); }
  std::string location() const override { return "pkcs11:token=test"; }
  absl::StatusOr<std::string> ExportPkcs8Der() const override {
    return absl::FailedPreconditionError("the key cannot leave its token");
  }

 private:
  std::shared_ptr<const Key> real_;
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTING_FAILING_KEY_H_

// A CertStore wrapper that fails chosen operations on demand: always, the
// next N calls, or a seeded 1-in-N, with the status to return. Counts every
// call. Fault injection in addition to real faults, never instead.
#ifndef CERTSTORE_TESTS_SUPPORT_FAULTY_CERT_STORE_H_
#define CERTSTORE_TESTS_SUPPORT_FAULTY_CERT_STORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "certstore/cert_store.h"

namespace certstore::testing {

enum class StoreOp {
  kFind,
  kPut,
  kDelete,
  kProbeKey,
  kCreateKey,
  kList,
  kLockAlias,
  kCount
};

class FaultyCertStore final : public CertStoreWrapper {
 public:
  // Wraps and owns `target`.
  explicit FaultyCertStore(std::unique_ptr<CertStore> target)
      : CertStoreWrapper(target.get()), owned_(std::move(target)) {}

  // Every call of `op` fails with `status` until Clear.
  void FailAlways(StoreOp op, absl::Status status) {
    Set(op, Fault{std::move(status), -1, 0});
  }
  // The next `n` calls of `op` fail.
  void FailNext(StoreOp op, int n, absl::Status status) {
    Set(op, Fault{std::move(status), n, 0});
  }
  // Each call fails with probability 1/n, from a seeded generator.
  void FailOneIn(StoreOp op, int n, uint32_t seed, absl::Status status) {
    Set(op, Fault{std::move(status), -1, n});
    absl::MutexLock lock(&mu_);
    rng_.seed(seed);
  }
  void Clear(StoreOp op) { Set(op, Fault{}); }

  int calls(StoreOp op) const { return calls_[Index(op)].load(); }

  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options = {}) override {
    if (absl::Status s = Inject(StoreOp::kFind); !s.ok()) {
      return s;
    }
    return CertStoreWrapper::Find(alias, options);
  }
  absl::Status Put(std::shared_ptr<const Entry> entry) override {
    if (absl::Status s = Inject(StoreOp::kPut); !s.ok()) {
      return s;
    }
    return CertStoreWrapper::Put(std::move(entry));
  }
  absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) override {
    if (absl::Status s = Inject(StoreOp::kDelete); !s.ok()) {
      return s;
    }
    return CertStoreWrapper::DeleteAllForAlias(alias);
  }
  absl::Status ProbeKey(const Entry& entry) override {
    if (absl::Status s = Inject(StoreOp::kProbeKey); !s.ok()) {
      return s;
    }
    return CertStoreWrapper::ProbeKey(entry);
  }
  absl::StatusOr<std::shared_ptr<const Key>> CreateKey(
      absl::string_view alias, const KeySpec& spec) override {
    if (absl::Status s = Inject(StoreOp::kCreateKey); !s.ok()) {
      return s;
    }
    return CertStoreWrapper::CreateKey(alias, spec);
  }
  absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options = {}) override {
    if (absl::Status s = Inject(StoreOp::kList); !s.ok()) {
      return s;
    }
    return CertStoreWrapper::List(options);
  }
  absl::StatusOr<std::unique_ptr<AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) override {
    if (absl::Status s = Inject(StoreOp::kLockAlias); !s.ok()) {
      return s;
    }
    return CertStoreWrapper::LockAlias(alias, timeout);
  }

 private:
  struct Fault {
    absl::Status status;  // OK: no fault
    int remaining = -1;   // -1: unlimited
    int one_in = 0;       // 0: every call
  };

  static size_t Index(StoreOp op) { return static_cast<size_t>(op); }

  void Set(StoreOp op, Fault fault) {
    absl::MutexLock lock(&mu_);
    faults_[Index(op)] = std::move(fault);
  }

  absl::Status Inject(StoreOp op) {
    calls_[Index(op)]++;
    absl::MutexLock lock(&mu_);
    Fault& fault = faults_[Index(op)];
    if (fault.status.ok() || fault.remaining == 0) {
      return absl::OkStatus();
    }
    if (fault.one_in > 0 &&
        std::uniform_int_distribution<int>(1, fault.one_in)(rng_) != 1) {
      return absl::OkStatus();
    }
    if (fault.remaining > 0) {
      --fault.remaining;
    }
    return fault.status;
  }

  std::unique_ptr<CertStore> owned_;
  absl::Mutex mu_;
  std::array<Fault, static_cast<size_t>(StoreOp::kCount)> faults_
      ABSL_GUARDED_BY(mu_);
  std::mt19937 rng_ ABSL_GUARDED_BY(mu_);
  std::array<std::atomic<int>, static_cast<size_t>(StoreOp::kCount)> calls_{};
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SUPPORT_FAULTY_CERT_STORE_H_

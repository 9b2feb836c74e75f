/// \file
/// Injected time. Stores and clients take a `const Clock*` in their options so
/// that expiry and renewal can be tested with a ManualClock, never by sleeping.
#ifndef CERTSTORE_CLOCK_H_
#define CERTSTORE_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "certstore/export.h"

namespace certstore {

class CERTSTORE_EXPORT Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  /// Now() as Unix nanoseconds: what lookups compare with, without absl's
  /// out-of-line conversion. Clocks override it with a direct read.
  virtual int64_t NowUnixNanos() const { return absl::ToUnixNanos(Now()); }

  /// The process-wide wall clock, read coarsely (one kernel tick, ~4 ms,
  /// of resolution; cheap enough for every lookup). Never null, never
  /// destroyed.
  static const Clock* System();
};

/// A clock that moves only when told to. Thread-safe.
class CERTSTORE_EXPORT ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start) : nanos_(absl::ToUnixNanos(start)) {}

  absl::Time Now() const override {
    return absl::FromUnixNanos(nanos_.load(std::memory_order_acquire));
  }
  int64_t NowUnixNanos() const override {
    return nanos_.load(std::memory_order_acquire);
  }
  void Set(absl::Time t) {
    nanos_.store(absl::ToUnixNanos(t), std::memory_order_release);
  }
  void Advance(absl::Duration d) {
    nanos_.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> nanos_;
};

}  // namespace certstore

#endif  // CERTSTORE_CLOCK_H_

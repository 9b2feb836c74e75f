// What every benchmark binary needs around its timed loops: setup checks,
// fixtures built once per key, and setup timing (printed to stderr, so that
// a slow setup is visible without polluting the results).
#ifndef CERTSTORE_BENCH_BENCH_UTIL_H_
#define CERTSTORE_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/status.h"

namespace certstore::bench {

// Setup failures are programming errors: stop the run loudly.
// Wall time of op(), for benchmarks that time parts of an iteration by hand
// (UseManualTime) or pair ours and the floor in one loop.
template <typename Op>
double SecondsOf(Op&& op) {
  const auto start = std::chrono::steady_clock::now();
  op();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

inline void CheckOk(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "bench setup: %s: %s\n", what,
                 status.ToString().c_str());
    std::abort();
  }
}

// Returns the T built from `key`, building it on first use and keeping it
// for the process, so that setup never runs inside a timed region and the
// threads of one run (which all call this first) share one T.
template <typename T>
T& BuiltOnce(int64_t key) {
  static std::mutex mu;
  static auto* built = new std::map<int64_t, std::unique_ptr<T>>();
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<T>& slot = (*built)[key];
  if (slot == nullptr) {
    slot = std::make_unique<T>(key);
  }
  return *slot;
}

// Prints how long its scope took: "setup: <what> took 1.234 s".
class SetupTimer {
 public:
  explicit SetupTimer(std::string what)
      : what_(std::move(what)), start_(std::chrono::steady_clock::now()) {}
  ~SetupTimer() {
    const std::chrono::duration<double> took =
        std::chrono::steady_clock::now() - start_;
    std::fprintf(stderr, "setup: %s took %.3f s\n", what_.c_str(),
                 took.count());
  }
  SetupTimer(const SetupTimer&) = delete;
  SetupTimer& operator=(const SetupTimer&) = delete;

 private:
  std::string what_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace certstore::bench

#endif  // CERTSTORE_BENCH_BENCH_UTIL_H_

// What every benchmark binary needs around its timed loops: setup checks,
// fixtures built once per key, and setup timing (printed to stderr, so that
// a slow setup is visible without polluting the results).
#ifndef CERTSTORE_BENCH_BENCH_UTIL_H_
#define CERTSTORE_BENCH_BENCH_UTIL_H_

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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

// The seconds op() took, or nullopt when it returned false.
template <typename Op>
std::optional<double> SecondsIfOk(Op&& op) {
  bool ok = false;
  const double seconds = SecondsOf([&] { ok = op(); });
  if (!ok) return std::nullopt;
  return seconds;
}

// Ours and its floor alternated in one loop, which goes first swapping
// each iteration, so that the machine's drift falls on both sides: run one
// after the other, such pairs swung across their bar between runs on this
// VM. Each side returns the seconds its timed part took, or nullopt when
// it failed (the run is then marked failed with `failure`). Timed (manual
// time): ours; both are reported as the counters paired_ours_ns and
// paired_floor_ns, which the ratio table reads.
template <typename Ours, typename Floor>
void RunPaired(benchmark::State& state, Ours&& ours, Floor&& floor,
               const char* failure) {
  double ours_ns = 0;
  double floor_ns = 0;
  int64_t i = 0;
  for (auto _ : state) {
    std::optional<double> ours_seconds;
    std::optional<double> floor_seconds;
    if (i++ % 2 == 0) {
      ours_seconds = ours();
      floor_seconds = floor();
    } else {
      floor_seconds = floor();
      ours_seconds = ours();
    }
    if (!ours_seconds.has_value() || !floor_seconds.has_value()) {
      state.SkipWithError(failure);
      break;
    }
    ours_ns += *ours_seconds * 1e9;
    floor_ns += *floor_seconds * 1e9;
    state.SetIterationTime(*ours_seconds);
  }
  state.counters["paired_ours_ns"] =
      benchmark::Counter(ours_ns, benchmark::Counter::kAvgIterations);
  state.counters["paired_floor_ns"] =
      benchmark::Counter(floor_ns, benchmark::Counter::kAvgIterations);
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

// The overhead table printed after the benchmarks: each backend's workload
// divided by the raw primitive it is built on (bench/README.md), checked
// against the bar the backend promises.
#ifndef CERTSTORE_BENCH_RATIO_REPORTER_H_
#define CERTSTORE_BENCH_RATIO_REPORTER_H_

#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <vector>

namespace certstore::bench {

// A bar of kNoBar prints the ratio for context and never fails.
inline constexpr double kNoBar = 0;

// Adds rows to the table: for every run named `ours_prefix` + suffix, the
// ratio of its time to that of the run named `floor_prefix` + the same suffix.
// A prefix matches a whole run name or a part of it that ends before a '/',
// so RegisterRatio("BM_Memory_ProbeKey", "BM_Floor_SignVerify", 1.2) pairs
// ".../ec" with ".../ec" and ".../rsa" with ".../rsa", while a full name such
// as "BM_Memory_Find/1000/real_time/threads:1" selects one run. The floor may
// be the same benchmark with other arguments (threads:2 against threads:1).
// `bar` is the highest acceptable ratio. Rows appear in registration order;
// rows whose two runs did not both run (filtered out, failed) are counted
// but not printed. Call before benchmark::RunSpecifiedBenchmarks (a static
// initialiser in each *_bench.cc is fine); not thread-safe.
void RegisterRatio(std::string ours_prefix, std::string floor_prefix,
                   double bar = kNoBar);

// Paired runs. Where consecutive runs of the same loop drift apart by more
// than the overhead to be measured (on this VM: SQLite Finds, and hash
// lookups that wait on memory), one benchmark alternates both operations in its
// loop and reports their mean times per operation, in nanoseconds, as the
// counters "paired_ours_ns" and "paired_floor_ns"
// (benchmark::Counter::kAvgIterations over summed nanoseconds). The reporter
// records them as runs named
// "<run name>/ours" and "<run name>/floor", for RegisterRatio.

// A display reporter that forwards everything to another one (normally
// benchmark::CreateDefaultDisplayReporter(), so --benchmark_format and
// --benchmark_color keep working), records each run's time and, at Finalize,
// prints the table of registered ratios with PASS/FAIL against their bars.
//
// The time compared is the one a benchmark is measured by, per operation
// per thread: wall time for UseRealTime() runs (Google Benchmark 1.7 reports
// a threaded run's real time per operation of the whole process, see
// memory_bench.cc, so the reporter multiplies it by the thread count), CPU
// time otherwise (already per thread; less disturbed by preemption on a
// busy machine). With repetitions it uses the median aggregate, otherwise
// the single run.
// The table goes to the display's output stream for the console format and
// to its error stream otherwise, so JSON and CSV output stay parseable.
class RatioReporter : public benchmark::BenchmarkReporter {
 public:
  // `display` is not owned and must outlive this reporter.
  explicit RatioReporter(benchmark::BenchmarkReporter* display);

  bool ReportContext(const Context& context) override;
  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override;

  // How many printed ratios exceeded their bar; valid after Finalize.
  int failures() const { return failures_; }

 private:
  struct Time {
    double ns_per_op_per_thread = 0;
    bool is_median = false;
  };
  struct Row {
    std::string ours;
    std::string floor;
    double ours_ns = 0;
    double floor_ns = 0;
    double bar = kNoBar;
  };

  void Record(const Run& run);
  std::vector<Row> MatchRows(int* missing) const;
  void PrintTable(const std::vector<Row>& rows, int missing);
  static std::string FormatRow(const Row& row, size_t ours_width,
                               size_t floor_width);

  benchmark::BenchmarkReporter* display_;
  std::map<std::string, Time> times_;  // by run name without aggregate
  int repetitions_ = 1;
  int failures_ = 0;
};

}  // namespace certstore::bench

#endif  // CERTSTORE_BENCH_RATIO_REPORTER_H_

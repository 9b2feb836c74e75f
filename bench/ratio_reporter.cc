#include "bench/ratio_reporter.h"

#include <algorithm>
#include <ostream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace certstore::bench {
namespace {

struct RatioRule {
  std::string ours_prefix;
  std::string floor_prefix;
  double bar;
};

std::vector<RatioRule>& Rules() {
  static auto* rules = new std::vector<RatioRule>();
  return *rules;
}

// The rest of `name` after `prefix`, when `prefix` ends at a '/' of `name`
// or is all of it.
bool SuffixAfter(const std::string& name, const std::string& prefix,
                 absl::string_view* suffix) {
  if (!absl::StartsWith(name, prefix)) {
    return false;
  }
  absl::string_view rest = absl::string_view(name).substr(prefix.size());
  if (!rest.empty() && rest[0] != '/' && !absl::EndsWith(prefix, "/")) {
    return false;
  }
  *suffix = rest;
  return true;
}

double NanosPerUnit(benchmark::TimeUnit unit) {
  switch (unit) {
    case benchmark::kNanosecond:
      return 1;
    case benchmark::kMicrosecond:
      return 1e3;
    case benchmark::kMillisecond:
      return 1e6;
    case benchmark::kSecond:
      return 1e9;
  }
  return 1;
}

std::string FormatNanos(double ns) {
  if (ns < 1e4) {
    return absl::StrFormat("%.1f ns", ns);
  }
  if (ns < 1e7) {
    return absl::StrFormat("%.1f us", ns / 1e3);
  }
  return absl::StrFormat("%.1f ms", ns / 1e6);
}

}  // namespace

void RegisterRatio(std::string ours_prefix, std::string floor_prefix,
                   double bar) {
  Rules().push_back({std::move(ours_prefix), std::move(floor_prefix), bar});
}

RatioReporter::RatioReporter(benchmark::BenchmarkReporter* display)
    : display_(display) {}

bool RatioReporter::ReportContext(const Context& context) {
  return display_->ReportContext(context);
}

void RatioReporter::ReportRuns(const std::vector<Run>& runs) {
  display_->ReportRuns(runs);
  for (const Run& run : runs) {
    Record(run);
  }
}

void RatioReporter::Finalize() {
  display_->Finalize();
  int missing = 0;
  std::vector<Row> rows = MatchRows(&missing);
  PrintTable(rows, missing);
}

void RatioReporter::Record(const Run& run) {
  const bool is_median = run.run_type == Run::RT_Aggregate &&
                         run.aggregate_name == "median" &&
                         run.aggregate_unit == benchmark::kTime;
  if (run.error_occurred || (run.run_type == Run::RT_Aggregate && !is_median)) {
    return;
  }
  const std::string name = run.run_name.str();
  Time& time = times_[name];
  if (time.is_median && !is_median) {
    return;
  }
  // CPU time is already per thread (summed over threads, divided by all
  // their iterations); real time is per process, hence the thread factor.
  const bool real_time = !run.run_name.time_type.empty();
  time.ns_per_op_per_thread =
      NanosPerUnit(run.time_unit) *
      (real_time ? run.GetAdjustedRealTime() * static_cast<double>(run.threads)
                 : run.GetAdjustedCPUTime());
  time.is_median = is_median;
  repetitions_ = std::max(repetitions_, static_cast<int>(run.repetitions));
  // A paired run (see ratio_reporter.h) adds its two sides.
  for (const char* side : {"ours", "floor"}) {
    auto counter = run.counters.find(absl::StrCat("paired_", side, "_ns"));
    if (counter == run.counters.end()) {
      continue;
    }
    Time& paired = times_[absl::StrCat(name, "/", side)];
    if (paired.is_median && !is_median) {
      continue;
    }
    paired.ns_per_op_per_thread = counter->second.value;
    paired.is_median = is_median;
  }
}

std::vector<RatioReporter::Row> RatioReporter::MatchRows(int* missing) const {
  std::vector<Row> rows;
  *missing = 0;
  for (const RatioRule& rule : Rules()) {
    for (const auto& [name, time] : times_) {
      absl::string_view suffix;
      if (!SuffixAfter(name, rule.ours_prefix, &suffix)) {
        continue;
      }
      std::string floor = absl::StrCat(rule.floor_prefix, suffix);
      auto it = times_.find(floor);
      if (it == times_.end()) {
        ++*missing;
        continue;
      }
      rows.push_back({name, floor, time.ns_per_op_per_thread,
                      it->second.ns_per_op_per_thread, rule.bar});
    }
  }
  return rows;
}

void RatioReporter::PrintTable(const std::vector<Row>& rows, int missing) {
  const bool console =
      dynamic_cast<benchmark::ConsoleReporter*>(display_) != nullptr;
  std::ostream& out =
      console ? display_->GetOutputStream() : display_->GetErrorStream();
  out << "\nOverhead ratios: time per op per thread (wall for real_time "
         "runs, else CPU), "
      << (repetitions_ > 1 ? absl::StrCat("median of ", repetitions_)
                           : std::string("single run"))
      << "\n";
  size_t ours_width = 4;
  size_t floor_width = 5;
  for (const Row& row : rows) {
    ours_width = std::max(ours_width, row.ours.size());
    floor_width = std::max(floor_width, row.floor.size());
  }
  out << FormatRow({"ours", "floor"}, ours_width, floor_width);
  failures_ = 0;
  for (const Row& row : rows) {
    out << FormatRow(row, ours_width, floor_width);
    if (row.bar != kNoBar && row.ours_ns / row.floor_ns > row.bar) {
      ++failures_;
    }
  }
  if (missing > 0) {
    out << missing << " ratio(s) skipped: the floor run is missing "
        << "(filtered out or failed)\n";
  }
  out << (failures_ == 0 ? "All bars met.\n"
                         : absl::StrCat(failures_, " bar(s) missed.\n"));
  out.flush();
}

// One line of the table; a row without times (floor_ns 0) gives the column
// headings.
std::string RatioReporter::FormatRow(const Row& row, size_t ours_width,
                                     size_t floor_width) {
  const int ow = static_cast<int>(ours_width);
  const int fw = static_cast<int>(floor_width);
  if (row.floor_ns == 0) {
    return absl::StrFormat("%-*s  %-*s  %10s  %10s  %6s  %7s  %s\n", ow,
                           row.ours, fw, row.floor, "ours", "floor", "ratio",
                           "bar", "verdict");
  }
  const double ratio = row.ours_ns / row.floor_ns;
  std::string bar = "-";
  std::string verdict = "info";
  if (row.bar != kNoBar) {
    bar = absl::StrFormat("<= %.2f", row.bar);
    verdict = ratio <= row.bar ? "PASS" : "FAIL";
  }
  return absl::StrFormat("%-*s  %-*s  %10s  %10s  %6.2f  %7s  %s\n", ow,
                         row.ours, fw, row.floor, FormatNanos(row.ours_ns),
                         FormatNanos(row.floor_ns), ratio, bar, verdict);
}

}  // namespace certstore::bench

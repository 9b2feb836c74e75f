// main() of every certstore benchmark binary: records library versions in
// the benchmark context, warns about unoptimised builds, and prints the
// overhead table (ratio_reporter.h) after the runs.
#include <benchmark/benchmark.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#include <cstdio>
#include <string>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "bench/ratio_reporter.h"

#ifndef CERTSTORE_BUILD_TYPE
#define CERTSTORE_BUILD_TYPE "unknown"
#endif
#ifndef CERTSTORE_BENCHMARK_VERSION
#define CERTSTORE_BENCHMARK_VERSION "unknown"
#endif

namespace certstore::bench {
namespace {

#if defined(__OPTIMIZE__) && defined(NDEBUG)
constexpr bool kOptimized = true;
#else
constexpr bool kOptimized = false;
#endif

void AddLibraryContext() {
  benchmark::AddCustomContext("certstore_build_type", CERTSTORE_BUILD_TYPE);
  benchmark::AddCustomContext("certstore_optimized", kOptimized ? "yes" : "NO");
  benchmark::AddCustomContext("openssl", OpenSSL_version(OPENSSL_VERSION));
  benchmark::AddCustomContext("openssl_headers", OPENSSL_VERSION_TEXT);
  benchmark::AddCustomContext("abseil_lts",
                              absl::StrCat(ABSL_LTS_RELEASE_VERSION, ".",
                                           ABSL_LTS_RELEASE_PATCH_LEVEL));
  // Debian builds libbenchmark without NDEBUG, hence its "Library was built
  // as DEBUG" warning; the timed loop is inlined into our optimised code.
  benchmark::AddCustomContext("google_benchmark", CERTSTORE_BENCHMARK_VERSION);
#if defined(__clang__)
  benchmark::AddCustomContext("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  benchmark::AddCustomContext("compiler", "gcc " __VERSION__);
#endif
}

}  // namespace
}  // namespace certstore::bench

int main(int argc, char** argv) {
  if (!certstore::bench::kOptimized) {
    std::fprintf(stderr,
                 "***WARNING*** certstore benchmarks built without "
                 "optimisation (build type %s): timings are not "
                 "representative; use scripts/bench\n",
                 CERTSTORE_BUILD_TYPE);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  certstore::bench::AddLibraryContext();
  certstore::bench::RatioReporter reporter(
      benchmark::CreateDefaultDisplayReporter());
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

// Runs a program as a child process with separate stdout and stderr, extra
// environment entries, optional stdin, and a bound on its run time (killed
// past it). For tests that drive real binaries: the CLI, openssl, pkcs11-tool.
#ifndef CERTSTORE_TESTS_SUPPORT_SUBPROCESS_H_
#define CERTSTORE_TESTS_SUPPORT_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace certstore::testing {

struct ProcessOptions {
  std::vector<std::string> env;  // "NAME=value", added to (and overriding) ours
  std::string stdin_text;        // written to the child's stdin, then closed
  absl::Duration timeout = absl::Seconds(60);
};

struct ProcessResult {
  int exit_code = -1;    // -1: killed by a signal or did not start
  int signal = 0;        // the signal that ended it (SIGABRT, SIGSEGV…), or 0
  long max_rss_kib = 0;  // its peak resident set
  std::string out;       // stdout
  std::string err;       // stderr (or why it did not start)
  absl::Duration elapsed;
  bool timed_out = false;  // killed after options.timeout
};

// argv[0] is looked up in PATH.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const ProcessOptions& options = {});

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SUPPORT_SUBPROCESS_H_

// The certstore command's exit codes (docs/cli.md), and the one mapping
// from absl::Status to them.
#ifndef CERTSTORE_CLI_EXIT_CODES_H_
#define CERTSTORE_CLI_EXIT_CODES_H_

#include "absl/status/status.h"

namespace certstore::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,  // anything not below; also "fresh" for needs-renewal
  kExitUsage = 2,  // bad command line, input or configuration (InvalidArgument)
  kExitNotFound = 3,     // no such alias, file or token
  kExitPermission = 4,   // file modes, owner, PIN; credential refused
  kExitUnavailable = 5,  // busy, token absent, network, deadline: retryable
  kExitKeyUnusable = 6,  // key cannot sign or does not match
};

// OK 0, InvalidArgument 2, NotFound 3, PermissionDenied/Unauthenticated 4,
// Unavailable/DeadlineExceeded 5, FailedPrecondition 6, anything else 1.
int ExitCodeFor(const absl::Status& status);

// The exit-code table for --help footers.
inline constexpr const char* kExitCodeHelp =
    "Exit codes: 0 ok; 1 failure; 2 usage, bad input or configuration; "
    "3 not found; 4 permission, PIN or credential refused; 5 unavailable or "
    "timed out (retryable); 6 key unusable or mismatched.";

}  // namespace certstore::cli

#endif  // CERTSTORE_CLI_EXIT_CODES_H_

// Runs the real `certstore` binary as a child process and reads what it
// printed; writes credential files for it to import.
#ifndef CERTSTORE_TESTS_CLI_CLI_RUNNER_H_
#define CERTSTORE_TESTS_CLI_CLI_RUNNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "certstore/key.h"
#include "nlohmann/json.hpp"
#include "tests/support/files.h"
#include "tests/support/replay_seed.h"
#include "tests/support/subprocess.h"

namespace certstore::testing {

// `certstore <args>` with an isolated environment: no CERTSTORE_URI /
// CERTSTORE_CONFIG from the caller, XDG_STATE_HOME in the test's temp dir.
ProcessResult RunCli(const std::vector<std::string>& args,
                     std::vector<std::string> env = {},
                     absl::Duration timeout = absl::Seconds(60));

// `certstore <args>` as RunCli, SIGKILLed at `kill_after` if it is still
// running then (timed_out says so): the kill storms' step.
ProcessResult RunCliKilledAfter(const std::vector<std::string>& args,
                                absl::Duration kill_after);

// Knobs of the long CLI loops (drills, kill storms): the integer in the
// environment variable `name`, or `fallback`.
int LoopCount(const char* name, int fallback);

// Every line of `out` parsed as JSON (a line that does not parse fails the
// test and is skipped).
std::vector<nlohmann::json> JsonLines(const std::string& out);

// The lines of `out` whose "kind" is `kind`.
std::vector<nlohmann::json> JsonOfKind(const std::string& out,
                                       const std::string& kind);

// A PKCS#12 file of `chain_der` (leaf first) and `key`, encrypted with
// `password` (OpenSSL 3 defaults: AES-256-CBC, PBKDF2).
std::string MakePkcs12(const std::vector<std::string>& chain_der,
                       const Key& key, const std::string& password);

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_CLI_CLI_RUNNER_H_

// `certstore doctor`: walks the path of an mTLS token call step by step —
// store, entry, key, chain, endpoint, handshake, issuer, token — and reports
// each check with ✓ / ✗ / – (skipped) and one line saying why. Bounded by
// --deadline as a whole; it never changes the store.
#ifndef CERTSTORE_CLI_DOCTOR_H_
#define CERTSTORE_CLI_DOCTOR_H_

#include <string>
#include <vector>

#include "cli/commands.h"

namespace certstore::cli {

struct DoctorFlags {
  std::string alias;  // empty: store and endpoint only
  std::string endpoint;
  std::string server_ca_file;
  std::string scope = "https://certstore-doctor.invalid";
  std::string deadline = "15s";
  std::string connect_timeout = "3s";
  std::string handshake_timeout = "5s";
  // Generic RFC 8705 mode, as `certstore token --token-endpoint`.
  std::string token_endpoint;
  std::string client_id;
  std::vector<std::string> params;  // "name=value"
};

// The exit code of the first failing check; 0 when every check passed.
absl::StatusOr<int> RunDoctor(CommandContext& context,
                              const DoctorFlags& flags);

}  // namespace certstore::cli

#endif  // CERTSTORE_CLI_DOCTOR_H_

// The verbs of the certstore command, one function each. main.cc parses the
// command line into these flag structs; each Run* prints its result through
// Output and returns its exit code (exit_codes.h), or the error that ended it
// (main prints it and exits with ExitCodeFor).
#ifndef CERTSTORE_CLI_COMMANDS_H_
#define CERTSTORE_CLI_COMMANDS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "certstore/layered_store.h"
#include "cli/credential_files.h"
#include "cli/output.h"

namespace certstore::cli {

struct GlobalFlags {
  std::string store;   // --store URI
  std::string config;  // --config FILE
  std::string output = "text";
  bool quiet = false;
  bool verbose = false;
};

// What every verb shares: the output and the store, opened on first use
// from --store / CERTSTORE_URI / --config / CERTSTORE_CONFIG / the default.
class CommandContext {
 public:
  CommandContext(const GlobalFlags& flags, Output& output)
      : flags_(flags), out_(output) {}

  Output& out() { return out_; }
  // Errors name the (redacted) store URI and keep the backend's code.
  absl::StatusOr<LayeredStore*> Store();
  // The redacted URI of the store (after Store() succeeded or failed).
  const std::string& store_uri() const { return redacted_uri_; }

 private:
  GlobalFlags flags_;
  Output& out_;
  std::unique_ptr<LayeredStore> store_;
  std::string redacted_uri_;
};

struct ListFlags {
  std::string prefix;
  bool all = false;  // also what the store holds but cannot serve
};
struct GcFlags {
  std::string prefix;
  bool dry_run = false;
  bool include_foreign = false;  // also objects certstore did not write
};
struct AliasFlags {
  std::string alias;
};
struct ImportFlags {
  std::string alias;
  CredentialFiles files;
  std::string endpoint;  // metadata the token client records
  std::string client_id;
  std::string tenant_id;
  bool strict = false;  // refuse what would only be warned about
};
struct ExportFlags {
  std::string alias;
  std::string out_file;  // empty: stdout (chain only)
  bool include_key = false;
  bool force = false;  // overwrite out_file
};
struct DeleteFlags {
  std::string alias;
  std::string layer;  // index (0 = top) or layer URI; empty: every layer
};
struct TokenFlags {
  std::string scope;
  std::string issuing_url;  // or $CERTSTORE_ISSUING_URL
  // Generic RFC 8705 mode (set token_endpoint): any mTLS token endpoint.
  std::string token_endpoint;
  std::string client_id;
  std::string alias;                // default: client_id
  std::vector<std::string> params;  // "name=value", more form parameters
  std::string server_ca_file;
  std::string key_type = "ec-p256";
  bool attestation = false;
  bool print_token = false;
  std::string timeout = "20s";
};
struct NeedsRenewalFlags {
  std::string alias;
  std::string expires_in;  // "24h" before not_after, or "66%" of lifetime
  bool invert = false;
};

absl::StatusOr<int> RunList(CommandContext& context, const ListFlags& flags);
absl::StatusOr<int> RunShow(CommandContext& context, const AliasFlags& flags);
absl::StatusOr<int> RunImport(CommandContext& context,
                              const ImportFlags& flags);
absl::StatusOr<int> RunExport(CommandContext& context,
                              const ExportFlags& flags);
absl::StatusOr<int> RunDelete(CommandContext& context,
                              const DeleteFlags& flags);
absl::StatusOr<int> RunEvict(CommandContext& context, const AliasFlags& flags);
absl::StatusOr<int> RunGc(CommandContext& context, const GcFlags& flags);
absl::StatusOr<int> RunProbe(CommandContext& context, const AliasFlags& flags);
absl::StatusOr<int> RunToken(CommandContext& context, const TokenFlags& flags);
absl::StatusOr<int> RunNeedsRenewal(CommandContext& context,
                                    const NeedsRenewalFlags& flags);

// The entry a verb works on: the first layer's entry valid now, whatever
// its remaining lifetime. Layers are asked one by one, because the layered
// store treats a damaged entry as a miss and the damage is what the operator
// needs to see. When none is valid now, says why: expired or not yet valid
// (OutOfRange), stored but not served (DataLoss: damaged, key missing or not
// the certificate's), or absent (NotFound).
absl::StatusOr<std::shared_ptr<const Entry>> FindValidNow(
    LayeredStore& store, const std::string& alias);

// InvalidArgument naming `flag` for anything absl::ParseDuration refuses or
// a duration <= 0.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& value,
                                                 absl::string_view flag);

}  // namespace certstore::cli

#endif  // CERTSTORE_CLI_COMMANDS_H_

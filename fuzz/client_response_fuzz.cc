// The token client's view of server answers: the issuecredential response
// (ParseIssuedCredential), and the metadata and token responses through
// the same JSON readers the client uses (ParseJsonObject, JsonString,
// JsonInteger; the fields it reads). Invariants: never an exception; a
// parsed credential has 1..8 certificates; any parsed JSON dumps to valid
// JSON that parses back.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/internal/json.h"
#include "client/csr.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using certstore::fuzz::Check;
  namespace internal = certstore::internal;
  const std::string body(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<certstore::EntryParts> issued =
      certstore::client_internal::ParseIssuedCredential(body, "fuzz");
  if (issued.ok()) {
    Check(!issued->chain_der.empty() && issued->chain_der.size() <= 8,
          "an issued chain of impossible length");
  }

  std::optional<internal::Json> json = internal::ParseJsonObject(body);
  if (!json.has_value()) {
    return 0;
  }
  for (const char* field : {"clientId", "tenantId", "access_token",
                            "token_type", "error", "error_description"}) {
    (void)internal::JsonString(*json, field);
  }
  if (std::optional<int64_t> expires =
          internal::JsonInteger(*json, "expires_in", 1, 366 * 86400)) {
    Check(*expires >= 1 && *expires <= 366 * 86400, "expires_in out of range");
  }
  const std::string dumped = internal::DumpJson(*json);
  Check(internal::ParseJsonObject(dumped).has_value() ||
            dumped.size() > internal::kMaxJsonBytes,
        "dumped JSON does not parse back", dumped);
  return 0;
}

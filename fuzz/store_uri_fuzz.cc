// Store URIs and the JSON config file: SplitStoreUri, RedactStoreUri,
// StoreUriFromConfig. Invariants: no secret in a message or a redacted
// URI; a split URI joined and split again gives the same layers; a config
// that parses names a URI within the URI limits.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "backends/store_config_internal.h"
#include "certstore/open_store.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using certstore::fuzz::Check;
  using certstore::fuzz::CheckNoSecret;
  const std::string input(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<std::vector<std::string>> layers =
      certstore::SplitStoreUri(input);
  if (layers.ok()) {
    Check(!layers->empty(), "an accepted URI has no layer", input);
    absl::StatusOr<std::vector<std::string>> again =
        certstore::SplitStoreUri(absl::StrJoin(*layers, ","));
    Check(again.ok() && *again == *layers, "split is not stable", input);
  }
  CheckNoSecret(input, [](const std::string& uri) {
    return std::string(certstore::SplitStoreUri(uri).status().message());
  });
  CheckNoSecret(input, [](const std::string& uri) {
    return certstore::RedactStoreUri(uri);
  });
  CheckNoSecret(input, [](const std::string& text) {
    return std::string(
        certstore::internal::StoreUriFromConfig(text, "fuzz.json")
            .status()
            .message());
  });
  return 0;
}

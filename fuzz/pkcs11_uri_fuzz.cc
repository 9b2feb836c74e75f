// pkcs11: store URIs (RFC 7512 attributes and certstore's query options):
// ParsePkcs11Uri. Invariants: no PIN in a message, wherever the
// pin-value sits in the URI; an accepted URI names a module and a token;
// its options, printed back with the project's encoder, parse the same.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "api/internal/percent_encoding.h"
#include "certstore/pkcs11_store.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using certstore::fuzz::Check;
  const std::string input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<certstore::Pkcs11StoreOptions> options =
      certstore::ParsePkcs11Uri(input);
  certstore::fuzz::CheckNoSecret(input, [](const std::string& uri) {
    return std::string(certstore::ParsePkcs11Uri(uri).status().message());
  });
  if (!options.ok()) {
    return 0;
  }
  Check(!options->token_label.empty(), "accepted without a token", input);
  using certstore::internal::PercentEncode;
  std::string printed = absl::StrCat(
      "pkcs11:token=", PercentEncode(options->token_label),
      "?module-path=", PercentEncode(options->module_path, "/"),
      "&x-allow-import=", options->allow_import ? "true" : "false");
  if (!options->pin_file.empty()) {
    absl::StrAppend(&printed,
                    "&pin-source=file:", PercentEncode(options->pin_file, "/"));
  }
  if (!options->lock_dir.empty()) {
    absl::StrAppend(&printed,
                    "&x-lock-dir=", PercentEncode(options->lock_dir, "/"));
  }
  if (options->token_lease > absl::ZeroDuration()) {
    absl::StrAppend(&printed, "&x-token-lease=",
                    absl::ToInt64Seconds(options->token_lease));
  }
  absl::StatusOr<certstore::Pkcs11StoreOptions> again =
      certstore::ParsePkcs11Uri(printed);
  Check(again.ok(), "re-printed URI refused", input);
  Check(again->token_label == options->token_label &&
            again->module_path == options->module_path &&
            again->pin_file == options->pin_file &&
            again->lock_dir == options->lock_dir &&
            again->token_lease == options->token_lease &&
            again->allow_import == options->allow_import,
        "re-printed URI parses differently", input);
  return 0;
}

// pkcs11: store URIs (RFC 7512 attributes and certstore's query options):
// ParsePkcs11Uri. Invariants: no PIN in a message, wherever the
// pin-value sits in the URI; an accepted URI names a module and a token.
#include <cstddef>
#include <cstdint>
#include <string>

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
  return 0;
}

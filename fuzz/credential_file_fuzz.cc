// The CLI's credential files: PEM bundles, PEM certificates + key, PKCS#12
// (DecodeCredential). Invariants: no exception, no password in a message,
// and a credential that decodes has its key's certificate first.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "certstore/backend_author.h"
#include "certstore/entry.h"
#include "cli/credential_files.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using certstore::fuzz::Check;
  FuzzedDataProvider input(data, size);
  const std::string password =
      "fuzz-password-" + input.ConsumeRandomLengthString(16);
  certstore::cli::CredentialKey key_file;
  key_file.separate = input.ConsumeBool();
  key_file.path = "key.pem";
  if (key_file.separate) {
    key_file.content = input.ConsumeRandomLengthString(8192);
  }
  const std::string content = input.ConsumeRemainingBytesAsString();
  absl::StatusOr<certstore::cli::Credential> credential =
      certstore::cli::DecodeCredential("credential.bin", content, key_file,
                                       password, true);
  if (!credential.ok()) {
    Check(
        credential.status().message().find(password) == absl::string_view::npos,
        "the password reached a message", credential.status().message());
    return 0;
  }
  Check(!credential->chain_der.empty() && credential->key != nullptr,
        "a credential without chain or key");
  certstore::EntryParts parts;
  parts.alias = "fuzz";
  parts.chain_der = credential->chain_der;
  parts.key = credential->key;
  absl::StatusOr<std::shared_ptr<const certstore::Entry>> entry =
      certstore::Entry::Create(std::move(parts));
  if (entry.ok()) {
    Check(certstore::CheckKeyMatchesLeaf(**entry).ok(),
          "the first certificate is not the key's");
  }
  return 0;
}

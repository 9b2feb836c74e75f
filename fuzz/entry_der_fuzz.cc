// Entry creation from arbitrary DER: the input is split into a PKCS#8 key
// and up to four certificates; SoftwareKeyFromPkcs8Der, Entry::Create and
// CheckKeyMatchesLeaf run on them. Invariants: an entry's thumbprint is
// its leaf's; a key that decodes re-exports to PKCS#8 that decodes to the
// same public key.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "certstore/backend_author.h"
#include "certstore/chain.h"
#include "certstore/entry.h"
#include "certstore/key.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using certstore::fuzz::Check;
  FuzzedDataProvider input(data, size);
  const auto hint = input.PickValueInArray({certstore::KeyTypeHint::kAuto,
                                            certstore::KeyTypeHint::kRsa,
                                            certstore::KeyTypeHint::kEc});
  const std::string key_der = input.ConsumeRandomLengthString(4096);
  certstore::EntryParts parts;
  parts.alias = input.ConsumeRandomLengthString(64);
  const int certificates = input.ConsumeIntegralInRange(0, 4);
  for (int i = 0; i < certificates; ++i) {
    parts.chain_der.push_back(input.ConsumeRandomLengthString(4096));
  }
  absl::StatusOr<std::shared_ptr<const certstore::Key>> key =
      certstore::SoftwareKeyFromPkcs8Der(key_der, hint);
  if (key.ok()) {
    absl::StatusOr<std::string> exported = (*key)->ExportPkcs8Der();
    Check(exported.ok(), "a software key does not export");
    absl::StatusOr<std::shared_ptr<const certstore::Key>> again =
        certstore::SoftwareKeyFromPkcs8Der(*exported);
    Check(again.ok() && (*again)->public_key_der() == (*key)->public_key_der(),
          "key round trip changed the public key");
    parts.key = *key;
  }
  absl::StatusOr<std::shared_ptr<const certstore::Entry>> entry =
      certstore::Entry::Create(std::move(parts));
  if (entry.ok()) {
    Check((*entry)->thumbprint() ==
              certstore::Thumbprint((*entry)->chain_der()[0]),
          "entry thumbprint is not its leaf's");
    (void)certstore::CheckKeyMatchesLeaf(**entry);
  }
  return 0;
}

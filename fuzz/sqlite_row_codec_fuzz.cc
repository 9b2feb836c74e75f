// The SQLite store's row codec on arbitrary row bytes: DecodeRow and
// InfoOfRow (half the inputs carry a valid digest, so that decoding goes
// past it), UnframeChain. Invariants: a row that decodes re-encodes to a
// row that decodes to the same entry; framing round-trips.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "sqlite/row_codec_internal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using certstore::fuzz::Check;
  namespace sq = certstore::sqlite_internal;
  FuzzedDataProvider input(data, size);
  sq::StoredRow row;
  row.id = input.ConsumeIntegral<int64_t>();
  row.alias = input.ConsumeRandomLengthString(64);
  row.thumbprint = input.ConsumeRandomLengthString(64);
  row.not_before = input.ConsumeIntegral<int64_t>();
  row.not_after = input.ConsumeIntegral<int64_t>();
  row.created_at_ns = input.ConsumeIntegral<int64_t>();
  row.key_type = input.ConsumeIntegralInRange<int64_t>(-1, 3);
  row.key_algorithm = input.ConsumeRandomLengthString(16);
  row.key_encrypted = false;
  row.key_der = input.ConsumeRandomLengthString(4096);
  row.endpoint = input.ConsumeRandomLengthString(64);
  row.client_id = input.ConsumeRandomLengthString(64);
  row.tenant_id = input.ConsumeRandomLengthString(64);
  const bool valid_digest = input.ConsumeBool();
  row.chain = input.ConsumeRemainingBytesAsString();
  row.digest = valid_digest ? sq::RowDigest(row) : std::string(32, '\0');

  (void)sq::InfoOfRow(row, "sqlite:/fuzz");
  absl::StatusOr<std::vector<std::string>> chain = sq::UnframeChain(row.chain);
  if (chain.ok()) {
    absl::StatusOr<std::vector<std::string>> again =
        sq::UnframeChain(sq::FrameChain(*chain));
    Check(again.ok() && *again == *chain, "chain framing round trip");
  }
  absl::StatusOr<std::shared_ptr<const certstore::Entry>> entry =
      sq::DecodeRow(row, nullptr);
  if (!entry.ok()) {
    return 0;
  }
  absl::StatusOr<sq::StoredRow> encoded = sq::EncodeEntry(**entry, nullptr);
  Check(encoded.ok(), "a decoded entry does not encode",
        encoded.status().message());
  absl::StatusOr<std::shared_ptr<const certstore::Entry>> again =
      sq::DecodeRow(*encoded, nullptr);
  Check(again.ok() && (*again)->thumbprint() == (*entry)->thumbprint() &&
            (*again)->alias() == (*entry)->alias() &&
            (*again)->metadata() == (*entry)->metadata(),
        "row round trip changed the entry");
  return 0;
}

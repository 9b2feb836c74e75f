// The store config file's format, apart from reading the file: what
// ResolveStoreUri does with its bytes, and what fuzz/ drives.
// Project-internal.
#ifndef CERTSTORE_BACKENDS_STORE_CONFIG_INTERNAL_H_
#define CERTSTORE_BACKENDS_STORE_CONFIG_INTERNAL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certstore::internal {

// The store URI a config names: {"store": "<uri>"} or {"layers": [...]}
// (joined with ","). InvalidArgument naming `source` for anything else.
absl::StatusOr<std::string> StoreUriFromConfig(absl::string_view text,
                                               absl::string_view source);

}  // namespace certstore::internal

#endif  // CERTSTORE_BACKENDS_STORE_CONFIG_INTERNAL_H_

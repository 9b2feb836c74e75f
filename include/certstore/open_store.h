/// \file
/// The store registry: one URI (or config) picks the backends, memory fronts
/// them. Applications call OpenStore and never name a backend.
///
///   memory:                                  in process
///   sqlite:/var/lib/app/certstore.db[?busy-budget-ms=N&passphrase-file=P&journal=auto|rollback]
///   file:/var/lib/app/certs                  a PEM directory
///   pkcs11:token=app?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/app/pin
///
/// Layers are a comma-separated list, top first: "memory:,sqlite:/x.db". A
/// comma starts a new layer only when a known scheme follows it, so commas
/// inside a PKCS#11 attribute stay where they are. memory: may only be the
/// top layer. Paths are absolute; %XX escapes are decoded (not %00).
#ifndef CERTSTORE_OPEN_STORE_H_
#define CERTSTORE_OPEN_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/clock.h"
#include "certstore/export.h"
#include "certstore/layered_store.h"
#include "certstore/observability.h"

namespace certstore {

/// URIs longer than this are refused before any parsing.
inline constexpr size_t kMaxStoreUriBytes = 8192;

/// Config files larger than this are refused before they are read.
inline constexpr size_t kMaxConfigBytes = 64 * 1024;

struct OpenStoreOptions {
  const Clock* clock = nullptr;  ///< for every layer; null: Clock::System()
  LogCallback log;               ///< for the layered cache
};

/// The schemes this build of certstore opens, e.g. {"memory:", "sqlite:",
/// "file:", "pkcs11:"}: sqlite: and pkcs11: only when built with
/// CERTSTORE_WITH_SQLITE / CERTSTORE_WITH_PKCS11.
CERTSTORE_EXPORT std::vector<std::string> StoreSchemes();

/// Splits a store URI into its layers' URIs, top first. InvalidArgument
/// (quoting the offending part, never a PIN) for an empty or oversized URI,
/// an empty layer, NUL bytes, or a scheme this build does not have (the
/// message lists the ones it has).
CERTSTORE_EXPORT absl::StatusOr<std::vector<std::string>> SplitStoreUri(
    absl::string_view uri);

/// Opens every layer of `uri` and composes them. Always a LayeredStore, even
/// for one layer, so that every store opened from a URI reports the same
/// metrics and bypasses a failing layer the same way. Errors are
/// SplitStoreUri's, or the failing layer's Open error.
CERTSTORE_EXPORT absl::StatusOr<std::unique_ptr<LayeredStore>> OpenStore(
    absl::string_view uri, const OpenStoreOptions& options = {});

/// Where the store URI comes from, first match wins: `flag_store`, then
/// $CERTSTORE_URI, then the "store" of the JSON config at `flag_config` or
/// $CERTSTORE_CONFIG, then the embedded default
/// `memory:,sqlite:<state dir>/certstore.db` (state dir:
/// $XDG_STATE_HOME/certstore or ~/.local/state/certstore, created 0700).
/// Config: `{"store": "URI"}` or `{"layers": ["URI", …]}`. InvalidArgument
/// naming the file and what was expected for a malformed config, a file
/// that is not a regular file (a device, a FIFO), or one larger than
/// kMaxConfigBytes.
CERTSTORE_EXPORT absl::StatusOr<std::string> ResolveStoreUri(
    absl::string_view flag_store, absl::string_view flag_config);

/// The embedded default, creating its state directory.
CERTSTORE_EXPORT absl::StatusOr<std::string> DefaultStoreUri();

/// The URI with secret-looking attributes (pin-value, passphrase) masked,
/// for messages.
CERTSTORE_EXPORT std::string RedactStoreUri(absl::string_view uri);

}  // namespace certstore

#endif  // CERTSTORE_OPEN_STORE_H_

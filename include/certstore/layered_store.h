/// \file
/// LayeredStore: composes stores, top first (memory over a persistent store),
/// into one CertStore: lookups served from the fastest layer that has the
/// entry, writes and evictions through every layer, and a layer that fails
/// bypassed rather than failing the call. Minting (single flight, sticky
/// eviction, renewal) is MintCoordinator's, on this or any other store.
#ifndef CERTSTORE_LAYERED_STORE_H_
#define CERTSTORE_LAYERED_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/cert_store.h"
#include "certstore/export.h"
#include "certstore/observability.h"

namespace certstore {

struct LayeredStoreOptions {
  /// Warnings (a layer bypassed, a failed back-fill) and info (evictions).
  /// Silent when empty.
  LogCallback log;
};

/// Counters since the store was opened.
struct LayeredStoreMetrics {
  std::vector<int64_t> hits_per_layer;  ///< index 0 = top
  int64_t misses = 0;                   ///< no layer had a servable entry
  int64_t backfills = 0;
  int64_t puts = 0;
  int64_t evictions = 0;     ///< DeleteAllForAlias calls
  int64_t degradations = 0;  ///< a layer failed and was bypassed
};

/// Thread-safe, like every CertStore; Find on a top-layer hit takes no lock.
class CERTSTORE_EXPORT LayeredStore : public CertStore {
 public:
  /// Takes ownership of `layers` (top first, at least one, none null).
  /// InvalidArgument for no layers or a null one.
  static absl::StatusOr<std::unique_ptr<LayeredStore>> Open(
      std::vector<std::unique_ptr<CertStore>> layers,
      const LayeredStoreOptions& options = {});

  // The CertStore methods compose the layers:
  // - Name(): the layer names joined with ',', top first.
  // - Find: the first layer with a servable entry wins; a hit below the top
  //   is back-filled into the layers above. A failing layer (Unavailable,
  //   PermissionDenied, DataLoss, DeadlineExceeded, ResourceExhausted) is
  //   skipped with a warning. When no layer has a servable entry and one
  //   reported damage, Find returns that DataLoss rather than NotFound, so
  //   that a caller (MintCoordinator) evicts the damaged entry.
  // - Put: writes through every layer, bottom first. An entry a layer
  //   refuses (InvalidArgument, FailedPrecondition) is refused and nothing
  //   is written; a failing layer is skipped with a warning as long as one
  //   layer stored the entry.
  // - DeleteAllForAlias: every layer; returns how many distinct entries
  //   (by thumbprint) were removed across layers. A layer that fails
  //   (degradable, as above) is skipped with a warning.
  // - ProbeKey, CreateKey: the bottom layer, where keys live.
  // - LockAlias: the bottom layer's (cross-process for persistent stores).
  // - List: the union, one EntryInfo per (alias, thumbprint); its `store`
  //   names every layer that holds it.

  /// Counters since Open (each a sum of per-thread stripes: exact once the
  /// calls counted have returned).
  virtual LayeredStoreMetrics Metrics() const = 0;

  /// The layers, top first (owned by this store).
  virtual const std::vector<CertStore*>& layers() const = 0;
};

}  // namespace certstore

#endif  // CERTSTORE_LAYERED_STORE_H_

// LayeredStore: composes stores, top first (memory over a persistent store),
// into one CertStore with single-flight minting and sticky eviction.
#ifndef CERTSTORE_CACHE_LAYERED_STORE_H_
#define CERTSTORE_CACHE_LAYERED_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/observability.h"

namespace certstore {

struct LayeredStoreOptions {
  // Time source for renewal decisions; null means Clock::System(). Give the
  // layers the same clock.
  const Clock* clock = nullptr;
  // Warnings (degradation, failed back-fill) and info (mints, evictions).
  LogCallback log;
  // How long GetOrCreate waits for the bottom layer's cross-process mint
  // lock before minting without it (busy -> degrade, never hang).
  absl::Duration lock_timeout = absl::Milliseconds(500);
  // An entry is renewed once this fraction of its lifetime has passed,
  // +/- renewal_jitter (a fraction of the lifetime, fixed per certificate so
  // every process agrees).
  double renewal_fraction = 0.5;
  double renewal_jitter = 0.1;
};

// Counters since the store was opened.
struct LayeredStoreMetrics {
  std::vector<int64_t> hits_per_layer;  // index 0 = top
  int64_t misses = 0;                   // no layer had a servable entry
  int64_t backfills = 0;
  int64_t puts = 0;
  int64_t evictions = 0;  // DeleteAllForAlias calls
  int64_t mints = 0;      // successful mints through GetOrCreate
  int64_t mint_failures = 0;
  int64_t renewals = 0;      // mints triggered by the renewal point
  int64_t degradations = 0;  // a layer failed and was bypassed
};

// When an entry passes its renewal point: not_before + lifetime x
// (renewal_fraction +/- renewal_jitter). The jitter is derived from the
// thumbprint's bytes, so every process (and the CLI) computes the same time.
absl::Time RenewalTime(absl::Time not_before, absl::Time not_after,
                       absl::string_view thumbprint,
                       const LayeredStoreOptions& options = {});

// Makes a new entry for `alias` (CreateKey on the store, CSR, issue, build
// the Entry). GetOrCreate stores what it returns.
using MintFunction = std::function<absl::StatusOr<std::shared_ptr<const Entry>>(
    absl::string_view alias)>;

class LayeredStore : public CertStore {
 public:
  // Takes ownership of `layers` (top first, at least one, none null).
  static absl::StatusOr<std::unique_ptr<LayeredStore>> Open(
      std::vector<std::unique_ptr<CertStore>> layers,
      const LayeredStoreOptions& options = {});

  // The CertStore methods compose the layers:
  // - Name(): the layer names joined with ',', top first.
  // - Find: the first layer with a servable entry wins; a hit below the top
  //   is back-filled into the layers above. A failing layer (Unavailable,
  //   PermissionDenied, DataLoss) is skipped with a warning.
  // - Put: writes through every layer, bottom first. An entry a layer
  //   refuses (InvalidArgument, FailedPrecondition) is refused and nothing
  //   is written; a failing layer is skipped with a warning as long as one
  //   layer stored the entry.
  // - DeleteAllForAlias: every layer; returns how many distinct entries
  //   (by thumbprint) were removed across layers; and the next
  //   GetOrCreate mints whatever the layers hold, until a mint succeeds.
  // - ProbeKey, CreateKey: the bottom layer, where keys live.
  // - LockAlias: the bottom layer's (cross-process for persistent stores).
  // - List: the union, one EntryInfo per (alias, thumbprint); its `store`
  //   names every layer that holds it.

  // Returns a servable entry for `alias`, minting one with `mint` when no
  // layer has one, after an eviction (sticky until a mint succeeds), or
  // when the entry passed its renewal point (it is still served to everyone
  // else meanwhile; only one caller renews). Concurrent callers in this
  // process share one mint; callers in other processes wait for the bottom
  // layer's lock and find what the winner stored.
  virtual absl::StatusOr<std::shared_ptr<const Entry>> GetOrCreate(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint) = 0;

  // True while `alias` must be minted before anything is served from the
  // layers (after an eviction, until a mint succeeds).
  virtual bool ForceMintPending(absl::string_view alias) const = 0;

  virtual LayeredStoreMetrics Metrics() const = 0;

  // The layers, top first (owned by this store).
  virtual const std::vector<CertStore*>& layers() const = 0;
};

}  // namespace certstore

#endif  // CERTSTORE_CACHE_LAYERED_STORE_H_

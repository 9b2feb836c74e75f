/// \file
/// MintCoordinator: get-or-mint for the aliases of one store, on any
/// CertStore (a single SQLite file as well as a LayeredStore), so that a
/// process that mints credentials (the token client, or your own code)
/// needs nothing but the CertStore interface.
///
///   auto minter = MintCoordinator::Create(store.get());
///   auto entry = (*minter)->GetOrCreate(alias, {}, [&](absl::string_view a) {
///     return MintWithMyCa(*store, a);  // CreateKey, CSR, issue, Entry::Create
///   });
///   ...  // a TLS handshake shows that the key is dead:
///   (*minter)->Evict(alias);             // the next GetOrCreate mints
///
/// Rules:
/// - Single flight. Concurrent GetOrCreate calls for one alias in this
///   process share one mint; other processes wait on the store's LockAlias
///   (cross-process for persistent stores), then find what the winner
///   stored. N racers mint once.
/// - Sticky eviction. After Evict(alias), GetOrCreate mints without looking
///   at the store, until a mint succeeds: a layer that could not be cleared
///   (degraded, unreachable) never serves the evicted credential again, and
///   a failed mint leaves the rule in force.
/// - Damage is evicted. A Find that reports DataLoss (a stored entry that no
///   longer decodes) is treated as Evict + mint, so that a damaged
///   credential is never left behind a fresh one.
/// - Renewal. An entry past its renewal point (RenewalTime) is renewed by
///   one caller while every other caller is still served the current entry;
///   a failed renewal keeps serving it.
///
/// Thread-safe. The coordinator does not own the store, which must outlive
/// it. Several coordinators on one store stay correct (the store's
/// LockAlias serialises their mints) but each keeps its own sticky set.
#ifndef CERTSTORE_MINT_COORDINATOR_H_
#define CERTSTORE_MINT_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/entry.h"
#include "certstore/export.h"
#include "certstore/observability.h"

namespace certstore {

struct MintCoordinatorOptions {
  /// Time source for renewal decisions; null means Clock::System(). Give the
  /// store the same clock.
  const Clock* clock = nullptr;
  /// Warnings (minting without the lock, failed renewals) and info (mints,
  /// evictions). Silent when empty.
  LogCallback log;
  /// How long a mint waits for the store's cross-process LockAlias before
  /// minting without it (busy -> degrade, never hang).
  absl::Duration lock_timeout = absl::Milliseconds(500);
  /// An entry is renewed once this fraction of its lifetime has passed,
  /// +/- renewal_jitter (a fraction of the lifetime, fixed per certificate so
  /// every process agrees). 0 < fraction < 1, 0 <= jitter < min(fraction,
  /// 1 - fraction).
  double renewal_fraction = 0.5;
  double renewal_jitter = 0.1;
};

/// When an entry passes its renewal point: not_before + lifetime x
/// (renewal_fraction +/- renewal_jitter). The jitter is derived from the
/// thumbprint's bytes, so every process (and the CLI) computes the same time.
CERTSTORE_EXPORT absl::Time RenewalTime(
    absl::Time not_before, absl::Time not_after, absl::string_view thumbprint,
    const MintCoordinatorOptions& options = {});

/// Makes a new entry for `alias` (CreateKey on the store, CSR, issue, build
/// the Entry). GetOrCreate stores what it returns; an error, or an entry of
/// another alias, is a failed mint.
using MintFunction = std::function<absl::StatusOr<std::shared_ptr<const Entry>>(
    absl::string_view alias)>;

/// Counters since the coordinator was created.
struct MintMetrics {
  int64_t mints = 0;           ///< mints stored
  int64_t mint_failures = 0;   ///< mint function or Put failed
  int64_t renewals = 0;        ///< mints triggered by the renewal point
  int64_t evictions = 0;       ///< Evict calls, and damage found by Find
  int64_t unlocked_mints = 0;  ///< LockAlias failed; minted without it
};

class CERTSTORE_EXPORT MintCoordinator {
 public:
  /// `store` is not owned and must outlive the coordinator. InvalidArgument
  /// for a null store or renewal settings out of range.
  static absl::StatusOr<std::unique_ptr<MintCoordinator>> Create(
      CertStore* store, const MintCoordinatorOptions& options = {});

  MintCoordinator() = default;
  MintCoordinator(const MintCoordinator&) = delete;
  MintCoordinator& operator=(const MintCoordinator&) = delete;
  virtual ~MintCoordinator() = default;

  /// Returns a servable entry for `alias` (see FindOptions), minting one with
  /// `mint` when the store has none, after Evict (until a mint succeeds),
  /// after Find reported damage, or when the entry passed its renewal point.
  /// Errors: InvalidArgument for a bad alias; the store's Find error when it
  /// is neither NotFound nor DataLoss (e.g. Unavailable: nothing is minted);
  /// the mint's or the Put's error, prefixed with the store and alias.
  virtual absl::StatusOr<std::shared_ptr<const Entry>> GetOrCreate(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint) = 0;

  /// Evicts `alias`: marks it for minting (sticky, see above), then
  /// DeleteAllForAlias on the store. Returns how many entries the store
  /// removed; the mark holds even when the delete fails.
  virtual absl::StatusOr<int> Evict(absl::string_view alias) = 0;

  /// True while `alias` must be minted before anything is served from the
  /// store (after Evict, until a mint succeeds).
  virtual bool ForceMintPending(absl::string_view alias) const = 0;

  virtual MintMetrics Metrics() const = 0;

  /// The store this coordinator mints into.
  virtual CertStore& store() const = 0;
};

}  // namespace certstore

#endif  // CERTSTORE_MINT_COORDINATOR_H_

#include "certstore/mint_coordinator.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "certstore/backend_author.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"

namespace certstore {
namespace {

constexpr absl::string_view kComponent = "mint";

// One in-process mint for an alias; later callers wait for its result.
struct Flight {
  absl::Notification done;
  absl::StatusOr<std::shared_ptr<const Entry>> result =
      absl::UnknownError("mint in flight");
};

class MintCoordinatorImpl final : public MintCoordinator {
 public:
  MintCoordinatorImpl(CertStore* store, const MintCoordinatorOptions& options)
      : store_(store),
        options_(options),
        clock_(options.clock != nullptr ? options.clock : Clock::System()) {}

  absl::StatusOr<std::shared_ptr<const Entry>> GetOrCreate(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint) override;

  absl::StatusOr<int> Evict(absl::string_view alias) override;

  bool ForceMintPending(absl::string_view alias) const override {
    absl::MutexLock lock(&mu_);
    return force_mint_.contains(alias);
  }

  MintMetrics Metrics() const override {
    MintMetrics m;
    m.mints = mints_.Value();
    m.mint_failures = mint_failures_.Value();
    m.renewals = renewals_.Value();
    m.evictions = evictions_.Value();
    m.unlocked_mints = unlocked_mints_.Value();
    return m;
  }

  CertStore& store() const override { return *store_; }

 private:
  void Log(LogLevel level, absl::string_view message) const {
    if (options_.log) {
      options_.log(level, kComponent, message);
    }
  }
  std::string Context(absl::string_view alias) const {
    return OpContext(store_->Name(), "GetOrCreate", alias);
  }

  void SetForceMint(absl::string_view alias, bool on) {
    absl::MutexLock lock(&mu_);
    if (on) {
      force_mint_.insert(std::string(alias));
    } else {
      force_mint_.erase(alias);
    }
  }

  bool PastRenewalPoint(const Entry& entry) const {
    return clock_->Now() >= RenewalTime(entry.not_before(), entry.not_after(),
                                        entry.thumbprint(), options_);
  }
  bool TryStartRenewal(absl::string_view alias) {
    absl::MutexLock lock(&mu_);
    return renewing_.insert(std::string(alias)).second;
  }
  void FinishRenewal(absl::string_view alias) {
    absl::MutexLock lock(&mu_);
    renewing_.erase(alias);
  }

  absl::StatusOr<std::shared_ptr<const Entry>> Renew(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint, std::shared_ptr<const Entry> current);
  absl::StatusOr<std::shared_ptr<const Entry>> MintOnce(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint, bool renewal);
  absl::StatusOr<std::shared_ptr<const Entry>> MintUnderLock(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint, bool renewal);

  CertStore* const store_;
  const MintCoordinatorOptions options_;
  const Clock* const clock_;

  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> force_mint_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> renewing_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_
      ABSL_GUARDED_BY(mu_);

  StripedCounter mints_, mint_failures_, renewals_, evictions_, unlocked_mints_;
};

absl::StatusOr<std::shared_ptr<const Entry>> MintCoordinatorImpl::GetOrCreate(
    absl::string_view alias, const FindOptions& options,
    const MintFunction& mint) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(store_->Name(), "GetOrCreate", ""));
  }
  if (!ForceMintPending(alias)) {
    absl::StatusOr<std::shared_ptr<const Entry>> found =
        store_->Find(alias, options);
    if (found.ok()) {
      return Renew(alias, options, mint, *std::move(found));
    }
    if (absl::IsDataLoss(found.status())) {
      // Never leave a damaged credential behind a fresh one: evict it.
      Log(LogLevel::kWarning,
          absl::StrCat(Context(alias), ": stored entry is damaged (",
                       found.status().message(), "); evicting it and minting"));
      CERTSTORE_RETURN_IF_ERROR(Evict(alias).status());
    } else if (!absl::IsNotFound(found.status())) {
      return found.status();
    }
  }
  return MintOnce(alias, options, mint, /*renewal=*/false);
}

// Serves `current`, renewing it first when it passed its renewal point and
// no other caller is renewing it already.
absl::StatusOr<std::shared_ptr<const Entry>> MintCoordinatorImpl::Renew(
    absl::string_view alias, const FindOptions& options,
    const MintFunction& mint, std::shared_ptr<const Entry> current) {
  if (!PastRenewalPoint(*current) || !TryStartRenewal(alias)) {
    return current;  // fresh, or someone else is renewing it
  }
  absl::StatusOr<std::shared_ptr<const Entry>> renewed =
      MintOnce(alias, options, mint, /*renewal=*/true);
  FinishRenewal(alias);
  if (!renewed.ok()) {
    Log(LogLevel::kWarning,
        absl::StrCat(Context(alias), ": renewal failed, serving ",
                     current->thumbprint(), ": ", renewed.status().ToString()));
    return current;
  }
  return renewed;
}

absl::StatusOr<int> MintCoordinatorImpl::Evict(absl::string_view alias) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(store_->Name(), "Evict", ""));
  }
  // Set first, so that no concurrent GetOrCreate serves what is being
  // evicted.
  SetForceMint(alias, true);
  evictions_.Add();
  absl::StatusOr<int> removed = store_->DeleteAllForAlias(alias);
  Log(LogLevel::kInfo,
      absl::StrCat(OpContext(store_->Name(), "Evict", alias), ": ",
                   removed.ok() ? absl::StrCat("removed ", *removed)
                                : removed.status().ToString(),
                   "; the next GetOrCreate mints"));
  return removed;
}

absl::StatusOr<std::shared_ptr<const Entry>> MintCoordinatorImpl::MintOnce(
    absl::string_view alias, const FindOptions& options,
    const MintFunction& mint, bool renewal) {
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<Flight>& slot = flights_[alias];
    if (slot == nullptr) {
      slot = std::make_shared<Flight>();
      leader = true;
    }
    flight = slot;
  }
  if (!leader) {
    flight->done.WaitForNotification();
    return flight->result;
  }
  flight->result = MintUnderLock(alias, options, mint, renewal);
  {
    absl::MutexLock lock(&mu_);
    flights_.erase(alias);
  }
  flight->done.Notify();
  return flight->result;
}

absl::StatusOr<std::shared_ptr<const Entry>> MintCoordinatorImpl::MintUnderLock(
    absl::string_view alias, const FindOptions& options,
    const MintFunction& mint, bool renewal) {
  const std::string context = Context(alias);
  absl::StatusOr<std::unique_ptr<AliasLock>> lock =
      store_->LockAlias(alias, options_.lock_timeout);
  if (!lock.ok()) {
    unlocked_mints_.Add();
    Log(LogLevel::kWarning,
        absl::StrCat(context, ": minting without the mint lock: ",
                     lock.status().ToString()));
  }
  // Another process may have minted while we waited for the lock.
  if (!ForceMintPending(alias)) {
    absl::StatusOr<std::shared_ptr<const Entry>> found =
        store_->Find(alias, options);
    if (found.ok() && (!renewal || !PastRenewalPoint(**found))) {
      return found;
    }
  }
  absl::StatusOr<std::shared_ptr<const Entry>> minted = mint(alias);
  if (minted.ok() && (*minted == nullptr || (*minted)->alias() != alias)) {
    minted = absl::InternalError("mint returned an entry of another alias");
  }
  absl::Status stored = minted.ok() ? store_->Put(*minted) : minted.status();
  if (!stored.ok()) {
    mint_failures_.Add();
    Log(LogLevel::kWarning,
        absl::StrCat(context, ": mint failed: ", stored.ToString()));
    return WithContext(stored, absl::StrCat(context, ": mint"));
  }
  SetForceMint(alias, false);
  mints_.Add();
  if (renewal) {
    renewals_.Add();
  }
  Log(LogLevel::kInfo,
      absl::StrCat(context, ": minted ", (*minted)->thumbprint(),
                   renewal ? " (renewal)" : ""));
  return minted;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MintCoordinator>> MintCoordinator::Create(
    CertStore* store, const MintCoordinatorOptions& options) {
  if (store == nullptr) {
    return absl::InvalidArgumentError("MintCoordinator: null store");
  }
  if (!(options.renewal_fraction > 0 && options.renewal_fraction < 1) ||
      options.renewal_jitter < 0 ||
      options.renewal_jitter >= options.renewal_fraction ||
      options.renewal_fraction + options.renewal_jitter >= 1) {
    return absl::InvalidArgumentError(
        "MintCoordinator: renewal_fraction must be in (0,1) and "
        "renewal_jitter in [0, min(fraction, 1 - fraction))");
  }
  if (options.lock_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "MintCoordinator: lock_timeout must not be negative");
  }
  return std::unique_ptr<MintCoordinator>(
      new MintCoordinatorImpl(store, options));
}

absl::Time RenewalTime(absl::Time not_before, absl::Time not_after,
                       absl::string_view thumbprint,
                       const MintCoordinatorOptions& options) {
  // FNV-1a, not absl::Hash: absl::Hash is seeded per process.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : thumbprint) {
    h = (h ^ c) * 1099511628211ull;
  }
  const double unit = static_cast<double>(h % 2001) / 1000.0 - 1.0;  // [-1, 1]
  const double fraction =
      options.renewal_fraction + options.renewal_jitter * unit;
  return not_before + (not_after - not_before) * fraction;
}

}  // namespace certstore

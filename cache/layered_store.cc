#include "cache/layered_store.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"

namespace certstore {
namespace {

constexpr absl::string_view kComponent = "cache";

// Failures of a layer that must not turn a servable request into a failure:
// the layer is bypassed for this call, with a warning.
bool IsDegradable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

// One in-process mint for an alias; later callers wait for its result.
struct Flight {
  absl::Notification done;
  absl::StatusOr<std::shared_ptr<const Entry>> result =
      absl::UnknownError("mint in flight");
};

class LayeredStoreImpl final : public LayeredStore {
 public:
  LayeredStoreImpl(std::vector<std::unique_ptr<CertStore>> layers,
                   const LayeredStoreOptions& options)
      : top_(layers.front().get()),
        owned_(std::move(layers)),
        options_(options),
        clock_(options.clock != nullptr ? options.clock : Clock::System()) {
    std::vector<std::string> names;
    for (const auto& layer : owned_) {
      layers_.push_back(layer.get());
      names.push_back(layer->Name());
      hits_.push_back(std::make_unique<StripedCounter>());
    }
    name_ = absl::StrJoin(names, ",");
  }

  std::string Name() const override { return name_; }

  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options) override {
    // The top layer serves most lookups; its answer is built in place as
    // ours (one named result on every path, so it is never moved).
    absl::StatusOr<std::shared_ptr<const Entry>> found =
        top_->Find(alias, options);
    if (ABSL_PREDICT_TRUE(found.ok())) {
      top_hits_.Add();
    } else {
      FindAfterTopMiss(alias, options, found);
    }
    return found;
  }

  absl::Status Put(std::shared_ptr<const Entry> entry) override {
    if (entry == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(OpContext(name_, "Put", ""), ": null entry"));
    }
    absl::Status last_failure;
    bool stored = false;
    for (size_t i = layers_.size(); i-- > 0;) {
      absl::Status status = layers_[i]->Put(entry);
      if (status.ok()) {
        stored = true;
      } else if (IsDegradable(status)) {
        Degrade(i, status);
        last_failure = status;
      } else {
        return status;  // the entry itself is refused
      }
    }
    if (!stored) {
      return last_failure;
    }
    puts_.Add();
    return absl::OkStatus();
  }

  absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(name_, "DeleteAllForAlias", ""));
    }
    // Set first, so no concurrent GetOrCreate serves what is being evicted.
    SetForceMint(alias, true);
    evictions_.Add();
    // An entry written through every layer is one entry: count distinct
    // thumbprints (a layer that cannot list counts by its own total).
    absl::flat_hash_set<std::string> thumbprints;
    int largest_layer_count = 0;
    for (size_t i = layers_.size(); i-- > 0;) {
      ListedThumbprints(i, alias, &thumbprints);
      absl::StatusOr<int> n = layers_[i]->DeleteAllForAlias(alias);
      if (n.ok()) {
        largest_layer_count = std::max(largest_layer_count, *n);
      } else if (IsDegradable(n.status())) {
        Degrade(i, n.status());
      } else {
        return n.status();
      }
    }
    const int removed =
        std::max(largest_layer_count, static_cast<int>(thumbprints.size()));
    Log(LogLevel::kInfo,
        absl::StrCat(OpContext(name_, "DeleteAllForAlias", alias), ": removed ",
                     removed, "; the next GetOrCreate mints"));
    return removed;
  }

  absl::Status ProbeKey(const Entry& entry) override {
    return bottom()->ProbeKey(entry);
  }

  absl::StatusOr<std::shared_ptr<const Key>> CreateKey(
      absl::string_view alias, const KeySpec& spec) override {
    return bottom()->CreateKey(alias, spec);
  }

  absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options) override;

  absl::StatusOr<std::unique_ptr<AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) override {
    return bottom()->LockAlias(alias, timeout);
  }

  absl::StatusOr<std::shared_ptr<const Entry>> GetOrCreate(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint) override;

  bool ForceMintPending(absl::string_view alias) const override {
    absl::MutexLock lock(&mu_);
    return force_mint_.contains(alias);
  }

  LayeredStoreMetrics Metrics() const override;

  const std::vector<CertStore*>& layers() const override { return layers_; }

 private:
  CertStore* bottom() const { return layers_.back(); }

  // Find, also telling whether some layer holds damaged data (DataLoss) for
  // the alias, so GetOrCreate can evict it rather than leave it behind.
  absl::StatusOr<std::shared_ptr<const Entry>> FindInLayers(
      absl::string_view alias, const FindOptions& options, bool* damaged) {
    return FindBelow(0, layers_[0]->Find(alias, options), alias, options,
                     damaged);
  }

  // Find's slow path, out of line so that the hit path keeps a small frame:
  // replaces the top layer's answer `found` with the layers below's.
  ABSL_ATTRIBUTE_NOINLINE void FindAfterTopMiss(
      absl::string_view alias, const FindOptions& options,
      absl::StatusOr<std::shared_ptr<const Entry>>& found) {
    bool damaged = false;
    found = FindBelow(0, std::move(found), alias, options, &damaged);
  }

  // Goes on with a Find that layer `i` answered with `found`: a hit is
  // counted and back-filled above; a miss, or a failure the store degrades
  // past, asks the next layer down.
  absl::StatusOr<std::shared_ptr<const Entry>> FindBelow(
      size_t i, absl::StatusOr<std::shared_ptr<const Entry>> found,
      absl::string_view alias, const FindOptions& options, bool* damaged) {
    for (;;) {
      if (found.ok()) {
        hits_[i]->Add();
        if (i > 0) {
          Backfill(i, *found);
        }
        return found;
      }
      if (found.status().code() != absl::StatusCode::kNotFound) {
        if (!IsDegradable(found.status())) {
          return found.status();
        }
        *damaged |= found.status().code() == absl::StatusCode::kDataLoss;
        Degrade(i, found.status());
      }
      if (++i == layers_.size()) {
        break;
      }
      found = layers_[i]->Find(alias, options);
    }
    misses_.Add();
    return absl::NotFoundError(absl::StrCat(
        OpContext(name_, "Find", alias), ": no servable entry in any layer"));
  }

  void Log(LogLevel level, absl::string_view message) const {
    if (options_.log) {
      options_.log(level, kComponent, message);
    }
  }

  void Degrade(size_t layer, const absl::Status& status) {
    degradations_.Add();
    Log(LogLevel::kWarning,
        absl::StrCat("layer ", layers_[layer]->Name(),
                     " bypassed for this call: ", status.ToString()));
  }

  void Backfill(size_t found_in, const std::shared_ptr<const Entry>& entry) {
    for (size_t i = 0; i < found_in; ++i) {
      absl::Status status = layers_[i]->Put(entry);
      if (!status.ok()) {
        Log(LogLevel::kWarning,
            absl::StrCat("back-fill into ", layers_[i]->Name(),
                         " failed: ", status.ToString()));
      }
    }
    backfills_.Add();
  }

  // Adds the thumbprints layer `i` holds for exactly `alias`.
  void ListedThumbprints(size_t i, absl::string_view alias,
                         absl::flat_hash_set<std::string>* out) {
    ListOptions options;
    options.alias_prefix = std::string(alias);
    absl::StatusOr<std::vector<EntryInfo>> infos = layers_[i]->List(options);
    if (!infos.ok()) {
      return;
    }
    for (const EntryInfo& info : *infos) {
      if (info.alias == alias) {
        out->insert(info.thumbprint);
      }
    }
  }

  void SetForceMint(absl::string_view alias, bool on) {
    absl::MutexLock lock(&mu_);
    if (on) {
      force_mint_.insert(std::string(alias));
    } else {
      force_mint_.erase(alias);
    }
  }

  bool PastRenewalPoint(const Entry& entry) const;
  bool TryStartRenewal(absl::string_view alias);
  void FinishRenewal(absl::string_view alias);
  absl::StatusOr<std::shared_ptr<const Entry>> MintOnce(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint, bool renewal);
  absl::StatusOr<std::shared_ptr<const Entry>> MintUnderLock(
      absl::string_view alias, const FindOptions& options,
      const MintFunction& mint, bool renewal);

  CertStore* const top_;  // layers_[0], next to the vtable pointer
  std::vector<std::unique_ptr<CertStore>> owned_;
  std::vector<CertStore*> layers_;
  std::string name_;
  const LayeredStoreOptions options_;
  const Clock* const clock_;

  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> force_mint_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> renewing_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_
      ABSL_GUARDED_BY(mu_);

  // Hits per layer; the top layer's Find hits count in top_hits_, inside
  // this object (one load less on the hottest path), and add to hits_[0].
  std::vector<std::unique_ptr<StripedCounter>> hits_;
  StripedCounter top_hits_;
  StripedCounter misses_, backfills_, puts_, evictions_, mints_, mint_failures_,
      renewals_, degradations_;
};

absl::StatusOr<std::vector<EntryInfo>> LayeredStoreImpl::List(
    const ListOptions& options) {
  std::map<std::pair<std::string, std::string>, EntryInfo> merged;
  for (size_t i = 0; i < layers_.size(); ++i) {
    absl::StatusOr<std::vector<EntryInfo>> infos = layers_[i]->List(options);
    if (!infos.ok()) {
      if (!IsDegradable(infos.status())) {
        return infos.status();
      }
      Degrade(i, infos.status());
      continue;
    }
    for (EntryInfo& info : *infos) {
      auto [it, inserted] =
          merged.try_emplace({info.alias, info.thumbprint}, info);
      if (!inserted) {
        absl::StrAppend(&it->second.store, ",", info.store);
        // The bottom layer knows best where the key lives.
        it->second.key_location = info.key_location;
      }
    }
  }
  std::vector<EntryInfo> out;
  for (auto& [key, info] : merged) {
    out.push_back(std::move(info));
  }
  SortListing(out);
  return out;
}

bool LayeredStoreImpl::PastRenewalPoint(const Entry& entry) const {
  return clock_->Now() >= RenewalTime(entry.not_before(), entry.not_after(),
                                      entry.thumbprint(), options_);
}

bool LayeredStoreImpl::TryStartRenewal(absl::string_view alias) {
  absl::MutexLock lock(&mu_);
  return renewing_.insert(std::string(alias)).second;
}

void LayeredStoreImpl::FinishRenewal(absl::string_view alias) {
  absl::MutexLock lock(&mu_);
  renewing_.erase(alias);
}

absl::StatusOr<std::shared_ptr<const Entry>> LayeredStoreImpl::GetOrCreate(
    absl::string_view alias, const FindOptions& options,
    const MintFunction& mint) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(name_, "GetOrCreate", ""));
  }
  if (!ForceMintPending(alias)) {
    bool damaged = false;
    absl::StatusOr<std::shared_ptr<const Entry>> found =
        FindInLayers(alias, options, &damaged);
    if (found.ok()) {
      if (!PastRenewalPoint(**found) || !TryStartRenewal(alias)) {
        return found;  // fresh, or someone else is renewing it
      }
      absl::StatusOr<std::shared_ptr<const Entry>> renewed =
          MintOnce(alias, options, mint, /*renewal=*/true);
      FinishRenewal(alias);
      if (!renewed.ok()) {
        Log(LogLevel::kWarning,
            absl::StrCat("renewal failed, serving the current entry: ",
                         renewed.status().ToString()));
        return found;
      }
      return renewed;
    }
    if (found.status().code() != absl::StatusCode::kNotFound) {
      return found.status();
    }
    if (damaged) {
      // Never leave a damaged credential behind a fresh one: evict it.
      Log(LogLevel::kWarning,
          absl::StrCat(OpContext(name_, "GetOrCreate", alias),
                       ": stored entry is damaged; evicting it and minting"));
      CERTSTORE_RETURN_IF_ERROR(DeleteAllForAlias(alias).status());
    }
  }
  return MintOnce(alias, options, mint, /*renewal=*/false);
}

absl::StatusOr<std::shared_ptr<const Entry>> LayeredStoreImpl::MintOnce(
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

absl::StatusOr<std::shared_ptr<const Entry>> LayeredStoreImpl::MintUnderLock(
    absl::string_view alias, const FindOptions& options,
    const MintFunction& mint, bool renewal) {
  const std::string context = OpContext(name_, "GetOrCreate", alias);
  absl::StatusOr<std::unique_ptr<AliasLock>> lock =
      bottom()->LockAlias(alias, options_.lock_timeout);
  if (!lock.ok()) {
    degradations_.Add();
    Log(LogLevel::kWarning,
        absl::StrCat(context, ": minting without the mint lock: ",
                     lock.status().ToString()));
  }
  // Another process may have minted while we waited for the lock.
  if (!ForceMintPending(alias)) {
    absl::StatusOr<std::shared_ptr<const Entry>> found = Find(alias, options);
    if (found.ok() && (!renewal || !PastRenewalPoint(**found))) {
      return found;
    }
  }
  absl::StatusOr<std::shared_ptr<const Entry>> minted = mint(alias);
  if (minted.ok() && (*minted == nullptr || (*minted)->alias() != alias)) {
    minted = absl::InternalError("mint returned an entry of another alias");
  }
  absl::Status stored = minted.ok() ? Put(*minted) : minted.status();
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

LayeredStoreMetrics LayeredStoreImpl::Metrics() const {
  LayeredStoreMetrics m;
  for (const auto& hits : hits_) {
    m.hits_per_layer.push_back(hits->Value());
  }
  m.hits_per_layer[0] += top_hits_.Value();
  m.misses = misses_.Value();
  m.backfills = backfills_.Value();
  m.puts = puts_.Value();
  m.evictions = evictions_.Value();
  m.mints = mints_.Value();
  m.mint_failures = mint_failures_.Value();
  m.renewals = renewals_.Value();
  m.degradations = degradations_.Value();
  return m;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LayeredStore>> LayeredStore::Open(
    std::vector<std::unique_ptr<CertStore>> layers,
    const LayeredStoreOptions& options) {
  if (layers.empty()) {
    return absl::InvalidArgumentError("LayeredStore: no layers");
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("LayeredStore: layer ", i, " is null"));
    }
  }
  if (!(options.renewal_fraction > 0 && options.renewal_fraction < 1) ||
      options.renewal_jitter < 0 ||
      options.renewal_jitter >= options.renewal_fraction ||
      options.renewal_fraction + options.renewal_jitter >= 1) {
    return absl::InvalidArgumentError(
        "LayeredStore: renewal_fraction must be in (0,1) and "
        "renewal_jitter in [0, min(fraction, 1 - fraction))");
  }
  return std::unique_ptr<LayeredStore>(
      new LayeredStoreImpl(std::move(layers), options));
}

absl::Time RenewalTime(absl::Time not_before, absl::Time not_after,
                       absl::string_view thumbprint,
                       const LayeredStoreOptions& options) {
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

#include "certstore/layered_store.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "certstore/backend_author.h"
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

class LayeredStoreImpl final : public LayeredStore {
 public:
  LayeredStoreImpl(std::vector<std::unique_ptr<CertStore>> layers,
                   const LayeredStoreOptions& options)
      : top_(layers.front().get()),
        owned_(std::move(layers)),
        options_(options) {
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
                     removed));
    return removed;
  }

  // Every layer, bottom first; a layer that fails (degradable) is skipped
  // with a warning, as for DeleteAllForAlias.
  absl::StatusOr<int> RemoveBroken(
      absl::string_view alias, const RemoveBrokenOptions& options) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(name_, "RemoveBroken", ""));
    }
    int removed = 0;
    for (size_t i = layers_.size(); i-- > 0;) {
      absl::StatusOr<int> n = layers_[i]->RemoveBroken(alias, options);
      if (n.ok()) {
        removed += *n;
      } else if (IsDegradable(n.status())) {
        Degrade(i, n.status());
      } else {
        return n.status();
      }
    }
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

  LayeredStoreMetrics Metrics() const override;

  const std::vector<CertStore*>& layers() const override { return layers_; }

 private:
  CertStore* bottom() const { return layers_.back(); }

  // Find's slow path, out of line so that the hit path keeps a small frame:
  // replaces the top layer's answer `found` with the layers below's.
  ABSL_ATTRIBUTE_NOINLINE void FindAfterTopMiss(
      absl::string_view alias, const FindOptions& options,
      absl::StatusOr<std::shared_ptr<const Entry>>& found) {
    found = FindBelow(0, std::move(found), alias, options);
  }

  // Goes on with a Find that layer `i` answered with `found`: a hit is
  // counted and back-filled above; a miss, or a failure the store degrades
  // past, asks the next layer down. Damage some layer reported is the
  // answer when no layer serves the alias.
  absl::StatusOr<std::shared_ptr<const Entry>> FindBelow(
      size_t i, absl::StatusOr<std::shared_ptr<const Entry>> found,
      absl::string_view alias, const FindOptions& options) {
    absl::Status damage;
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
        if (absl::IsDataLoss(found.status()) && damage.ok()) {
          damage = found.status();
        }
        Degrade(i, found.status());
      }
      if (++i == layers_.size()) {
        break;
      }
      found = layers_[i]->Find(alias, options);
    }
    misses_.Add();
    if (!damage.ok()) {
      return WithContext(damage, absl::StrCat(OpContext(name_, "Find", alias),
                                              ": no servable entry; damaged"));
    }
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

  CertStore* const top_;  // layers_[0], next to the vtable pointer
  std::vector<std::unique_ptr<CertStore>> owned_;
  std::vector<CertStore*> layers_;
  std::string name_;
  const LayeredStoreOptions options_;

  // Hits per layer; the top layer's Find hits count in top_hits_, inside
  // this object (one load less on the hottest path), and add to hits_[0].
  std::vector<std::unique_ptr<StripedCounter>> hits_;
  StripedCounter top_hits_;
  StripedCounter misses_, backfills_, puts_, evictions_, degradations_;
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
        // The bottom layer knows best where the key lives, and whether the
        // entry still works there.
        it->second.key_location = info.key_location;
        if (!info.certificate_location.empty()) {
          it->second.certificate_location = info.certificate_location;
        }
        if (!info.problem.empty()) {
          it->second.problem = info.problem;
          it->second.foreign = info.foreign;
        }
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
  return std::unique_ptr<LayeredStore>(
      new LayeredStoreImpl(std::move(layers), options));
}

}  // namespace certstore

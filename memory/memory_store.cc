#include "memory/memory_store.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "certstore/errors.h"
#include "certstore/internal/in_process_alias_locks.h"
#include "certstore/status_macros.h"
#include "memory/read_epochs.h"

namespace certstore {
namespace {

using memory_internal::ReadEpochs;

// One stored entry, with its validity copied next to the pointer (as Unix
// nanoseconds, so the check is integer compares) so that selection reads
// only the map slot: one cache line and no absl::Time arithmetic per lookup.
struct Candidate {
  int64_t not_before_ns;
  int64_t not_after_ns;
  std::shared_ptr<const Entry> entry;

  // IsServable (entry.h) on integers. Windows beyond ~2262 saturate, which
  // only matters for certificates valid for centuries.
  bool Servable(int64_t now_ns, int64_t min_remaining_ns) const {
    return not_before_ns <= now_ns && not_after_ns - now_ns >= min_remaining_ns;
  }
};

int64_t SaturatedNanos(absl::Time t) {
  if (t >= absl::FromUnixNanos(std::numeric_limits<int64_t>::max())) {
    return std::numeric_limits<int64_t>::max();
  }
  if (t <= absl::FromUnixNanos(std::numeric_limits<int64_t>::min() / 2)) {
    return std::numeric_limits<int64_t>::min() / 2;
  }
  return absl::ToUnixNanos(t);
}
// Entries of one alias, newest not_after first. Usually one.
using AliasEntries = absl::InlinedVector<Candidate, 1>;

// An alias's bytes, behind one pointer so that a map slot is 48 bytes (the
// size of a bare map's string + shared_ptr slot) instead of 72 with a
// std::string key. Allocated once when the alias enters the store and
// shared by every later copy of its shard; freed by whoever removes the
// alias (once no reader can see it) or by the store's destructor.
class AliasKey {
 public:
  static AliasKey Make(absl::string_view alias) {
    const uint32_t size = static_cast<uint32_t>(alias.size());
    char* bytes = new char[sizeof(size) + alias.size()];
    std::memcpy(bytes, &size, sizeof(size));
    std::memcpy(bytes + sizeof(size), alias.data(), alias.size());
    return AliasKey(bytes);
  }
  static void Free(AliasKey key) { delete[] key.bytes_; }

  absl::string_view view() const {
    uint32_t size;
    std::memcpy(&size, bytes_, sizeof(size));
    return absl::string_view(bytes_ + sizeof(size), size);
  }

 private:
  explicit AliasKey(char* bytes) : bytes_(bytes) {}
  char* bytes_;  // a uint32 length, then the alias bytes
};

// Hash and equality on the alias bytes, for AliasKey and string_view alike.
struct AliasHash {
  using is_transparent = void;
  size_t operator()(absl::string_view alias) const {
    return absl::Hash<absl::string_view>{}(alias);
  }
  size_t operator()(AliasKey key) const { return (*this)(key.view()); }
};
struct AliasEq {
  using is_transparent = void;
  static absl::string_view View(absl::string_view alias) { return alias; }
  static absl::string_view View(AliasKey key) { return key.view(); }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return View(a) == View(b);
  }
};

// An immutable shard: replaced whole by writers, never modified in place.
// It does not own its keys (successive shards share them).
using Shard = absl::flat_hash_map<AliasKey, AliasEntries, AliasHash, AliasEq>;

constexpr size_t kShardBits = 8;
constexpr size_t kShards = size_t{1} << kShardBits;

class MemoryStore final : public CertStore {
 public:
  explicit MemoryStore(const MemoryStoreOptions& options)
      : clock_(options.clock != nullptr ? options.clock : Clock::System()) {
    for (auto& shard : shards_) {
      shard.store(new Shard(), std::memory_order_relaxed);
    }
  }

  ~MemoryStore() override {
    for (auto& shard_ptr : shards_) {
      const Shard* shard = shard_ptr.load(std::memory_order_acquire);
      for (const auto& [key, entries] : *shard) {
        AliasKey::Free(key);
      }
      delete shard;
    }
  }

  std::string Name() const override { return "memory:"; }

  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options) override {
    if (alias.empty() || alias.size() > kMaxAliasBytes) {
      return FindFailure(alias);
    }
    const size_t hash = absl::Hash<absl::string_view>{}(alias);
    const int64_t now_ns = absl::ToUnixNanos(clock_->Now());
    const int64_t min_remaining_ns =
        absl::ToInt64Nanoseconds(options.min_remaining);
    {
      ReadEpochs::Section section = epochs_.Enter();
      const Shard* shard = ShardFor(hash).load(std::memory_order_acquire);
      auto it = shard->find(alias, hash);
      if (it != shard->end()) {
        for (const Candidate& candidate : it->second) {
          if (candidate.Servable(now_ns, min_remaining_ns)) {
            return candidate.entry;
          }
        }
      }
    }
    return FindFailure(alias);
  }

  absl::Status Put(std::shared_ptr<const Entry> entry) override {
    if (entry == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(OpContext(Name(), "Put", ""), ": null entry"));
    }
    const std::string context = OpContext(Name(), "Put", entry->alias());
    // A structural check: restored entries (a back-fill from a persistent
    // layer) stay undecoded until a handshake needs their chain.
    CERTSTORE_RETURN_IF_ERROR(WithContext(entry->CheckWellFormed(), context));
    CERTSTORE_RETURN_IF_ERROR(
        WithContext(CheckKeyMatchesLeaf(*entry), context));
    Rewrite(entry->alias(), /*create=*/true, [&entry](AliasEntries& entries) {
      entries.erase(std::remove_if(entries.begin(), entries.end(),
                                   [&](const Candidate& c) {
                                     return c.entry->thumbprint() ==
                                            entry->thumbprint();
                                   }),
                    entries.end());
      const Candidate candidate{SaturatedNanos(entry->not_before()),
                                SaturatedNanos(entry->not_after()), entry};
      auto pos =
          std::find_if(entries.begin(), entries.end(), [&](const Candidate& c) {
            return c.not_after_ns < candidate.not_after_ns;
          });
      entries.insert(pos, candidate);
      return 0;
    });
    return absl::OkStatus();
  }

  absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "DeleteAllForAlias", ""));
    }
    return Rewrite(alias, /*create=*/false, [](AliasEntries& entries) {
      int removed = static_cast<int>(entries.size());
      entries.clear();
      return removed;
    });
  }

  absl::Status ProbeKey(const Entry& entry) override {
    return WithContext(ProbeEntryKey(entry),
                       OpContext(Name(), "ProbeKey", entry.alias()));
  }

  absl::StatusOr<std::shared_ptr<const Key>> CreateKey(
      absl::string_view alias, const KeySpec& spec) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "CreateKey", ""));
    }
    absl::StatusOr<std::shared_ptr<const Key>> key = GenerateSoftwareKey(spec);
    if (!key.ok()) {
      return WithContext(key.status(), OpContext(Name(), "CreateKey", alias));
    }
    return key;
  }

  absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options) override {
    std::vector<EntryInfo> infos;
    {
      ReadEpochs::Section section = epochs_.Enter();
      for (const auto& shard_ptr : shards_) {
        const Shard* shard = shard_ptr.load(std::memory_order_acquire);
        for (const auto& [key, entries] : *shard) {
          if (!absl::StartsWith(key.view(), options.alias_prefix)) {
            continue;
          }
          for (const Candidate& candidate : entries) {
            infos.push_back(InfoOf(*candidate.entry, Name()));
          }
        }
      }
    }
    std::sort(infos.begin(), infos.end(),
              [](const EntryInfo& a, const EntryInfo& b) {
                if (a.alias != b.alias) {
                  return a.alias < b.alias;
                }
                return a.not_after > b.not_after;
              });
    return infos;
  }

  absl::StatusOr<std::unique_ptr<AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "LockAlias", ""));
    }
    return alias_locks_.Acquire(alias, timeout,
                                OpContext(Name(), "LockAlias", alias));
  }

 private:
  // Find's error for a bad alias or a miss. Out of line, so that the hit
  // path keeps a small frame.
  ABSL_ATTRIBUTE_NOINLINE absl::Status FindFailure(
      absl::string_view alias) const {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "Find", ""));
    }
    return absl::NotFoundError(
        absl::StrCat(OpContext(Name(), "Find", alias), ": no servable entry"));
  }

  std::atomic<const Shard*>& ShardFor(size_t hash) {
    // High bits: the map itself uses the low bits, which must stay varied.
    return shards_[hash >> (sizeof(size_t) * 8 - kShardBits)];
  }

  // Copies the alias's shard, lets `edit` change the alias's entries,
  // publishes the copy and frees the old shard once no reader sees it.
  // Returns what `edit` returns. An absent alias is created only when
  // `create`; otherwise nothing is copied and the result is 0.
  template <typename Edit>
  int Rewrite(absl::string_view alias, bool create, Edit edit) {
    const size_t hash = absl::Hash<absl::string_view>{}(alias);
    absl::MutexLock lock(&write_mu_);
    std::atomic<const Shard*>& slot = ShardFor(hash);
    const Shard* old_shard = slot.load(std::memory_order_relaxed);
    if (!create && old_shard->find(alias, hash) == old_shard->end()) {
      return 0;
    }
    auto next = std::make_unique<Shard>(*old_shard);
    auto it = next->find(alias, hash);
    if (it == next->end()) {
      it = next->emplace(AliasKey::Make(alias), AliasEntries()).first;
    }
    const int result = edit(it->second);
    std::optional<AliasKey> removed;
    if (it->second.empty()) {
      removed = it->first;
      next->erase(it);
    }
    slot.store(next.release(), std::memory_order_release);
    epochs_.WaitForReaders();
    delete old_shard;
    if (removed.has_value()) {
      AliasKey::Free(*removed);  // no shard a reader can see holds it
    }
    return result;
  }

  const Clock* const clock_;
  ReadEpochs epochs_;
  std::array<std::atomic<const Shard*>, kShards> shards_;
  absl::Mutex write_mu_;
  internal::InProcessAliasLocks alias_locks_;
};

}  // namespace

std::unique_ptr<CertStore> NewMemoryStore(const MemoryStoreOptions& options) {
  return std::make_unique<MemoryStore>(options);
}

}  // namespace certstore

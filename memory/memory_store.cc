#include "memory/memory_store.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/container/flat_hash_set.h"
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

// options.min_remaining in nanoseconds; the default without absl's
// out-of-line conversion (Find's hot path).
int64_t MinRemainingNanos(const FindOptions& options) {
  constexpr int64_t kDefaultNs = int64_t{24} * 3600 * 1'000'000'000;
  static_assert(absl::Nanoseconds(kDefaultNs) == FindOptions{}.min_remaining,
                "FindOptions' default changed");
  if (options.min_remaining == absl::Nanoseconds(kDefaultNs)) {
    return kDefaultNs;
  }
  return absl::ToInt64Nanoseconds(options.min_remaining);
}

int64_t SaturatedNanos(absl::Time t) {
  if (t >= absl::FromUnixNanos(std::numeric_limits<int64_t>::max())) {
    return std::numeric_limits<int64_t>::max();
  }
  if (t <= absl::FromUnixNanos(std::numeric_limits<int64_t>::min() / 2)) {
    return std::numeric_limits<int64_t>::min() / 2;
  }
  return absl::ToUnixNanos(t);
}
// One alias and its entries, newest not_after first; immutable once
// published (an edit makes a new node, the old one is freed once no reader
// can see it). Laid out so that a lookup reads one cache line: the newest
// entry's validity and pointer, then the alias bytes (aliases up to
// kInlineAliasBytes fit the line; longer ones run on past it).
class AliasNode {
 public:
  static constexpr size_t kInlineAliasBytes = 22;

  // `entries`: at least one, newest not_after first.
  static const AliasNode* Make(absl::string_view alias,
                               std::vector<Candidate> entries) {
    const size_t extra =
        alias.size() > kInlineAliasBytes ? alias.size() - kInlineAliasBytes : 0;
    void* memory = ::operator new (sizeof(AliasNode) + extra,
                                   std::align_val_t{alignof(AliasNode)});
    auto* node = new (memory) AliasNode(std::move(entries), alias.size());
    std::memcpy(node->bytes(), alias.data(), alias.size());
    return node;
  }
  static void Free(const AliasNode* node) {
    node->~AliasNode();
    ::operator delete (const_cast<AliasNode*>(node),
                       std::align_val_t{alignof(AliasNode)});
  }

  absl::string_view alias() const { return {bytes(), size_}; }
  const Candidate& newest() const { return newest_; }
  // The others, newest first (usually none).
  const std::vector<Candidate>* older() const { return older_.get(); }
  std::vector<Candidate> Entries() const {
    std::vector<Candidate> all = {newest_};
    if (older_ != nullptr) {
      all.insert(all.end(), older_->begin(), older_->end());
    }
    return all;
  }
  size_t count() const { return 1 + (older_ == nullptr ? 0 : older_->size()); }

 private:
  AliasNode(std::vector<Candidate> entries, size_t size)
      : newest_(std::move(entries.front())),
        size_(static_cast<uint16_t>(size)) {
    if (entries.size() > 1) {
      older_ = std::make_unique<std::vector<Candidate>>(
          std::make_move_iterator(entries.begin() + 1),
          std::make_move_iterator(entries.end()));
    }
  }
  // The alias bytes start in inline_bytes_ and, for long aliases, continue
  // into the extra storage Make allocated right after the node.
  const char* bytes() const {
    return reinterpret_cast<const char*>(this) +
           offsetof(AliasNode, inline_bytes_);
  }
  char* bytes() {
    return reinterpret_cast<char*>(this) + offsetof(AliasNode, inline_bytes_);
  }

  Candidate newest_;                               // 32 bytes
  std::unique_ptr<std::vector<Candidate>> older_;  // 8
  uint16_t size_;                                  // 2 (kMaxAliasBytes fits)
  char inline_bytes_[kInlineAliasBytes];           // 22: 64 in all
} ABSL_CACHELINE_ALIGNED;
static_assert(sizeof(Candidate) == 32, "a candidate is two times + pointer");
static_assert(sizeof(AliasNode) == 64 && alignof(AliasNode) == 64,
              "a node is one cache line");
static_assert(kMaxAliasBytes <= UINT16_MAX, "alias sizes fit a uint16");

// A shard's slot: the node and its alias's hash, kept so that copying a
// shard (every write) re-inserts slots without touching the nodes.
struct NodeRef {
  const AliasNode* node;
  size_t hash;
};

// Hash and equality for slots, and for alias lookups (string_view).
struct AliasHash {
  using is_transparent = void;
  size_t operator()(absl::string_view alias) const {
    return absl::Hash<absl::string_view>{}(alias);
  }
  size_t operator()(const NodeRef& ref) const { return ref.hash; }
};
struct AliasEq {
  using is_transparent = void;
  bool operator()(const NodeRef& a, const NodeRef& b) const {
    return a.node == b.node;
  }
  bool operator()(const NodeRef& ref, absl::string_view alias) const {
    return ref.node->alias() == alias;
  }
  bool operator()(absl::string_view alias, const NodeRef& ref) const {
    return ref.node->alias() == alias;
  }
};

// An immutable shard: replaced whole by writers, never modified in place.
// Its slots are 16 bytes (a shard's table stays small and cached);
// successive shards share the nodes of aliases they did not edit.
using Shard = absl::flat_hash_set<NodeRef, AliasHash, AliasEq>;

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
      for (const NodeRef& ref : *shard) {
        AliasNode::Free(ref.node);
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
    const int64_t now_ns = clock_->NowUnixNanos();
    const int64_t min_remaining_ns = MinRemainingNanos(options);
    {
      ReadEpochs::Section section = epochs_.Enter();
      const Shard* shard = ShardFor(hash).load(std::memory_order_acquire);
      auto it = shard->find(alias, hash);
      if (it != shard->end()) {
        const AliasNode& node = *it->node;
        if (node.newest().Servable(now_ns, min_remaining_ns)) {
          return node.newest().entry;
        }
        if (node.older() != nullptr) {
          for (const Candidate& candidate : *node.older()) {
            if (candidate.Servable(now_ns, min_remaining_ns)) {
              return candidate.entry;
            }
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
    Rewrite(entry->alias(), /*create=*/true,
            [&entry](std::vector<Candidate>& entries) {
              entries.erase(std::remove_if(entries.begin(), entries.end(),
                                           [&](const Candidate& c) {
                                             return c.entry->thumbprint() ==
                                                    entry->thumbprint();
                                           }),
                            entries.end());
              const Candidate candidate{SaturatedNanos(entry->not_before()),
                                        SaturatedNanos(entry->not_after()),
                                        entry};
              auto pos = std::find_if(
                  entries.begin(), entries.end(), [&](const Candidate& c) {
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
    return Rewrite(alias, /*create=*/false,
                   [](std::vector<Candidate>& entries) {
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
    return CreateSoftwareKeyFor(Name(), alias, spec);
  }

  absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options) override {
    std::vector<EntryInfo> infos;
    {
      ReadEpochs::Section section = epochs_.Enter();
      for (const auto& shard_ptr : shards_) {
        const Shard* shard = shard_ptr.load(std::memory_order_acquire);
        for (const NodeRef& ref : *shard) {
          if (!absl::StartsWith(ref.node->alias(), options.alias_prefix)) {
            continue;
          }
          for (const Candidate& candidate : ref.node->Entries()) {
            infos.push_back(InfoOf(*candidate.entry, Name()));
          }
        }
      }
    }
    SortListing(infos);
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

  // Copies the alias's shard with a new node for the alias holding what
  // `edit` made of its entries (none: the alias leaves the shard), publishes
  // the copy, and frees the old shard and node once no reader sees them.
  // Returns what `edit` returns. An absent alias is created only when
  // `create`; otherwise nothing is copied and the result is 0.
  template <typename Edit>
  int Rewrite(absl::string_view alias, bool create, Edit edit) {
    const size_t hash = absl::Hash<absl::string_view>{}(alias);
    absl::MutexLock lock(&write_mu_);
    std::atomic<const Shard*>& slot = ShardFor(hash);
    const Shard* old_shard = slot.load(std::memory_order_relaxed);
    auto old_it = old_shard->find(alias, hash);
    const AliasNode* old_node =
        old_it == old_shard->end() ? nullptr : old_it->node;
    if (!create && old_node == nullptr) {
      return 0;
    }
    std::vector<Candidate> entries;
    if (old_node != nullptr) {
      entries = old_node->Entries();
    }
    const int result = edit(entries);
    auto next = std::make_unique<Shard>(*old_shard);
    if (old_node != nullptr) {
      next->erase(NodeRef{old_node, hash});
    }
    if (!entries.empty()) {
      next->insert(NodeRef{AliasNode::Make(alias, std::move(entries)), hash});
    }
    slot.store(next.release(), std::memory_order_release);
    epochs_.WaitForReaders();
    delete old_shard;
    if (old_node != nullptr) {
      AliasNode::Free(old_node);  // no shard a reader can see holds it
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

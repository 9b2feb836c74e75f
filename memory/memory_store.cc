#include "certstore/memory_store.h"

#include <algorithm>
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
#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "certstore/backend_author.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "memory/dense_memory.h"
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
// published (an edit makes a new node). The table owns its nodes: a Find
// result copies the entry's own shared_ptr, so a caller holding a result
// keeps that entry alive and nothing else. A node takes one BlockPool block
// (dense, on a cache-line boundary); the newest entry and the first 30
// bytes of the alias share its first cache line.
class AliasNode {
 public:
  static constexpr size_t kInlineAliasBytes = 78;

  // `entries`: at least one, newest not_after first.
  static const AliasNode* Make(absl::string_view alias,
                               std::vector<Candidate> entries) {
    static_assert(sizeof(AliasNode) <= memory_internal::BlockPool::kBlockSize,
                  "a node fits one block");
    void* block = memory_internal::BlockPool::Allocate();
    try {
      return new (block) AliasNode(alias, std::move(entries));
    } catch (...) {
      memory_internal::BlockPool::Deallocate(block);
      throw;
    }
  }
  // Frees the node. Only after every reader that could have seen it has
  // left (results it handed out hold their entries, not the node).
  static void Release(const AliasNode* node) {
    node->~AliasNode();
    memory_internal::BlockPool::Deallocate(const_cast<AliasNode*>(node));
  }

  absl::string_view alias() const {
    return {size_ <= kInlineAliasBytes ? inline_bytes_ : long_bytes_.get(),
            size_};
  }
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

 private:
  AliasNode(absl::string_view alias, std::vector<Candidate> entries)
      : newest_(std::move(entries.front())),
        size_(static_cast<uint16_t>(alias.size())) {
    if (entries.size() > 1) {
      older_ = std::make_unique<std::vector<Candidate>>(
          std::make_move_iterator(entries.begin() + 1),
          std::make_move_iterator(entries.end()));
    }
    char* bytes = inline_bytes_;
    if (alias.size() > kInlineAliasBytes) {
      long_bytes_ = std::make_unique<char[]>(alias.size());
      bytes = long_bytes_.get();
    }
    std::memcpy(bytes, alias.data(), alias.size());
  }

  // The first line (with the alias's first 30 bytes):
  Candidate newest_;                      // 32
  uint16_t size_;                         // 2 (kMaxAliasBytes fits)
  char inline_bytes_[kInlineAliasBytes];  // 78
  // The rest of the second line:
  std::unique_ptr<std::vector<Candidate>> older_;  // 8
  std::unique_ptr<char[]> long_bytes_;             // 8 (aliases > 78 bytes)
};
static_assert(sizeof(Candidate) == 32, "a candidate is two times + pointer");
static_assert(sizeof(AliasNode) == 128, "a node fills two cache lines");
static_assert(kMaxAliasBytes <= UINT16_MAX, "alias sizes fit a uint16");

// The alias table: open addressing with linear probing over one array of
// slot words. A word is an AliasNode pointer (8-byte aligned, so its low 3
// bits are free) tagged with 3 bits of the alias's hash, so that a probe
// reads a node only when the tags match (7 times in 8 it need not); kEmpty and
// kDeleted are the other states. A table's capacity never changes: growing or
// shrinking builds a new table (reusing the nodes) and swaps it in. Readers
// load words with acquire and never write; the one writer (under the store's
// mutex) stores whole words, and never turns a used slot back into kEmpty, so a
// probe never stops short of an alias that was there before it began.
class AliasTable {
 public:
  using Word = std::atomic<uintptr_t>;
  static constexpr uintptr_t kEmpty = 0;
  static constexpr uintptr_t kDeleted = 1;
  static constexpr uintptr_t kTagMask = alignof(AliasNode) - 1;
  static constexpr size_t kMinCapacity = 16;

  // An empty table of `capacity` slots (a power of two).
  static AliasTable* Make(size_t capacity) {
    void* memory = memory_internal::AllocateLarge(BytesFor(capacity));
    auto* table = new (memory) AliasTable(capacity);
    for (size_t i = 0; i < capacity; ++i) {
      new (&table->words()[i]) Word(kEmpty);
    }
    return table;
  }
  static void Free(AliasTable* table) {
    const size_t bytes = BytesFor(table->capacity());
    table->~AliasTable();
    memory_internal::FreeLarge(table, bytes);
  }

  // The smallest capacity that holds `live` aliases at most 40 % full: a
  // small table (fewer cache misses) whose probes stay short.
  static size_t CapacityFor(size_t live) {
    size_t capacity = kMinCapacity;
    while (capacity < live * 5 / 2) {
      capacity *= 2;
    }
    return capacity;
  }

  size_t capacity() const { return mask_ + 1; }

  static uintptr_t TagOf(size_t hash) {
    return static_cast<uintptr_t>(hash >> (sizeof(size_t) * 8 - 3));
  }
  static uintptr_t WordFor(const AliasNode* node, size_t hash) {
    return reinterpret_cast<uintptr_t>(node) | TagOf(hash);
  }
  static const AliasNode* NodeOf(uintptr_t word) {
    return reinterpret_cast<const AliasNode*>(word & ~kTagMask);
  }
  static bool HoldsNode(uintptr_t word) { return (word & ~kTagMask) != 0; }

  // The alias's node, or null. Inside a read section, or by the writer.
  const AliasNode* Lookup(absl::string_view alias, size_t hash) const {
    const uintptr_t tag = TagOf(hash);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const uintptr_t word = words()[i].load(std::memory_order_acquire);
      if (word == kEmpty) {
        return nullptr;  // at most 1/2 full: every probe meets one
      }
      if ((word & kTagMask) == tag && HoldsNode(word) &&
          NodeOf(word)->alias() == alias) {
        return NodeOf(word);
      }
    }
  }

  // Writer side. The slot holding the alias, if any, and the first slot a
  // new alias could take (kDeleted or kEmpty) on its probe sequence.
  struct Probe {
    Word* found = nullptr;
    Word* free = nullptr;
  };
  Probe ProbeFor(absl::string_view alias, size_t hash) {
    Probe probe;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Word& slot = words()[i];
      const uintptr_t word = slot.load(std::memory_order_relaxed);
      if (word == kEmpty || word == kDeleted) {
        if (probe.free == nullptr) {
          probe.free = &slot;
        }
        if (word == kEmpty) {
          return probe;
        }
      } else if (NodeOf(word)->alias() == alias) {
        probe.found = &slot;
        return probe;
      }
    }
  }

  // Calls fn(node) for every node held.
  template <typename Fn>
  void ForEachNode(Fn fn) const {
    for (size_t i = 0; i <= mask_; ++i) {
      const uintptr_t word = words()[i].load(std::memory_order_acquire);
      if (HoldsNode(word)) {
        fn(NodeOf(word));
      }
    }
  }

 private:
  explicit AliasTable(size_t capacity) : mask_(capacity - 1) {}

  static size_t BytesFor(size_t capacity) {
    return sizeof(AliasTable) + capacity * sizeof(Word);
  }

  Word* words() { return reinterpret_cast<Word*>(this + 1); }
  const Word* words() const { return reinterpret_cast<const Word*>(this + 1); }

  const size_t mask_;
};
static_assert(sizeof(AliasTable) % alignof(std::atomic<uintptr_t>) == 0,
              "slot words follow the header aligned");

size_t HashOf(absl::string_view alias) {
  return absl::Hash<absl::string_view>{}(alias);
}

class MemoryStore final : public CertStore {
 public:
  explicit MemoryStore(const MemoryStoreOptions& options)
      : clock_(options.clock != nullptr ? options.clock : Clock::System()),
        table_(AliasTable::Make(AliasTable::kMinCapacity)) {}

  ~MemoryStore() override {
    AliasTable* table = table_.load(std::memory_order_acquire);
    table->ForEachNode(AliasNode::Release);
    AliasTable::Free(table);
  }

  std::string Name() const override { return "memory:"; }

  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options) override {
    if (alias.empty() || alias.size() > kMaxAliasBytes) {
      return FindFailure(alias);
    }
    const size_t hash = HashOf(alias);
    const int64_t now_ns = clock_->NowUnixNanos();
    const int64_t min_remaining_ns = MinRemainingNanos(options);
    {
      ReadEpochs::Section section = epochs_.Enter();
      const AliasNode* found =
          table_.load(std::memory_order_acquire)->Lookup(alias, hash);
      if (found != nullptr) {
        const AliasNode& node = *found;
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
    // Restored entries (a back-fill from a persistent layer) stay undecoded
    // until a handshake needs their chain.
    CERTSTORE_RETURN_IF_ERROR(
        CheckEntryForPut(entry.get(), Name(), ChainCheck::kShape));
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
      table_.load(std::memory_order_acquire)
          ->ForEachNode([&](const AliasNode* node) {
            if (!absl::StartsWith(node->alias(), options.alias_prefix)) {
              return;
            }
            for (const Candidate& candidate : node->Entries()) {
              infos.push_back(InfoOf(*candidate.entry, Name()));
            }
          });
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

  // Replaces the alias's node with one holding what `edit` made of its
  // entries (none: the alias leaves the table) and frees the old node once
  // no reader can see it. Returns what `edit` returns. An absent alias is
  // created only when `create`; otherwise nothing changes and the result
  // is 0. A new alias costs no wait for readers unless the table grows.
  template <typename Edit>
  int Rewrite(absl::string_view alias, bool create, Edit edit) {
    const size_t hash = HashOf(alias);
    absl::MutexLock lock(&write_mu_);
    AliasTable* table = table_.load(std::memory_order_relaxed);
    AliasTable::Probe probe = table->ProbeFor(alias, hash);
    const AliasNode* old_node =
        probe.found == nullptr
            ? nullptr
            : AliasTable::NodeOf(probe.found->load(std::memory_order_relaxed));
    if (!create && old_node == nullptr) {
      return 0;
    }
    std::vector<Candidate> entries;
    if (old_node != nullptr) {
      entries = old_node->Entries();
    }
    const int result = edit(entries);
    if (old_node != nullptr) {
      if (entries.empty()) {
        probe.found->store(AliasTable::kDeleted, std::memory_order_release);
        --live_;
      } else {
        probe.found->store(
            AliasTable::WordFor(AliasNode::Make(alias, std::move(entries)),
                                hash),
            std::memory_order_release);
      }
      epochs_.WaitForReaders();
      AliasNode::Release(old_node);  // no slot a reader can reach holds it
      if (live_ * 16 < table->capacity() &&
          table->capacity() > AliasTable::kMinCapacity) {
        Rehash(AliasTable::CapacityFor(live_));
      }
      return result;
    }
    if (entries.empty()) {
      return result;
    }
    // A new alias. Keep the table at most half full, counting deleted
    // slots (they lengthen probes until a rehash drops them).
    if (2 * (used_ + 1) > table->capacity()) {
      table = Rehash(AliasTable::CapacityFor(live_ + 1));
      probe = table->ProbeFor(alias, hash);
    }
    if (probe.free->load(std::memory_order_relaxed) == AliasTable::kEmpty) {
      ++used_;
    }
    ++live_;
    probe.free->store(
        AliasTable::WordFor(AliasNode::Make(alias, std::move(entries)), hash),
        std::memory_order_release);
    return result;
  }

  // Moves every node into a new table of `capacity` slots, publishes it and
  // frees the old table once no reader is probing it. Returns the new one.
  AliasTable* Rehash(size_t capacity) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    AliasTable* old_table = table_.load(std::memory_order_relaxed);
    AliasTable* table = AliasTable::Make(capacity);
    old_table->ForEachNode([table](const AliasNode* node) {
      const size_t hash = HashOf(node->alias());
      table->ProbeFor(node->alias(), hash)
          .free->store(AliasTable::WordFor(node, hash),
                       std::memory_order_relaxed);
    });
    used_ = live_;
    table_.store(table, std::memory_order_release);
    epochs_.WaitForReaders();
    AliasTable::Free(old_table);
    return table;
  }

  const Clock* const clock_;
  ReadEpochs epochs_;
  std::atomic<AliasTable*> table_;
  absl::Mutex write_mu_;
  size_t live_ ABSL_GUARDED_BY(write_mu_) = 0;  // slots holding a node
  size_t used_ ABSL_GUARDED_BY(write_mu_) = 0;  // live_ + deleted slots
  InProcessAliasLocks alias_locks_;
};

}  // namespace

std::unique_ptr<CertStore> NewMemoryStore(const MemoryStoreOptions& options) {
  return std::make_unique<MemoryStore>(options);
}

}  // namespace certstore

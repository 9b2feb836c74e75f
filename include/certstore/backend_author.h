/// \file
/// For people who implement CertStore: the helpers every backend of this
/// project is built from, so that a third-party backend behaves the same way
/// and passes the same conformance suite (certstore/testing/). Applications
/// that only use stores do not need this header.
///
/// A backend's Put starts with CheckEntryForPut; its Find restores what it
/// persisted with RestoreEntry (certificates decoded on first use); its List
/// builds summaries with InfoOf and orders them with SortListing; its
/// ProbeKey is ProbeEntryKey; a store that keeps keys in process implements
/// CreateKey with CreateSoftwareKeyFor; LockAlias starts (or, in one
/// process, ends) with InProcessAliasLocks.
#ifndef CERTSTORE_BACKEND_AUTHOR_H_
#define CERTSTORE_BACKEND_AUTHOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/entry.h"
#include "certstore/export.h"
#include "certstore/key.h"

namespace certstore {

/// What a store persisted about the leaf, so that a restored entry need not
/// decode its certificates until someone uses them.
struct LeafFacts {
  absl::Time not_before;
  absl::Time not_after;
  std::string thumbprint;  ///< x5t#S256 of chain_der[0]
};

/// Rebuilds an entry a store persisted, trusting `facts` for selection and
/// deferring certificate decoding to first use (Entry::Chain). The
/// thumbprint is checked against the leaf DER (a SHA-256, ~2 µs): a mismatch
/// is DataLoss, as are an empty chain and a null key. A restored entry is
/// checked like any other when it is Put (a back-fill into a cache): its key
/// against its leaf once per entry, its certificates' DER shape.
CERTSTORE_EXPORT absl::StatusOr<std::shared_ptr<const Entry>> RestoreEntry(
    EntryParts parts, LeafFacts facts);

/// How far a Put checks an entry's chain before storing it.
enum class ChainCheck {
  /// The DER shape of each certificate (Entry::CheckWellFormed): for a cache,
  /// so that entries restored from storage stay undecoded until used.
  kShape,
  /// Decoded with OpenSSL (Entry::Chain): for stores that write the chain
  /// out, so that they never persist what they could not read back.
  kDecode,
};

/// The checks every Put makes before it writes anything: a null entry or a
/// chain that fails `chain_check` is InvalidArgument, a key that is not the
/// leaf's is FailedPrecondition (CheckKeyMatchesLeaf). Messages start with
/// `STORE: Put("ALIAS")`.
CERTSTORE_EXPORT absl::Status CheckEntryForPut(const Entry* entry,
                                               absl::string_view store,
                                               ChainCheck chain_check);

/// Signs a fresh, domain-separated random challenge with the entry's key and
/// verifies it with the leaf's public key. OK proves the key usable now;
/// FailedPrecondition says why not. The shared core of every ProbeKey.
CERTSTORE_EXPORT absl::Status ProbeEntryKey(const Entry& entry);

/// Summarises an entry held by `store` (never decodes the key).
CERTSTORE_EXPORT EntryInfo InfoOf(const Entry& entry, absl::string_view store);

/// Puts a listing in List's order: by alias, then newest not_after first
/// (stable: equal entries keep their order).
CERTSTORE_EXPORT void SortListing(std::vector<EntryInfo>& infos);

/// CreateKey for stores that keep keys in process (memory, SQLite, PEM
/// directory): checks the alias, then GenerateSoftwareKey. Errors read
/// `STORE: CreateKey("ALIAS"): …`.
CERTSTORE_EXPORT absl::StatusOr<std::shared_ptr<const Key>>
CreateSoftwareKeyFor(absl::string_view store, absl::string_view alias,
                     const KeySpec& spec);

/// Per-alias exclusive locks within one process, with a timeout: LockAlias
/// for a store that lives in one process (the memory store), and the
/// in-process half of a persistent store's lock (threads queue here, then
/// one of them takes the cross-process lock).
class CERTSTORE_EXPORT InProcessAliasLocks {
 public:
  InProcessAliasLocks() = default;
  InProcessAliasLocks(const InProcessAliasLocks&) = delete;
  InProcessAliasLocks& operator=(const InProcessAliasLocks&) = delete;

  /// Waits up to `timeout` for `alias` to be free, then holds it until the
  /// returned lock is destroyed (which must happen before this object is).
  /// Unavailable, naming `context`, on timeout.
  absl::StatusOr<std::unique_ptr<AliasLock>> Acquire(absl::string_view alias,
                                                     absl::Duration timeout,
                                                     absl::string_view context);

 private:
  class Held;
  void Release(const std::string& alias);

  absl::Mutex mu_;
  absl::flat_hash_set<std::string> held_ ABSL_GUARDED_BY(mu_);
};

/// A counter many threads bump without sharing a cache line or a locked
/// instruction, for a store's metrics: each thread owns a stripe (its index
/// recycled when the thread exits) and adds into it with a plain load and
/// store, as its only writer; threads beyond kOwnedStripes share one more
/// stripe and add atomically. Value() sums the stripes (each read
/// atomically: exact once the adders are done, a snapshot while they run).
class CERTSTORE_EXPORT StripedCounter {
 public:
  void Add(int64_t n = 1) {
    size_t slot = this_thread_slot_;
    if (__builtin_expect(slot == kUnassigned, 0)) {
      slot = AssignThisThreadSlot();
    }
    std::atomic<int64_t>& value = stripes_[slot].value;
    if (__builtin_expect(slot != kSharedStripe, 1)) {
      value.store(value.load(std::memory_order_relaxed) + n,
                  std::memory_order_relaxed);
    } else {
      value.fetch_add(n, std::memory_order_relaxed);
    }
  }
  int64_t Value() const;

 private:
  static constexpr size_t kOwnedStripes = 32;
  static constexpr size_t kSharedStripe = kOwnedStripes;
  static constexpr size_t kUnassigned = ~size_t{0};
  /// This thread's stripe index, the same in every counter (one variable
  /// for the whole process: the class is exported, so every library shares
  /// it).
  static inline thread_local size_t this_thread_slot_ = kUnassigned;
  static size_t AssignThisThreadSlot();

  struct alignas(64) Stripe {
    std::atomic<int64_t> value{0};
  };
  Stripe stripes_[kOwnedStripes + 1];
};

}  // namespace certstore

#endif  // CERTSTORE_BACKEND_AUTHOR_H_

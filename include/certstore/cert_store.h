/// \file
/// The interface every certstore backend implements.
#ifndef CERTSTORE_CERT_STORE_H_
#define CERTSTORE_CERT_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/entry.h"
#include "certstore/export.h"
#include "certstore/key.h"

namespace certstore {

/// Held while one caller mints for an alias; released when destroyed (or,
/// for cross-process locks, when the holding process dies). Owned by the
/// caller of LockAlias; must not outlive the store that issued it, and is
/// released by the thread that holds it.
class CERTSTORE_EXPORT AliasLock {
 public:
  AliasLock() = default;
  AliasLock(const AliasLock&) = delete;
  AliasLock& operator=(const AliasLock&) = delete;
  virtual ~AliasLock() = default;
};

/// A store of binding credentials. Implementations are thread-safe; every
/// method may be called from several threads at once. Status codes follow
/// certstore/errors.h; messages start with Name().
class CERTSTORE_EXPORT CertStore {
 public:
  CertStore() = default;
  CertStore(const CertStore&) = delete;
  CertStore& operator=(const CertStore&) = delete;
  virtual ~CertStore() = default;

  /// The store's URI, e.g. "memory:" or "sqlite:/var/lib/app/certstore.db".
  virtual std::string Name() const = 0;

  /// Returns the best servable entry for `alias` (see IsServable): newest
  /// not_after first. A lookup only: no probing, no network.
  /// Not an error: NotFound is a miss (none, or none servable).
  virtual absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options = {}) = 0;

  /// Stores the entry atomically: readers see the old entries of the alias or
  /// the new one, never a certificate without its key. An entry with the same
  /// thumbprint replaces the stored one. FailedPrecondition when the key does
  /// not match the leaf; InvalidArgument for a null entry or a chain that
  /// does not decode. On error the store is unchanged.
  virtual absl::Status Put(std::shared_ptr<const Entry> entry) = 0;

  /// Removes every entry of `alias`, servable or not, and nothing of any other
  /// alias. Returns how many were removed; 0 is not an error.
  virtual absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) = 0;

  /// Proves the entry's key usable now (a fresh sign + verify against the
  /// leaf). The status is the verdict: OK, or FailedPrecondition with why;
  /// Unavailable when the key's home (a token) cannot be reached.
  virtual absl::Status ProbeKey(const Entry& entry) = 0;

  /// Makes a new key where this store keeps keys (on the token for PKCS#11,
  /// in process otherwise). The key is not stored until Put.
  virtual absl::StatusOr<std::shared_ptr<const Key>> CreateKey(
      absl::string_view alias, const KeySpec& spec) = 0;

  /// Summaries of stored entries, servable or not, ordered by alias then
  /// newest not_after. Never decodes keys.
  virtual absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options = {}) = 0;

  /// Removes what the store holds for `alias` but cannot serve (what List
  /// reports with a problem under include_broken: a certificate whose key
  /// is gone, a file it cannot read), and nothing servable. Objects another
  /// tool wrote stay unless `options.include_foreign`. Returns how many
  /// entries were removed. The default, for stores that cannot hold a
  /// broken entry (memory:), removes nothing.
  virtual absl::StatusOr<int> RemoveBroken(
      absl::string_view alias, const RemoveBrokenOptions& options = {});

  /// Takes the store's exclusive mint lock for `alias`: shared by every
  /// process that opens the same persistent store (in-process only for
  /// memory:), so that N racers mint once. Waits at most `timeout`; still
  /// held by someone else then is Unavailable (degrade, never hang). Locks
  /// of different aliases are independent. Not re-entrant.
  virtual absl::StatusOr<std::unique_ptr<AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) = 0;
};

/// Forwards every call to another store; subclasses override what they
/// change (fault injection, recording, read-only views).
class CERTSTORE_EXPORT CertStoreWrapper : public CertStore {
 public:
  explicit CertStoreWrapper(CertStore* target) : target_(target) {}

  CertStore* target() const { return target_; }

  std::string Name() const override { return target_->Name(); }
  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options = {}) override {
    return target_->Find(alias, options);
  }
  absl::Status Put(std::shared_ptr<const Entry> entry) override {
    return target_->Put(std::move(entry));
  }
  absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) override {
    return target_->DeleteAllForAlias(alias);
  }
  absl::Status ProbeKey(const Entry& entry) override {
    return target_->ProbeKey(entry);
  }
  absl::StatusOr<std::shared_ptr<const Key>> CreateKey(
      absl::string_view alias, const KeySpec& spec) override {
    return target_->CreateKey(alias, spec);
  }
  absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options = {}) override {
    return target_->List(options);
  }
  absl::StatusOr<int> RemoveBroken(
      absl::string_view alias,
      const RemoveBrokenOptions& options = {}) override {
    return target_->RemoveBroken(alias, options);
  }
  absl::StatusOr<std::unique_ptr<AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) override {
    return target_->LockAlias(alias, timeout);
  }

 private:
  CertStore* target_;
};

}  // namespace certstore

#endif  // CERTSTORE_CERT_STORE_H_

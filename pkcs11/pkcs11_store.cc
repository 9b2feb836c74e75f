#include "certstore/pkcs11_store.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/internal/lock_file.h"
#include "api/internal/unique_fd.h"
#include "certstore/backend_author.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "pkcs11/module_context.h"
#include "pkcs11/pkcs11_key.h"
#include "pkcs11/pkcs11_options.h"
#include "pkcs11/raw_token.h"
#include "pkcs11/token_index.h"
#include "pkcs11/token_lease.h"
#include "pkcs11/token_objects.h"

namespace certstore {
namespace {

using pkcs11_internal::ModuleContext;
using pkcs11_internal::Pkcs11Key;
using pkcs11_internal::RawToken;
using pkcs11_internal::StoredEntry;

// The token key a Put will pair the certificate with.
struct KeyPlan {
  std::string id;
  CK_OBJECT_HANDLE private_key = 0;
  CK_OBJECT_HANDLE imported_public = 0;  // non-zero: imported by this Put
};

// The lock file of this host and the lease on the token, released in the
// reverse order.
class HostAndTokenLock : public AliasLock {
 public:
  HostAndTokenLock(std::unique_ptr<AliasLock> host,
                   std::unique_ptr<AliasLock> token)
      : host_(std::move(host)), token_(std::move(token)) {}
  ~HostAndTokenLock() override { token_.reset(); }

 private:
  std::unique_ptr<AliasLock> host_;
  std::unique_ptr<AliasLock> token_;
};

class Pkcs11Store final : public CertStore {
 public:
  Pkcs11Store(std::string name, std::shared_ptr<RawToken> token,
              std::shared_ptr<RawToken> lease_writer,
              internal::UniqueFd lock_dir, const Pkcs11StoreOptions& options)
      : name_(std::move(name)),
        token_(std::move(token)),
        lease_writer_(std::move(lease_writer)),
        lock_dir_(std::move(lock_dir)),
        clock_(options.clock != nullptr ? options.clock : Clock::System()),
        allow_import_(options.allow_import),
        cache_ttl_(options.cache_ttl),
        token_lease_(options.token_lease),
        opened_at_(clock_->Now()) {}

  std::string Name() const override { return name_; }

  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options) override;
  absl::Status Put(std::shared_ptr<const Entry> entry) override;
  absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) override;
  absl::Status ProbeKey(const Entry& entry) override;
  absl::StatusOr<std::shared_ptr<const Key>> CreateKey(
      absl::string_view alias, const KeySpec& spec) override;
  absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options) override;
  absl::StatusOr<int> RemoveBroken(absl::string_view alias,
                                   const RemoveBrokenOptions& options) override;

  absl::StatusOr<std::unique_ptr<AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "LockAlias", ""));
    }
    const std::string context = OpContext(Name(), "LockAlias", alias);
    const absl::Time deadline = absl::Now() + timeout;
    absl::StatusOr<std::unique_ptr<AliasLock>> host_lock =
        internal::LockAliasAcrossProcesses(
            alias_locks_, alias, lock_dir_.get(),
            pkcs11_internal::MintLockFileName(token_->label(), alias), timeout,
            context);
    if (!host_lock.ok() || token_lease_ <= absl::ZeroDuration()) {
      return host_lock;
    }
    // This host's processes queue on the lock file; one of them at a time
    // contends for the token's lease with the other hosts.
    absl::StatusOr<std::unique_ptr<AliasLock>> lease =
        pkcs11_internal::AcquireTokenLease(token_, lease_writer_, alias,
                                           token_lease_, deadline);
    if (!lease.ok()) {
      return WithContext(lease.status(), context);
    }
    return std::unique_ptr<AliasLock>(std::make_unique<HostAndTokenLock>(
        *std::move(host_lock), *std::move(lease)));
  }

 private:
  // An alias's entries as last read from (or written to) the token.
  struct AliasState {
    std::vector<StoredEntry> entries;  // newest not_after first
    std::vector<pkcs11_internal::BrokenEntry> broken;
    uint64_t epoch = 0;
    absl::Time loaded_at;
  };

  // Everything below runs with the module's mutex held.
  absl::StatusOr<AliasState*> Cached(absl::string_view alias, bool* loaded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  absl::StatusOr<AliasState*> Load(absl::string_view alias)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  absl::Status StillOnToken(const StoredEntry& stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  absl::StatusOr<KeyPlan> PlanKey(const Entry& entry, const AliasState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  absl::Status WriteEntry(const std::shared_ptr<const Entry>& entry,
                          AliasState& state, const KeyPlan& plan)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  void Rollback(const KeyPlan& plan)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  // A spare key pair of `alias` and `type` already on the token (empty id:
  // none).
  absl::StatusOr<pkcs11_internal::TokenKeyRef> ReuseSpare(
      absl::string_view alias, KeyType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());
  absl::StatusOr<int> RemoveBrokenLocked(absl::string_view alias,
                                         const RemoveBrokenOptions& options)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_->module().mu());

  const std::string name_;
  const std::shared_ptr<RawToken> token_;
  // Writes the mint lease on a second instance of the module (null without
  // token_lease; token_lease.h says why).
  const std::shared_ptr<RawToken> lease_writer_;
  const internal::UniqueFd lock_dir_;  // LockAlias's lock files
  const Clock* const clock_;
  const bool allow_import_;
  const absl::Duration cache_ttl_;
  const absl::Duration token_lease_;  // zero: no lease on the token
  // Spares are reused only if made before this store opened (a previous
  // process's) and not handed out by this store already.
  const absl::Time opened_at_;
  absl::flat_hash_set<std::string> spares_handed_out_
      ABSL_GUARDED_BY(token_->module().mu());
  absl::flat_hash_map<std::string, AliasState> cache_
      ABSL_GUARDED_BY(token_->module().mu());
  InProcessAliasLocks alias_locks_;
};

absl::StatusOr<Pkcs11Store::AliasState*> Pkcs11Store::Load(
    absl::string_view alias) {
  CERTSTORE_RETURN_IF_ERROR(token_->CheckToken());
  CERTSTORE_ASSIGN_OR_RETURN(pkcs11_internal::AliasContents contents,
                             pkcs11_internal::LoadAliasEntries(token_, alias));
  AliasState& state = cache_[alias];
  state.entries = std::move(contents.entries);
  state.broken = std::move(contents.broken);
  state.epoch = token_->session_epoch();
  state.loaded_at = absl::Now();
  return &state;
}

absl::StatusOr<Pkcs11Store::AliasState*> Pkcs11Store::Cached(
    absl::string_view alias, bool* loaded) {
  auto it = cache_.find(alias);
  if (it != cache_.end() && it->second.epoch == token_->module().epoch() &&
      absl::Now() - it->second.loaded_at < cache_ttl_) {
    *loaded = false;
    return &it->second;
  }
  *loaded = true;
  return Load(alias);
}

absl::Status Pkcs11Store::StillOnToken(const StoredEntry& stored) {
  // One C_GetAttributeValue: the private key still carries its CKA_ID (not
  // deleted, handle not reused). A certificate deleted alone leaves a pair
  // that still works (the entry holds the certificate's bytes); it is
  // noticed at the next load.
  return token_->Matches(stored.private_key, CKA_ID, stored.key_id);
}

absl::StatusOr<std::shared_ptr<const Entry>> Pkcs11Store::Find(
    absl::string_view alias, const FindOptions& options) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(Name(), "Find", ""));
  }
  const std::string context = OpContext(Name(), "Find", alias);
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool loaded = false;
    absl::StatusOr<AliasState*> state = Cached(alias, &loaded);
    if (!state.ok()) {
      return WithContext(state.status(), context);
    }
    auto best =
        std::find_if((*state)->entries.begin(), (*state)->entries.end(),
                     [&](const StoredEntry& s) {
                       return IsServable(s.entry->not_before(),
                                         s.entry->not_after(), now, options);
                     });
    if (loaded && best == (*state)->entries.end()) {
      break;
    }
    // A cached entry is served only while its objects are on the token;
    // otherwise (deleted, token gone, handles of another epoch) the alias
    // is read again, once.
    if (best != (*state)->entries.end() &&
        (loaded || StillOnToken(*best).ok())) {
      return best->entry;
    }
    cache_.erase(alias);
  }
  return absl::NotFoundError(absl::StrCat(context, ": no servable entry"));
}

absl::StatusOr<KeyPlan> Pkcs11Store::PlanKey(const Entry& entry,
                                             const AliasState& state) {
  const auto* token_key = dynamic_cast<const Pkcs11Key*>(entry.key().get());
  if (token_key != nullptr &&
      &token_key->token().module() == &token_->module() &&
      token_key->token().label() == token_->label()) {
    token_key->mu().AssertHeld();  // the same module: its mutex is held
    CERTSTORE_RETURN_IF_ERROR(token_key->CheckOnToken());
    if (token_key->ref().spare) {
      // A spare made ahead of this mint becomes the alias's key.
      if (absl::Status adopted = pkcs11_internal::AdoptSpare(
              *token_, token_key->ref().id, token_key->private_handle(),
              entry.alias());
          !adopted.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "spare key ", token_key->location(),
            " could not be relabelled for the alias: ", adopted.message()));
      }
    }
    return KeyPlan{token_key->ref().id, token_key->private_handle(), 0};
  }
  for (const StoredEntry& stored : state.entries) {
    if (stored.entry->key()->public_key_der() ==
            entry.key()->public_key_der() &&
        token_->Matches(stored.private_key, CKA_ID, stored.key_id).ok()) {
      return KeyPlan{stored.key_id, stored.private_key, 0};
    }
  }
  if (!allow_import_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "key (", entry.key()->location(), ") is not on token \"",
        token_->label(), "\"; set allow_import to import software keys"));
  }
  absl::StatusOr<std::pair<pkcs11_internal::TokenKeyRef, CK_OBJECT_HANDLE>>
      imported = pkcs11_internal::ImportKeyToToken(*token_, entry.alias(),
                                                   *entry.key());
  if (!imported.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot import key onto token: ", imported.status().message()));
  }
  return KeyPlan{imported->first.id, imported->first.private_handle,
                 imported->second};
}

void Pkcs11Store::Rollback(const KeyPlan& plan) {
  if (plan.imported_public != 0) {
    token_->Destroy(plan.private_key).IgnoreError();
    token_->Destroy(plan.imported_public).IgnoreError();
  }
}

absl::Status Pkcs11Store::WriteEntry(const std::shared_ptr<const Entry>& entry,
                                     AliasState& state, const KeyPlan& plan) {
  // The record first, the certificate last: a reader in another process
  // sees an entry only once its key and record are there.
  CERTSTORE_ASSIGN_OR_RETURN(
      CK_OBJECT_HANDLE record,
      pkcs11_internal::WriteRecordObject(
          *token_, entry->alias(), pkcs11_internal::RecordOf(*entry, plan.id)));
  CERTSTORE_ASSIGN_OR_RETURN(absl::Span<X509* const> chain, entry->Chain());
  absl::StatusOr<CK_OBJECT_HANDLE> certificate =
      pkcs11_internal::WriteCertificateObject(*token_, entry->alias(), plan.id,
                                              chain[0], entry->chain_der()[0]);
  if (!certificate.ok()) {
    token_->Destroy(record).IgnoreError();
    return certificate.status();
  }
  // Replace an entry with the same thumbprint: certificate first.
  auto same = [&](const StoredEntry& s) {
    return s.entry->thumbprint() == entry->thumbprint();
  };
  for (const StoredEntry& old : state.entries) {
    if (same(old)) {
      token_->Destroy(old.certificate).IgnoreError();
      if (old.record != 0) {
        token_->Destroy(old.record).IgnoreError();
      }
    }
  }
  state.entries.erase(
      std::remove_if(state.entries.begin(), state.entries.end(), same),
      state.entries.end());
  auto pos = std::find_if(state.entries.begin(), state.entries.end(),
                          [&](const StoredEntry& s) {
                            return s.entry->not_after() < entry->not_after();
                          });
  state.entries.insert(
      pos, StoredEntry{entry, *certificate, record, plan.private_key, plan.id});
  return absl::OkStatus();
}

absl::Status Pkcs11Store::Put(std::shared_ptr<const Entry> entry) {
  CERTSTORE_RETURN_IF_ERROR(
      CheckEntryForPut(entry.get(), Name(), ChainCheck::kDecode));
  const std::string context = OpContext(Name(), "Put", entry->alias());
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  bool loaded = false;
  absl::StatusOr<AliasState*> state = Cached(entry->alias(), &loaded);
  if (!state.ok()) {
    return WithContext(state.status(), context);
  }
  absl::StatusOr<KeyPlan> plan = PlanKey(*entry, **state);
  if (!plan.ok()) {
    return WithContext(plan.status(), context);
  }
  absl::Status written = WriteEntry(entry, **state, *plan);
  if (!written.ok()) {
    Rollback(*plan);
    return WithContext(written, context);
  }
  // A fresh pair replaces what broke outside certstore (a key deleted with
  // another tool): its leftovers go now, not at the next eviction.
  if (!(*state)->broken.empty()) {
    RemoveBrokenOptions broken_only;
    broken_only.include_stale_spares = false;  // no scan of every key here
    RemoveBrokenLocked(entry->alias(), broken_only).IgnoreError();
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Pkcs11Store::RemoveBrokenLocked(
    absl::string_view alias, const RemoveBrokenOptions& options) {
  // Read again: handles seen earlier may be stale, and only what is broken
  // now may go.
  CERTSTORE_ASSIGN_OR_RETURN(AliasState * state, Load(alias));
  int removed = 0;
  for (const pkcs11_internal::BrokenEntry& broken : state->broken) {
    if (broken.info.foreign && !options.include_foreign) {
      continue;
    }
    for (CK_OBJECT_HANDLE h : broken.objects) {
      CERTSTORE_RETURN_IF_ERROR(token_->Destroy(h));
    }
    ++removed;
  }
  cache_.erase(alias);
  if (options.include_stale_spares) {
    CERTSTORE_ASSIGN_OR_RETURN(
        std::vector<pkcs11_internal::SpareKey> spares,
        pkcs11_internal::SparesMadeBefore(
            *token_, clock_->Now() - pkcs11_internal::kSpareLifetime));
    for (const pkcs11_internal::SpareKey& spare : spares) {
      if (spare.alias != alias) {
        continue;
      }
      CERTSTORE_RETURN_IF_ERROR(token_->Destroy(spare.private_key));
      if (spare.public_key != 0) {
        CERTSTORE_RETURN_IF_ERROR(token_->Destroy(spare.public_key));
      }
      ++removed;
    }
  }
  return removed;
}

absl::StatusOr<pkcs11_internal::TokenKeyRef> Pkcs11Store::ReuseSpare(
    absl::string_view alias, KeyType type) {
  CERTSTORE_ASSIGN_OR_RETURN(
      std::vector<pkcs11_internal::SpareKey> spares,
      pkcs11_internal::SparesMadeBefore(*token_, absl::InfiniteFuture()));
  const std::string want = type == KeyType::kEcP256 ? "EC-P256" : "RSA-2048";
  for (const pkcs11_internal::SpareKey& spare : spares) {
    if (spare.alias != alias || spare.id.empty() || spare.public_key == 0 ||
        spare.created >= opened_at_ || spares_handed_out_.contains(spare.id)) {
      continue;
    }
    absl::StatusOr<std::string> spki = pkcs11_internal::ReadPublicKeyDer(
        *token_, spare.private_key, spare.public_key);
    if (!spki.ok() || pkcs11_internal::AlgorithmOfPublicKey(*spki) != want) {
      continue;
    }
    // Taken again: its lifetime (for gc) starts now.
    const std::string label = pkcs11_internal::SpareLabel(alias, clock_->Now());
    for (CK_OBJECT_HANDLE h : {spare.private_key, spare.public_key}) {
      pkcs11_internal::Template relabel;
      relabel.Add(CKA_LABEL, label);
      CERTSTORE_RETURN_IF_ERROR(token_->SetAttributes(h, relabel));
    }
    pkcs11_internal::TokenKeyRef ref;
    ref.id = spare.id;
    ref.private_handle = spare.private_key;
    ref.public_key_der = *std::move(spki);
    ref.algorithm = want;
    return ref;
  }
  return pkcs11_internal::TokenKeyRef{};
}

absl::StatusOr<int> Pkcs11Store::RemoveBroken(
    absl::string_view alias, const RemoveBrokenOptions& options) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(Name(), "RemoveBroken", ""));
  }
  const std::string context = OpContext(Name(), "RemoveBroken", alias);
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  absl::Status status = token_->CheckToken();
  absl::StatusOr<int> removed = status.ok() ? RemoveBrokenLocked(alias, options)
                                            : absl::StatusOr<int>(status);
  if (!removed.ok()) {
    return WithContext(removed.status(), context);
  }
  return removed;
}

absl::StatusOr<int> Pkcs11Store::DeleteAllForAlias(absl::string_view alias) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(Name(), "DeleteAllForAlias", ""));
  }
  const std::string context = OpContext(Name(), "DeleteAllForAlias", alias);
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  cache_.erase(alias);
  absl::Status status = token_->CheckToken();
  absl::StatusOr<pkcs11_internal::AliasObjects> objects =
      status.ok() ? pkcs11_internal::FindAliasObjects(*token_, alias)
                  : absl::StatusOr<pkcs11_internal::AliasObjects>(status);
  if (!objects.ok()) {
    return WithContext(objects.status(), context);
  }
  // Certificates (what makes an entry) go first, keys last.
  for (const auto* group :
       {&objects->certificates, &objects->records, &objects->private_keys,
        &objects->public_keys, &objects->others}) {
    for (CK_OBJECT_HANDLE h : *group) {
      CERTSTORE_RETURN_IF_ERROR(WithContext(token_->Destroy(h), context));
    }
  }
  return static_cast<int>(objects->certificates.size());
}

absl::Status Pkcs11Store::ProbeKey(const Entry& entry) {
  const std::string context = OpContext(Name(), "ProbeKey", entry.alias());
  absl::Status probe = ProbeEntryKey(entry);
  const auto* token_key = dynamic_cast<const Pkcs11Key*>(entry.key().get());
  if (probe.ok() || token_key == nullptr) {
    return WithContext(probe, context);
  }
  // An unreachable token is Unavailable (retry), not a dead key (evict).
  absl::Status where = token_key->CheckOnTokenLocking();
  if (where.code() == absl::StatusCode::kUnavailable) {
    return WithContext(where, context);
  }
  return WithContext(probe, context);
}

absl::StatusOr<std::shared_ptr<const Key>> Pkcs11Store::CreateKey(
    absl::string_view alias, const KeySpec& spec) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(Name(), "CreateKey", ""));
  }
  const std::string context = OpContext(Name(), "CreateKey", alias);
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  absl::Status status = token_->CheckToken();
  absl::StatusOr<pkcs11_internal::TokenKeyRef> ref =
      status.ok() ? absl::StatusOr<pkcs11_internal::TokenKeyRef>(
                        pkcs11_internal::TokenKeyRef{})
                  : absl::StatusOr<pkcs11_internal::TokenKeyRef>(status);
  if (status.ok() && spec.spare) {
    // A spare of the alias already waiting on the token (its process
    // exited before using it) is handed out again rather than joined by
    // another: restarts do not pile spares up on the token.
    ref = ReuseSpare(alias, spec.type);
  }
  if (status.ok() && (!ref.ok() || ref->id.empty())) {
    const std::string label =
        spec.spare ? pkcs11_internal::SpareLabel(alias, clock_->Now())
                   : std::string(alias);
    ref = pkcs11_internal::GenerateKeyOnToken(*token_, label, spec.type);
  }
  if (!ref.ok()) {
    return WithContext(ref.status(), context);
  }
  ref->spare = spec.spare;
  if (spec.spare) {
    spares_handed_out_.insert(ref->id);
  }
  return std::shared_ptr<const Key>(std::make_shared<Pkcs11Key>(
      token_, std::string(alias), *std::move(ref), token_->module().epoch()));
}

absl::StatusOr<std::vector<EntryInfo>> Pkcs11Store::List(
    const ListOptions& options) {
  const std::string context = OpContext(Name(), "List", "");
  std::vector<EntryInfo> infos;
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  absl::Status status = token_->CheckToken();
  absl::StatusOr<std::vector<std::string>> labels =
      status.ok() ? pkcs11_internal::CertificateLabels(*token_)
                  : absl::StatusOr<std::vector<std::string>>(status);
  if (!labels.ok()) {
    return WithContext(labels.status(), context);
  }
  for (const std::string& alias : *labels) {
    if (!absl::StartsWith(alias, options.alias_prefix)) {
      continue;
    }
    bool loaded = false;
    absl::StatusOr<AliasState*> state = Cached(alias, &loaded);
    if (!state.ok()) {
      return WithContext(state.status(), context);
    }
    for (const StoredEntry& stored : (*state)->entries) {
      EntryInfo info = InfoOf(*stored.entry, Name());
      info.certificate_location =
          pkcs11_internal::CertificateUri(token_->label(), stored.key_id);
      infos.push_back(std::move(info));
    }
    if (!options.include_broken) {
      continue;
    }
    for (const pkcs11_internal::BrokenEntry& broken : (*state)->broken) {
      EntryInfo info = broken.info;
      info.store = Name();
      info.certificate_location =
          pkcs11_internal::CertificateUri(token_->label(), broken.key_id);
      infos.push_back(std::move(info));
    }
  }
  if (options.include_broken) {
    // Spares whose process never used them (RemoveBroken's to destroy).
    absl::StatusOr<std::vector<pkcs11_internal::SpareKey>> spares =
        pkcs11_internal::SparesMadeBefore(
            *token_, clock_->Now() - pkcs11_internal::kSpareLifetime);
    if (!spares.ok()) {
      return WithContext(spares.status(), context);
    }
    for (const pkcs11_internal::SpareKey& spare : *spares) {
      if (!absl::StartsWith(spare.alias, options.alias_prefix)) {
        continue;
      }
      EntryInfo info;
      info.alias = spare.alias;
      info.created_at = spare.created;
      info.store = Name();
      info.problem = absl::StrCat("unused spare key, made ",
                                  absl::FormatTime(spare.created));
      infos.push_back(std::move(info));
    }
  }
  SortListing(infos);
  return infos;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CertStore>> OpenPkcs11Store(
    const Pkcs11StoreOptions& options) {
  const std::string name = pkcs11_internal::StoreName(options.token_label);
  const std::string context = OpContext(name, "Open", "");
  CERTSTORE_RETURN_IF_ERROR(
      WithContext(pkcs11_internal::CheckOptions(options), context));
  absl::StatusOr<internal::UniqueFd> lock_dir =
      pkcs11_internal::OpenLockDir(options);
  if (!lock_dir.ok()) {
    return WithContext(lock_dir.status(), context);
  }
  absl::StatusOr<std::string> pin = pkcs11_internal::ResolvePin(options);
  if (!pin.ok()) {
    return WithContext(pin.status(), context);
  }
  absl::StatusOr<std::shared_ptr<ModuleContext>> module =
      ModuleContext::Acquire(options.module_path, options.initialize_module);
  if (!module.ok()) {
    return WithContext(module.status(), context);
  }
  std::shared_ptr<RawToken> lease_writer;
  if (options.token_lease > absl::ZeroDuration()) {
    lease_writer = std::make_shared<RawToken>(
        *module, options.token_label, *pin, options.token_retry_interval,
        RawToken::Instance::kSecond);
  }
  auto token =
      std::make_shared<RawToken>(*std::move(module), options.token_label,
                                 *std::move(pin), options.token_retry_interval);
  {
    absl::MutexLock lock(&token->module().mu());
    token->module().Prepare();
    CERTSTORE_RETURN_IF_ERROR(WithContext(token->Connect(), context));
  }
  return std::unique_ptr<CertStore>(std::make_unique<Pkcs11Store>(
      name, std::move(token), std::move(lease_writer), *std::move(lock_dir),
      options));
}

}  // namespace certstore

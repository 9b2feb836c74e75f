#include "kv_cert_store.h"

#include <cstdint>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "certstore/backend_author.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"

namespace kvstore {

absl::Status InMemoryBucket::Set(const std::string& key, std::string value) {
  std::lock_guard<std::mutex> lock(mu_);
  values_[key] = std::move(value);
  return absl::OkStatus();
}

absl::StatusOr<bool> InMemoryBucket::Remove(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.erase(key) > 0;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
InMemoryBucket::Scan(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = values_.lower_bound(prefix);
       it != values_.end() && absl::StartsWith(it->first, prefix); ++it) {
    out.push_back(*it);
  }
  return out;
}

namespace {

using certstore::Entry;
using certstore::EntryInfo;
using certstore::OpContext;

// What one value holds. Fields are written as 4-byte big-endian lengths
// followed by the bytes; numbers as decimal text.
struct Record {
  std::string alias;
  std::string thumbprint;
  int64_t not_before = 0;  // Unix seconds
  int64_t not_after = 0;
  int64_t created_at = 0;  // Unix nanoseconds
  std::string key_algorithm;
  std::string pkcs8;
  certstore::EntryMetadata metadata;
  std::vector<std::string> chain_der;
};

void Append(std::string* out, absl::string_view field) {
  const uint32_t n = static_cast<uint32_t>(field.size());
  const char length[4] = {static_cast<char>(n >> 24),
                          static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                          static_cast<char>(n)};
  out->append(length, 4);
  out->append(field.data(), field.size());
}

// Reads the next field; false when the value ends early.
bool Next(absl::string_view* in, std::string* field) {
  if (in->size() < 4) {
    return false;
  }
  const auto* b = reinterpret_cast<const unsigned char*>(in->data());
  const uint32_t n = uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 |
                     uint32_t{b[2]} << 8 | uint32_t{b[3]};
  if (in->size() - 4 < n) {
    return false;
  }
  *field = std::string(in->substr(4, n));
  in->remove_prefix(4 + n);
  return true;
}

std::string Encode(const Record& r) {
  std::string out;
  for (absl::string_view field :
       {absl::string_view(r.alias), absl::string_view(r.thumbprint)}) {
    Append(&out, field);
  }
  Append(&out, absl::StrCat(r.not_before));
  Append(&out, absl::StrCat(r.not_after));
  Append(&out, absl::StrCat(r.created_at));
  for (const std::string* field :
       {&r.key_algorithm, &r.pkcs8, &r.metadata.endpoint, &r.metadata.client_id,
        &r.metadata.tenant_id}) {
    Append(&out, *field);
  }
  for (const std::string& cert : r.chain_der) {
    Append(&out, cert);
  }
  return out;
}

bool Decode(absl::string_view in, Record* r) {
  std::string not_before, not_after, created_at;
  for (std::string* field :
       {&r->alias, &r->thumbprint, &not_before, &not_after, &created_at,
        &r->key_algorithm, &r->pkcs8, &r->metadata.endpoint,
        &r->metadata.client_id, &r->metadata.tenant_id}) {
    if (!Next(&in, field)) {
      return false;
    }
  }
  while (!in.empty()) {
    std::string cert;
    if (!Next(&in, &cert)) {
      return false;
    }
    r->chain_der.push_back(std::move(cert));
  }
  return !r->chain_der.empty() &&
         absl::SimpleAtoi(not_before, &r->not_before) &&
         absl::SimpleAtoi(not_after, &r->not_after) &&
         absl::SimpleAtoi(created_at, &r->created_at);
}

// Keys: "<hex of the alias>/<thumbprint>". Hex keeps any alias byte out of
// the key syntax, and the hex of an alias prefix is a prefix of its hex.
std::string AliasPrefix(absl::string_view alias) {
  return absl::StrCat(absl::BytesToHexString(alias), "/");
}

class KvCertStore final : public certstore::CertStore {
 public:
  KvCertStore(std::string name, std::shared_ptr<KeyValueBucket> bucket,
              const certstore::Clock* clock)
      : name_(absl::StrCat("kv:", name)),
        bucket_(std::move(bucket)),
        clock_(clock != nullptr ? clock : certstore::Clock::System()) {}

  std::string Name() const override { return name_; }

  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const certstore::FindOptions& options) override {
    CERTSTORE_RETURN_IF_ERROR(Check(alias, "Find"));
    const std::string context = OpContext(name_, "Find", alias);
    CERTSTORE_ASSIGN_OR_RETURN(auto values,
                               Scanned(AliasPrefix(alias), context));
    const absl::Time now = clock_->Now();
    Record best;
    bool found = false;
    absl::Status damage;
    for (const auto& [key, value] : values) {
      Record r;
      if (!Decode(value, &r)) {
        damage = absl::DataLossError(
            absl::StrCat(context, ": value ", key, " does not decode"));
        continue;
      }
      if (certstore::IsServable(absl::FromUnixSeconds(r.not_before),
                                absl::FromUnixSeconds(r.not_after), now,
                                options) &&
          (!found || r.not_after > best.not_after)) {
        best = std::move(r);
        found = true;
      }
    }
    if (found) {
      return Restore(std::move(best), context);
    }
    if (!damage.ok()) {
      return damage;
    }
    return absl::NotFoundError(absl::StrCat(context, ": no servable entry"));
  }

  absl::Status Put(std::shared_ptr<const Entry> entry) override {
    CERTSTORE_RETURN_IF_ERROR(certstore::CheckEntryForPut(
        entry.get(), name_, certstore::ChainCheck::kDecode));
    const std::string context = OpContext(name_, "Put", entry->alias());
    absl::StatusOr<std::string> pkcs8 = entry->key()->ExportPkcs8Der();
    if (!pkcs8.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          context,
          ": this store keeps software keys only: ", pkcs8.status().message()));
    }
    Record r;
    r.alias = entry->alias();
    r.thumbprint = entry->thumbprint();
    r.not_before = absl::ToUnixSeconds(entry->not_before());
    r.not_after = absl::ToUnixSeconds(entry->not_after());
    r.created_at = absl::ToUnixNanos(entry->created_at());
    r.key_algorithm = entry->key()->algorithm();
    r.pkcs8 = *std::move(pkcs8);
    r.metadata = entry->metadata();
    r.chain_der = entry->chain_der();
    return certstore::WithContext(
        bucket_->Set(AliasPrefix(r.alias) + r.thumbprint, Encode(r)), context);
  }

  absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) override {
    CERTSTORE_RETURN_IF_ERROR(Check(alias, "DeleteAllForAlias"));
    const std::string context = OpContext(name_, "DeleteAllForAlias", alias);
    CERTSTORE_ASSIGN_OR_RETURN(auto values,
                               Scanned(AliasPrefix(alias), context));
    int removed = 0;
    for (const auto& [key, value] : values) {
      absl::StatusOr<bool> gone = bucket_->Remove(key);
      CERTSTORE_RETURN_IF_ERROR(certstore::WithContext(gone.status(), context));
      removed += *gone ? 1 : 0;
    }
    return removed;
  }

  absl::Status ProbeKey(const Entry& entry) override {
    return certstore::WithContext(certstore::ProbeEntryKey(entry),
                                  OpContext(name_, "ProbeKey", entry.alias()));
  }

  absl::StatusOr<std::shared_ptr<const certstore::Key>> CreateKey(
      absl::string_view alias, const certstore::KeySpec& spec) override {
    return certstore::CreateSoftwareKeyFor(name_, alias, spec);
  }

  absl::StatusOr<std::vector<EntryInfo>> List(
      const certstore::ListOptions& options) override {
    const std::string context = OpContext(name_, "List", "");
    // No "/": every alias that starts with the prefix.
    CERTSTORE_ASSIGN_OR_RETURN(
        auto values,
        Scanned(absl::BytesToHexString(options.alias_prefix), context));
    std::vector<EntryInfo> infos;
    for (const auto& [key, value] : values) {
      Record r;
      if (!Decode(value, &r)) {
        return absl::DataLossError(
            absl::StrCat(context, ": value ", key, " does not decode"));
      }
      EntryInfo info;
      info.alias = r.alias;
      info.thumbprint = r.thumbprint;
      info.not_before = absl::FromUnixSeconds(r.not_before);
      info.not_after = absl::FromUnixSeconds(r.not_after);
      info.created_at = absl::FromUnixNanos(r.created_at);
      info.chain_length = r.chain_der.size();
      info.key_algorithm = r.key_algorithm;
      info.key_location = "software";
      info.store = name_;
      infos.push_back(std::move(info));
    }
    certstore::SortListing(infos);
    return infos;
  }

  // In-process only: a store shared by several hosts would take a lease
  // in the service itself (a key with a TTL) after this.
  absl::StatusOr<std::unique_ptr<certstore::AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) override {
    CERTSTORE_RETURN_IF_ERROR(Check(alias, "LockAlias"));
    return locks_.Acquire(alias, timeout, OpContext(name_, "LockAlias", alias));
  }

 private:
  absl::Status Check(absl::string_view alias, absl::string_view op) const {
    return certstore::WithContext(certstore::ValidateAlias(alias),
                                  OpContext(name_, op, ""));
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scanned(
      const std::string& prefix, absl::string_view context) {
    auto values = bucket_->Scan(prefix);
    if (!values.ok()) {
      return certstore::WithContext(values.status(), context);
    }
    return values;
  }

  // The stored entry, its key decoded now and its certificates on first
  // use (RestoreEntry).
  absl::StatusOr<std::shared_ptr<const Entry>> Restore(
      Record r, absl::string_view context) const {
    auto key = certstore::SoftwareKeyFromPkcs8Der(
        r.pkcs8, absl::StartsWith(r.key_algorithm, "EC")
                     ? certstore::KeyTypeHint::kEc
                     : certstore::KeyTypeHint::kRsa);
    if (!key.ok()) {
      return absl::DataLossError(absl::StrCat(
          context, ": stored key does not decode: ", key.status().message()));
    }
    certstore::EntryParts parts;
    parts.alias = std::move(r.alias);
    parts.chain_der = std::move(r.chain_der);
    parts.key = *std::move(key);
    parts.metadata = std::move(r.metadata);
    parts.created_at = absl::FromUnixNanos(r.created_at);
    certstore::LeafFacts facts{absl::FromUnixSeconds(r.not_before),
                               absl::FromUnixSeconds(r.not_after),
                               std::move(r.thumbprint)};
    absl::StatusOr<std::shared_ptr<const Entry>> entry =
        certstore::RestoreEntry(std::move(parts), std::move(facts));
    if (!entry.ok()) {
      return absl::DataLossError(
          absl::StrCat(context, ": ", entry.status().message()));
    }
    return entry;
  }

  const std::string name_;
  const std::shared_ptr<KeyValueBucket> bucket_;
  const certstore::Clock* const clock_;
  certstore::InProcessAliasLocks locks_;
};

}  // namespace

std::unique_ptr<certstore::CertStore> NewKvCertStore(
    std::string bucket_name, std::shared_ptr<KeyValueBucket> bucket,
    const certstore::Clock* clock) {
  return std::make_unique<KvCertStore>(std::move(bucket_name),
                                       std::move(bucket), clock);
}

}  // namespace kvstore

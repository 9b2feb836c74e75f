#include "pkcs11/token_index.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "certstore/backend_author.h"
#include "certstore/chain.h"
#include "certstore/status_macros.h"
#include "pkcs11/pkcs11_key.h"
#include "pkcs11/token_lease.h"
#include "pkcs11/token_objects.h"

namespace certstore::pkcs11_internal {
namespace {

absl::StatusOr<CK_ULONG> UlongAttribute(RawToken& token,
                                        CK_OBJECT_HANDLE object,
                                        CK_ATTRIBUTE_TYPE type)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu()) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string bytes, token.Attribute(object, type));
  CK_ULONG value = 0;
  if (bytes.size() != sizeof(value)) {
    return absl::DataLossError("attribute has an unexpected size");
  }
  std::memcpy(&value, bytes.data(), sizeof(value));
  return value;
}

// The first object of `object_class` with CKA_ID `id`, or 0.
// What LoadAliasEntries needs while pairing certificates with keys.
struct Pairing {
  absl::flat_hash_map<std::string, CK_OBJECT_HANDLE> private_by_id;
  absl::flat_hash_map<std::string, CK_OBJECT_HANDLE> public_by_id;
  struct Record {
    EntryRecord record;
    CK_OBJECT_HANDLE handle;
  };
  absl::flat_hash_map<std::string, Record> record_by_thumbprint;
  absl::flat_hash_map<std::string, std::shared_ptr<const Key>> key_by_id;
};

absl::StatusOr<Pairing> IndexObjects(RawToken& token,
                                     const AliasObjects& objects)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu()) {
  Pairing p;
  for (CK_OBJECT_HANDLE h : objects.private_keys) {
    CERTSTORE_ASSIGN_OR_RETURN(std::string id, token.Attribute(h, CKA_ID));
    p.private_by_id.emplace(std::move(id), h);
  }
  for (CK_OBJECT_HANDLE h : objects.public_keys) {
    CERTSTORE_ASSIGN_OR_RETURN(std::string id, token.Attribute(h, CKA_ID));
    p.public_by_id.emplace(std::move(id), h);
  }
  for (CK_OBJECT_HANDLE h : objects.records) {
    absl::StatusOr<std::string> app = token.Attribute(h, CKA_APPLICATION);
    if (!app.ok() || *app != kApplication) {
      continue;  // another application's data object
    }
    CERTSTORE_ASSIGN_OR_RETURN(std::string value,
                               token.Attribute(h, CKA_VALUE));
    CERTSTORE_ASSIGN_OR_RETURN(EntryRecord record, DecodeRecord(value));
    std::string thumbprint = record.thumbprint;
    p.record_by_thumbprint.emplace(std::move(thumbprint),
                                   Pairing::Record{std::move(record), h});
  }
  return p;
}

// The token key of `id`, made once per load and shared by its entries.
absl::StatusOr<std::shared_ptr<const Key>> KeyFor(
    const std::shared_ptr<RawToken>& token, absl::string_view alias,
    absl::string_view id, CK_OBJECT_HANDLE private_handle,
    absl::string_view leaf_der, Pairing& p)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token->module().mu()) {
  auto it = p.key_by_id.find(id);
  if (it != p.key_by_id.end()) {
    return it->second;
  }
  CK_OBJECT_HANDLE public_handle = 0;
  auto pub = p.public_by_id.find(id);
  if (pub != p.public_by_id.end()) {
    public_handle = pub->second;
  } else {
    CERTSTORE_ASSIGN_OR_RETURN(public_handle,
                               FindById(*token, CKO_PUBLIC_KEY, id));
  }
  TokenKeyRef ref;
  ref.id = std::string(id);
  ref.private_handle = private_handle;
  absl::StatusOr<std::string> spki =
      ReadPublicKeyDer(*token, private_handle, public_handle);
  if (!spki.ok() && spki.status().code() == absl::StatusCode::kNotFound) {
    // An EC key without a public-key object: trust the CKA_ID pairing.
    absl::StatusOr<UniqueX509> leaf = DecodeCertificate(leaf_der, "leaf");
    spki = leaf.ok() ? PublicKeyDer(leaf->get()) : leaf.status();
  }
  CERTSTORE_RETURN_IF_ERROR(spki.status());
  ref.public_key_der = *std::move(spki);
  ref.algorithm = AlgorithmOfPublicKey(ref.public_key_der);
  auto key = std::make_shared<Pkcs11Key>(
      token, std::string(alias), std::move(ref), token->module().epoch());
  p.key_by_id.emplace(std::string(id), key);
  return key;
}

// The entry of one certificate object, or null when it has no usable key
// (`problem` then says why; `leaf_der` is the certificate either way).
absl::StatusOr<std::shared_ptr<const Entry>> EntryOf(
    const std::shared_ptr<RawToken>& token, absl::string_view alias,
    CK_OBJECT_HANDLE certificate, StoredEntry& stored, Pairing& p,
    std::string& leaf_der, std::string& problem)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token->module().mu()) {
  CERTSTORE_ASSIGN_OR_RETURN(stored.key_id,
                             token->Attribute(certificate, CKA_ID));
  CERTSTORE_ASSIGN_OR_RETURN(leaf_der,
                             token->Attribute(certificate, CKA_VALUE));
  auto priv = p.private_by_id.find(stored.key_id);
  if (priv != p.private_by_id.end()) {
    stored.private_key = priv->second;
  } else {
    CERTSTORE_ASSIGN_OR_RETURN(
        stored.private_key, FindById(*token, CKO_PRIVATE_KEY, stored.key_id));
  }
  if (stored.private_key == 0) {
    problem = "key missing";  // a certificate without its key
    return nullptr;
  }
  CERTSTORE_ASSIGN_OR_RETURN(
      std::shared_ptr<const Key> key,
      KeyFor(token, alias, stored.key_id, stored.private_key, leaf_der, p));
  EntryParts parts;
  parts.alias = std::string(alias);
  parts.key = std::move(key);
  const std::string thumbprint = Thumbprint(leaf_der);
  parts.chain_der.push_back(leaf_der);
  auto record = p.record_by_thumbprint.find(thumbprint);
  if (record == p.record_by_thumbprint.end() ||
      record->second.record.key_id != stored.key_id) {
    absl::StatusOr<std::shared_ptr<const Entry>> entry =
        Entry::Create(std::move(parts));
    if (!entry.ok()) {  // an undecodable foreign object
      problem = absl::StrCat("damaged: ", entry.status().message());
      return nullptr;
    }
    return entry;
  }
  stored.record = record->second.handle;
  const EntryRecord& r = record->second.record;
  parts.chain_der.insert(parts.chain_der.end(), r.intermediates.begin(),
                         r.intermediates.end());
  parts.metadata = r.metadata;
  parts.created_at = r.created_at;
  return RestoreEntry(std::move(parts),
                      LeafFacts{r.not_before, r.not_after, r.thumbprint});
}

// The broken entry of `certificate`: what it is, and which objects go with
// it. The record and the public key are certstore's when a record of this
// certificate names the key id; a certificate with no such record is
// another tool's (foreign).
BrokenEntry BrokenOf(absl::string_view alias, CK_OBJECT_HANDLE certificate,
                     const std::string& key_id, const std::string& leaf_der,
                     std::string problem, const Pairing& p) {
  BrokenEntry broken;
  broken.info.alias = std::string(alias);
  broken.info.problem = std::move(problem);
  broken.info.thumbprint = Thumbprint(leaf_der);
  if (absl::StatusOr<UniqueX509> leaf = DecodeCertificate(leaf_der, "leaf");
      leaf.ok()) {
    broken.info.not_before = NotBefore(leaf->get());
    broken.info.not_after = NotAfter(leaf->get());
  }
  broken.info.chain_length = 1;
  broken.key_id = key_id;
  broken.objects.push_back(certificate);
  auto record = p.record_by_thumbprint.find(broken.info.thumbprint);
  const bool ours = record != p.record_by_thumbprint.end() &&
                    record->second.record.key_id == key_id;
  broken.info.foreign = !ours;
  if (ours) {
    broken.info.chain_length += record->second.record.intermediates.size();
    broken.info.created_at = record->second.record.created_at;
    broken.info.key_algorithm = record->second.record.key_algorithm;
    broken.objects.push_back(record->second.handle);
    auto pub = p.public_by_id.find(key_id);
    if (broken.info.problem == "key missing" && pub != p.public_by_id.end()) {
      broken.objects.push_back(pub->second);  // the half of a deleted pair
    }
  }
  return broken;
}

}  // namespace

absl::StatusOr<AliasObjects> FindAliasObjects(RawToken& token,
                                              absl::string_view alias) {
  Template match;
  match.Add(CKA_LABEL, alias);
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                             token.Find(match));
  AliasObjects objects;
  for (CK_OBJECT_HANDLE h : found) {
    absl::StatusOr<CK_ULONG> cls = UlongAttribute(token, h, CKA_CLASS);
    if (!cls.ok()) {
      continue;  // deleted in between
    }
    switch (*cls) {
      case CKO_CERTIFICATE:
        objects.certificates.push_back(h);
        break;
      case CKO_DATA: {
        // A mint lease (token_lease.h) carries the alias too; it is the
        // lock's, not part of the alias's entries.
        absl::StatusOr<std::string> app = token.Attribute(h, CKA_APPLICATION);
        if (!app.ok() || *app != kLeaseApplication) {
          objects.records.push_back(h);
        }
        break;
      }
      case CKO_PRIVATE_KEY:
        objects.private_keys.push_back(h);
        break;
      case CKO_PUBLIC_KEY:
        objects.public_keys.push_back(h);
        break;
      default:
        objects.others.push_back(h);
    }
  }
  return objects;
}

absl::StatusOr<AliasContents> LoadAliasEntries(
    const std::shared_ptr<RawToken>& token, absl::string_view alias) {
  CERTSTORE_ASSIGN_OR_RETURN(AliasObjects objects,
                             FindAliasObjects(*token, alias));
  CERTSTORE_ASSIGN_OR_RETURN(Pairing pairing, IndexObjects(*token, objects));
  AliasContents contents;
  for (CK_OBJECT_HANDLE certificate : objects.certificates) {
    StoredEntry stored;
    stored.certificate = certificate;
    std::string leaf_der;
    std::string problem;
    CERTSTORE_ASSIGN_OR_RETURN(
        stored.entry,
        EntryOf(token, alias, certificate, stored, pairing, leaf_der, problem));
    if (stored.entry != nullptr && !CheckKeyMatchesLeaf(*stored.entry).ok()) {
      problem = "key mismatched";  // a key re-created under the old id
    }
    if (problem.empty()) {
      contents.entries.push_back(std::move(stored));
      continue;
    }
    contents.broken.push_back(BrokenOf(alias, certificate, stored.key_id,
                                       leaf_der, std::move(problem), pairing));
  }
  std::stable_sort(contents.entries.begin(), contents.entries.end(),
                   [](const StoredEntry& a, const StoredEntry& b) {
                     return a.entry->not_after() > b.entry->not_after();
                   });
  return contents;
}

absl::StatusOr<std::vector<std::string>> CertificateLabels(RawToken& token) {
  Template match;
  match.AddUlong(CKA_CLASS, CKO_CERTIFICATE);
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                             token.Find(match));
  std::vector<std::string> labels;
  for (CK_OBJECT_HANDLE h : found) {
    absl::StatusOr<std::string> label = token.Attribute(h, CKA_LABEL);
    if (label.ok()) {
      labels.push_back(*std::move(label));
    }
  }
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  return labels;
}

}  // namespace certstore::pkcs11_internal

/// \file
/// A binding credential: a certificate chain and its private key under an
/// alias, plus what the token client needs to use it.
#ifndef CERTSTORE_ENTRY_H_
#define CERTSTORE_ENTRY_H_

#include <openssl/x509.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "certstore/export.h"
#include "certstore/key.h"
#include "certstore/openssl_types.h"

namespace certstore {

/// Aliases are 1..kMaxAliasBytes arbitrary bytes and compare exactly. Backends
/// that cannot hold some bytes say so in their own header.
inline constexpr size_t kMaxAliasBytes = 1024;

/// InvalidArgument for an empty or oversized alias.
CERTSTORE_EXPORT absl::Status ValidateAlias(absl::string_view alias);

/// What the token client records next to a binding.
struct EntryMetadata {
  std::string endpoint;   ///< mTLS token endpoint the certificate is for
  std::string client_id;  ///< canonical client id
  std::string tenant_id;

  bool operator==(const EntryMetadata& o) const {
    return endpoint == o.endpoint && client_id == o.client_id &&
           tenant_id == o.tenant_id;
  }
};

/// The raw parts an Entry is built from.
struct EntryParts {
  std::string alias;
  std::vector<std::string> chain_der;  ///< DER certificates, leaf first
  std::shared_ptr<const Key> key;
  EntryMetadata metadata;
  absl::Time created_at = absl::UnixEpoch();
};

struct LeafFacts;  ///< certstore/backend_author.h

/// An immutable, thread-safe entry. Stores hand out shared_ptr<const Entry>;
/// holding one keeps its key alive. Every entry is checked before a store
/// keeps it: Put compares the key with the leaf's public key (see
/// CheckKeyMatchesLeaf) whoever built the entry, and nothing can mark an
/// entry as checked but that comparison itself.
class CERTSTORE_EXPORT Entry {
 public:
  /// Builds an entry and decodes every certificate now (done once, at Put
  /// time, never on a lookup). InvalidArgument for a bad alias, an empty
  /// chain, a certificate that does not decode (naming its index) or a null
  /// key. Does not check that the key matches: Put does (see
  /// CheckKeyMatchesLeaf), so that a mismatch is refused by the store.
  static absl::StatusOr<std::shared_ptr<const Entry>> Create(EntryParts parts);

  Entry(const Entry&) = delete;
  Entry& operator=(const Entry&) = delete;

  const std::string& alias() const { return alias_; }
  const std::vector<std::string>& chain_der() const { return chain_der_; }
  const std::shared_ptr<const Key>& key() const { return key_; }
  const EntryMetadata& metadata() const { return metadata_; }
  absl::Time created_at() const { return created_at_; }
  absl::Time not_before() const { return not_before_; }
  absl::Time not_after() const { return not_after_; }
  const std::string& thumbprint() const { return thumbprint_; }

  /// The decoded chain, leaf first. Decoded at most once per entry (entries
  /// from Create are decoded already). DataLoss if stored DER is corrupt.
  absl::StatusOr<absl::Span<X509* const>> Chain() const;

  /// The leaf's SubjectPublicKeyInfo DER, read from the certificate's DER
  /// without decoding it (~1 µs; kept). DataLoss if it has no such field.
  absl::StatusOr<std::string> LeafPublicKeyDer() const;

  /// CheckKeyMatchesLeaf's verdict, computed on first call (a walk of the
  /// leaf's DER and a byte comparison, ~1-2 µs) and remembered: key and
  /// certificate never change.
  absl::Status KeyMatchesLeaf() const;

  /// OK when every certificate has a certificate's DER shape (a walk of its
  /// outer structure, ~1 µs each; no signature or extension checks). What a
  /// cache's Put checks, so that entries restored from storage are not
  /// decoded just to be cached. InvalidArgument naming the certificate
  /// otherwise.
  absl::Status CheckWellFormed() const;

 private:
  friend absl::StatusOr<std::shared_ptr<const Entry>> RestoreEntry(
      EntryParts parts, LeafFacts facts);
  Entry(EntryParts parts, absl::Time not_before, absl::Time not_after,
        std::string thumbprint);
  absl::Status DecodeChain() const;

  std::string alias_;
  std::vector<std::string> chain_der_;
  std::shared_ptr<const Key> key_;
  EntryMetadata metadata_;
  absl::Time created_at_;
  absl::Time not_before_;
  absl::Time not_after_;
  std::string thumbprint_;

  mutable absl::once_flag decode_once_;
  mutable absl::Status decode_status_;
  mutable std::vector<UniqueX509> certs_;
  mutable std::vector<X509*> cert_ptrs_;
  mutable absl::once_flag leaf_spki_once_;
  mutable absl::StatusOr<std::string> leaf_public_key_der_;
  mutable absl::once_flag key_match_once_;
  mutable absl::Status key_match_;
};

/// OK when the entry's key is the leaf certificate's key; FailedPrecondition
/// (naming the thumbprint) otherwise. A comparison of public keys only: it
/// does not prove the key can sign (that is ProbeKey). Done once per entry
/// (Entry::KeyMatchesLeaf), so that every layer a Put or a back-fill writes
/// to does not repeat it.
CERTSTORE_EXPORT absl::Status CheckKeyMatchesLeaf(const Entry& entry);

/// How Find chooses.
struct FindOptions {
  /// An entry with less lifetime left than this is not served.
  absl::Duration min_remaining = absl::Hours(24);
};

/// The selection rule every backend applies: valid now, and at least
/// `min_remaining` before not_after. Among several, newest not_after wins.
CERTSTORE_EXPORT bool IsServable(absl::Time not_before, absl::Time not_after,
                                 absl::Time now, const FindOptions& options);

/// A summary for listings; building one never decodes a key.
struct EntryInfo {
  std::string alias;
  std::string thumbprint;
  absl::Time not_before;
  absl::Time not_after;
  absl::Time created_at;
  size_t chain_length = 0;
  std::string key_algorithm;  ///< "EC-P256"
  std::string key_location;   ///< "software", token URI
  /// Where the leaf certificate lives as an object of its own: the RFC 7512
  /// URI (type=cert) on a PKCS#11 token; empty in stores that keep it only
  /// inside the entry.
  std::string certificate_location;
  std::string store;  ///< Name() of the store that holds it
  /// Empty for an entry the store can serve. Otherwise (listed only with
  /// ListOptions::include_broken) why it cannot: "key missing", "key
  /// mismatched", "unreadable: …", "damaged: …". Fields the store could not
  /// read are left empty.
  std::string problem;
  /// A broken entry whose objects certstore did not write (a pair another
  /// tool put on a token): RemoveBroken leaves it unless told otherwise.
  bool foreign = false;
};

struct ListOptions {
  /// Only entries whose alias starts with this (empty: all).
  std::string alias_prefix;
  /// Also list what the store holds but cannot serve, with
  /// EntryInfo::problem saying why (`certstore list --all`).
  bool include_broken = false;
};

/// What CertStore::RemoveBroken may remove.
struct RemoveBrokenOptions {
  /// Also objects certstore did not write (EntryInfo::foreign).
  bool include_foreign = false;
  /// Also the alias's spare keys left unused for a day (KeySpec::spare on a
  /// PKCS#11 token: their process is gone). Listed by List with
  /// include_broken as "unused spare key".
  bool include_stale_spares = true;
};

}  // namespace certstore

#endif  // CERTSTORE_ENTRY_H_

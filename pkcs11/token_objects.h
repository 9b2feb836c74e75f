// The object layout of an entry on the token: the CKO_DATA record (format
// below) and the leaf CKO_CERTIFICATE. Project-internal to pkcs11/.
//
// Record (CKA_VALUE of the CKO_DATA object, CKA_APPLICATION "certstore",
// CKA_LABEL = alias), all integers big-endian:
//   "CSE1"                                  magic + format version 1
//   bytes key_id, thumbprint, key_algorithm  (u32 length + bytes each)
//   i64 not_before, not_after, created_at    (Unix nanoseconds)
//   bytes endpoint, client_id, tenant_id
//   u32 n, then n × bytes                    intermediates, DER, leaf's issuer
//   first
#ifndef CERTSTORE_PKCS11_TOKEN_OBJECTS_H_
#define CERTSTORE_PKCS11_TOKEN_OBJECTS_H_

#include <p11-kit/pkcs11.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/entry.h"
#include "pkcs11/raw_token.h"

namespace certstore::pkcs11_internal {

inline constexpr absl::string_view kApplication = "certstore";

// A spare key pair (KeySpec::spare) is labelled
// "certstore-spare:<creation, Unix seconds>:<alias>" until the Put that
// uses it relabels it `alias`: the alias's objects (found by label) do not
// include it, so eviction leaves it, and RemoveBroken destroys it once it is
// older than kSpareLifetime (the process that made it is gone).
inline constexpr absl::string_view kSparePrefix = "certstore-spare:";
inline constexpr absl::Duration kSpareLifetime = absl::Hours(24);

std::string SpareLabel(absl::string_view alias, absl::Time created);

struct SpareKey {
  std::string alias;
  std::string id;  // CKA_ID
  absl::Time created;
  CK_OBJECT_HANDLE private_key = 0;
  CK_OBJECT_HANDLE public_key = 0;  // 0: none found
};

// With the module's mutex held: the spare key pairs on the token made
// before `made_before` (every private key's label is read: for gc and for
// making a spare, not for lookups).
absl::StatusOr<std::vector<SpareKey>> SparesMadeBefore(RawToken& token,
                                                       absl::Time made_before)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

// With the module's mutex held: relabels the key pair `id` (private and, if
// present, public) to `alias`.
absl::Status AdoptSpare(RawToken& token, absl::string_view id,
                        CK_OBJECT_HANDLE private_key, absl::string_view alias)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

struct EntryRecord {
  std::string key_id;
  std::string thumbprint;
  std::string key_algorithm;
  absl::Time not_before;
  absl::Time not_after;
  absl::Time created_at;
  EntryMetadata metadata;
  std::vector<std::string> intermediates;
};

// The record describing `entry`, whose key is the token key `key_id`.
EntryRecord RecordOf(const Entry& entry, absl::string_view key_id);

std::string EncodeRecord(const EntryRecord& record);

// DataLoss (saying what is wrong) for anything but a well-formed record.
absl::StatusOr<EntryRecord> DecodeRecord(absl::string_view bytes);

// With the module's mutex held: the first object of `object_class` with
// CKA_ID `id`, or 0 for none.
absl::StatusOr<CK_OBJECT_HANDLE> FindById(RawToken& token,
                                          CK_OBJECT_CLASS object_class,
                                          absl::string_view id)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

// With the module's mutex held: writes the CKO_DATA record of `alias`.
absl::StatusOr<CK_OBJECT_HANDLE> WriteRecordObject(RawToken& token,
                                                   absl::string_view alias,
                                                   const EntryRecord& record)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

// With the module's mutex held: writes the leaf as a CKO_CERTIFICATE
// (CKC_X_509, CKA_ID = key_id, CKA_LABEL = alias, subject, issuer, serial).
absl::StatusOr<CK_OBJECT_HANDLE> WriteCertificateObject(
    RawToken& token, absl::string_view alias, absl::string_view key_id,
    X509* leaf, absl::string_view leaf_der)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

}  // namespace certstore::pkcs11_internal

#endif  // CERTSTORE_PKCS11_TOKEN_OBJECTS_H_

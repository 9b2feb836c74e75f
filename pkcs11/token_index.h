// Reading entries back from the token: an alias's objects found by label,
// certificates paired with private keys by CKA_ID, records matched by
// thumbprint. Project-internal to pkcs11/.
#ifndef CERTSTORE_PKCS11_TOKEN_INDEX_H_
#define CERTSTORE_PKCS11_TOKEN_INDEX_H_

#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/entry.h"
#include "pkcs11/raw_token.h"

namespace certstore::pkcs11_internal {

// One entry on the token and the handles that prove it is still there.
struct StoredEntry {
  std::shared_ptr<const Entry> entry;
  CK_OBJECT_HANDLE certificate = 0;
  CK_OBJECT_HANDLE record = 0;  // 0: a pair written by another tool
  CK_OBJECT_HANDLE private_key = 0;
  std::string key_id;
};

// What an alias holds on the token but cannot serve, and the objects that
// make it up (certificate first).
struct BrokenEntry {
  EntryInfo info;  // alias, thumbprint, validity when readable; problem
  std::string key_id;
  std::vector<CK_OBJECT_HANDLE> objects;
};

// An alias as read from the token.
struct AliasContents {
  std::vector<StoredEntry> entries;  // servable pairs, newest not_after first
  std::vector<BrokenEntry> broken;
};

// Every object labelled `alias`, by class.
struct AliasObjects {
  std::vector<CK_OBJECT_HANDLE> certificates;
  std::vector<CK_OBJECT_HANDLE> records;  // CKO_DATA of any application
  std::vector<CK_OBJECT_HANDLE> private_keys;
  std::vector<CK_OBJECT_HANDLE> public_keys;
  std::vector<CK_OBJECT_HANDLE> others;
};

// With the module's mutex held, for all below.

// One C_FindObjects by CKA_LABEL (a linear scan on SoftHSM), then the class
// of each object.
absl::StatusOr<AliasObjects> FindAliasObjects(RawToken& token,
                                              absl::string_view alias)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

// The usable entries of `alias`, newest not_after first: certificates whose
// CKA_ID has a private key on the token and whose key matches the leaf.
// Keys are Pkcs11Keys of `token` (their libp11 key is loaded on first
// use). The other certificates are broken entries: "key missing" (with
// the record and the public key of that id, when certstore wrote them) or
// "key mismatched" (certificate and record; the key under that id is not
// the one certstore paired, so it stays). DataLoss when a certstore
// record of the alias is corrupt.
absl::StatusOr<AliasContents> LoadAliasEntries(
    const std::shared_ptr<RawToken>& token, absl::string_view alias)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token->module().mu());

// The labels of every certificate on the token, sorted, each once.
absl::StatusOr<std::vector<std::string>> CertificateLabels(RawToken& token)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu());

}  // namespace certstore::pkcs11_internal

#endif  // CERTSTORE_PKCS11_TOKEN_INDEX_H_

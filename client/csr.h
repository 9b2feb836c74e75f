// The issuing protocol's two documents: the CSR we send and the credential
// we get back. Internal to client/.
#ifndef CERTSTORE_CLIENT_CSR_H_
#define CERTSTORE_CLIENT_CSR_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/entry.h"
#include "certstore/key.h"

namespace certstore::client_internal {

// A DER PKCS#10 request for `key` with subject CN=<client_id>, DC=<tenant>,
// signed with the key (on its token for PKCS#11 keys).
absl::StatusOr<std::string> MakeCsr(const Key& key, absl::string_view client_id,
                                    absl::string_view tenant_id);

// Parses an issuecredential answer: chain (leaf, then certificate_chain)
// and metadata. DataLoss naming `context` and the field when malformed.
// The caller sets alias, key and created_at.
absl::StatusOr<EntryParts> ParseIssuedCredential(absl::string_view json,
                                                 absl::string_view context);

}  // namespace certstore::client_internal

#endif  // CERTSTORE_CLIENT_CSR_H_

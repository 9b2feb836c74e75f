// The token request both protocols send, built once for the token client
// and the CLI's doctor probe (which speaks HTTP itself): an OAuth 2.0
// client-credentials form (RFC 6749 §4.4, application/x-www-form-urlencoded)
// and, in IMDS mode, the tenant's path and the "/.default" scope.
// Project-internal to client/.
#ifndef CERTSTORE_CLIENT_TOKEN_REQUEST_H_
#define CERTSTORE_CLIENT_TOKEN_REQUEST_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "api/internal/internal_export.h"

namespace certstore::client_internal {

struct TokenRequestForm {
  std::string client_id;
  std::string scope;  // sent as given
  // Generic mode: more form fields, in order (names and values encoded).
  std::vector<std::pair<std::string, std::string>> extra_parameters;
  // IMDS mode: token_type=mtls_pop asks for a token bound to the
  // certificate presented.
  bool mtls_pop = false;
};

// "grant_type=client_credentials&client_id=…&scope=…[&extra…]
// [&token_type=mtls_pop]", every name and value percent-encoded.
CERTSTORE_INTERNAL_EXPORT std::string TokenRequestBody(
    const TokenRequestForm& form);

// IMDS mode: the token path under the endpoint an issuer names,
// "/<tenant>/oauth2/v2.0/token" (the tenant percent-encoded).
CERTSTORE_INTERNAL_EXPORT std::string ImdsTokenPath(
    absl::string_view tenant_id);

// IMDS mode: the scope for a resource, "<resource>/.default" (unchanged
// when it already ends so).
CERTSTORE_INTERNAL_EXPORT std::string ImdsScope(absl::string_view resource);

}  // namespace certstore::client_internal

#endif  // CERTSTORE_CLIENT_TOKEN_REQUEST_H_

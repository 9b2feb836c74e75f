// Which URLs the token client sends requests to. Project-internal to
// client/ (the CLI's doctor asks the same).
#ifndef CERTSTORE_CLIENT_ENDPOINT_URL_H_
#define CERTSTORE_CLIENT_ENDPOINT_URL_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "api/internal/internal_export.h"

namespace certstore::client_internal {

enum class EndpointUse {
  // Where the credential is presented and a token comes back: https only.
  kTokenEndpoint,
  // The IMDS-style issuing endpoint: https, or http to a loopback or
  // link-local address (169.254.169.254, as IMDS is), never further.
  kIssuingEndpoint,
};

// OK when a request may be sent to `url` for `use`: an absolute URL of the
// allowed scheme, with a host and without userinfo (a password in a URL
// would end up in logs). InvalidArgument naming the URL (escaped) and
// what is wrong otherwise.
CERTSTORE_INTERNAL_EXPORT absl::Status CheckEndpointUrl(absl::string_view url,
                                                        EndpointUse use);

}  // namespace certstore::client_internal

#endif  // CERTSTORE_CLIENT_ENDPOINT_URL_H_

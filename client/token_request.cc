#include "client/token_request.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/internal/percent_encoding.h"

namespace certstore::client_internal {

std::string TokenRequestBody(const TokenRequestForm& form) {
  std::string body =
      absl::StrCat("grant_type=client_credentials&client_id=",
                   internal::PercentEncode(form.client_id),
                   "&scope=", internal::PercentEncode(form.scope));
  for (const auto& [name, value] : form.extra_parameters) {
    absl::StrAppend(&body, "&", internal::PercentEncode(name), "=",
                    internal::PercentEncode(value));
  }
  if (form.mtls_pop) {
    absl::StrAppend(&body, "&token_type=mtls_pop");
  }
  return body;
}

std::string ImdsTokenPath(absl::string_view tenant_id) {
  return absl::StrCat("/", internal::PercentEncode(tenant_id),
                      "/oauth2/v2.0/token");
}

std::string ImdsScope(absl::string_view resource) {
  return absl::EndsWith(resource, "/.default")
             ? std::string(resource)
             : absl::StrCat(resource, "/.default");
}

}  // namespace certstore::client_internal

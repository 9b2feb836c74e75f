#include "client/csr.h"

#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/internal/json.h"
#include "certstore/errors.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"
#include "client/endpoint_url.h"

namespace certstore::client_internal {
namespace {

using internal::Json;

// A chain longer than this is refused: real ones hold two or three.
constexpr size_t kMaxChainCertificates = 8;

bool AddName(X509_NAME* name, const char* field, absl::string_view value) {
  return X509_NAME_add_entry_by_txt(
             name, field, MBSTRING_UTF8,
             reinterpret_cast<const unsigned char*>(value.data()),
             static_cast<int>(value.size()), -1, 0) == 1;
}

absl::StatusOr<std::string> DecodeBase64Field(const Json& value,
                                              absl::string_view field,
                                              absl::string_view context) {
  std::string der;
  if (!value.is_string() ||
      !absl::Base64Unescape(value.get<std::string>(), &der) || der.empty()) {
    return absl::DataLossError(absl::StrCat(
        context, ": issuing endpoint answer has no valid base64 ", field));
  }
  return der;
}

}  // namespace

absl::StatusOr<std::string> MakeCsr(const Key& key, absl::string_view client_id,
                                    absl::string_view tenant_id) {
  if (key.evp_pkey() == nullptr) {
    // A token key libp11 cannot hand out: its own sign says why.
    const absl::Status why = key.Sign("certstore CSR").status();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot build CSR: the new key (", key.location(),
                     ") is not usable: ", why.message()));
  }
  UniqueX509Req req(X509_REQ_new());
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (req == nullptr || X509_REQ_set_version(req.get(), 0) != 1 ||
      !AddName(name, "DC", tenant_id) || !AddName(name, "CN", client_id) ||
      X509_REQ_set_pubkey(req.get(), key.evp_pkey()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "cannot build CSR");
  }
  if (X509_REQ_sign(req.get(), key.evp_pkey(), EVP_sha256()) <= 0) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("cannot sign CSR with the new key (",
                                     key.location(), ")"));
  }
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "cannot encode CSR");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<EntryParts> ParseIssuedCredential(absl::string_view json,
                                                 absl::string_view context) {
  std::optional<Json> body = internal::ParseJsonObject(json);
  if (!body.has_value()) {
    return absl::DataLossError(absl::StrCat(
        context, ": issuing endpoint answer is not a JSON object (",
        json.size(), " bytes)"));
  }
  EntryParts parts;
  absl::StatusOr<std::string> leaf = DecodeBase64Field(
      body->contains("certificate") ? (*body)["certificate"] : Json(),
      "certificate", context);
  if (!leaf.ok()) {
    return leaf.status();
  }
  parts.chain_der.push_back(*std::move(leaf));
  if (body->contains("certificate_chain")) {
    const Json& chain = (*body)["certificate_chain"];
    if (!chain.is_array() || chain.size() > kMaxChainCertificates) {
      return absl::DataLossError(absl::StrCat(
          context,
          ": issuing endpoint answer's certificate_chain is not an "
          "array of at most ",
          kMaxChainCertificates, " base64 certificates"));
    }
    for (const Json& cert : chain) {
      absl::StatusOr<std::string> der =
          DecodeBase64Field(cert, "certificate_chain entry", context);
      if (!der.ok()) {
        return der.status();
      }
      parts.chain_der.push_back(*std::move(der));
    }
  }
  parts.metadata.endpoint =
      internal::JsonString(*body, "mtls_authentication_endpoint").value_or("");
  parts.metadata.client_id =
      internal::JsonString(*body, "client_id").value_or("");
  parts.metadata.tenant_id =
      internal::JsonString(*body, "tenant_id").value_or("");
  if (parts.metadata.endpoint.empty()) {
    return absl::DataLossError(absl::StrCat(
        context,
        ": issuing endpoint answer has no mtls_authentication_endpoint "
        "string"));
  }
  // Never stored, so never used: a binding whose token endpoint is not
  // https would send the credential's proof and the token in clear.
  CERTSTORE_RETURN_IF_ERROR(WithContext(
      CheckEndpointUrl(parts.metadata.endpoint, EndpointUse::kTokenEndpoint),
      absl::StrCat(context, ": issuing endpoint named a")));
  return parts;
}

}  // namespace certstore::client_internal

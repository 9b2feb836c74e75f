// The issuing endpoint: platform metadata and issuecredential (CSR in,
// leaf from the intermediate out), plain HTTP with `Metadata: true`.
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/chain.h"
#include "emulator/internal/services.h"

namespace certstore::emulator::internal {
namespace {

using nlohmann::json;

constexpr absl::string_view kMetadataPath =
    "/metadata/identity/getplatformmetadata";
constexpr absl::string_view kIssuePath = "/metadata/identity/issuecredential";
constexpr absl::string_view kApiVersion = "2.0";

std::optional<HttpResponse> CheckImdsRequest(const HttpRequest& request,
                                             absl::string_view method) {
  if (!absl::EqualsIgnoreCase(request.Header("metadata"), "true")) {
    return JsonError(400, "invalid_request",
                     "Required metadata header not specified: send "
                     "\"Metadata: true\"");
  }
  auto version = request.query.find("cred-api-version");
  if (version == request.query.end() || version->second != kApiVersion) {
    return JsonError(400, "invalid_request",
                     absl::StrCat("query parameter cred-api-version=",
                                  kApiVersion, " is required"));
  }
  if (request.method != method) {
    return JsonError(405, "invalid_request",
                     absl::StrCat(request.path, " takes ", method));
  }
  return std::nullopt;
}

HttpResponse Metadata(const ServiceContext& ctx) {
  ctx.state->CountMetadataRequest();
  const EmulatorOptions& o = *ctx.options;
  return JsonResponse(200, {{"clientId", o.client_id},
                            {"tenantId", o.tenant_id},
                            {"cuId", {{"vmId", o.vm_id}}},
                            {"attestationEndpoint", o.attestation_endpoint}});
}

absl::StatusOr<std::string> CsrDer(const HttpRequest& request) {
  const json body = json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("csr") ||
      !body["csr"].is_string()) {
    return absl::InvalidArgumentError(
        "body must be JSON {\"csr\": \"<base64 DER PKCS#10>\"}");
  }
  const std::string b64 = body["csr"].get<std::string>();
  std::string der;
  if (b64.empty() || (!absl::Base64Unescape(b64, &der) &&
                      !absl::WebSafeBase64Unescape(b64, &der))) {
    return absl::InvalidArgumentError("csr is not valid base64");
  }
  return der;
}

struct Validity {
  absl::Time not_before;
  absl::Time not_after;
};

Validity ValidityForNextMint(const ServiceContext& ctx) {
  const absl::Time now =
      absl::FromUnixSeconds(absl::ToUnixSeconds(ctx.clock->Now()));
  if (auto fault = ctx.state->Take(FaultLevel::kIssue)) {
    ctx.Log(LogLevel::kInfo,
            absl::StrCat("fault applied: ", DescribeFault(*fault)));
    const absl::Time from = now + fault->not_before_offset;
    return {from, from + fault->validity};
  }
  return {now, now + ctx.options->cert_validity};
}

HttpResponse Issued(const ServiceContext& ctx, const std::string& leaf_der) {
  const EmulatorOptions& o = *ctx.options;
  return JsonResponse(
      200,
      {{"client_id", o.client_id},
       {"tenant_id", o.tenant_id},
       {"certificate", absl::Base64Escape(leaf_der)},
       {"certificate_chain", {absl::Base64Escape(ctx.ca->intermediate_der())}},
       {"mtls_authentication_endpoint", o.advertised_token_endpoint.empty()
                                            ? ctx.token_url
                                            : o.advertised_token_endpoint}});
}

HttpResponse IssueCredential(const ServiceContext& ctx,
                             const HttpRequest& request) {
  ctx.state->CountMintRequest();
  if (auto fault = ctx.state->Take(FaultLevel::kIssueRequest)) {
    ctx.Log(LogLevel::kInfo,
            absl::StrCat("fault applied: ", DescribeFault(*fault)));
    return JsonError(fault->http_status, "temporarily_unavailable",
                     absl::StrCat("injected fault: issuer answers HTTP ",
                                  fault->http_status));
  }
  auto der = CsrDer(request);
  auto csr = der.ok() ? ctx.ca->CheckCsr(*der, ctx.options->client_id,
                                         ctx.options->tenant_id)
                      : der.status();
  if (!csr.ok()) {
    ctx.Log(LogLevel::kInfo,
            absl::StrCat("issuecredential refused: ", csr.status().message()));
    return JsonError(400, "invalid_request", csr.status().message());
  }
  const Validity validity = ValidityForNextMint(ctx);
  auto leaf =
      ctx.ca->IssueLeaf(csr->get(), validity.not_before, validity.not_after);
  if (!leaf.ok()) {
    return JsonError(500, "server_error", leaf.status().message());
  }
  const std::string thumbprint = Thumbprint(*leaf);
  ctx.state->RecordIssued(thumbprint);
  ctx.Log(LogLevel::kInfo,
          absl::StrCat("minted x5t#S256=", thumbprint, " valid ",
                       absl::FormatTime(absl::RFC3339_sec, validity.not_before,
                                        absl::UTCTimeZone()),
                       " .. ",
                       absl::FormatTime(absl::RFC3339_sec, validity.not_after,
                                        absl::UTCTimeZone())));
  return Issued(ctx, *leaf);
}

HttpResponse Route(const ServiceContext& ctx, const HttpRequest& request) {
  if (absl::StartsWith(request.path, "/admin/")) {
    return HandleAdmin(ctx, request);
  }
  if (auto fault = ctx.state->Take(FaultLevel::kIssuing)) {
    ctx.Log(LogLevel::kInfo,
            absl::StrCat("fault applied: ", DescribeFault(*fault)));
    return RawResponse(*fault);
  }
  if (request.path == kMetadataPath) {
    auto refused = CheckImdsRequest(request, "GET");
    return refused.has_value() ? *refused : Metadata(ctx);
  }
  if (request.path == kIssuePath) {
    auto refused = CheckImdsRequest(request, "POST");
    return refused.has_value() ? *refused : IssueCredential(ctx, request);
  }
  return JsonError(404, "not_found",
                   absl::StrCat("no endpoint ", request.method, " ",
                                absl::CHexEscape(request.path)));
}

}  // namespace

void ServeIssuing(const ServiceContext& ctx, UniqueFd fd) {
  PlainConn conn(fd.get(), ctx.stop);
  ServeRequests(ctx, conn, /*keep_alive=*/true,
                [&ctx](const HttpRequest& request) {
                  return std::optional<HttpResponse>(Route(ctx, request));
                });
  LingeringClose(std::move(fd), absl::Now() + absl::Seconds(1), *ctx.stop);
}

}  // namespace certstore::emulator::internal

// /admin/...: faults, counters, revocation, reset, the root certificate and
// token bindings, for tests and demos driving an emulator in another
// process. The listener binds 127.0.0.1 only.
#include <string>

#include "absl/strings/str_cat.h"
#include "emulator/internal/services.h"

namespace certstore::emulator::internal {
namespace {

using nlohmann::json;

absl::Status BadField(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("fault field \"", field, "\" ", what));
}

// Reads an integer field into `out` when present.
absl::Status ReadInt(const json& j, const char* field, int64_t* out) {
  auto it = j.find(field);
  if (it == j.end()) {
    return absl::OkStatus();
  }
  if (!it->is_number_integer()) {
    return BadField(field, "must be an integer");
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status CheckKnownFields(const json& j) {
  static const char* const kFields[] = {"kind",
                                        "count",
                                        "alert",
                                        "delay_ms",
                                        "http_status",
                                        "retry_after_s",
                                        "not_before_offset_s",
                                        "validity_s",
                                        "raw",
                                        "stream_bytes",
                                        "skip"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* field : kFields) {
      known = known || it.key() == field;
    }
    if (!known) {
      return BadField(it.key(), "is unknown");
    }
  }
  return absl::OkStatus();
}

absl::Status ReadNames(const json& j, FaultSpec* spec) {
  if (!j.contains("kind") || !j["kind"].is_string()) {
    return BadField("kind", "is required and must be a string");
  }
  auto kind = ParseFaultKind(j["kind"].get<std::string>());
  if (!kind.ok()) {
    return kind.status();
  }
  spec->kind = *kind;
  if (j.contains("alert")) {
    if (!j["alert"].is_string()) {
      return BadField("alert", "must be a string");
    }
    auto alert = ParseTlsAlert(j["alert"].get<std::string>());
    if (!alert.ok()) {
      return alert.status();
    }
    spec->alert = *alert;
  }
  if (j.contains("raw")) {
    if (!j["raw"].is_string()) {
      return BadField("raw", "must be a string");
    }
    spec->raw = j["raw"].get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status ReadNumbers(const json& j, FaultSpec* spec) {
  int64_t count = spec->count;
  int64_t skip = spec->skip;
  int64_t status = spec->http_status;
  int64_t delay_ms = absl::ToInt64Milliseconds(spec->delay);
  int64_t retry_s = absl::ToInt64Seconds(spec->retry_after);
  int64_t offset_s = absl::ToInt64Seconds(spec->not_before_offset);
  int64_t validity_s = absl::ToInt64Seconds(spec->validity);
  for (auto [field, out] : {std::pair{"count", &count},
                            {"http_status", &status},
                            {"delay_ms", &delay_ms},
                            {"retry_after_s", &retry_s},
                            {"not_before_offset_s", &offset_s},
                            {"validity_s", &validity_s},
                            {"stream_bytes", &spec->stream_bytes},
                            {"skip", &skip}}) {
    if (absl::Status s = ReadInt(j, field, out); !s.ok()) {
      return s;
    }
  }
  if (count != static_cast<int>(count)) {
    return BadField("count", "is out of range");
  }
  if (status != static_cast<int>(status)) {
    return BadField("http_status", "is out of range");
  }
  if (skip != static_cast<int>(skip)) {
    return BadField("skip", "is out of range");
  }
  spec->count = static_cast<int>(count);
  spec->skip = static_cast<int>(skip);
  spec->http_status = static_cast<int>(status);
  spec->delay = absl::Milliseconds(delay_ms);
  spec->retry_after = absl::Seconds(retry_s);
  spec->not_before_offset = absl::Seconds(offset_s);
  spec->validity = absl::Seconds(validity_s);
  return absl::OkStatus();
}

absl::StatusOr<json> JsonBody(const HttpRequest& request) {
  json body = json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return absl::InvalidArgumentError("body must be a JSON object");
  }
  return body;
}

HttpResponse Ok() { return JsonResponse(200, {{"ok", true}}); }

HttpResponse BadRequest(const absl::Status& status) {
  return JsonError(400, "invalid_request", status.message());
}

HttpResponse InjectFault(const ServiceContext& ctx,
                         const HttpRequest& request) {
  auto body = JsonBody(request);
  if (!body.ok()) {
    return BadRequest(body.status());
  }
  auto spec = FaultSpecFromJson(*body);
  absl::Status status = spec.ok() ? ctx.state->Inject(*spec) : spec.status();
  if (!status.ok()) {
    return BadRequest(status);
  }
  ctx.Log(LogLevel::kInfo, absl::StrCat("fault queued: ", DescribeFault(*spec),
                                        " x", spec->count));
  return Ok();
}

HttpResponse StringField(const HttpRequest& request, const char* field,
                         std::string* out) {
  auto body = JsonBody(request);
  if (body.ok() && body->contains(field) && (*body)[field].is_string()) {
    *out = (*body)[field].get<std::string>();
    return Ok();
  }
  return JsonError(400, "invalid_request",
                   absl::StrCat("body must be {\"", field, "\": \"…\"}"));
}

HttpResponse Revoke(const ServiceContext& ctx, const HttpRequest& request) {
  std::string thumbprint;
  HttpResponse response = StringField(request, "thumbprint", &thumbprint);
  if (response.status == 200) {
    ctx.state->Revoke(thumbprint);
    ctx.Log(LogLevel::kInfo, absl::StrCat("revoked x5t#S256=", thumbprint));
  }
  return response;
}

HttpResponse TokenBinding(const ServiceContext& ctx,
                          const HttpRequest& request) {
  std::string token;
  HttpResponse response = StringField(request, "access_token", &token);
  if (response.status != 200) {
    return response;
  }
  auto claims = ctx.state->DecodeToken(token);
  if (!claims.ok()) {
    return BadRequest(claims.status());
  }
  return JsonResponse(200, {{"thumbprint", claims->thumbprint},
                            {"client_id", claims->client_id},
                            {"scope", claims->scope},
                            {"exp", absl::ToUnixSeconds(claims->expires_at)}});
}

HttpResponse CaPem(const ServiceContext& ctx) {
  HttpResponse response;
  response.content_type = "application/x-pem-file";
  response.body = ctx.ca->root_pem();
  return response;
}

}  // namespace

absl::StatusOr<FaultSpec> FaultSpecFromJson(const json& j) {
  FaultSpec spec;
  if (!j.is_object()) {
    return absl::InvalidArgumentError("a fault must be a JSON object");
  }
  for (absl::Status s : {CheckKnownFields(j), ReadNames(j, &spec)}) {
    if (!s.ok()) {
      return s;
    }
  }
  if (absl::Status s = ReadNumbers(j, &spec); !s.ok()) {
    return s;
  }
  return spec;
}

json CountersToJson(const Counters& c) {
  json by_thumbprint = json::object();
  for (const auto& [thumbprint, t] : c.by_thumbprint) {
    by_thumbprint[thumbprint] = {{"mints", t.mints},
                                 {"tokens", t.tokens},
                                 {"handshakes_failed", t.handshakes_failed},
                                 {"invalid_client", t.invalid_client}};
  }
  return {{"metadata_requests", c.metadata_requests},
          {"mint_requests", c.mint_requests},
          {"mints", c.mints},
          {"connections", c.connections},
          {"handshakes_ok", c.handshakes_ok},
          {"handshakes_failed", c.handshakes_failed},
          {"requests_total", c.requests_total},
          {"tokens_issued", c.tokens_issued},
          {"invalid_client_responses", c.invalid_client_responses},
          {"faults_applied", c.faults_applied},
          {"by_thumbprint", by_thumbprint}};
}

HttpResponse HandleAdmin(const ServiceContext& ctx,
                         const HttpRequest& request) {
  const std::string& path = request.path;
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  if (path == "/admin/counters" && get) {
    return JsonResponse(200, CountersToJson(ctx.state->Snapshot()));
  }
  if (path == "/admin/ca" && get) {
    return CaPem(ctx);
  }
  if (path == "/admin/faults" && post) {
    return InjectFault(ctx, request);
  }
  if (path == "/admin/revoke" && post) {
    return Revoke(ctx, request);
  }
  if (path == "/admin/token-binding" && post) {
    return TokenBinding(ctx, request);
  }
  if (path == "/admin/reset" && post) {
    ctx.state->Reset();
    ctx.Log(LogLevel::kInfo, "reset: faults, revocations and counters");
    return Ok();
  }
  return JsonError(
      404, "not_found",
      absl::StrCat("no admin endpoint ", request.method, " ", path));
}

}  // namespace certstore::emulator::internal

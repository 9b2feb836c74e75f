// The mTLS token endpoint: handshake (with connection faults), then
// POST /<tenant>/oauth2/v2.0/token (with request faults).
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/chain.h"
#include "emulator/internal/services.h"
#include "emulator/internal/tls.h"

namespace certstore::emulator::internal {
namespace {

constexpr absl::string_view kTokenSuffix = "/oauth2/v2.0/token";
// How long a failed or closing connection waits for the peer to read what
// was sent last (an alert, a response).
constexpr absl::Duration kLinger = absl::Seconds(1);

std::string ShortThumbprint(const std::string& thumbprint) {
  return thumbprint.empty() ? std::string("(no certificate)")
                            : absl::StrCat(thumbprint.substr(0, 12), "…");
}

HttpResponse InvalidClient(const ServiceContext& ctx,
                           const std::string& thumbprint,
                           absl::string_view why) {
  ctx.state->CountInvalidClient(thumbprint);
  ctx.Log(LogLevel::kInfo,
          absl::StrCat("token: 401 invalid_client for x5t#S256=",
                       ShortThumbprint(thumbprint), ": ", why));
  return JsonError(401, "invalid_client", why);
}

std::optional<HttpResponse> CheckTarget(const ServiceContext& ctx,
                                        const HttpRequest& request,
                                        const std::string& thumbprint) {
  if (!absl::EndsWith(request.path, kTokenSuffix) ||
      request.path.size() <= kTokenSuffix.size() + 1) {
    return JsonError(404, "not_found",
                     absl::StrCat("no endpoint ", request.path, "; POST /",
                                  ctx.options->tenant_id, kTokenSuffix));
  }
  const absl::string_view tenant =
      absl::string_view(request.path)
          .substr(1, request.path.size() - kTokenSuffix.size() - 1);
  if (tenant != ctx.options->tenant_id) {
    return InvalidClient(ctx, thumbprint,
                         absl::StrCat("tenant \"", tenant, "\" is unknown"));
  }
  if (request.method != "POST") {
    return JsonError(405, "invalid_request", "the token endpoint takes POST");
  }
  return std::nullopt;
}

std::optional<HttpResponse> CheckForm(
    const ServiceContext& ctx, const std::map<std::string, std::string>& form,
    const std::string& thumbprint) {
  auto field = [&form](const char* name) {
    auto it = form.find(name);
    return it == form.end() ? std::string() : it->second;
  };
  if (field("grant_type") != "client_credentials") {
    return JsonError(400, "invalid_request",
                     "grant_type must be client_credentials");
  }
  if (field("client_id") != ctx.options->client_id) {
    return InvalidClient(
        ctx, thumbprint,
        absl::StrCat("client_id \"", field("client_id"), "\" is unknown"));
  }
  const std::string scope = field("scope");
  if (scope.size() <= 9 || !absl::EndsWith(scope, "/.default")) {
    return JsonError(400, "invalid_request",
                     "scope must be <resource>/.default");
  }
  if (field("token_type") != "mtls_pop") {
    return JsonError(400, "invalid_request", "token_type must be mtls_pop");
  }
  return std::nullopt;
}

HttpResponse IssueToken(const ServiceContext& ctx, const HttpRequest& request,
                        const std::string& thumbprint) {
  if (auto refused = CheckTarget(ctx, request, thumbprint)) {
    return *refused;
  }
  auto form = ParseForm(request.body);
  if (!form.ok()) {
    return JsonError(400, "invalid_request",
                     absl::StrCat("form body: ", form.status().message()));
  }
  if (auto refused = CheckForm(ctx, *form, thumbprint)) {
    return *refused;
  }
  if (!ctx.state->WasIssued(thumbprint)) {
    return InvalidClient(ctx, thumbprint,
                         absl::StrCat("certificate x5t#S256=", thumbprint,
                                      " was not issued by this emulator"));
  }
  if (ctx.state->IsRevoked(thumbprint)) {
    return InvalidClient(
        ctx, thumbprint,
        absl::StrCat("certificate x5t#S256=", thumbprint, " is revoked"));
  }
  TokenClaims claims{thumbprint, ctx.options->client_id, form->at("scope"),
                     ctx.clock->Now() + ctx.options->token_lifetime};
  ctx.state->CountToken(thumbprint);
  ctx.Log(LogLevel::kInfo,
          absl::StrCat("token: 200 for x5t#S256=", ShortThumbprint(thumbprint),
                       " scope=", claims.scope));
  return JsonResponse(
      200, {{"token_type", "mtls_pop"},
            {"access_token", ctx.state->MintToken(claims)},
            {"expires_in", absl::ToInt64Seconds(ctx.options->token_lifetime)}});
}

// Applies a request-level fault, if one is due. nullopt: answer normally
// (after a delay, if any); a response: answer that; ends_connection: the
// connection was held until the peer or stop ended it.
struct FaultOutcome {
  std::optional<HttpResponse> response;
  bool ends_connection = false;
};

FaultOutcome ApplyRequestFault(const ServiceContext& ctx, int fd,
                               const std::string& thumbprint) {
  std::optional<FaultSpec> fault = ctx.state->Take(FaultLevel::kRequest);
  if (!fault.has_value()) {
    return {};
  }
  ctx.Log(LogLevel::kInfo,
          absl::StrCat("fault applied: ", DescribeFault(*fault)));
  switch (fault->kind) {
    case FaultKind::kInvalidClient:
      return {InvalidClient(ctx, thumbprint, "injected fault"), false};
    case FaultKind::kDelay:
      return {std::nullopt,
              !SleepUnlessStopped(absl::Now() + fault->delay, *ctx.stop)};
    case FaultKind::kHangResponse:
      HoldUntilClosed(fd, *ctx.stop);
      return {std::nullopt, true};
    case FaultKind::kRawResponse:
      return {RawResponse(*fault), false};
    case FaultKind::kTooManyRequests: {
      HttpResponse response =
          JsonError(429, "too_many_requests", "injected fault: slow down");
      response.headers.emplace_back(
          "Retry-After",
          absl::StrCat(absl::ToInt64Seconds(fault->retry_after)));
      return {response, false};
    }
    default:
      return {
          JsonError(fault->http_status, "temporarily_unavailable",
                    absl::StrCat("injected fault: HTTP ", fault->http_status)),
          false};
  }
}

void ResetAfterClientHello(const ServiceContext& ctx, UniqueFd fd) {
  char hello[16 * 1024];
  if (WaitFd(fd.get(), POLLIN, absl::Now() + ctx.options->io_timeout,
             *ctx.stop) == WaitResult::kReady) {
    [[maybe_unused]] ssize_t n = recv(fd.get(), hello, sizeof(hello), 0);
  }
  ResetConnection(std::move(fd));
}

// Marks a handshake under way for its lifetime (see Counters).
class HandshakeInFlight {
 public:
  explicit HandshakeInFlight(EmulatorState* state) : state_(state) {
    state_->BeginHandshake();
  }
  ~HandshakeInFlight() { state_->EndHandshake(); }
  HandshakeInFlight(const HandshakeInFlight&) = delete;
  HandshakeInFlight& operator=(const HandshakeInFlight&) = delete;

 private:
  EmulatorState* state_;
};

// Runs the handshake; false when the connection is over.
bool Handshake(const ServiceContext& ctx, TlsConn& tls,
               const std::optional<FaultSpec>& fault) {
  HandshakeProbe probe;
  probe.verify_time = ctx.clock->Now();
  probe.state = ctx.state;
  if (fault.has_value() && fault->kind == FaultKind::kTlsAlert) {
    probe.inject_alert = fault->alert;
  }
  absl::Status status =
      tls.Handshake(absl::Now() + ctx.options->io_timeout, &probe);
  if (status.ok() || !probe.failure_counted) {
    ctx.state->CountHandshake(status.ok(), probe.leaf_thumbprint);
  }
  if (!status.ok()) {
    ctx.Log(LogLevel::kInfo,
            absl::StrCat("token: handshake failed, client x5t#S256=",
                         ShortThumbprint(probe.leaf_thumbprint), ": ",
                         status.message()));
  }
  return status.ok();
}

// Serves token requests after a good handshake. True when a fault held the
// connection until the peer or stop ended it.
bool ServeTokenRequests(const ServiceContext& ctx, TlsConn& tls, int fd) {
  const std::string thumbprint = Thumbprint(CertificateDer(tls.peer_leaf()));
  bool held = false;
  int served = 0;
  const int64_t generation = ctx.state->Generation();
  ServeRequests(
      ctx, tls, ctx.options->keep_alive,
      [&](const HttpRequest& request) -> std::optional<HttpResponse> {
        // A connection-level fault waits for a new connection: a kept-alive
        // one is closed unanswered, as a server reload does, and the client
        // reconnects into it. DropKeptAliveConnections does the same.
        if (served++ > 0 && (ctx.state->HasPending(FaultLevel::kConnection) ||
                             ctx.state->Generation() != generation)) {
          return std::nullopt;
        }
        ctx.state->CountRequest();
        FaultOutcome outcome = ApplyRequestFault(ctx, fd, thumbprint);
        held = outcome.ends_connection;
        if (held || outcome.response.has_value()) {
          return outcome.response;
        }
        return IssueToken(ctx, request, thumbprint);
      });
  return held;
}

void ServeTls(const ServiceContext& ctx, UniqueFd fd,
              const std::optional<FaultSpec>& fault,
              std::unique_ptr<HandshakeInFlight> in_flight) {
  TlsConn tls(ctx.ssl_ctx, fd.get(), ctx.stop);
  const bool handshake_ok = Handshake(ctx, tls, fault);
  in_flight.reset();  // counted either way
  if (!handshake_ok) {
    LingeringClose(std::move(fd), absl::Now() + kLinger, *ctx.stop);
    return;
  }
  if (fault.has_value() && fault->kind == FaultKind::kCloseAfterHandshake) {
    ResetConnection(std::move(fd));
    return;
  }
  if (!ServeTokenRequests(ctx, tls, fd.get())) {
    tls.Shutdown(absl::Now() + kLinger);
  }
  LingeringClose(std::move(fd), absl::Now() + kLinger, *ctx.stop);
}

}  // namespace

void ServeToken(const ServiceContext& ctx, UniqueFd fd) {
  ctx.state->CountConnection();
  // Under way from before the first byte the client could see.
  auto in_flight = std::make_unique<HandshakeInFlight>(ctx.state);
  std::optional<FaultSpec> fault = ctx.state->Take(FaultLevel::kConnection);
  if (fault.has_value()) {
    ctx.Log(LogLevel::kInfo,
            absl::StrCat("fault applied: ", DescribeFault(*fault)));
  }
  const bool reset =
      fault.has_value() && fault->kind == FaultKind::kResetDuringHandshake;
  if (reset || (fault.has_value() && fault->kind == FaultKind::kHang)) {
    ctx.state->CountHandshake(false, "");  // it will never complete
    in_flight.reset();
    if (reset) {
      ResetAfterClientHello(ctx, std::move(fd));
    } else {
      HoldUntilClosed(fd.get(), *ctx.stop);
    }
    return;
  }
  ServeTls(ctx, std::move(fd), fault, std::move(in_flight));
}

}  // namespace certstore::emulator::internal

// The emulator's two services, each serving one accepted connection on the
// thread the listener gave it, and what they share. Emulator-internal.
#ifndef CERTSTORE_EMULATOR_INTERNAL_SERVICES_H_
#define CERTSTORE_EMULATOR_INTERNAL_SERVICES_H_

#include <openssl/ssl.h>

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/clock.h"
#include "emulator/emulator.h"
#include "emulator/internal/ca.h"
#include "emulator/internal/http.h"
#include "emulator/internal/net.h"
#include "emulator/internal/state.h"
#include "nlohmann/json.hpp"

namespace certstore::emulator::internal {

// Everything a connection handler reads; owned by the Emulator, which joins
// every handler before destroying it.
struct ServiceContext {
  const EmulatorOptions* options = nullptr;
  const Clock* clock = nullptr;
  EmulatorState* state = nullptr;
  const EmulatorCa* ca = nullptr;
  const StopSignal* stop = nullptr;
  SSL_CTX* ssl_ctx = nullptr;
  std::string issuing_url;
  std::string token_url;

  void Log(LogLevel level, absl::string_view message) const;
};

// Answers one request; nullopt ends the connection without an answer.
using RequestHandler =
    std::function<std::optional<HttpResponse>(const HttpRequest&)>;

// Serves requests off `conn` until the peer closes or idles out, a request
// is malformed (answered 400/413/431), a response closes, or stop.
void ServeRequests(const ServiceContext& ctx, Conn& conn, bool keep_alive,
                   const RequestHandler& handler);

// Reads and discards until the peer closes or stop: a hung connection.
void HoldUntilClosed(int fd, const StopSignal& stop);

// The issuing endpoint (plain HTTP) and the admin endpoints.
void ServeIssuing(const ServiceContext& ctx, UniqueFd fd);

// The mTLS token endpoint, with its faults.
void ServeToken(const ServiceContext& ctx, UniqueFd fd);

// /admin/... on the issuing listener.
HttpResponse HandleAdmin(const ServiceContext& ctx, const HttpRequest& request);

// The admin endpoint's JSON: a fault ({"kind", "count", "alert",
// "delay_ms", "http_status", "retry_after_s", "not_before_offset_s",
// "validity_s"}; unknown fields are refused) and the counters.
absl::StatusOr<FaultSpec> FaultSpecFromJson(const nlohmann::json& json);
nlohmann::json CountersToJson(const Counters& counters);

}  // namespace certstore::emulator::internal

#endif  // CERTSTORE_EMULATOR_INTERNAL_SERVICES_H_

// A minimal, bounded HTTP/1.1 server side: read one request at a time from a
// byte stream (plain or TLS), write one response. Content-Length bodies
// only. Emulator-internal.
#ifndef CERTSTORE_EMULATOR_INTERNAL_HTTP_H_
#define CERTSTORE_EMULATOR_INTERNAL_HTTP_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "emulator/emulator.h"
#include "emulator/internal/net.h"
#include "nlohmann/json.hpp"

namespace certstore::emulator::internal {

inline constexpr size_t kMaxHeadBytes = 16 * 1024;
inline constexpr size_t kMaxBodyBytes = 64 * 1024;

// A byte stream with deadlines. Read returns 0 at end of stream;
// DeadlineExceeded / Cancelled (stop) / Unavailable (reset) otherwise.
class Conn {
 public:
  virtual ~Conn() = default;
  virtual absl::StatusOr<size_t> Read(char* buf, size_t size,
                                      absl::Time deadline) = 0;
  virtual absl::Status Write(absl::string_view data, absl::Time deadline) = 0;
};

// A plain TCP connection (non-blocking fd).
class PlainConn final : public Conn {
 public:
  PlainConn(int fd, const StopSignal* stop) : fd_(fd), stop_(stop) {}
  absl::StatusOr<size_t> Read(char* buf, size_t size,
                              absl::Time deadline) override;
  absl::Status Write(absl::string_view data, absl::Time deadline) override;

 private:
  int fd_;
  const StopSignal* stop_;
};

// The Status for a wait that did not become ready.
absl::Status WaitFailure(WaitResult result, absl::string_view what);

struct HttpRequest {
  std::string method;
  std::string target;  // as sent: path?query
  std::string path;
  std::map<std::string, std::string> query;    // percent-decoded
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool keep_alive = true;

  // The header's value, or "" when absent. `name` is lower case.
  std::string Header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // send `Connection: close` and end the connection
  // When set, written instead of everything above, verbatim, followed by
  // `stream_bytes` filler bytes (stopping when the peer closes); the
  // connection then ends. Hostile-server faults.
  std::optional<std::string> raw;
  int64_t stream_bytes = 0;
};

// The response a raw fault asks for.
HttpResponse RawResponse(const FaultSpec& fault);

// Reads requests off one connection, keeping bytes of the next one.
class RequestReader {
 public:
  explicit RequestReader(Conn* conn) : conn_(conn) {}

  // The next request; nullopt when the peer closed (or went idle past
  // `idle_deadline`) before its first byte. InvalidArgument for a malformed
  // request, ResourceExhausted for one over the size limits, other codes
  // from the stream. `deadline` bounds the whole request once it started.
  absl::StatusOr<std::optional<HttpRequest>> Next(absl::Time idle_deadline,
                                                  absl::Duration io_timeout);

 private:
  absl::StatusOr<bool> Fill(absl::Time deadline);
  absl::StatusOr<std::optional<size_t>> ReadHead(absl::Time idle_deadline,
                                                 absl::Duration io_timeout,
                                                 absl::Time* deadline);

  Conn* conn_;
  std::string buffer_;
};

absl::StatusOr<HttpRequest> ParseHead(absl::string_view head);

// Writes status line, headers and body.
absl::Status WriteResponse(Conn& conn, const HttpResponse& response,
                           absl::Time deadline);

// The response for a request that could not be read (400/413/431), or
// nullopt when nothing should be answered (peer gone, stop, timeout).
std::optional<HttpResponse> ResponseForReadError(const absl::Status& status);

// Parses application/x-www-form-urlencoded (also used for query strings).
// InvalidArgument for a bad percent escape or a repeated name.
absl::StatusOr<std::map<std::string, std::string>> ParseForm(
    absl::string_view form);

HttpResponse JsonResponse(int status, const nlohmann::json& body);
// {"error": error, "error_description": description}.
HttpResponse JsonError(int status, absl::string_view error,
                       absl::string_view description);

// The HTTP reason phrase ("Not Found"), "Unknown" for others.
absl::string_view ReasonPhrase(int status);

}  // namespace certstore::emulator::internal

#endif  // CERTSTORE_EMULATOR_INTERNAL_HTTP_H_

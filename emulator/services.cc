#include "emulator/internal/services.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "absl/time/clock.h"

namespace certstore::emulator::internal {
namespace {

// A client reusing one connection forever still gets it closed eventually.
constexpr int kMaxRequestsPerConnection = 1000;

}  // namespace

void ServiceContext::Log(LogLevel level, absl::string_view message) const {
  if (options->log) {
    options->log(level, "emulator", message);
  }
}

void ServeRequests(const ServiceContext& ctx, Conn& conn, bool keep_alive,
                   const RequestHandler& handler) {
  RequestReader reader(&conn);
  for (int served = 0; served < kMaxRequestsPerConnection; ++served) {
    auto request = reader.Next(absl::Now() + ctx.options->idle_timeout,
                               ctx.options->io_timeout);
    if (!request.ok()) {
      if (auto response = ResponseForReadError(request.status())) {
        ctx.Log(LogLevel::kInfo, request.status().message());
        (void)WriteResponse(conn, *response,
                            absl::Now() + ctx.options->io_timeout);
      }
      return;
    }
    if (!request->has_value()) {
      return;
    }
    std::optional<HttpResponse> response = handler(**request);
    if (!response.has_value()) {
      return;
    }
    response->close = response->close || !keep_alive ||
                      !(*request)->keep_alive ||
                      served + 1 == kMaxRequestsPerConnection;
    if (!WriteResponse(conn, *response, absl::Now() + ctx.options->io_timeout)
             .ok() ||
        response->close) {
      return;
    }
  }
}

void HoldUntilClosed(int fd, const StopSignal& stop) {
  char buf[4096];
  while (WaitFd(fd, POLLIN, absl::InfiniteFuture(), stop) ==
         WaitResult::kReady) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      return;
    }
  }
}

}  // namespace certstore::emulator::internal

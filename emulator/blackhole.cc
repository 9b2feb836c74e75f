// ConnectBlackhole: a listener with backlog 0 whose one queue slot is taken
// by our own connection and never accepted.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/internal/posix_status.h"
#include "emulator/emulator.h"
#include "emulator/internal/net.h"

namespace certstore::emulator {
namespace {

using internal::UniqueFd;

constexpr char kWhat[] = "emulator: connect blackhole";

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

absl::Status Unavailable(absl::string_view what) {
  return absl::UnavailableError(
      certstore::internal::ErrnoStatus(errno, absl::StrCat(kWhat, ": ", what))
          .message());
}

// Connects `fd` (non-blocking) and waits up to a second for it to complete.
absl::Status ConnectFiller(int fd, uint16_t port) {
  sockaddr_in addr = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return absl::OkStatus();
  }
  if (errno != EINPROGRESS) {
    return Unavailable("filler connect");
  }
  pollfd pfd = {fd, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof(err);
  if (poll(&pfd, 1, 1000) != 1 ||
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    return absl::UnavailableError(
        absl::StrCat(kWhat, ": the filler connection did not complete"));
  }
  return absl::OkStatus();
}

}  // namespace

struct ConnectBlackhole::Impl {
  UniqueFd listener;
  UniqueFd filler;
  uint16_t port = 0;
};

absl::StatusOr<std::unique_ptr<ConnectBlackhole>> ConnectBlackhole::Start() {
  auto impl = std::make_unique<Impl>();
  impl->listener = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (impl->listener.get() < 0 ||
      bind(impl->listener.get(), reinterpret_cast<sockaddr*>(&addr), len) !=
          0 ||
      listen(impl->listener.get(), 0) != 0 ||
      getsockname(impl->listener.get(), reinterpret_cast<sockaddr*>(&addr),
                  &len) != 0) {
    return Unavailable("listener");
  }
  impl->port = ntohs(addr.sin_port);
  impl->filler =
      UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (absl::Status s = ConnectFiller(impl->filler.get(), impl->port); !s.ok()) {
    return s;
  }
  return std::unique_ptr<ConnectBlackhole>(
      new ConnectBlackhole(std::move(impl)));
}

ConnectBlackhole::ConnectBlackhole(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
ConnectBlackhole::~ConnectBlackhole() = default;

uint16_t ConnectBlackhole::port() const { return impl_->port; }

std::string ConnectBlackhole::url() const {
  return absl::StrCat("https://127.0.0.1:", impl_->port);
}

}  // namespace certstore::emulator

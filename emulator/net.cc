#include "emulator/internal/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/internal/posix_status.h"

namespace certstore::emulator::internal {
namespace {

// How often an idle accept loop joins finished connection threads.
constexpr absl::Duration kReapInterval = absl::Seconds(1);

int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    return -1;
  }
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) {
    return 0;
  }
  return static_cast<int>(absl::ToInt64Milliseconds(
      absl::Ceil(std::min(left, absl::Hours(1)), absl::Milliseconds(1))));
}

}  // namespace

absl::StatusOr<std::unique_ptr<StopSignal>> StopSignal::Create() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return certstore::internal::ErrnoStatus(errno, "emulator: stop pipe");
  }
  return std::unique_ptr<StopSignal>(
      new StopSignal(UniqueFd(fds[0]), UniqueFd(fds[1])));
}

StopSignal::StopSignal(UniqueFd read, UniqueFd write)
    : read_(std::move(read)), write_(std::move(write)) {}

void StopSignal::Raise() {
  if (!raised_.exchange(true, std::memory_order_acq_rel)) {
    // Never read: the pipe stays readable for every later poll.
    const char byte = 1;
    [[maybe_unused]] ssize_t n = write(write_.get(), &byte, 1);
  }
}

WaitResult WaitFd(int fd, short events, absl::Time deadline,
                  const StopSignal& stop) {
  for (;;) {
    if (stop.raised()) {
      return WaitResult::kStopped;
    }
    pollfd fds[2] = {{stop.fd(), POLLIN, 0}, {fd, events, 0}};
    const int count = poll(fds, fd >= 0 ? 2 : 1, PollTimeoutMs(deadline));
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      return WaitResult::kReady;  // the caller's read or write reports it
    }
    if (fds[0].revents != 0) {
      return WaitResult::kStopped;
    }
    if (count > 0) {
      return WaitResult::kReady;
    }
    if (absl::Now() >= deadline) {
      return WaitResult::kTimeout;
    }
  }
}

bool SleepUnlessStopped(absl::Time deadline, const StopSignal& stop) {
  return WaitFd(-1, 0, deadline, stop) != WaitResult::kStopped;
}

void ResetConnection(UniqueFd fd) {
  linger reset = {1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
}

void LingeringClose(UniqueFd fd, absl::Time deadline, const StopSignal& stop) {
  shutdown(fd.get(), SHUT_WR);
  char buf[4096];
  while (WaitFd(fd.get(), POLLIN, deadline, stop) == WaitResult::kReady) {
    const ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      return;
    }
  }
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(uint16_t port,
                                                         const char* what) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  const std::string context =
      absl::StrCat("emulator: ", what, " listener on 127.0.0.1:", port);
  if (fd.get() < 0) {
    return certstore::internal::ErrnoStatus(errno, context);
  }
  const int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(fd.get(), SOMAXCONN) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::UnavailableError(
        certstore::internal::ErrnoStatus(errno, context).message());
  }
  return std::unique_ptr<Listener>(
      new Listener(std::move(fd), ntohs(addr.sin_port)));
}

Listener::~Listener() { Join(); }

void Listener::Run(const StopSignal* stop, int max_connections,
                   Handler handler) {
  stop_ = stop;
  max_connections_ = max_connections;
  handler_ = std::move(handler);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

void Listener::AcceptLoop() {
  // Connection threads inherit this: a write into a connection the peer
  // closed fails with EPIPE instead of killing the process (OpenSSL's
  // socket BIO writes without MSG_NOSIGNAL). SIGPIPE raised by a write is
  // directed at the writing thread, so the mask is enough.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  for (;;) {
    const WaitResult ready =
        WaitFd(fd_.get(), POLLIN, absl::Now() + kReapInterval, *stop_);
    if (ready == WaitResult::kStopped) {
      return;
    }
    Reap(false);
    if (ready == WaitResult::kTimeout) {
      continue;
    }
    UniqueFd connection(
        accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (connection.get() >= 0) {
      const int one = 1;
      setsockopt(connection.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      Spawn(std::move(connection));
    }
  }
}

void Listener::Spawn(UniqueFd connection) {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(workers_.size()) >= max_connections_) {
    return;  // closes the connection
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  const int fd = connection.get();
  auto run = [this, done, fd] {
    handler_(UniqueFd(fd));
    done->store(true, std::memory_order_release);
  };
  try {
    workers_.push_back(Worker{std::thread(std::move(run)), done});
  } catch (const std::system_error&) {
    return;  // no thread to be had: closes the connection
  }
  (void)connection.release();  // the thread owns it now
}

void Listener::Reap(bool all) {
  std::list<Worker> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      auto next = std::next(it);
      if (all || it->done->load(std::memory_order_acquire)) {
        finished.splice(finished.end(), workers_, it);
      }
      it = next;
    }
  }
  for (Worker& worker : finished) {
    worker.thread.join();
  }
}

void Listener::Join() {
  if (accept_thread_.joinable()) {
    accept_thread_.join();
  }
  Reap(true);
}

}  // namespace certstore::emulator::internal

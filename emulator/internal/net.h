// Sockets for the emulator: an owned fd, a stop signal every wait watches,
// bounded waits, and a loopback listener that runs one thread per
// connection and joins them all on stop. Emulator-internal.
#ifndef CERTSTORE_EMULATOR_INTERNAL_NET_H_
#define CERTSTORE_EMULATOR_INTERNAL_NET_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/internal/unique_fd.h"

namespace certstore::emulator::internal {

using UniqueFd = ::certstore::internal::UniqueFd;

// A pipe that becomes readable, for good, once Raise() is called: every
// wait polls it next to its socket, so Stop wakes all of them at once.
class StopSignal {
 public:
  static absl::StatusOr<std::unique_ptr<StopSignal>> Create();
  void Raise();
  bool raised() const { return raised_.load(std::memory_order_acquire); }
  int fd() const { return read_.get(); }

 private:
  StopSignal(UniqueFd read, UniqueFd write);
  UniqueFd read_;
  UniqueFd write_;
  std::atomic<bool> raised_{false};
};

enum class WaitResult { kReady, kTimeout, kStopped };

// Waits until `fd` has `events` (POLLIN / POLLOUT; errors and hang-ups count
// as ready), `deadline` passes, or `stop` is raised.
WaitResult WaitFd(int fd, short events, absl::Time deadline,
                  const StopSignal& stop);

// Sleeps until `deadline` unless `stop` is raised first. False when stopped.
bool SleepUnlessStopped(absl::Time deadline, const StopSignal& stop);

// Closes `fd` with SO_LINGER{1,0}, so the peer gets a RST.
void ResetConnection(UniqueFd fd);

// Half-closes and reads until the peer closes, `deadline` or stop, so that
// what was sent last (an alert, a response) is not lost to a RST.
void LingeringClose(UniqueFd fd, absl::Time deadline, const StopSignal& stop);

// A listening socket on 127.0.0.1 and its accept loop.
class Listener {
 public:
  using Handler = std::function<void(UniqueFd connection)>;

  // Binds 127.0.0.1:`port` (0: a free port). Unavailable names `what` and
  // the port when binding fails.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(uint16_t port,
                                                        const char* what);
  ~Listener();

  uint16_t port() const { return port_; }

  // Starts the accept loop: each connection runs `handler` on its own
  // thread; beyond `max_connections` live ones, connections are closed.
  void Run(const StopSignal* stop, int max_connections, Handler handler);

  // After stop is raised: joins the accept loop and every connection thread
  // (handlers must return promptly once stop is raised).
  void Join();

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  Listener(UniqueFd fd, uint16_t port) : fd_(std::move(fd)), port_(port) {}
  void AcceptLoop();
  void Spawn(UniqueFd connection);
  void Reap(bool all);

  UniqueFd fd_;
  uint16_t port_;
  const StopSignal* stop_ = nullptr;
  int max_connections_ = 0;
  Handler handler_;
  std::thread accept_thread_;
  std::mutex mu_;
  std::list<Worker> workers_;  // guarded by mu_
};

}  // namespace certstore::emulator::internal

#endif  // CERTSTORE_EMULATOR_INTERNAL_NET_H_

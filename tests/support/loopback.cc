#include "tests/support/loopback.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace certstore::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// A listening socket on 127.0.0.1 (port 0: any free one); sets `port`.
int ListenOnLoopback(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot listen on 127.0.0.1";
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Waits up to 100 ms for `fd` to be readable (so loops see stop flags).
bool Readable(int fd) {
  pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 100) > 0;
}

bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

SilentListener::SilentListener() { fd_ = ListenOnLoopback(&port_); }

SilentListener::~SilentListener() {
  if (fd_ >= 0) close(fd_);
}

CountingListener::CountingListener() {
  fd_ = ListenOnLoopback(&port_);
  if (fd_ >= 0) fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

CountingListener::~CountingListener() {
  if (fd_ >= 0) close(fd_);
}

int CountingListener::Connections() {
  int n = 0;
  for (;;) {
    const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) break;
    close(conn);
    ++n;
  }
  return n;
}

ServerHelloStall::ServerHelloStall(int backend_port)
    : backend_port_(backend_port) {
  listen_fd_ = ListenOnLoopback(&port_);
  thread_ = std::thread([this] { Serve(); });
}

ServerHelloStall::~ServerHelloStall() {
  stop_ = true;
  thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
}

void ServerHelloStall::Serve() {
  while (!stop_) {
    if (!Readable(listen_fd_)) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    Relay(client);
    close(client);
  }
}

void ServerHelloStall::Relay(int client) {
  const int backend = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(backend_port_);
  if (backend < 0 ||
      connect(backend, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ADD_FAILURE() << "ServerHelloStall: cannot reach 127.0.0.1:"
                  << backend_port_;
    if (backend >= 0) close(backend);
    return;
  }
  std::string from_server;  // until the first record is complete
  bool passed = false;
  char buffer[16384];
  while (!stop_) {
    pollfd fds[2] = {{client, POLLIN, 0}, {backend, POLLIN, 0}};
    if (poll(fds, 2, 100) <= 0) continue;
    if (fds[0].revents != 0) {
      const ssize_t n = recv(client, buffer, sizeof(buffer), 0);
      if (n <= 0 || !SendAll(backend, buffer, static_cast<size_t>(n))) break;
    }
    if (fds[1].revents != 0) {
      const ssize_t n = recv(backend, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      if (passed) continue;  // the rest of the server's flight is dropped
      from_server.append(buffer, static_cast<size_t>(n));
      // A TLS record: type (1), version (2), length (2), then the body.
      if (from_server.size() < 5) continue;
      const size_t record =
          5 + ((static_cast<unsigned char>(from_server[3]) << 8) |
               static_cast<unsigned char>(from_server[4]));
      if (from_server.size() < record) continue;
      if (!SendAll(client, from_server.data(), record)) break;
      passed = true;
      // Handshake record (22) holding a ServerHello (2).
      if (from_server[0] == 22 && from_server.size() > 5 &&
          from_server[5] == 2) {
        ++server_hellos_passed_;
      }
    }
  }
  close(backend);
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot bind a port on 127.0.0.1";
  }
  if (fd >= 0) close(fd);
  return ntohs(addr.sin_port);
}

bool AcceptsConnections(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr = Loopback(port);
  const bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

}  // namespace certstore::testing

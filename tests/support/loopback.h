// Loopback ports for tests that start third-party servers (nginx, openssl
// s_server) which take a port number rather than binding port 0 and
// telling which, and loopback peers that stall a handshake on purpose.
#ifndef CERTSTORE_TESTS_SUPPORT_LOOPBACK_H_
#define CERTSTORE_TESTS_SUPPORT_LOOPBACK_H_

#include <atomic>
#include <thread>

namespace certstore::testing {

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read,
// closed). Fails the test when no socket can be bound.
int FreeLoopbackPort();

// True when something accepts a TCP connection on 127.0.0.1:`port` now
// (the connection is closed at once): for waiting until a server listens.
bool AcceptsConnections(int port);

// A port on 127.0.0.1 where TCP connects (the kernel completes the
// handshake into the listen queue) and nothing is ever accepted or sent:
// a TLS client waits for a ServerHello that never comes.
class SilentListener {
 public:
  SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  ~SilentListener();
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A plain TCP listener on 127.0.0.1 that only counts who connected: for
// asserting that nothing was sent somewhere.
class CountingListener {
 public:
  CountingListener();
  CountingListener(const CountingListener&) = delete;
  CountingListener& operator=(const CountingListener&) = delete;
  ~CountingListener();
  int port() const { return port_; }
  // Connections queued since the start or the last call (accepted now,
  // then closed).
  int Connections();

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A TCP relay on 127.0.0.1 in front of a TLS server on `backend_port`: it
// passes the client's bytes on and, of the server's, only the first TLS
// record (the ServerHello), then nothing: a handshake that stalls after
// the ServerHello. One connection at a time; stopped by the destructor.
class ServerHelloStall {
 public:
  explicit ServerHelloStall(int backend_port);
  ServerHelloStall(const ServerHelloStall&) = delete;
  ServerHelloStall& operator=(const ServerHelloStall&) = delete;
  ~ServerHelloStall();
  int port() const { return port_; }
  // Connections that received a complete ServerHello record.
  int server_hellos_passed() const { return server_hellos_passed_.load(); }

 private:
  void Serve();
  void Relay(int client);

  int backend_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> server_hellos_passed_{0};
  std::thread thread_;
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SUPPORT_LOOPBACK_H_

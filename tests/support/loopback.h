// Loopback ports for tests that start third-party servers (nginx, openssl
// s_server) which take a port number rather than binding port 0 and
// telling which.
#ifndef CERTSTORE_TESTS_SUPPORT_LOOPBACK_H_
#define CERTSTORE_TESTS_SUPPORT_LOOPBACK_H_

namespace certstore::testing {

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read,
// closed). Fails the test when no socket can be bound.
int FreeLoopbackPort();

// True when something accepts a TCP connection on 127.0.0.1:`port` now
// (the connection is closed at once): for waiting until a server listens.
bool AcceptsConnections(int port);

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SUPPORT_LOOPBACK_H_

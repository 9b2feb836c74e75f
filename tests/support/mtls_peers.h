// A small HTTPS server and client on raw OpenSSL, both configured through
// certstore::tls (TlsIdentity, PeerPolicy), for the mTLS tests: the server
// answers every request with the thumbprints it saw, and records each
// handshake (the client's certificate, the verdict, the alert).
#ifndef CERTSTORE_TESTS_SUPPORT_MTLS_PEERS_H_
#define CERTSTORE_TESTS_SUPPORT_MTLS_PEERS_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "api/internal/ssl_types.h"
#include "certstore/tls.h"

namespace certstore::testing {

// One TLS server on 127.0.0.1 (a free port), one connection at a time,
// every socket wait bounded (10 s). Answers "HTTP/1.1 200" with the body
// "client=<x5t#S256 or ->\nserver=<its own>\n". Session resumption is off:
// every connection is a full handshake.
class MtlsServer {
 public:
  struct Handshake {
    bool ok = false;
    absl::Time started;
    std::string client_thumbprint;  // empty: none accepted
    std::string server_thumbprint;  // the certificate this server presented
    absl::optional<PeerVerdict> verdict;
  };

  // `policy` null: no client certificate is asked for.
  MtlsServer(std::shared_ptr<TlsIdentity> identity,
             std::shared_ptr<PeerPolicy> policy);
  ~MtlsServer();
  MtlsServer(const MtlsServer&) = delete;
  MtlsServer& operator=(const MtlsServer&) = delete;

  int port() const { return port_; }
  std::string Url() const;
  std::vector<Handshake> handshakes() const;
  // The handshakes once at least `n` were recorded (the server records a
  // connection after the client is done with it), or after 10 s.
  std::vector<Handshake> WaitForHandshakes(size_t n) const;

 private:
  void Serve();
  void Handle(int fd);

  UniqueSslCtx ctx_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  std::vector<Handshake> handshakes_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// A client context presenting `identity` (null: none) and verifying the
// server with `policy` (null: no verification). No session reuse.
UniqueSslCtx NewClientContext(std::shared_ptr<TlsIdentity> identity,
                              std::shared_ptr<PeerPolicy> policy);

// A client context with `entry`'s chain and key loaded once (the bare
// OpenSSL way; also for certificates no store would serve, e.g. expired),
// handshakes traced, no verification of the server.
UniqueSslCtx NewStaticClientContext(const Entry& entry);

struct MtlsResponse {
  bool ok = false;  // HTTP 200 read
  std::string body;
  std::string server_thumbprint;  // what the server presented
  ConnectionOutcome outcome;      // on failure (DescribeSslFailure)
  HandshakeTrace trace;
  std::string error;
};

// One GET on a new connection to 127.0.0.1:`port`.
MtlsResponse MtlsGet(SSL_CTX* ctx, int port);

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SUPPORT_MTLS_PEERS_H_

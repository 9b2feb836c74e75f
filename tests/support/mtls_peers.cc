#include "tests/support/mtls_peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/chain.h"

namespace certstore::testing {
namespace {

constexpr int kSocketTimeoutSeconds = 10;

// Bounded waits, and no Nagle delay between a handshake's last flight and
// the request (each is a small write).
void SetTimeouts(int fd) {
  timeval tv{kSocketTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// After a refused handshake: stop sending, then read what the client still
// sends (its request, in TLS 1.3) until it closes, so that closing does not
// reset the connection and discard the alert before the client reads it.
void LingeringClose(int fd) {
  shutdown(fd, SHUT_WR);
  char buf[4096];
  for (int i = 0; i < 64; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0 || read(fd, buf, sizeof(buf)) <= 0) {
      return;
    }
  }
}

std::string ThumbprintOf(X509* cert) {
  if (cert == nullptr) {
    return "";
  }
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) {
    return "";
  }
  std::string out = Thumbprint(absl::string_view(reinterpret_cast<char*>(der),
                                                 static_cast<size_t>(len)));
  OPENSSL_free(der);
  return out;
}

void NoResumption(SSL_CTX* ctx) {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
}

}  // namespace

MtlsServer::MtlsServer(std::shared_ptr<TlsIdentity> identity,
                       std::shared_ptr<PeerPolicy> policy)
    : ctx_(SSL_CTX_new(TLS_server_method())) {
  if (ctx_ == nullptr || !identity->Install(ctx_.get()).ok() ||
      (policy != nullptr && !policy->Install(ctx_.get()).ok())) {
    fprintf(stderr, "MtlsServer: SSL_CTX setup failed\n");
    abort();
  }
  NoResumption(ctx_.get());
  static constexpr unsigned char kContext[] = "certstore-mtls-test";
  SSL_CTX_set_session_id_context(ctx_.get(), kContext, sizeof(kContext) - 1);
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 ||
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 64) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    perror("MtlsServer: listen");
    abort();
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

MtlsServer::~MtlsServer() {
  stop_ = true;
  thread_.join();
  close(listen_fd_);
}

std::string MtlsServer::Url() const {
  return absl::StrCat("https://127.0.0.1:", port_, "/");
}

std::vector<MtlsServer::Handshake> MtlsServer::handshakes() const {
  absl::MutexLock lock(&mu_);
  return handshakes_;
}

std::vector<MtlsServer::Handshake> MtlsServer::WaitForHandshakes(
    size_t n) const {
  struct Enough {
    const std::vector<Handshake>* seen;
    size_t n;
    bool operator()() const { return seen->size() >= n; }
  };
  absl::MutexLock lock(&mu_);
  Enough enough{&handshakes_, n};
  mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  return handshakes_;
}

void MtlsServer::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) {
      continue;
    }
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      Handle(fd);
      close(fd);
    }
  }
}

void MtlsServer::Handle(int fd) {
  SetTimeouts(fd);
  UniqueSsl ssl(SSL_new(ctx_.get()));
  SSL_set_fd(ssl.get(), fd);
  Handshake record;
  record.started = absl::Now();
  ERR_clear_error();
  record.ok = SSL_accept(ssl.get()) == 1;
  record.server_thumbprint = ThumbprintOf(SSL_get_certificate(ssl.get()));
  record.verdict = PeerPolicy::VerdictOf(ssl.get());
  if (record.ok) {
    record.client_thumbprint =
        ThumbprintOf(SSL_get0_peer_certificate(ssl.get()));
    std::string request;
    char buf[4096];
    while (!absl::StrContains(request, "\r\n\r\n") && request.size() < 65536) {
      const int n = SSL_read(ssl.get(), buf, sizeof(buf));
      if (n <= 0) {
        break;
      }
      request.append(buf, static_cast<size_t>(n));
    }
    const std::string body = absl::StrCat(
        "client=",
        record.client_thumbprint.empty() ? "-" : record.client_thumbprint,
        "\nserver=", record.server_thumbprint, "\n");
    const std::string response = absl::StrCat(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ",
        body.size(), "\r\nConnection: close\r\n\r\n", body);
    SSL_write(ssl.get(), response.data(), static_cast<int>(response.size()));
    SSL_shutdown(ssl.get());
  } else {
    LingeringClose(fd);
  }
  ERR_clear_error();
  absl::MutexLock lock(&mu_);
  handshakes_.push_back(std::move(record));
}

UniqueSslCtx NewClientContext(std::shared_ptr<TlsIdentity> identity,
                              std::shared_ptr<PeerPolicy> policy) {
  UniqueSslCtx ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr ||
      (identity != nullptr && !identity->Install(ctx.get()).ok()) ||
      (policy != nullptr && !policy->Install(ctx.get()).ok())) {
    fprintf(stderr, "NewClientContext: SSL_CTX setup failed\n");
    abort();
  }
  if (identity == nullptr) {
    TraceHandshakes(ctx.get());
  }
  NoResumption(ctx.get());
  return ctx;
}

UniqueSslCtx NewStaticClientContext(const Entry& entry) {
  UniqueSslCtx ctx(SSL_CTX_new(TLS_client_method()));
  absl::StatusOr<absl::Span<X509* const>> chain = entry.Chain();
  if (ctx == nullptr || !chain.ok() ||
      SSL_CTX_use_certificate(ctx.get(), (*chain)[0]) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), entry.key()->evp_pkey()) != 1) {
    fprintf(stderr, "NewStaticClientContext: setup failed\n");
    abort();
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    SSL_CTX_add1_chain_cert(ctx.get(), (*chain)[i]);
  }
  TraceHandshakes(ctx.get());
  NoResumption(ctx.get());
  return ctx;
}

MtlsResponse MtlsGet(SSL_CTX* ctx, int port) {
  MtlsResponse r;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SetTimeouts(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    r.error = absl::StrCat("connect: ", strerror(errno));
    r.outcome.error = TransportError::kNetwork;
    r.outcome.phase = RequestPhase::kConnect;
    close(fd);
    return r;
  }
  UniqueSsl ssl(SSL_new(ctx));
  SSL_set_fd(ssl.get(), fd);
  ERR_clear_error();
  int ret = SSL_connect(ssl.get());
  if (ret == 1) {
    r.server_thumbprint = ThumbprintOf(SSL_get0_peer_certificate(ssl.get()));
    const std::string request =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    ret =
        SSL_write(ssl.get(), request.data(), static_cast<int>(request.size()));
  }
  std::string response;
  if (ret > 0) {
    char buf[4096];
    for (;;) {
      ERR_clear_error();
      ret = SSL_read(ssl.get(), buf, sizeof(buf));
      if (ret <= 0) {
        break;
      }
      response.append(buf, static_cast<size_t>(ret));
    }
    if (SSL_get_error(ssl.get(), ret) == SSL_ERROR_ZERO_RETURN ||
        absl::StrContains(response, "\r\n\r\n")) {
      ret = 1;  // a clean close after the response
    }
  }
  r.trace = TraceOf(ssl.get());
  if (ret <= 0 || !absl::StartsWith(response, "HTTP/1.1 200")) {
    r.outcome = DescribeSslFailure(ssl.get(), ret);
    char err[256];
    ERR_error_string_n(ERR_peek_last_error(), err, sizeof(err));
    r.error = absl::StrCat("TLS failed: ", err, " alert received ",
                           r.trace.alert_received);
  } else {
    r.ok = true;
    const size_t at = response.find("\r\n\r\n");
    r.body = response.substr(at + 4);
  }
  ERR_clear_error();
  close(fd);
  return r;
}

}  // namespace certstore::testing

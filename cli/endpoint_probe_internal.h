// The pieces ProbeEndpoint is built from: URL parsing, a DNS lookup with a
// deadline, a non-blocking TCP connect and a TLS client session whose every
// wait is bounded. Internal to cli/.
#ifndef CERTSTORE_CLI_ENDPOINT_PROBE_INTERNAL_H_
#define CERTSTORE_CLI_ENDPOINT_PROBE_INTERNAL_H_

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/internal/ssl_types.h"
#include "api/internal/unique_fd.h"
#include "certstore/entry.h"
#include "certstore/openssl_types.h"
#include "cli/endpoint_probe.h"

namespace certstore::cli::probe_internal {

struct ParsedEndpoint {
  std::string host;  // without brackets
  uint16_t port = 443;
  std::string path;  // "" or "/prefix" (no trailing '/')
};

// https://host[:port][/path]. InvalidArgument naming the URL otherwise.
absl::StatusOr<ParsedEndpoint> ParseEndpoint(absl::string_view url);

struct SocketAddress {
  sockaddr_storage storage = {};
  socklen_t length = 0;
  std::string text;  // "127.0.0.1:4433", "[::1]:4433"
};

// getaddrinfo on a helper thread, abandoned (not cancelled) at `deadline`.
// Unavailable when the name does not resolve, DeadlineExceeded at the
// deadline (the message says how long was allowed: `budget`).
absl::StatusOr<std::vector<SocketAddress>> Resolve(const ParsedEndpoint& ep,
                                                   absl::Time deadline,
                                                   absl::Duration budget);

using UniqueFd = ::certstore::internal::UniqueFd;

// Waits until `fd` has `events` (POLLIN / POLLOUT). False at the deadline.
bool WaitFd(int fd, short events, absl::Time deadline);

// A non-blocking TCP connection to `address`. Unavailable when refused or
// unreachable, DeadlineExceeded at the deadline, both naming the address.
absl::StatusOr<UniqueFd> ConnectTcp(const SocketAddress& address,
                                    absl::Time deadline, absl::Duration budget);

// What the TLS layer saw, filled by OpenSSL callbacks.
struct TlsTrace {
  bool certificate_requested = false;
  std::vector<std::string> ca_names;      // RFC 2253
  std::vector<std::string> ca_names_der;  // DER X509_NAME
  int alert_received = -1;
  int alert_sent = -1;
  // The first server-certificate verification failure: "<reason> (at
  // <subject>, issued by <issuer>)".
  std::string verify_failure;
};

// "bad_certificate" for 42; "alert 201" for numbers it does not know.
std::string AlertName(int alert);

// Whether a received alert refuses our certificate (bad_certificate,
// unknown_ca, ...): the classification the token client and HealingCall use
// (certstore/tls.h, ClassifyHandshakeFailure), during the handshake or at the
// first read after it.
bool RefusesOurCertificate(int alert, bool handshake_done);

// A TLS client session on a connected socket. Every call is bounded by the
// deadline it is given; failures name `address` and the phase.
class TlsSession {
 public:
  // Builds the context: trust (PEM, or the system's paths when empty), host
  // or IP check, SNI, and the entry's chain and key when given.
  // InvalidArgument for a bad PEM, FailedPrecondition when the key does not
  // match the leaf.
  static absl::StatusOr<std::unique_ptr<TlsSession>> Create(
      UniqueFd fd, const std::string& host, const std::string& address,
      const std::string& server_ca_pem, const Entry* client_entry);
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // SSL_connect until done. See EndpointProbeReport for the codes.
  absl::Status Handshake(absl::Time deadline, absl::Duration budget);
  // TLS 1.3, when the server asked for a certificate: sends close_notify
  // and waits (until `deadline`) for the server's answer, so that a
  // client-certificate rejection — which TLS 1.3 delivers after the
  // handshake — is seen. OK when the server closed or said nothing by the
  // deadline. A no-op otherwise.
  absl::Status ConfirmAccepted(absl::Time deadline);
  absl::Status Write(absl::string_view data, absl::Time deadline);
  // Appends what arrived; 0 bytes means the server closed. DeadlineExceeded
  // (without context) at the deadline.
  absl::StatusOr<size_t> Read(std::string* out, size_t max,
                              absl::Time deadline);

  // `status` (a read or write failure after the handshake) with a note
  // that TLS 1.3 servers may reset a connection whose client certificate
  // they reject, when that can be the case.
  absl::Status ExplainEarlyClose(const absl::Status& status) const;

  std::string version() const;
  const TlsTrace& trace() const { return trace_; }
  // The failure a read or write after the handshake ended with was a
  // certificate alert from the server (TLS 1.3's late rejection).
  bool late_certificate_rejection() const;

 private:
  TlsSession(UniqueFd fd, std::string address, bool has_entry);
  // Drives `op` (an SSL_* call returning <= 0 when it must wait or failed).
  template <typename Op>
  absl::Status Drive(Op op, absl::Time deadline);
  absl::Status Failure(int ssl_error, int saved_errno);

  UniqueFd fd_;
  std::string address_;
  bool has_entry_;
  bool handshake_done_ = false;
  bool closed_ = false;    // the server sent close_notify
  bool peer_eof_ = false;  // the server closed without close_notify
  TlsTrace trace_;  // before ssl_: its callbacks write here until SSL_free
  UniqueSslCtx ctx_;
  UniqueSsl ssl_;
};

// The token phase's verdict on an answer (`report` gets the token type
// and lifetime of a 200): the token client's status table
// (FailureStatusCode), so that doctor and `certstore token` agree.
absl::Status JudgeTokenResponse(int http_status, const std::string& body,
                                EndpointProbeReport* report);

}  // namespace certstore::cli::probe_internal

#endif  // CERTSTORE_CLI_ENDPOINT_PROBE_INTERNAL_H_

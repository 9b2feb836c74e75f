// certstore-emulator: a local stand-in for the issuing endpoint (IMDS-style,
// plain HTTP) and the mTLS token endpoint, with fault injection and counters.
// Tests, benchmarks and the demo run it in process (Emulator::Start) or as a
// separate process (the certstore-emulator executable, same behaviour).
//
// Protocol (docs/design.md, "The token protocol"):
//
//   issuing_url() = http://127.0.0.1:P, every request needs `Metadata: true`
//     GET  /metadata/identity/getplatformmetadata?cred-api-version=2.0
//       200 {"clientId","tenantId","cuId":{"vmId"},"attestationEndpoint"}
//     POST /metadata/identity/issuecredential?cred-api-version=2.0
//       body {"csr":"<base64 DER PKCS#10>"}; the CSR's signature must verify,
//       its subject must be exactly CN=<clientId>, DC=<tenantId> (either
//       order) and its key RSA-2048 or EC P-256.
//       200 {"client_id","tenant_id","certificate":"<base64 DER leaf>",
//            "certificate_chain":["<base64 DER intermediate>"],
//            "mtls_authentication_endpoint":"https://127.0.0.1:Q"}
//       400 {"error":"invalid_request","error_description":"<failed check>"}
//
//   token_url() = https://127.0.0.1:Q (TLS 1.2/1.3, client certificate
//   required, chain verified against ca_root_pem(); the client must send
//   leaf + intermediate)
//     POST /<tenantId>/oauth2/v2.0/token, form body
//       grant_type=client_credentials&client_id=<clientId>
//       &scope=<resource>/.default&token_type=mtls_pop
//       200 {"token_type":"mtls_pop","access_token","expires_in"}, the token
//           bound to the presented leaf's x5t#S256 (see DecodeToken)
//       401 {"error":"invalid_client",...}: wrong client_id or tenant, a leaf
//           this emulator did not issue, or a revoked one
//       400 {"error":"invalid_request",...}: bad body, grant, scope or
//           token_type
//
//   Admin (on the issuing listener, loopback only, no Metadata header):
//     POST /admin/faults {"kind":"tls_alert","count":2,"alert":"unknown_ca"}
//     GET  /admin/counters          POST /admin/revoke {"thumbprint":"…"}
//     POST /admin/reset             GET  /admin/ca (root certificate, PEM)
//     POST /admin/token-binding {"access_token":"…"} -> {"thumbprint":"…"}
//   (field names in docs/emulator.md).
#ifndef CERTSTORE_EMULATOR_EMULATOR_H_
#define CERTSTORE_EMULATOR_EMULATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/clock.h"
#include "certstore/observability.h"

namespace certstore::emulator {

enum class TlsVersion { kTls12, kTls13 };

struct EmulatorOptions {
  std::string client_id = "11111111-2222-3333-4444-555555555555";
  // Appears in the token path: letters, digits, '.', '-', '_' only.
  std::string tenant_id = "tenant-0001";
  std::string vm_id = "00000000-0000-0000-0000-000000000001";
  // Reported by getplatformmetadata; empty means attestation not configured.
  std::string attestation_endpoint;

  // Issued leaves are valid [now, now + cert_validity] (now in whole seconds).
  absl::Duration cert_validity = absl::Hours(24 * 7);
  absl::Duration token_lifetime = absl::Seconds(3600);
  // Time for issued validity, token expiry and the verification of client
  // chains (so a ManualClock in 2030 gets certificates that verify in
  // 2030). Null means Clock::System(). The CA and server certificates are
  // valid 2000..2100 whatever the clock says.
  const Clock* clock = nullptr;

  TlsVersion min_tls = TlsVersion::kTls12;
  TlsVersion max_tls = TlsVersion::kTls13;
  // Off by default: every connection is a full handshake, so the client's
  // key signs every time and handshake faults always apply.
  bool allow_session_resumption = false;
  // Off: every token response says `Connection: close`.
  bool keep_alive = true;

  // What issuecredential names as mtls_authentication_endpoint; empty: its
  // own token_url(). For tests of clients that must refuse what an issuer
  // says (http://, file://, userinfo).
  std::string advertised_token_endpoint;

  // 0 picks a free port. Both listeners bind 127.0.0.1 only.
  uint16_t issuing_port = 0;
  uint16_t token_port = 0;

  // Bounds on a peer: TLS handshake and reading one request each must finish
  // within io_timeout; an idle keep-alive connection is closed after
  // idle_timeout; request heads above 16 KiB and bodies above 64 KiB are
  // refused. Connections beyond max_connections per listener are closed at
  // once.
  absl::Duration io_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(5);
  int max_connections = 1024;

  // One line per mint, token, refusal and fault (component "emulator").
  // Never holds keys or tokens. Called from connection threads, possibly
  // concurrently. Null: silent.
  LogCallback log;
};

// A fault applies to the next `count` matching events, in the order faults
// were injected (a FIFO shared by all token faults; issuing faults have their
// own). Token faults are of two levels:
//   per new connection: kResetDuringHandshake, kTlsAlert,
//     kCloseAfterHandshake, kHang — a request on a kept-alive connection
//     does not consume them;
//   per request: kInvalidClient, kDelay, kHangResponse, kHttpStatus,
//     kTooManyRequests.
// A fault at the head of the queue blocks the ones behind it until it is
// used up. Issuing faults: kIssuerError (per issuecredential request),
// kIssueExpired (per certificate issued).
enum class FaultKind {
  // Reads the ClientHello, then closes with SO_LINGER{1,0}: the client sees
  // a connection reset during the handshake.
  kResetDuringHandshake,
  // Fails the client-certificate verification so that OpenSSL sends `alert`
  // (TLS 1.2: during the handshake; TLS 1.3: the client sees it at its first
  // read). Needs the client to send a certificate.
  kTlsAlert,
  // Completes the handshake, then resets the connection before reading the
  // request (what a TLS 1.3 client-certificate rejection looks like).
  kCloseAfterHandshake,
  // Accepts the TCP connection and never answers (until Stop or the client
  // closes): the client hangs in the TLS handshake.
  kHang,
  // 401 invalid_client for a request that would otherwise succeed.
  kInvalidClient,
  // Waits `delay` (Stop interrupts), then answers normally.
  kDelay,
  // Reads the request and never answers (until Stop or the client closes).
  kHangResponse,
  // Answers `http_status` with {"error":"temporarily_unavailable"}.
  kHttpStatus,
  // 429 with `Retry-After: <retry_after in whole seconds>`.
  kTooManyRequests,
  // issuecredential answers `http_status` (500..599) without minting.
  kIssuerError,
  // The certificate issued is valid [now + not_before_offset,
  // now + not_before_offset + validity]: the defaults make it expired a day
  // ago; a positive offset makes it not yet valid; offset 0 and a short
  // validity make it short-lived.
  kIssueExpired,
  // The next token request is answered with `raw` written verbatim (status
  // line, headers, body: any bytes), then `stream_bytes` filler bytes or
  // until the client closes; then the connection ends. For hostile-server
  // tests.
  kRawResponse,
  // The same for the next request to the issuing endpoint (metadata or
  // issuecredential).
  kRawIssuing,
};

// The alerts kTlsAlert can make OpenSSL send.
enum class TlsAlert {
  kBadCertificate,      // 42
  kUnknownCa,           // 48
  kCertificateExpired,  // 45
  kDecryptError,        // 51
  kCertificateRevoked,  // 44
  kInternalError,       // 80
};

struct FaultSpec {
  FaultKind kind = FaultKind::kInvalidClient;
  int count = 1;  // >= 1
  TlsAlert alert = TlsAlert::kBadCertificate;
  absl::Duration delay = absl::Seconds(1);
  int http_status = 503;  // kHttpStatus: 400..599; kIssuerError: 500..599
  absl::Duration retry_after = absl::Seconds(1);
  absl::Duration not_before_offset = -absl::Hours(24 * 8);
  absl::Duration validity = absl::Hours(24 * 7);
  std::string raw = "";      // kRawResponse, kRawIssuing: bytes on the wire
  int64_t stream_bytes = 0;  // kRawResponse, kRawIssuing: then this many more
  int skip = 0;              // this many matching events pass untouched first
};

// "reset_during_handshake", "tls_alert", … (the admin endpoint's names).
absl::string_view FaultKindName(FaultKind kind);
absl::StatusOr<FaultKind> ParseFaultKind(absl::string_view name);
// "bad_certificate", "unknown_ca", "certificate_expired", "decrypt_error",
// "certificate_revoked", "internal_error".
absl::string_view TlsAlertName(TlsAlert alert);
absl::StatusOr<TlsAlert> ParseTlsAlert(absl::string_view name);
// The alert's number on the wire (RFC 8446 §6), e.g. 42 for bad_certificate.
int TlsAlertNumber(TlsAlert alert);

struct ThumbprintCounters {
  int64_t mints = 0;
  int64_t tokens = 0;
  int64_t handshakes_failed = 0;  // with this leaf presented
  int64_t invalid_client = 0;
};

// A consistent snapshot.
struct Counters {
  int64_t metadata_requests = 0;
  int64_t mint_requests = 0;  // issuecredential requests, any outcome
  int64_t mints = 0;          // certificates issued
  int64_t connections = 0;    // token endpoint: TCP connections accepted
  int64_t handshakes_ok = 0;
  // Any handshake that did not complete: injected faults, no or bad client
  // certificate, a peer that went away, Stop.
  int64_t handshakes_failed = 0;
  int64_t requests_total = 0;  // token endpoint: HTTP requests read
  int64_t tokens_issued = 0;
  int64_t invalid_client_responses = 0;  // injected ones included
  int64_t faults_applied = 0;            // token and issuing faults
  std::map<std::string, ThumbprintCounters> by_thumbprint;  // x5t#S256

  ThumbprintCounters For(const std::string& thumbprint) const;
};

// What an access token says. Tokens are HMAC-protected by a per-emulator key.
struct TokenClaims {
  std::string thumbprint;  // x5t#S256 of the certificate it is bound to
  std::string client_id;
  std::string scope;
  absl::Time expires_at;
};

// A running emulator. Thread-safe. Destruction stops it.
class Emulator {
 public:
  // Generates its CA (EC P-256 root -> intermediate, and a server
  // certificate for 127.0.0.1 / localhost), binds both listeners and starts
  // serving. InvalidArgument names a bad option; Unavailable when a port
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<Emulator>> Start(
      const EmulatorOptions& options = {});

  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;
  ~Emulator();

  // Stops accepting, interrupts every connection (hung and delayed ones
  // included) and joins every thread. Idempotent. In a forked child it does
  // nothing: the threads belong to the parent.
  void Stop();

  const std::string& issuing_url() const;  // "http://127.0.0.1:P"
  const std::string& token_url() const;    // "https://127.0.0.1:Q"
  // token_url() + "/<tenantId>/oauth2/v2.0/token".
  std::string token_endpoint() const;
  uint16_t issuing_port() const;
  uint16_t token_port() const;
  const std::string& client_id() const;
  const std::string& tenant_id() const;

  // The trust anchor clients verify the token endpoint with, PEM.
  const std::string& ca_root_pem() const;
  // DER certificates: root, then intermediate (which issues the leaves).
  const std::vector<std::string>& ca_chain_der() const;

  // Queues a fault (see FaultKind). InvalidArgument for a count < 1, a
  // status out of range, a negative delay.
  absl::Status InjectFault(const FaultSpec& fault);
  // Drops every queued fault.
  void ClearFaults();
  // Remaining uses of every queued fault, summed.
  int PendingFaults() const;
  // As a server reload does: every kept-alive token connection is closed
  // at its next request, unanswered, so the client makes a new connection
  // (and handshake). A pending connection-level fault does the same.
  void DropKeptAliveConnections();

  // From now on the token endpoint answers invalid_client for this leaf.
  // Permanent until Reset.
  void Revoke(absl::string_view thumbprint);
  // Clears faults, revocations and counters. Issued certificates stay valid.
  void Reset();
  Counters GetCounters() const;

  // Decodes a token this emulator issued. InvalidArgument when it is
  // malformed or its MAC does not verify (forged, or another emulator's).
  absl::StatusOr<TokenClaims> DecodeToken(absl::string_view access_token) const;
  // The x5t#S256 the token is bound to (DecodeToken(...).thumbprint).
  absl::StatusOr<std::string> TokenBinding(
      absl::string_view access_token) const;

 private:
  struct Impl;
  explicit Emulator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A 127.0.0.1 port where connect() never completes: its listener's accept
// queue is kept full, and Linux drops further SYNs (the client retransmits
// until its deadline). A blackholed endpoint for connect-phase deadlines;
// for a hang in the TLS handshake or the response use kHang /
// kHangResponse. Destruction releases the port.
class ConnectBlackhole {
 public:
  // Unavailable when the port cannot be set up or its queue did not fill.
  static absl::StatusOr<std::unique_ptr<ConnectBlackhole>> Start();
  ConnectBlackhole(const ConnectBlackhole&) = delete;
  ConnectBlackhole& operator=(const ConnectBlackhole&) = delete;
  ~ConnectBlackhole();

  uint16_t port() const;
  std::string url() const;  // "https://127.0.0.1:P"

 private:
  struct Impl;
  explicit ConnectBlackhole(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace certstore::emulator

#endif  // CERTSTORE_EMULATOR_EMULATOR_H_

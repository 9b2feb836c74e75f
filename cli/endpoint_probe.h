// The network half of `certstore doctor`: walks an mTLS token call to an
// endpoint phase by phase (resolve, TCP connect, TLS handshake, token
// request), each under its own deadline, and reports what each phase saw.
//
// Raw OpenSSL on a non-blocking socket: no curl, no retries, no AIA or CRL
// fetching, no redirects. The whole call never runs past
// EndpointProbeOptions::deadline by more than a few milliseconds (a slow
// DNS lookup is abandoned, not waited for).
#ifndef CERTSTORE_CLI_ENDPOINT_PROBE_H_
#define CERTSTORE_CLI_ENDPOINT_PROBE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "certstore/entry.h"

namespace certstore::cli {

struct EndpointProbeOptions {
  // https://host[:port][/path] (port 443 by default; host may be an IP
  // literal, IPv6 in brackets). A path is put in front of the token path.
  std::string endpoint;
  // PEM trust anchors for the server certificate; empty: the system's
  // default verify paths. The host name (or IP) is always checked.
  std::string server_ca_pem;
  // The binding to present (leaf + intermediates from chain_der, key from
  // key()->evp_pkey()); null: no client certificate. Not owned; must
  // outlive the call.
  const Entry* client_entry = nullptr;

  absl::Duration resolve_timeout = absl::Seconds(3);
  absl::Duration connect_timeout = absl::Seconds(3);
  absl::Duration handshake_timeout = absl::Seconds(5);
  absl::Duration token_timeout = absl::Seconds(10);
  // Overall: every phase's deadline is cut to it.
  absl::Time deadline = absl::InfiniteFuture();

  // Also POST /<tenant_id>/oauth2/v2.0/token on the same connection
  // (grant_type=client_credentials, scope=<scope>/.default,
  // token_type=mtls_pop, Connection: close).
  bool request_token = false;
  std::string tenant_id;
  std::string client_id;
  std::string scope;  // resource, e.g. "https://vault.azure.net"
  // Generic RFC 8705 mode: POST to the endpoint's own path with
  // grant_type=client_credentials, client_id, the scope as given and
  // these parameters, as the token client does (no tenant, no token_type).
  bool generic = false;
  std::vector<std::pair<std::string, std::string>> extra_parameters;
};

// One step of the walk.
struct ProbePhase {
  std::string name;  // "resolve", "TCP connect", "TLS handshake", "token"
  // False when the phase did not run: an earlier phase failed, or (token)
  // it was not asked for. `status` is then Cancelled ("not reached" /
  // "not requested"), never OK, so that `status.ok()` alone never reports
  // a phase that did not run.
  bool reached = false;
  absl::Status status = absl::CancelledError("not reached");
  absl::Duration elapsed = absl::ZeroDuration();

  bool ok() const { return reached && status.ok(); }
};

// What the walk saw. Status codes (certstore/errors.h), per phase:
//   InvalidArgument     resolve: the endpoint URL (named) is malformed;
//                       handshake: server_ca_pem holds no certificate.
//   Unavailable         host not found, connection refused / reset / closed,
//                       HTTP 5xx or 429: network trouble, retry.
//   DeadlineExceeded    the phase (named, with the address) ran out of time.
//   FailedPrecondition  handshake: the client key could not sign (key
//                       unusable: evict and re-mint), or the key does not
//                       match the leaf.
//   Unauthenticated     handshake: the server rejected our certificate (the
//                       TLS alert is named, e.g. "bad_certificate", also
//                       when TLS 1.3 delivers it after the handshake), or we
//                       rejected the server's (the verification error is
//                       named); token: HTTP 401 (e.g. invalid_client).
//   InvalidArgument     token: HTTP 400 (bad client id, scope, tenant).
//   Unknown             token: any other HTTP status or an unreadable body.
//   DataLoss            handshake: the entry's stored chain does not decode.
// Messages never hold keys or the access token.
struct EndpointProbeReport {
  std::string endpoint;  // as given
  std::string address;   // the address connected to, "127.0.0.1:4433"

  ProbePhase resolve{"resolve"};
  ProbePhase connect{"TCP connect"};
  ProbePhase handshake{"TLS handshake"};
  ProbePhase token{"token"};

  // Handshake observations (filled as far as the handshake got).
  std::string tls_version;             // "TLSv1.3"; "" if it did not complete
  bool certificate_requested = false;  // the server sent CertificateRequest
  // The acceptable CA names of the CertificateRequest (empty: the server
  // named none, so it accepts any issuer), as one-line RFC 2253 strings
  // ("CN=Root, O=Org") and as DER X509_NAMEs (for ChainIssuerAccepted).
  std::vector<std::string> acceptable_ca_names;
  std::vector<std::string> acceptable_ca_names_der;

  // Token observations: the HTTP status (0: no response) and, on 200, what
  // the body says. The access token itself is never kept.
  int http_status = 0;
  std::string token_type;
  int64_t expires_in = 0;

  // True when every phase that was asked for ran and succeeded.
  bool ok() const;
  // The phases in walk order, for printing.
  std::vector<const ProbePhase*> phases() const;
};

// Runs the walk. Never fails as a whole: every outcome is in the report. A
// phase runs only when the previous one succeeded.
EndpointProbeReport ProbeEndpoint(const EndpointProbeOptions& options);

// Whether a server that sent `acceptable_ca_names_der` (DER X509_NAMEs, as in
// EndpointProbeReport::acceptable_ca_names_der) would find an issuer it
// accepts in `chain_der` (leaf first): true when the list is empty (any
// issuer accepted) or when some certificate's subject or issuer equals one
// of the names. `matched` (nullable) receives the RFC 2253 form of the name
// that matched ("" for an empty list). Undecodable certificates and names
// are skipped.
bool ChainIssuerAccepted(
    const std::vector<std::string>& chain_der,
    const std::vector<std::string>& acceptable_ca_names_der,
    std::string* matched = nullptr);

}  // namespace certstore::cli

#endif  // CERTSTORE_CLI_ENDPOINT_PROBE_H_

/// \file
/// TokenClient: gets mTLS-bound access tokens with a binding credential from
/// any CertStore (one SQLite file, a PKCS#11 token, or memory over either),
/// minting it on first use and healing it when it breaks.
#ifndef CERTSTORE_TOKEN_CLIENT_H_
#define CERTSTORE_TOKEN_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/export.h"
#include "certstore/key.h"
#include "certstore/observability.h"

namespace certstore {

/// Deadlines of one GetToken call. `total` bounds the whole call, retries
/// included. `connect` and `handshake` are separate limits of each
/// connection: `connect` from the start of the attempt until TCP connects,
/// `handshake` from then until the TLS handshake completes. Whichever
/// runs out first ends the attempt with DeadlineExceeded naming the phase.
struct RequestDeadlines {
  absl::Duration connect = absl::Seconds(3);
  absl::Duration handshake = absl::Seconds(5);
  absl::Duration total = absl::Seconds(20);
};

/// Generic RFC 8705 mode: OAuth 2.0 client credentials (RFC 6749 §4.4) at
/// any mTLS token endpoint (RFC 8705 §2) — nginx, Keycloak, an OAuth
/// server — instead of the IMDS protocol.
struct TokenEndpointOptions {
  /// The token endpoint's full https URL; empty: IMDS mode.
  std::string url;
  /// Sent as client_id (required in generic mode).
  std::string client_id;
  /// Store alias of the credential; empty: client_id.
  std::string alias;
  /// More form parameters, sent as given after grant_type, client_id and
  /// scope (e.g. {"audience", "api"}).
  std::vector<std::pair<std::string, std::string>> extra_parameters;
};

struct TokenClientOptions {
  /// The IMDS-style issuing endpoint, e.g. "http://127.0.0.1:40123": https,
  /// or http to a loopback or link-local address only. IMDS mode needs it;
  /// in generic mode it is the issuer that mints a credential when the
  /// store has none (or after an eviction), and may be empty: credentials
  /// are then imported, and one the server refuses cannot be replaced.
  std::string issuing_url;
  /// Set `token_endpoint.url` for generic RFC 8705 mode.
  TokenEndpointOptions token_endpoint;
  /// PEM trust anchors for the token endpoint's server certificate; empty
  /// means the system roots.
  std::string server_ca_pem;
  /// Key made for a new binding (CreateKey on the store: on the token for
  /// PKCS#11, in process otherwise).
  KeySpec key_spec;
  /// After a mint with a key made in process (every store but PKCS#11),
  /// the key of the next binding is made in the background, so that a
  /// re-mint after a credential failure does not wait for key generation
  /// (an RSA-2048 key takes about 0.3 s). Kept in memory only.
  bool spare_keys = true;
  /// Alias suffix "#att=1" instead of "#att=0".
  bool attestation = false;
  RequestDeadlines deadlines;
  /// Token requests with the same binding share one kept-alive connection
  /// (closed when the binding is evicted or replaced). false: a new
  /// connection and full handshake for every request.
  bool reuse_connections = true;
  /// Network failures: at most this many attempts per request, exponential
  /// backoff from initial_backoff (x2, +/- 25 % jitter) up to max_backoff; a
  /// server's Retry-After is honoured when it fits the deadline.
  int max_attempts = 3;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  /// A cached token is refreshed in the background this long before it
  /// expires; callers keep getting it meanwhile, until 30 s (or
  /// refresh_ahead, if smaller) before it expires. Callers wait for the
  /// network only when no such token is cached, and then one request per
  /// (alias, scope) is sent however many callers ask (the others wait for
  /// it, each within its own deadline).
  absl::Duration refresh_ahead = absl::Minutes(5);
  /// Bindings with less lifetime left are not used (see FindOptions).
  absl::Duration min_remaining = absl::Hours(24);
  /// How long a mint waits for the store's cross-process mint lock
  /// (MintCoordinatorOptions::lock_timeout).
  absl::Duration mint_lock_timeout = absl::Milliseconds(500);
  /// Negative-mint budget: when the binding minted to replace a refused
  /// one is refused as well, no process using this store mints for the
  /// alias again for rejection_backoff (doubling with each repeat, up to
  /// max_rejection_backoff); GetToken says "rejected since …" at once. A
  /// token served, or `certstore evict`, clears it.
  absl::Duration rejection_backoff = absl::Minutes(1);
  absl::Duration max_rejection_backoff = absl::Hours(1);
  /// IMDS mode: the platform's client and tenant id are kept per store and
  /// issuing endpoint with the time they were fetched. A record younger
  /// than this is used without asking the issuing endpoint; an older one
  /// only when the endpoint cannot be reached (the log says how old).
  absl::Duration platform_refresh = absl::Hours(24);
  /// Where the client keeps its records per store: `rejections/` (the
  /// negative-mint budget) and `platform/` (client and tenant id), one
  /// small file each. Empty: the state directory ($XDG_STATE_HOME/certstore
  /// or ~/.local/state/certstore). A "memory:" store keeps them in process.
  std::string state_dir;
  const Clock* clock = nullptr;  ///< null: Clock::System()
  LogCallback log;               ///< silent when empty
};

struct AccessToken {
  std::string access_token;  ///< secret: never log it
  std::string token_type;    ///< "mtls_pop"
  absl::Time expires_at;
  std::string alias;
  std::string scope;
  std::string thumbprint;  ///< x5t#S256 of the binding it is bound to
  bool from_cache = false;
  bool healed = false;  ///< an eviction + re-mint happened in this call
};

struct TokenClientMetrics {
  int64_t token_requests = 0;  ///< requests sent to the token endpoint
  int64_t cache_hits = 0;
  int64_t evictions = 0;  ///< bindings evicted after a credential failure
  int64_t mints = 0;      ///< bindings this client minted and stored
  int64_t probes = 0;
  int64_t network_retries = 0;
  /// Token requests made in the background because a cached token entered
  /// its refresh-ahead window (also counted in token_requests).
  int64_t refreshes_ahead = 0;
  /// Token requests sent over a kept-alive connection (one per binding is
  /// kept; it closes when the binding is evicted or replaced).
  int64_t connections_reused = 0;
  /// Spare keys made in the background, and mints that used one.
  int64_t spare_keys_made = 0;
  int64_t spare_keys_used = 0;
  /// Tokens in the cache now (expired ones are dropped once there are more
  /// than 256).
  int64_t cached_tokens = 0;
};

/// Thread-safe: GetToken may be called from several threads at once.
class CERTSTORE_EXPORT TokenClient {
 public:
  /// `store` must outlive the client; any CertStore works (a LayeredStore
  /// from OpenStore, or a single store). Bindings are minted through a
  /// MintCoordinator on it: once per alias however many threads and
  /// processes ask, and after an eviction never served from the store again
  /// until a mint succeeds. InvalidArgument for a null store, a missing or
  /// malformed issuing_url, or bad retry settings.
  static absl::StatusOr<std::unique_ptr<TokenClient>> Create(
      CertStore* store, const TokenClientOptions& options);

  virtual ~TokenClient() = default;

  /// Returns a token for `scope`: in IMDS mode a resource URI, to which
  /// "/.default" is appended unless it ends so already; in generic mode the
  /// OAuth scope as given (space-separated values allowed). On a credential
  /// failure (key cannot sign, certificate rejected, invalid_client) it evicts
  /// the binding (DeleteAllForAlias: every layer of a LayeredStore), mints a
  /// new one and retries exactly once; network failures are retried with
  /// backoff and never evict. Errors name the alias, thumbprint, phase, host
  /// and what the server said, and whether a re-mint happened:
  ///   InvalidArgument     `scope` is empty or holds spaces, '&' or '='
  ///                       (IMDS) or control characters (generic); a token
  ///                       endpoint that is not https (no request sent).
  ///   NotFound            generic mode without an issuer: no credential
  ///                       under the alias.
  ///   Unauthenticated     the server refused the credential again after the
  ///                       one eviction and re-mint; nothing more is tried,
  ///                       and no process mints for the alias during the
  ///                       rejection backoff (the message says since when).
  ///   Unavailable         an endpoint was unreachable or kept failing (5xx,
  ///                       429) through max_attempts, or the issuing endpoint
  ///                       failed a mint; no eviction.
  ///   DeadlineExceeded    deadlines.total passed; the message names the phase.
  ///   FailedPrecondition  the token endpoint refused the request for a reason
  ///                       neither a retry nor a new key can fix (e.g. 400).
  ///   DataLoss            an endpoint answered 200 with a malformed body.
  ///   FailedPrecondition  also: the server bound the token to another
  ///                       certificate (cnf x5t#S256) than the one
  ///                       presented; that token is never cached.
  /// Other codes come from the store (see its header).
  virtual absl::StatusOr<AccessToken> GetToken(absl::string_view scope) = 0;

  /// GetToken for hot paths: the same token and errors, shared instead of
  /// copied. A cached token is then a lookup in the calling thread's copy
  /// of the cache (no lock, no allocation); a binding deleted behind the
  /// client's back (by another process) is noticed within a second.
  virtual absl::StatusOr<std::shared_ptr<const AccessToken>> GetSharedToken(
      absl::string_view scope) {
    absl::StatusOr<AccessToken> token = GetToken(scope);
    if (!token.ok()) {
      return token.status();
    }
    return std::make_shared<const AccessToken>(*std::move(token));
  }

  /// Counters since Create; a consistent snapshot.
  virtual TokenClientMetrics Metrics() const = 0;
};

}  // namespace certstore

#endif  // CERTSTORE_TOKEN_CLIENT_H_

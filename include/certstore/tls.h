/// \file
/// mTLS for any service, on OpenSSL (component certstore::tls, libssl; no
/// libcurl):
///  - TlsIdentity presents a store's current credential (chain + key, a
///    PKCS#11 key included) on every new handshake, client or server side,
///    and follows its renewal without a restart;
///  - PeerPolicy verifies the other side the way service-to-service mTLS
///    needs (trust anchors, extended key usage, allowed identities, CRLs,
///    chain length, a custom check) and says why it refused, with the alert
///    the peer received;
///  - ClassifyHandshakeFailure tells a credential failure from a network one
///    (the token client and `certstore doctor` use the same function), and
///    HealingCall evicts, re-mints and retries once on the former.
/// docs/tls.md explains the design and the limits.
#ifndef CERTSTORE_TLS_H_
#define CERTSTORE_TLS_H_

#include <openssl/ssl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "certstore/cert_store.h"
#include "certstore/entry.h"
#include "certstore/export.h"

namespace certstore {

// ------------------------------------------------------------ failures --

/// Where a request was when it failed.
enum class RequestPhase {
  kConnect,       ///< DNS / TCP
  kTlsHandshake,  ///< TLS, including our CertificateVerify signature
  kFirstRead,     ///< first read on a connection whose handshake just
                  ///< finished (TLS 1.3 delivers certificate refusals here)
  kResponse,      ///< later: request sent, waiting for / reading the reply
};

CERTSTORE_EXPORT absl::string_view RequestPhaseName(RequestPhase phase);

/// What went wrong below the application protocol, in transport-neutral
/// terms (the curl adapter maps libcurl's codes onto these; DescribeSslFailure
/// maps OpenSSL's).
enum class TransportError {
  kNone,             ///< the exchange completed: look at http_status
  kLocalCredential,  ///< our chain or key could not be loaded
  kPeerNotTrusted,   ///< the peer's certificate failed our checks
  kTimeout,
  kNetwork,  ///< refused, reset, closed, or a TLS error without a cause
  kOther,
};

/// TLS alert descriptions (RFC 8446, section 6.2) this library names.
namespace tls_alert {
inline constexpr int kHandshakeFailure = 40;
inline constexpr int kBadCertificate = 42;
inline constexpr int kUnsupportedCertificate = 43;
inline constexpr int kCertificateRevoked = 44;
inline constexpr int kCertificateExpired = 45;
inline constexpr int kCertificateUnknown = 46;
inline constexpr int kUnknownCa = 48;
inline constexpr int kAccessDenied = 49;
inline constexpr int kDecryptError = 51;
inline constexpr int kInternalError = 80;
inline constexpr int kCertificateRequired = 116;
}  // namespace tls_alert

/// What one failed (or completed) exchange observed.
struct ConnectionOutcome {
  TransportError error = TransportError::kNone;
  RequestPhase phase = RequestPhase::kResponse;
  int tls_alert_received = -1;     ///< from the peer; -1: none
  bool local_sign_failed = false;  ///< our key failed in CertificateVerify
  long http_status = 0;            ///< 0: no HTTP response (or not HTTP)
  std::string oauth_error;         ///< "invalid_client", ...
};

enum class FailureClass {
  kNone,  ///< success
  /// The credential is bad: evict from every layer, mint, retry once.
  kCredential,
  /// Ambiguous (a reset or an unexplained abort during the handshake or the
  /// first read): a credential failure only if ProbeKey now fails.
  kCredentialIfProbeFails,
  /// The network or the peer is unwell: retry with backoff, never evict.
  kNetwork,
  /// Neither retrying nor re-minting can help (bad request, bad config, a
  /// peer we do not trust).
  kFatal,
};

CERTSTORE_EXPORT absl::string_view FailureClassName(FailureClass c);

/// The one decision of what a failed mTLS exchange means; the token client,
/// `certstore doctor` and HealingCall all use it. Looks at values only.
CERTSTORE_EXPORT FailureClass
ClassifyHandshakeFailure(const ConnectionOutcome& outcome);

/// The status code a failed exchange ends with (docs/cli.md, "Exit codes"):
/// our key failed to sign: FailedPrecondition; the peer refused our
/// credential: Unauthenticated; HTTP 403: PermissionDenied; the peer's
/// certificate does not verify, the network, timeouts, 408, 429, 5xx:
/// Unavailable; other 4xx: InvalidArgument; anything else: Unknown.
CERTSTORE_EXPORT absl::StatusCode FailureStatusCode(
    const ConnectionOutcome& outcome);

/// True when the outcome is the peer's certificate failing our checks (our
/// trust in the peer, never our key).
CERTSTORE_EXPORT bool PeerNotTrusted(const ConnectionOutcome& outcome);

/// What one connection's TLS saw.
struct HandshakeTrace {
  int alert_received = -1;  ///< the last alert from the peer; -1: none
  int alert_sent = -1;      ///< the last alert we sent before the
                            ///< handshake finished; -1: none
  bool certificate_requested = false;  ///< the server asked for ours
  bool handshake_done = false;
};

/// Records a HandshakeTrace for every connection made from `ctx` (what
/// DescribeSslFailure reads), and also into `*also_into` when given (for
/// callers whose SSL is gone when they look, such as libcurl's; one
/// connection at a time). TlsIdentity::Install calls it without a sink.
/// Replaces the context's info callback.
CERTSTORE_EXPORT void TraceHandshakes(SSL_CTX* ctx,
                                      HandshakeTrace* also_into = nullptr);

/// The trace of `ssl` so far (empty without TraceHandshakes).
CERTSTORE_EXPORT HandshakeTrace TraceOf(const SSL* ssl);

/// The outcome of a failed SSL_connect / SSL_accept / SSL_read /
/// SSL_write on `ssl` (`ret` is what it returned; call at once, the
/// thread's OpenSSL error queue is read). Needs TraceHandshakes on the
/// context. A failure before TLS (connect) is the caller's to describe.
CERTSTORE_EXPORT ConnectionOutcome DescribeSslFailure(const SSL* ssl, int ret);

// ------------------------------------------------------------ identity --

struct TlsIdentityOptions {
  /// How often the store is asked whether the alias's credential changed
  /// (renewed by another process, or by a writer that did not call
  /// NotifyChanged): the bound on how long new handshakes may still present
  /// a replaced credential. 10 ms .. 1 h, or absl::InfiniteDuration() for
  /// no background thread at all, when only this process writes the
  /// credential (a memory store) and announces it: NotifyChanged then
  /// re-reads the store in the caller's thread.
  absl::Duration poll_interval = absl::Seconds(1);
};

/// (store, alias) → the credential presented by new handshakes. Each
/// handshake takes the current entry from a per-thread copy (no lock shared
/// between handshakes, no decoding: the entry's certificates and key are
/// decoded once, when it is found). A background thread re-reads the
/// store every poll_interval, and at once after NotifyChanged; a new
/// thumbprint switches new handshakes to it. Connections already open keep
/// the credential they started with (it stays alive as long as they do).
/// Give it the store that holds the credential (a persistent one, to see
/// other processes' renewals): it keeps its own copy in memory.
class CERTSTORE_EXPORT TlsIdentity
    : public std::enable_shared_from_this<TlsIdentity> {
 public:
  /// NotFound when the store has no servable entry for `alias` (an entry is
  /// served until its not_after); InvalidArgument for a null store, a bad
  /// alias or an interval out of range.
  static absl::StatusOr<std::shared_ptr<TlsIdentity>> Create(
      std::shared_ptr<CertStore> store, std::string alias,
      TlsIdentityOptions options = {});

  ~TlsIdentity();
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;

  /// Presents the current credential on every handshake of `ctx` that asks
  /// for one (a server always; a client when the server requests it), via
  /// SSL_CTX_set_cert_cb, and traces handshakes (TraceHandshakes). The
  /// context keeps this identity alive. InvalidArgument for a null ctx.
  absl::Status Install(SSL_CTX* ctx);

  /// The entry new handshakes present.
  std::shared_ptr<const Entry> Current() const;

  /// Reads the store now; switches when the servable entry's thumbprint
  /// changed. NotFound (the alias has no servable entry) and store errors
  /// are returned and the current credential is kept.
  absl::Status Refresh();

  /// Asks the background thread to refresh now (returns at once): call it
  /// after putting a new credential, for an in-process switch without
  /// waiting for the poll.
  void NotifyChanged();

  /// Every live identity of `alias` (any store) refreshes now.
  static void NotifyChanged(absl::string_view alias);

  const std::string& alias() const { return alias_; }
  CertStore& store() const { return *store_; }
  /// Bumped each time new handshakes switch credential.
  uint64_t generation() const;

 private:
  struct Impl;
  TlsIdentity(std::shared_ptr<CertStore> store, std::string alias);
  friend struct TlsIdentityAccess;

  std::shared_ptr<CertStore> store_;
  std::string alias_;
  std::unique_ptr<Impl> impl_;
};

// --------------------------------------------------------------- peers --

/// The extended key usage the peer's leaf must carry.
enum class RequiredUsage { kAny, kClientAuth, kServerAuth };

/// Who the peer says it is (from its verified leaf).
struct PeerIdentity {
  std::string thumbprint;  ///< x5t#S256 of the leaf
  std::string subject;     ///< RFC 2253, escaped
  std::string common_name;
  std::vector<std::string> dns_names;  ///< subjectAltName dNSName
  std::vector<std::string> uris;       ///< subjectAltName URI
  std::string spiffe_id;               ///< the first spiffe:// URI, if any
  absl::Time not_before;
  absl::Time not_after;
};

enum class PeerRefusal {
  kNone,
  kNoCertificate,  ///< the peer sent none
  kUntrusted,      ///< no chain to a trust anchor (unknown_ca)
  kExpired,        ///< certificate_expired
  kNotYetValid,    ///< bad_certificate
  kRevoked,        ///< certificate_revoked
  kNoCrl,          ///< CRLs are configured but none from the issuer
  kWrongUsage,     ///< the extended key usage lacks what is required
  kChainTooLong,   ///< more certificates than max_chain_length
  kNotAllowed,     ///< verified, but not one of the allowed identities
  kCustomCheck,    ///< the custom check said no
  kOther,
};

CERTSTORE_EXPORT absl::string_view PeerRefusalName(PeerRefusal refusal);

/// The structured result of one peer check.
struct PeerVerdict {
  bool allowed = false;
  PeerIdentity peer;  ///< filled whenever the peer sent a certificate
  PeerRefusal refusal = PeerRefusal::kNone;
  std::string reason;  ///< for people: what failed, on which certificate
  /// The TLS alert OpenSSL sends the peer for this refusal (-1: none).
  /// OpenSSL 3.0 derives it from the verification error and has no way to
  /// send access_denied from a certificate check: an identity outside the
  /// allowlist, or refused by the custom check, gets bad_certificate.
  int alert = -1;
};

struct PeerPolicyConfig {
  /// Trust anchors: PEM files of certificates, every *.pem / *.crt / *.cer
  /// file of these directories, PEM text, and the last certificate of the
  /// chain of
  /// each listed alias of `trust_store`. Every anchor is trusted as such,
  /// self-signed or not (an intermediate may be an anchor).
  std::vector<std::string> trust_bundle_files;
  std::vector<std::string> trust_directories;
  std::string trust_anchors_pem;  ///< PEM certificates given inline
  std::shared_ptr<CertStore> trust_store;
  std::vector<std::string> trust_aliases;

  RequiredUsage required_usage = RequiredUsage::kAny;

  /// Allowed identities; all empty: any peer whose chain verifies. Matching
  /// any one entry of any list allows the peer.
  std::vector<std::string> allowed_thumbprints;  ///< x5t#S256, base64url
  std::vector<std::string> allowed_dns_names;    ///< exact, ASCII case-folded
  /// Exact URIs (SPIFFE IDs), or "spiffe://trust-domain/*" for any ID of a
  /// trust domain.
  std::vector<std::string> allowed_uris;
  std::vector<std::string> allowed_common_names;

  /// CRLs (PEM or DER files). With any, the leaf's issuer must have one and
  /// the leaf must not be on it.
  std::vector<std::string> crl_files;

  /// Certificates from the leaf to the trust anchor, both included.
  int max_chain_length = 5;

  /// Runs last, on a peer that passed everything else; a non-OK status
  /// refuses it (kCustomCheck, with the status message as the reason).
  std::function<absl::Status(const PeerIdentity&)> custom_check;
};

/// Verifies peers on every handshake of the contexts it is installed on.
/// Its anchors, CRLs and allowlist can be re-read or replaced at runtime;
/// each handshake uses one consistent snapshot (a per-thread copy: no lock
/// shared between handshakes).
class CERTSTORE_EXPORT PeerPolicy
    : public std::enable_shared_from_this<PeerPolicy> {
 public:
  /// Reads every source now: InvalidArgument naming the file, directory,
  /// alias or setting that is wrong (an unreadable or empty bundle, a
  /// malformed thumbprint, a max_chain_length below 1, no anchor at all).
  static absl::StatusOr<std::shared_ptr<PeerPolicy>> Create(
      PeerPolicyConfig config);

  ~PeerPolicy();
  PeerPolicy(const PeerPolicy&) = delete;
  PeerPolicy& operator=(const PeerPolicy&) = delete;

  /// Re-reads the configured files, directories and store entries. On
  /// error, the policy in force is kept.
  absl::Status Reload();
  /// Replaces the whole configuration (same checks as Create).
  absl::Status Reload(PeerPolicyConfig config);

  /// Verifies the peer of every handshake of `ctx`: a server requires a
  /// client certificate, a client verifies the server's (its host name is
  /// still the caller's to check, e.g. SSL_set1_host, or an allowed DNS
  /// name here). A per-certificate verify callback already set on the
  /// context (SSL_CTX_set_verify) still runs, inside the policy's chain
  /// check. The context keeps the policy alive.
  absl::Status Install(SSL_CTX* ctx);

  /// Checks a chain (leaf first) as a handshake would, at `now`;
  /// `peer_is_client` decides the default purpose check.
  PeerVerdict Check(const std::vector<X509*>& chain, bool peer_is_client,
                    absl::Time now) const;

  /// The verdict on `ssl`'s peer, once its certificate was checked.
  static absl::optional<PeerVerdict> VerdictOf(const SSL* ssl);

 private:
  struct Impl;
  explicit PeerPolicy(std::unique_ptr<Impl> impl);
  friend struct PeerPolicyAccess;
  std::unique_ptr<Impl> impl_;
};

// -------------------------------------------------------------- healing --

/// One attempt of a caller's request: its status and what the connection
/// observed (ConnectionOutcome; DescribeSslFailure or the curl adapter fill
/// it).
struct CallAttempt {
  absl::Status status;
  ConnectionOutcome outcome;
};

/// What a HealingCall did.
struct HealingReport {
  int attempts = 0;
  int evictions = 0;  ///< 0 or 1
  FailureClass first_failure = FailureClass::kNone;
};

/// Runs a caller's mTLS request with an identity's credential; on a
/// credential failure (ClassifyHandshakeFailure; an ambiguous one only when
/// ProbeKey fails too) it evicts the alias from the identity's store, calls
/// `mint` (which must Put a fresh credential), switches the identity and
/// retries exactly once. A network failure never evicts.
class CERTSTORE_EXPORT HealingCall {
 public:
  using Mint =
      std::function<absl::Status(CertStore& store, const std::string& alias)>;
  HealingCall(std::shared_ptr<TlsIdentity> identity, Mint mint);

  /// The last attempt's status; mint or eviction errors name the alias.
  absl::Status Run(const std::function<CallAttempt()>& request,
                   HealingReport* report = nullptr);

 private:
  std::shared_ptr<TlsIdentity> identity_;
  Mint mint_;
};

}  // namespace certstore

#endif  // CERTSTORE_TLS_H_

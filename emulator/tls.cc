#include "emulator/internal/tls.h"

#include <openssl/err.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/memory_store.h"
#include "certstore/tls.h"

namespace certstore::emulator::internal {
namespace {

constexpr unsigned char kSessionContext[] = "certstore-emulator";

int ProbeIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// The X509_V_ERR_* whose alert (ssl_x509err2alert in OpenSSL 3.0) is the
// one asked for.
int VerifyErrorFor(TlsAlert alert) {
  switch (alert) {
    case TlsAlert::kBadCertificate:
      return X509_V_ERR_CERT_REJECTED;
    case TlsAlert::kUnknownCa:
      return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
    case TlsAlert::kCertificateExpired:
      return X509_V_ERR_CERT_HAS_EXPIRED;
    case TlsAlert::kDecryptError:
      return X509_V_ERR_CERT_SIGNATURE_FAILURE;
    case TlsAlert::kCertificateRevoked:
      return X509_V_ERR_CERT_REVOKED;
    case TlsAlert::kInternalError:
      return X509_V_ERR_OUT_OF_MEM;
  }
  return X509_V_ERR_UNSPECIFIED;
}

// Runs for every certificate of the client's chain, root first.
int VerifyCallback(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* probe = static_cast<HandshakeProbe*>(
      ssl == nullptr ? nullptr : SSL_get_ex_data(ssl, ProbeIndex()));
  if (probe == nullptr) {
    return preverify_ok;
  }
  if (probe->leaf_thumbprint.empty() &&
      X509_STORE_CTX_get0_cert(store) != nullptr) {
    probe->leaf_thumbprint =
        Thumbprint(CertificateDer(X509_STORE_CTX_get0_cert(store)));
  }
  if (probe->inject_alert.has_value()) {
    X509_STORE_CTX_set_error(store, VerifyErrorFor(*probe->inject_alert));
    preverify_ok = 0;
  }
  if (preverify_ok == 0 && !probe->failure_counted) {
    probe->failure_counted = true;
    probe->state->CountHandshake(false, probe->leaf_thumbprint);
  }
  return preverify_ok;
}

// The server credential through certstore::tls, as any service would have
// it: a TlsIdentity over a memory store holding the CA's server entry, and
// a PeerPolicy trusting the root. The emulator's per-certificate callback
// (fault injection, counting) runs inside the policy's chain check.
absl::Status ConfigureTrust(SSL_CTX* ctx, const EmulatorCa& ca,
                            const EmulatorOptions& options) {
  absl::StatusOr<std::shared_ptr<const Entry>> entry = ca.ServerEntry();
  if (!entry.ok()) {
    return entry.status();
  }
  MemoryStoreOptions store_options;
  store_options.clock = options.clock;
  std::shared_ptr<CertStore> store = NewMemoryStore(store_options);
  if (absl::Status s = store->Put(*entry); !s.ok()) {
    return s;
  }
  TlsIdentityOptions identity_options;
  // Never renewed: no poll thread (forking tests run beside the emulator).
  identity_options.poll_interval = absl::InfiniteDuration();
  absl::StatusOr<std::shared_ptr<TlsIdentity>> identity =
      TlsIdentity::Create(store, (*entry)->alias(), identity_options);
  if (!identity.ok()) {
    return identity.status();
  }
  PeerPolicyConfig clients;
  clients.trust_anchors_pem = ca.root_pem();
  absl::StatusOr<std::shared_ptr<PeerPolicy>> policy =
      PeerPolicy::Create(std::move(clients));
  if (!policy.ok()) {
    return policy.status();
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     VerifyCallback);
  if (absl::Status s = (*identity)->Install(ctx); !s.ok()) {
    return s;
  }
  if (absl::Status s = (*policy)->Install(ctx); !s.ok()) {
    return s;
  }
  if (SSL_CTX_add_client_CA(ctx, ca.root()) != 1 ||
      SSL_CTX_add_client_CA(ctx, ca.intermediate()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal,
                        "emulator: token endpoint client CA names");
  }
  return absl::OkStatus();
}

int ProtocolVersion(TlsVersion v) {
  return v == TlsVersion::kTls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

}  // namespace

absl::StatusOr<UniqueSslCtx> NewTokenServerContext(
    const EmulatorCa& ca, const EmulatorOptions& options) {
  UniqueSslCtx ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr ||
      SSL_CTX_set_min_proto_version(ctx.get(),
                                    ProtocolVersion(options.min_tls)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(),
                                    ProtocolVersion(options.max_tls)) != 1) {
    return OpenSslError(absl::StatusCode::kInternal,
                        "emulator: token endpoint SSL_CTX");
  }
  if (absl::Status s = ConfigureTrust(ctx.get(), ca, options); !s.ok()) {
    return s;
  }
  SSL_CTX_set_session_id_context(ctx.get(), kSessionContext,
                                 sizeof(kSessionContext) - 1);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (!options.allow_session_resumption) {
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx.get(), 0);
  }
  return ctx;
}

TlsConn::TlsConn(SSL_CTX* ctx, int fd, const StopSignal* stop)
    : ssl_(SSL_new(ctx)), fd_(fd), stop_(stop) {
  if (ssl_ != nullptr) {
    SSL_set_fd(ssl_.get(), fd);
  }
}

absl::Status TlsConn::WaitFor(int ret, absl::Time deadline,
                              absl::string_view what) {
  const int err = SSL_get_error(ssl_.get(), ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    const WaitResult ready = WaitFd(
        fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, *stop_);
    return ready == WaitResult::kReady ? absl::OkStatus()
                                       : WaitFailure(ready, what);
  }
  if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    return absl::UnavailableError(absl::StrCat(
        what, ": ",
        errno != 0 ? strerror(errno) : "peer closed the connection"));
  }
  return OpenSslError(absl::StatusCode::kUnavailable, what);
}

absl::Status TlsConn::Handshake(absl::Time deadline, HandshakeProbe* probe) {
  if (ssl_ == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, "SSL_new");
  }
  SSL_set_ex_data(ssl_.get(), ProbeIndex(), probe);
  X509_VERIFY_PARAM_set_time(SSL_get0_param(ssl_.get()),
                             absl::ToTimeT(probe->verify_time));
  absl::Status status;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int ret = SSL_accept(ssl_.get());
    if (ret == 1) {
      break;
    }
    status = WaitFor(ret, deadline, "TLS handshake");
    if (!status.ok()) {
      break;
    }
  }
  SSL_set_ex_data(ssl_.get(), ProbeIndex(), nullptr);
  return status;
}

X509* TlsConn::peer_leaf() const {
  return SSL_get0_peer_certificate(ssl_.get());
}

std::string TlsConn::version() const { return SSL_get_version(ssl_.get()); }

absl::StatusOr<size_t> TlsConn::Read(char* buf, size_t size,
                                     absl::Time deadline) {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    const int ret = SSL_read_ex(ssl_.get(), buf, size, &n);
    if (ret == 1) {
      return n;
    }
    if (SSL_get_error(ssl_.get(), ret) == SSL_ERROR_ZERO_RETURN) {
      return 0;
    }
    if (absl::Status s = WaitFor(ret, deadline, "TLS read"); !s.ok()) {
      return s;
    }
  }
}

absl::Status TlsConn::Write(absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    const int ret = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
    if (ret == 1) {
      data.remove_prefix(n);
      continue;
    }
    if (absl::Status s = WaitFor(ret, deadline, "TLS write"); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

void TlsConn::Shutdown(absl::Time deadline) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    ERR_clear_error();
    const int ret = SSL_shutdown(ssl_.get());
    if (ret != -1) {
      return;  // close_notify sent (1: the peer's seen too)
    }
    if (!WaitFor(ret, deadline, "TLS shutdown").ok()) {
      return;
    }
  }
}

}  // namespace certstore::emulator::internal

// The probe's TLS client: OpenSSL on a non-blocking socket, every wait
// bounded by poll(), and callbacks that record what the handshake saw.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "cli/endpoint_probe_internal.h"
#include "client/failure_classifier.h"

namespace certstore::cli::probe_internal {
namespace {

int TraceIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

TlsTrace* TraceOf(const SSL* ssl) {
  return static_cast<TlsTrace*>(SSL_get_ex_data(ssl, TraceIndex()));
}

// Records alerts both ways (close_notify aside: a clean close says nothing).
void InfoCallback(const SSL* ssl, int where, int ret) {
  TlsTrace* trace = TraceOf(ssl);
  const int alert = ret & 0xff;
  if (trace == nullptr || (where & SSL_CB_ALERT) == 0 || alert == 0) {
    return;
  }
  ((where & SSL_CB_READ) != 0 ? trace->alert_received : trace->alert_sent) =
      alert;
}

// Runs when the server sent a CertificateRequest, before our Certificate.
int CertCallback(SSL* ssl, void*) {
  TlsTrace* trace = TraceOf(ssl);
  if (trace == nullptr) {
    return 1;
  }
  trace->certificate_requested = true;
  trace->ca_names.clear();
  trace->ca_names_der.clear();
  const STACK_OF(X509_NAME)* names = SSL_get_client_CA_list(ssl);
  for (int i = 0; names != nullptr && i < sk_X509_NAME_num(names); ++i) {
    const X509_NAME* name = sk_X509_NAME_value(names, i);
    const unsigned char* der = nullptr;
    size_t len = 0;
    X509_NAME_get0_der(name, &der, &len);
    trace->ca_names.push_back(NameToString(name));
    trace->ca_names_der.emplace_back(reinterpret_cast<const char*>(der), len);
  }
  return 1;
}

// Keeps the first reason the server's chain did not verify.
int VerifyCallback(int ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  TlsTrace* trace = ssl != nullptr ? TraceOf(ssl) : nullptr;
  if (ok != 0 || trace == nullptr || !trace->verify_failure.empty()) {
    return ok;
  }
  trace->verify_failure =
      X509_verify_cert_error_string(X509_STORE_CTX_get_error(store));
  if (X509* cert = X509_STORE_CTX_get_current_cert(store); cert != nullptr) {
    absl::StrAppend(&trace->verify_failure, " (at ", SubjectName(cert),
                    ", issued by ", IssuerName(cert), ")");
  }
  return ok;
}

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE on a
// connection the peer reset; this one sends with MSG_NOSIGNAL and borrows
// everything else from the socket BIO.
int SendNoSignal(BIO* bio, const char* data, int len) {
  int fd = -1;
  BIO_get_fd(bio, &fd);
  errno = 0;
  const ssize_t n = send(fd, data, static_cast<size_t>(len), MSG_NOSIGNAL);
  BIO_clear_retry_flags(bio);
  if (n < 0 && BIO_sock_should_retry(-1)) {
    BIO_set_retry_write(bio);
  }
  return static_cast<int>(n);
}

BIO_METHOD* NoSigpipeSocketMethod() {
  static BIO_METHOD* const method = [] {
    const BIO_METHOD* base = BIO_s_socket();
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOCKET, "socket, MSG_NOSIGNAL");
    BIO_meth_set_write(m, SendNoSignal);
    BIO_meth_set_read(m, BIO_meth_get_read(base));
    BIO_meth_set_puts(m, BIO_meth_get_puts(base));
    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(base));
    BIO_meth_set_create(m, BIO_meth_get_create(base));
    BIO_meth_set_destroy(m, BIO_meth_get_destroy(base));
    return m;
  }();
  return method;
}

absl::Status AddTrust(SSL_CTX* ctx, const std::string& server_ca_pem) {
  if (server_ca_pem.empty()) {
    SSL_CTX_set_default_verify_paths(ctx);
    return absl::OkStatus();
  }
  auto ders = PemToDerChain(server_ca_pem);
  if (!ders.ok()) {
    return WithContext(ders.status(), "server_ca_pem");
  }
  for (size_t i = 0; i < ders->size(); ++i) {
    CERTSTORE_ASSIGN_OR_RETURN(
        UniqueX509 cert,
        DecodeCertificate((*ders)[i], absl::StrCat("server_ca_pem #", i)));
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), cert.get());
  }
  return absl::OkStatus();
}

// Host name or IP address check, and SNI for names.
void ExpectHost(SSL* ssl, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  unsigned char ip[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), ip) == 1 ||
      inet_pton(AF_INET6, host.c_str(), ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    return;
  }
  SSL_set_tlsext_host_name(ssl, host.c_str());
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
}

absl::Status PresentEntry(SSL* ssl, const Entry& entry) {
  CERTSTORE_ASSIGN_OR_RETURN(absl::Span<X509* const> chain, entry.Chain());
  if (SSL_use_certificate(ssl, chain[0]) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "client certificate");
  }
  if (SSL_use_PrivateKey(ssl, entry.key()->evp_pkey()) != 1) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition,
                        "client key does not match the leaf certificate");
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    SSL_add1_chain_cert(ssl, chain[i]);
  }
  return absl::OkStatus();
}

}  // namespace

std::string AlertName(int alert) {
  static constexpr std::pair<int, const char*> kNames[] = {
      {10, "unexpected_message"},      {20, "bad_record_mac"},
      {40, "handshake_failure"},       {42, "bad_certificate"},
      {43, "unsupported_certificate"}, {44, "certificate_revoked"},
      {45, "certificate_expired"},     {46, "certificate_unknown"},
      {47, "illegal_parameter"},       {48, "unknown_ca"},
      {49, "access_denied"},           {50, "decode_error"},
      {51, "decrypt_error"},           {70, "protocol_version"},
      {71, "insufficient_security"},   {80, "internal_error"},
      {90, "user_canceled"},           {109, "missing_extension"},
      {112, "unrecognized_name"},      {116, "certificate_required"},
  };
  for (const auto& [number, name] : kNames) {
    if (number == alert) {
      return name;
    }
  }
  return absl::StrCat("alert ", alert);
}

bool RefusesOurCertificate(int alert, bool handshake_done) {
  ConnectionOutcome outcome;
  outcome.error = TransportError::kNetwork;
  outcome.phase =
      handshake_done ? RequestPhase::kFirstRead : RequestPhase::kTlsHandshake;
  outcome.tls_alert_received = alert;
  return ClassifyHandshakeFailure(outcome) == FailureClass::kCredential;
}

TlsSession::TlsSession(UniqueFd fd, std::string address, bool has_entry)
    : fd_(std::move(fd)), address_(std::move(address)), has_entry_(has_entry) {}

absl::StatusOr<std::unique_ptr<TlsSession>> TlsSession::Create(
    UniqueFd fd, const std::string& host, const std::string& address,
    const std::string& server_ca_pem, const Entry* client_entry) {
  std::unique_ptr<TlsSession> s(
      new TlsSession(std::move(fd), address, client_entry != nullptr));
  s->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (s->ctx_ == nullptr ||
      SSL_CTX_set_min_proto_version(s->ctx_.get(), TLS1_2_VERSION) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "SSL_CTX_new");
  }
  CERTSTORE_RETURN_IF_ERROR(AddTrust(s->ctx_.get(), server_ca_pem));
  SSL_CTX_set_verify(s->ctx_.get(), SSL_VERIFY_PEER, VerifyCallback);
  SSL_CTX_set_info_callback(s->ctx_.get(), InfoCallback);
  SSL_CTX_set_cert_cb(s->ctx_.get(), CertCallback, nullptr);
  s->ssl_.reset(SSL_new(s->ctx_.get()));
  BIO* bio = BIO_new(NoSigpipeSocketMethod());
  if (s->ssl_ == nullptr || bio == nullptr) {
    BIO_free(bio);
    return OpenSslError(absl::StatusCode::kInternal, "SSL_new");
  }
  BIO_set_fd(bio, s->fd_.get(), BIO_NOCLOSE);
  SSL_set_bio(s->ssl_.get(), bio, bio);  // owns it
  SSL_set_ex_data(s->ssl_.get(), TraceIndex(), &s->trace_);
  SSL_set_connect_state(s->ssl_.get());
  ExpectHost(s->ssl_.get(), host);
  if (client_entry != nullptr) {
    CERTSTORE_RETURN_IF_ERROR(PresentEntry(s->ssl_.get(), *client_entry));
  }
  return s;
}

template <typename Op>
absl::Status TlsSession::Drive(Op op, absl::Time deadline) {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int ret = op();
    if (ret > 0) {
      return absl::OkStatus();
    }
    const int saved_errno = errno;
    const int err = SSL_get_error(ssl_.get(), ret);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (!WaitFd(fd_.get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                  deadline)) {
        return absl::DeadlineExceededError("");
      }
      continue;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      closed_ = true;
      return absl::OkStatus();
    }
    return Failure(err, saved_errno);
  }
}

absl::Status TlsSession::Failure(int err, int saved_errno) {
  const std::string where = absl::StrCat(
      handshake_done_ ? "TLS connection with " : "TLS handshake with ",
      address_);
  if (!handshake_done_ && has_entry_ && trace_.certificate_requested &&
      SSL_get_state(ssl_.get()) == TLS_ST_CW_CERT_VRFY) {
    return OpenSslError(
        absl::StatusCode::kFailedPrecondition,
        absl::StrCat(where, ": our key could not sign (key unusable)"));
  }
  const int alert = trace_.alert_received;
  if (alert > 0) {
    ClearOpenSslErrors();
    const bool refused = RefusesOurCertificate(alert, handshake_done_);
    if (handshake_done_ && refused) {
      return absl::UnauthenticatedError(absl::StrCat(
          "TLS handshake with ", address_,
          ": server rejected our certificate after the handshake: ",
          AlertName(alert)));
    }
    const std::string message =
        absl::StrCat(where, ": server sent alert ", AlertName(alert));
    return refused ? absl::UnauthenticatedError(message)
                   : absl::UnavailableError(message);
  }
  if (!trace_.verify_failure.empty()) {
    ClearOpenSslErrors();
    // As the token client says it: our trust in the server, not the key.
    TransportOutcome outcome;
    outcome.curl_code = CURLE_PEER_FAILED_VERIFICATION;
    outcome.phase = RequestPhase::kTlsHandshake;
    return absl::Status(
        FailureStatusCode(outcome),
        absl::StrCat(where, ": server certificate verification failed: ",
                     trace_.verify_failure));
  }
  const bool eof =
      (err == SSL_ERROR_SYSCALL && saved_errno == 0) ||
      (err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_last_error()) ==
                                   SSL_R_UNEXPECTED_EOF_WHILE_READING);
  if (err == SSL_ERROR_SYSCALL || eof) {
    ClearOpenSslErrors();
    peer_eof_ = eof;
    return absl::UnavailableError(absl::StrCat(
        where, ": ",
        eof                         ? "the server closed the connection"
        : saved_errno == ECONNRESET ? "connection reset by the server"
                                    : std::strerror(saved_errno)));
  }
  return OpenSslError(absl::StatusCode::kUnavailable, where);
}

absl::Status TlsSession::Handshake(absl::Time deadline, absl::Duration budget) {
  absl::Status status =
      Drive([this] { return SSL_connect(ssl_.get()); }, deadline);
  if (absl::IsDeadlineExceeded(status)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "TLS handshake with ", address_, " did not complete within ",
        absl::FormatDuration(budget)));
  }
  handshake_done_ = status.ok();
  return status;
}

absl::Status TlsSession::ConfirmAccepted(absl::Time deadline) {
  if (SSL_version(ssl_.get()) != TLS1_3_VERSION ||
      !trace_.certificate_requested) {
    return absl::OkStatus();
  }
  absl::Status status = Drive(
      [this] { return SSL_shutdown(ssl_.get()) >= 0 ? 1 : -1; }, deadline);
  std::string ignored;
  while (status.ok() && !closed_) {
    ignored.clear();
    status = Read(&ignored, 4096, deadline).status();
  }
  // A close_notify, a plain close, or silence: nothing was rejected.
  if (status.ok() || absl::IsDeadlineExceeded(status) || peer_eof_) {
    return absl::OkStatus();
  }
  return ExplainEarlyClose(status);
}

absl::Status TlsSession::ExplainEarlyClose(const absl::Status& status) const {
  if (SSL_version(ssl_.get()) != TLS1_3_VERSION ||
      !trace_.certificate_requested || !absl::IsUnavailable(status)) {
    return status;
  }
  return absl::UnavailableError(absl::StrCat(
      status.message(),
      " right after the handshake (a TLS 1.3 server may do this when it "
      "rejects the client certificate)"));
}

absl::Status TlsSession::Write(absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    size_t n = 0;
    CERTSTORE_RETURN_IF_ERROR(Drive(
        [&] { return SSL_write_ex(ssl_.get(), data.data(), data.size(), &n); },
        deadline));
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> TlsSession::Read(std::string* out, size_t max,
                                        absl::Time deadline) {
  if (closed_) {
    return 0;
  }
  const size_t old_size = out->size();
  out->resize(old_size + max);
  size_t n = 0;
  absl::Status status =
      Drive([&] { return SSL_read_ex(ssl_.get(), &(*out)[old_size], max, &n); },
            deadline);
  out->resize(old_size + (status.ok() && !closed_ ? n : 0));
  if (!status.ok()) {
    return status;
  }
  return closed_ ? 0 : n;
}

std::string TlsSession::version() const {
  return handshake_done_ ? SSL_get_version(ssl_.get()) : "";
}

bool TlsSession::late_certificate_rejection() const {
  return handshake_done_ &&
         RefusesOurCertificate(trace_.alert_received, handshake_done_);
}

}  // namespace certstore::cli::probe_internal

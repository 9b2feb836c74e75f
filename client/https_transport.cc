#include "client/https_transport.h"

#include <curl/curl.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace certstore::client_internal {
namespace {

constexpr int kAlertInternalError = 80;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Per-exchange TLS observations, filled by OpenSSL's info callback.
struct TlsTrace {
  const Entry* entry = nullptr;
  bool tls_started = false;  // curl builds the TLS context after TCP connects
  absl::Time tls_started_at;
  bool certificate_requested = false;
  bool handshake_done = false;
  bool request_started = false;  // connected (new or reused), TLS done
  int alert_received = -1;
  int alert_sent = -1;
};

int TraceIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

void InfoCallback(const SSL* ssl, int where, int ret) {
  auto* trace = static_cast<TlsTrace*>(SSL_get_ex_data(ssl, TraceIndex()));
  if (trace == nullptr) {
    return;
  }
  if ((where & SSL_CB_LOOP) != 0 && SSL_get_state(ssl) == TLS_ST_CR_CERT_REQ) {
    trace->certificate_requested = true;
  }
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    trace->handshake_done = true;
  }
  if ((where & SSL_CB_ALERT) != 0) {
    const int description = ret & 0xff;
    if ((where & SSL_CB_READ) != 0) {
      trace->alert_received = description;
    } else if (!trace->handshake_done) {
      trace->alert_sent = description;
    }
  }
}

// The info callback needs the trace on each SSL; curl hands us only the
// SSL_CTX, so the trace travels as the CTX's app data and is attached to
// the SSL at its first callback.
void TracingInfoCallback(const SSL* ssl, int where, int ret) {
  if (SSL_get_ex_data(ssl, TraceIndex()) == nullptr) {
    SSL_set_ex_data(const_cast<SSL*>(ssl), TraceIndex(),
                    SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  }
  InfoCallback(ssl, where, ret);
}

// Runs for every new connection: installs the trace and presents the
// entry's chain and key (a token key signs on the token).
CURLcode SslContextCallback(CURL*, void* ssl_ctx, void* user) {
  auto* trace = static_cast<TlsTrace*>(user);
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  trace->tls_started = true;
  trace->tls_started_at = absl::Now();
  SSL_CTX_set_app_data(ctx, trace);
  SSL_CTX_set_info_callback(ctx, TracingInfoCallback);
  if (trace->entry == nullptr) {
    return CURLE_OK;
  }
  absl::StatusOr<absl::Span<X509* const>> chain = trace->entry->Chain();
  if (!chain.ok() || SSL_CTX_use_certificate(ctx, (*chain)[0]) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, trace->entry->key()->evp_pkey()) != 1) {
    return CURLE_SSL_CERTPROBLEM;
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, (*chain)[i]) != 1) {
      return CURLE_SSL_CERTPROBLEM;
    }
  }
  return CURLE_OK;
}

// Runs once the connection (new or kept-alive) is ready for the request.
int PrerequestCallback(void* user, char*, char*, int, int) {
  static_cast<TlsTrace*>(user)->request_started = true;
  return CURL_PREREQFUNC_OK;
}

// Where the body goes, up to kMaxResponseBytes; past it the transfer is
// aborted (returning less than given makes curl stop with a write error).
struct BodySink {
  std::string* body;
  bool too_large = false;
};

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  const size_t n = size * count;
  if (n > kMaxResponseBytes - sink->body->size()) {
    sink->too_large = true;
    return 0;
  }
  sink->body->append(data, n);
  return n;
}

RequestPhase PhaseOf(CURL* curl, const TlsTrace& trace, bool https) {
  if (trace.request_started && !trace.tls_started) {
    // A kept-alive connection: its handshake was an earlier exchange's.
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return https && status == 0 ? RequestPhase::kFirstRead
                                : RequestPhase::kResponse;
  }
  if (https && trace.tls_started && !trace.handshake_done) {
    return RequestPhase::kTlsHandshake;
  }
  curl_off_t connect_us = 0;
  curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us);
  if (connect_us == 0 && !trace.tls_started) {
    return RequestPhase::kConnect;
  }
  if (!https) {
    return RequestPhase::kResponse;
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  return status == 0 ? RequestPhase::kFirstRead : RequestPhase::kResponse;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct MultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};

// How one transfer ended: curl's code, or the phase whose own limit ran
// out first.
struct TransferEnd {
  CURLcode code = CURLE_OK;
  bool phase_limit_hit = false;
  RequestPhase phase = RequestPhase::kConnect;
  absl::Duration limit;
};

// Runs the transfer on a multi handle so that connect and handshake are
// separate limits: curl's connect timeout covers TCP and TLS together, so
// it is only the backstop here. Connect ends when curl builds the TLS
// context (after TCP connects), the handshake when OpenSSL reports it done.
TransferEnd RunTransfer(CURL* c, CURLM* pooled, const Deadlines& deadlines,
                        bool https, const TlsTrace& trace) {
  TransferEnd end;
  std::unique_ptr<CURLM, MultiDeleter> own;
  if (pooled == nullptr) {
    own.reset(curl_multi_init());
  }
  CURLM* const m = pooled != nullptr ? pooled : own.get();
  if (m == nullptr || curl_multi_add_handle(m, c) != CURLM_OK) {
    end.code = CURLE_OUT_OF_MEMORY;
    return end;
  }
  const absl::Time start = absl::Now();
  for (;;) {
    int running = 0;
    if (curl_multi_perform(m, &running) != CURLM_OK) {
      end.code = CURLE_OUT_OF_MEMORY;
      break;
    }
    if (running == 0) {
      int queued = 0;
      const CURLMsg* message = curl_multi_info_read(m, &queued);
      end.code = message != nullptr && message->msg == CURLMSG_DONE
                     ? message->data.result
                     : CURLE_RECV_ERROR;
      break;
    }
    absl::Time phase_deadline = absl::InfiniteFuture();
    if (trace.request_started) {
      // Connected (or kept alive) and TLS done: only the total applies.
    } else if (https && !trace.tls_started) {
      end.phase = RequestPhase::kConnect;
      end.limit = deadlines.connect;
      phase_deadline = start + deadlines.connect;
    } else if (https && !trace.handshake_done) {
      end.phase = RequestPhase::kTlsHandshake;
      end.limit = deadlines.handshake;
      phase_deadline = trace.tls_started_at + deadlines.handshake;
    }
    const absl::Time now = absl::Now();
    if (now >= phase_deadline) {
      end.phase_limit_hit = true;
      end.code = CURLE_OPERATION_TIMEDOUT;
      break;
    }
    // Wake for socket activity, the next phase limit or, at the latest,
    // after a second (curl's own timers are handled by curl_multi_poll).
    const absl::Duration wait =
        std::min(phase_deadline - now, absl::Seconds(1));
    const int wait_ms = static_cast<int>(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1)))));
    curl_multi_poll(m, nullptr, 0, wait_ms, nullptr);
  }
  curl_multi_remove_handle(m, c);
  return end;
}
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

struct ConnectionPool::Slot {
  std::mutex busy;  // held by the lease that uses the slot
  // Declared before `multi`, so that it outlives the connections (closing
  // one may still run the info callback).
  TlsTrace trace;
  std::unique_ptr<CURLM, MultiDeleter> multi{curl_multi_init()};
  std::unique_ptr<CURL, CurlDeleter> easy{curl_easy_init()};
};

HttpResult Perform(const HttpRequest& request, const Deadlines& deadlines,
                   const Entry* client_entry, const std::string& server_ca_pem,
                   ConnectionPool* connections) {
  GlobalInitOnce();
  HttpResult result;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  for (const std::string& header : request.headers) {
    headers.reset(curl_slist_append(headers.release(), header.c_str()));
  }
  // Only a binding's own pool keeps a connection: it presented that
  // binding's certificate, which curl cannot tell from its options.
  ConnectionPool::Lease lease;
  if (connections != nullptr && client_entry != nullptr) {
    lease = connections->Acquire(client_entry->thumbprint());
  }
  // A kept connection's OpenSSL callbacks point at its slot's trace, which
  // lives as long as the connection; a one-off connection's at this one.
  TlsTrace one_off;
  TlsTrace& trace = lease.slot() != nullptr ? lease.slot()->trace : one_off;
  trace = TlsTrace{};
  trace.entry = client_entry;
  char error[CURL_ERROR_SIZE] = {0};
  const bool https = absl::StartsWith(request.url, "https://");

  // A kept slot reuses its easy handle too (reset: no option carries over).
  std::unique_ptr<CURL, CurlDeleter> one_off_handle;
  CURL* c = nullptr;
  if (lease.slot() != nullptr) {
    c = lease.slot()->easy.get();
    curl_easy_reset(c);
  } else {
    one_off_handle.reset(curl_easy_init());
    c = one_off_handle.get();
  }
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  BodySink sink{&result.body};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  // A larger announced Content-Length is refused before any body is read.
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                   static_cast<curl_off_t>(kMaxResponseBytes));
  curl_easy_setopt(c, CURLOPT_FORBID_REUSE, lease.slot() != nullptr ? 0L : 1L);
  curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, PrerequestCallback);
  curl_easy_setopt(c, CURLOPT_PREREQDATA, &trace);
  // curl's connect timeout covers TCP and the TLS handshake: for https it
  // is the backstop of RunTransfer's separate limits.
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(
                       https ? deadlines.connect + deadlines.handshake
                             : deadlines.connect)));
  curl_easy_setopt(
      c, CURLOPT_TIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(deadlines.total)));
  if (request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
                     static_cast<long>(request.body.size()));
  }
  if (https) {
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, SslContextCallback);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &trace);
    if (!server_ca_pem.empty()) {
      curl_blob blob{const_cast<char*>(server_ca_pem.data()),
                     server_ca_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
  }

  const absl::Time start = absl::Now();
  const TransferEnd end = RunTransfer(
      c, lease.slot() != nullptr ? lease.slot()->multi.get() : nullptr,
      deadlines, https, trace);
  long new_connections = 0;
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &new_connections);
  result.reused_connection = end.code == CURLE_OK && new_connections == 0;
  const CURLcode code = end.code;
  result.elapsed = absl::Now() - start;

  char* host = nullptr;
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &host);
  result.host = host != nullptr ? host : request.url;
  TransportOutcome& outcome = result.outcome;
  outcome.curl_code = code;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &outcome.http_status);
  outcome.phase = end.phase_limit_hit ? end.phase : PhaseOf(c, trace, https);
  outcome.tls_alert_received = trace.alert_received;
  outcome.local_sign_failed = trace.certificate_requested &&
                              trace.alert_sent == kAlertInternalError &&
                              client_entry != nullptr;
  curl_off_t retry_after = 0;
  if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
      retry_after > 0) {
    outcome.retry_after = absl::Seconds(retry_after);
  }
  if (sink.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    result.error = absl::StrCat("the response body is larger than ",
                                kMaxResponseBytes, " bytes (refused)");
    result.body.clear();
  } else if (end.phase_limit_hit) {
    result.phase_limit = end.limit;
    result.error =
        absl::StrCat(RequestPhaseName(end.phase), " timed out (limit ",
                     absl::FormatDuration(end.limit), ")");
  } else if (code != CURLE_OK) {
    result.error = error[0] != '\0' ? error : curl_easy_strerror(code);
  }
  if (lease.slot() != nullptr) {
    // The kept handle must not point at this call's buffers while idle.
    curl_easy_reset(c);
  }
  return result;
}

struct ConnectionPool::State {
  std::mutex mu;
  std::string thumbprint;  // whose connections `slot` keeps
  std::shared_ptr<Slot> slot;
};

ConnectionPool::ConnectionPool() : state_(std::make_unique<State>()) {}
ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease::~Lease() {
  if (slot_ != nullptr) {
    slot_->busy.unlock();
  }
}

ConnectionPool::Lease ConnectionPool::Acquire(const std::string& thumbprint) {
  GlobalInitOnce();
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->slot == nullptr || state_->thumbprint != thumbprint) {
      // Another binding's connections (if any) close once their last lease
      // ends: this client has moved on from that credential.
      state_->slot = std::make_shared<Slot>();
      state_->thumbprint = thumbprint;
    }
    slot = state_->slot;
  }
  Lease lease;
  if (slot->multi != nullptr && slot->easy != nullptr &&
      slot->busy.try_lock()) {
    lease.slot_ = std::move(slot);
  }
  return lease;
}

void ConnectionPool::Drop(const std::string& thumbprint) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->thumbprint == thumbprint) {
    state_->slot.reset();
    state_->thumbprint.clear();
  }
}

}  // namespace certstore::client_internal

// The libcurl adapter of certstore::tls (certstore/curl_tls.h).
#include "certstore/curl_tls.h"

#include <curl/curl.h>
#include <openssl/ssl.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "client/failure_classifier.h"

namespace certstore {
namespace {

// Runs for every new connection, on the SSL_CTX libcurl made for it.
CURLcode SslContextCallback(CURL*, void* ssl_ctx, void* user) {
  auto* tls = static_cast<CurlTls*>(user);
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  tls->handshake = HandshakeTrace{};
  tls->tls_started = true;
  if (!tls->identity->Install(ctx).ok()) {
    return CURLE_SSL_CERTPROBLEM;
  }
  TraceHandshakes(ctx, &tls->handshake);
  if (tls->server_policy != nullptr && !tls->server_policy->Install(ctx).ok()) {
    return CURLE_SSL_CACERT_BADFILE;
  }
  return CURLE_OK;
}

}  // namespace

absl::Status ConfigureCurlHandle(CURL* curl, CurlTls* tls) {
  if (curl == nullptr || tls == nullptr || tls->identity == nullptr) {
    return absl::InvalidArgumentError(
        "ConfigureCurlHandle: a null CURL handle, CurlTls or identity");
  }
  const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
  const std::string backend = info != nullptr && info->ssl_version != nullptr
                                  ? info->ssl_version
                                  : "unknown";
  if (backend.rfind("OpenSSL", 0) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("ConfigureCurlHandle: libcurl's TLS backend is ", backend,
                     ", not OpenSSL"));
  }
  if (curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, SslContextCallback) !=
          CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, tls) != CURLE_OK ||
      curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 0L) != CURLE_OK) {
    return absl::FailedPreconditionError(
        "ConfigureCurlHandle: libcurl refused CURLOPT_SSL_CTX_FUNCTION");
  }
  return absl::OkStatus();
}

ConnectionOutcome DescribeCurlResult(CURL* curl, int curl_code,
                                     const CurlTls& tls) {
  ConnectionOutcome outcome;
  outcome.error = TransportErrorOfCurlCode(curl_code);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &outcome.http_status);
  outcome.tls_alert_received = tls.handshake.alert_received;
  outcome.local_sign_failed =
      tls.handshake.certificate_requested &&
      tls.handshake.alert_sent == tls_alert::kInternalError;
  curl_off_t connect_us = 0;
  curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us);
  if (!tls.tls_started && connect_us == 0) {
    outcome.phase = RequestPhase::kConnect;
  } else if (tls.tls_started && !tls.handshake.handshake_done) {
    outcome.phase = RequestPhase::kTlsHandshake;
  } else if (outcome.http_status == 0) {
    outcome.phase = RequestPhase::kFirstRead;
  } else {
    outcome.phase = RequestPhase::kResponse;
  }
  return outcome;
}

}  // namespace certstore

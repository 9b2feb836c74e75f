/// \file
/// libcurl adapter for certstore::tls (component certstore::client): an easy
/// handle presents a TlsIdentity's current credential on every connection it
/// makes, and its failures are described for ClassifyHandshakeFailure and
/// HealingCall.
#ifndef CERTSTORE_CURL_TLS_H_
#define CERTSTORE_CURL_TLS_H_

#include <memory>

#include "absl/status/status.h"
#include "certstore/export.h"
#include "certstore/tls.h"

// libcurl's handle type, as <curl/curl.h> declares it (so that this header
// does not need libcurl's headers).
typedef void CURL;

namespace certstore {

/// One easy handle's mTLS: the identity it presents, the policy its server
/// must pass (optional) and what its last connection saw. Owned by the
/// caller; must outlive the handle's transfers; one transfer at a time.
struct CurlTls {
  std::shared_ptr<TlsIdentity> identity;
  /// Null: libcurl verifies the server (CURLOPT_CAINFO, ...). Otherwise the
  /// policy decides trust instead; libcurl still checks the host name.
  std::shared_ptr<PeerPolicy> server_policy;

  HandshakeTrace handshake;  ///< the last connection's (DescribeCurlResult)
  bool tls_started = false;  ///< the last transfer reached TLS
};

/// Makes `curl` (libcurl built with OpenSSL) present `tls->identity`'s
/// current credential on each new connection (CURLOPT_SSL_CTX_FUNCTION, via
/// TlsIdentity::Install) and verify the server with `tls->server_policy`
/// when set. TLS session reuse is turned off on the handle, so that every
/// new connection presents the credential current at its start; a
/// kept-alive connection keeps the one it started with. InvalidArgument for
/// a null handle, binding or identity; FailedPrecondition when libcurl is
/// not built with OpenSSL.
CERTSTORE_EXPORT absl::Status ConfigureCurlHandle(CURL* curl, CurlTls* tls);

/// The outcome of the transfer that curl_easy_perform just ended with
/// `curl_code` (a CURLcode), for ClassifyHandshakeFailure / HealingCall.
CERTSTORE_EXPORT ConnectionOutcome DescribeCurlResult(CURL* curl, int curl_code,
                                                      const CurlTls& tls);

}  // namespace certstore

#endif  // CERTSTORE_CURL_TLS_H_

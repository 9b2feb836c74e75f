// nginx (Debian's nginx-light) as a third-party OAuth 2.0 mTLS token
// endpoint on 127.0.0.1, for tests and benchmarks: it requires a client
// certificate from client-ca.pem and answers POST /oauth2/v2.0/token with
// a JSON token naming the certificate's serial, or invalid_client for
// certificates listed by SHA-1 fingerprint (Reject). Other paths:
// /bound-elsewhere/token answers a token bound (cnf) to another
// certificate; anything else is 404.
#ifndef CERTSTORE_TESTS_SUPPORT_NGINX_H_
#define CERTSTORE_TESTS_SUPPORT_NGINX_H_

#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "tests/support/subprocess.h"

namespace certstore::testing {

// One nginx, run in the foreground of a thread (its master process is a
// child of this one), stopped by `nginx -s quit` and at destruction.
class NginxTokenEndpoint {
 public:
  // `dir` (private to this server) must hold server.pem and server.key
  // (WriteServerCertificate makes them) and client-ca.pem.
  NginxTokenEndpoint(std::string dir, int port);
  NginxTokenEndpoint(const NginxTokenEndpoint&) = delete;
  NginxTokenEndpoint& operator=(const NginxTokenEndpoint&) = delete;
  ~NginxTokenEndpoint();

  // Starts nginx and waits (at most 10 s) until it accepts connections.
  absl::Status Start();
  // Stops it and waits for it to exit; OK when it was not running.
  absl::Status Stop();

  // From the next start on, certificates of this SHA-1 (lower-case hex,
  // nginx's $ssl_client_fingerprint) get invalid_client.
  void Reject(const std::string& sha1);

  std::string Url(absl::string_view path) const;

  // A self-signed P-256 server certificate for 127.0.0.1 (openssl req):
  // `dir`/server.pem and `dir`/server.key.
  static absl::Status WriteServerCertificate(const std::string& dir);

 private:
  std::string dir_;
  int port_;
  std::thread thread_;
  ProcessResult result_;
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SUPPORT_NGINX_H_

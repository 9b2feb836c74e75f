// Test helpers for the emulator: CSRs built in the test, a libcurl client
// (the real OpenSSL underneath) that records what the TLS layer saw, raw
// socket exchanges, and a binding minted through the issuing endpoint.
#ifndef CERTSTORE_TESTS_EMULATOR_EMULATOR_TEST_UTIL_H_
#define CERTSTORE_TESTS_EMULATOR_EMULATOR_TEST_UTIL_H_

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "certstore/key.h"
#include "emulator/emulator.h"
#include "nlohmann/json.hpp"

namespace certstore::emulator::testing {

struct CsrOptions {
  std::string cn;
  std::string dc;
  bool dc_first = true;
  std::string extra_ou;            // adds OU=<extra_ou> when not empty
  const Key* sign_with = nullptr;  // default: the key itself
};

// CN=<clientId>, DC=<tenantId> of `emulator`.
CsrOptions SubjectOf(const Emulator& emulator);

// A DER PKCS#10 request for `key`'s public key.
std::string MakeCsrDer(const Key& key, const CsrOptions& options);

// What a request saw, at every layer.
struct HttpResult {
  CURLcode curl = CURLE_OK;
  std::string curl_error;  // curl's error buffer
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::vector<int> alerts_received;            // TLS alert numbers
  // The TLS handshake began (SSL_CB_HANDSHAKE_START), so TCP connected.
  // (curl 7.88 reports CURLINFO_CONNECT_TIME 0 after a handshake timeout.)
  bool tls_started = false;
  std::string tls_version;                  // "TLSv1.3", after handshake
  std::vector<std::string> acceptable_cas;  // CertificateRequest names
  absl::Duration elapsed;

  nlohmann::json Json() const;
  std::string Describe() const;
};

struct ClientOptions {
  std::vector<std::string> chain_der;  // leaf first; empty: no certificate
  std::shared_ptr<const Key> key;
  std::string ca_pem;  // trust for the server
  int tls_max = 0;     // TLS1_2_VERSION / TLS1_3_VERSION / 0
  absl::Duration timeout = absl::Seconds(10);
};

// One libcurl easy handle: requests through it reuse its connection.
class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  HttpResult Get(const std::string& url,
                 const std::vector<std::string>& headers = {});
  HttpResult Post(const std::string& url, const std::string& body,
                  const std::vector<std::string>& headers = {});
  // POST the standard token form (client_id of `emulator`) to its endpoint.
  HttpResult Token(const Emulator& emulator,
                   const std::string& scope = "https://vault.test/.default");

 private:
  HttpResult Perform(const std::string& url, const std::string* body,
                     const std::vector<std::string>& headers);
  ClientOptions options_;
  CURL* curl_;
};

// GET / POST with `Metadata: true` on the issuing endpoint.
HttpResult Imds(const Emulator& emulator, const std::string& path_and_query,
                const std::string* post_body = nullptr);

// POST {"csr": base64(der)} to issuecredential.
HttpResult PostCsr(const Emulator& emulator, const std::string& csr_der);

// A certificate minted for a key through the issuing endpoint.
struct Binding {
  std::shared_ptr<const Key> key;
  std::vector<std::string> chain_der;  // leaf, intermediate
  std::string thumbprint;
};

// Mints a binding (fatal test failure when the emulator refuses).
Binding MintBinding(const Emulator& emulator, KeyType type = KeyType::kEcP256);

// ClientOptions presenting `binding` and trusting `emulator`'s root.
ClientOptions WithBinding(const Emulator& emulator, const Binding& binding,
                          int tls_max = 0);

// "" when `chain_der` (leaf first) verifies for client authentication
// against `root_der` alone; otherwise OpenSSL's reason.
std::string VerifyClientChain(const std::vector<std::string>& chain_der,
                              const std::string& root_der);

// Writes `request` to 127.0.0.1:`port` and reads the reply until the
// server closes (or 5 s).
std::string RawExchange(uint16_t port, const std::string& request);

// "Tls12" / "Tls13" for tests parameterized by TLS1_2_VERSION / 1_3.
std::string TlsParamName(const ::testing::TestParamInfo<int>& param);

// The standard token form for `client_id`.
std::string TokenForm(const std::string& client_id,
                      const std::string& scope = "https://vault.test/.default");

}  // namespace certstore::emulator::testing

#endif  // CERTSTORE_TESTS_EMULATOR_EMULATOR_TEST_UTIL_H_

// One HTTP(S) exchange over libcurl with explicit deadlines, optionally
// presenting a client certificate chain and key from an Entry, reporting
// what the failure classifier needs. Internal to client/.
#ifndef CERTSTORE_CLIENT_HTTPS_TRANSPORT_H_
#define CERTSTORE_CLIENT_HTTPS_TRANSPORT_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "certstore/entry.h"
#include "certstore/token_client.h"
#include "client/failure_classifier.h"

namespace certstore::client_internal {

// The most response body one exchange reads; a larger body (announced or
// sent) ends the exchange with an error and an empty body.
inline constexpr size_t kMaxResponseBytes = 1 << 20;

// connect / handshake as configured; total = what is left of the call's
// budget for this attempt.
using Deadlines = RequestDeadlines;

struct HttpRequest {
  std::string method = "GET";  // GET or POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
};

struct HttpResult {
  TransportOutcome outcome;
  std::string body;
  std::string error;  // curl's message when curl_code != 0
  absl::Duration elapsed;
  // Set when a phase's own limit (connect or handshake) ended the exchange
  // rather than curl's total timeout.
  std::optional<absl::Duration> phase_limit;
  bool reused_connection = false;  // no new connection was made
  std::string host;                // for messages
};

// Kept-alive connections per binding: one curl multi handle (and so one
// connection cache) per thumbprint, used by one exchange at a time. A
// connection never outlives the credential it presented: asking for
// another thumbprint's connections closes the others (the binding was
// rotated or replaced), and Drop closes a binding's when it is evicted.
// Thread-safe.
class ConnectionPool {
 public:
  struct Slot;
  // Exclusive use of one binding's connections until destroyed; empty
  // when another exchange is using them (this one then connects anew).
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = default;
    ~Lease();
    Slot* slot() const { return slot_.get(); }  // null: an empty lease

   private:
    friend class ConnectionPool;
    std::shared_ptr<Slot> slot_;
  };

  ConnectionPool();
  ~ConnectionPool();
  Lease Acquire(const std::string& thumbprint);
  void Drop(const std::string& thumbprint);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Performs `request`. `client_entry` (nullable) supplies the chain (leaf
// first) and key for mTLS; `server_ca_pem` (empty: system roots) is the
// trust anchor for the server. Never fetches anything but `url`: no AIA,
// no CRL, no redirects.
// `connections` (nullable) keeps the connection open for the next exchange
// with the same binding; without it each exchange connects anew.
HttpResult Perform(const HttpRequest& request, const Deadlines& deadlines,
                   const Entry* client_entry, const std::string& server_ca_pem,
                   ConnectionPool* connections = nullptr);

}  // namespace certstore::client_internal

#endif  // CERTSTORE_CLIENT_HTTPS_TRANSPORT_H_

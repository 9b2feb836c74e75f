// The token endpoint's TLS server side on OpenSSL: the SSL_CTX (client
// certificate required, verified against the emulator's root) and one
// connection over a non-blocking socket with deadlines. Emulator-internal.
#ifndef CERTSTORE_EMULATOR_INTERNAL_TLS_H_
#define CERTSTORE_EMULATOR_INTERNAL_TLS_H_

#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/internal/ssl_types.h"
#include "certstore/openssl_types.h"
#include "emulator/emulator.h"
#include "emulator/internal/ca.h"
#include "emulator/internal/http.h"
#include "emulator/internal/net.h"
#include "emulator/internal/state.h"

namespace certstore::emulator::internal {

// Builds the server context: server certificate + intermediate, trust in
// the root only, the root and intermediate subjects in the
// CertificateRequest, TLS versions and resumption from `options`.
absl::StatusOr<UniqueSslCtx> NewTokenServerContext(
    const EmulatorCa& ca, const EmulatorOptions& options);

// What the handshake should do and what it saw.
struct HandshakeProbe {
  std::optional<TlsAlert> inject_alert;  // fail verification with this alert
  absl::Time verify_time;                // "now" for the client chain
  std::string leaf_thumbprint;           // of the certificate the peer sent
  // A verification failure is counted here, before OpenSSL sends its
  // alert, so a client that saw the alert also sees the count.
  EmulatorState* state = nullptr;
  bool failure_counted = false;
};

// One TLS connection on a non-blocking fd the caller keeps open.
class TlsConn final : public Conn {
 public:
  TlsConn(SSL_CTX* ctx, int fd, const StopSignal* stop);

  // Runs the server handshake. Unavailable (with OpenSSL's reasons) when it
  // fails, DeadlineExceeded / Cancelled when it does not finish.
  absl::Status Handshake(absl::Time deadline, HandshakeProbe* probe);

  // The leaf the client presented (after a successful handshake).
  X509* peer_leaf() const;
  // "TLSv1.3".
  std::string version() const;

  absl::StatusOr<size_t> Read(char* buf, size_t size,
                              absl::Time deadline) override;
  absl::Status Write(absl::string_view data, absl::Time deadline) override;
  // Sends close_notify (best effort, bounded by `deadline`).
  void Shutdown(absl::Time deadline);

 private:
  // Waits for what SSL_get_error asks after `ret`; OK to retry the call.
  absl::Status WaitFor(int ret, absl::Time deadline, absl::string_view what);

  UniqueSsl ssl_;
  int fd_;
  const StopSignal* stop_;
};

}  // namespace certstore::emulator::internal

#endif  // CERTSTORE_EMULATOR_INTERNAL_TLS_H_

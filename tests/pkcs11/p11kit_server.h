// `p11-kit server` exposing a SoftHsmToken on a unix socket, as a remote
// PKCS#11 token that hosts reach through p11-kit-client.so (the fleet
// topology of docs/fleet.md). For tests and benchmarks.
#ifndef CERTSTORE_TESTS_PKCS11_P11KIT_SERVER_H_
#define CERTSTORE_TESTS_PKCS11_P11KIT_SERVER_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/pkcs11/softhsm_token.h"

namespace certstore::testing {

// The client module's path (p11-kit-modules), or NotFound.
absl::StatusOr<std::string> P11KitClientModule();

class P11KitServer {
 public:
  // Serves `token` on a socket in SoftHsmToken::Dir(); not started yet.
  explicit P11KitServer(const SoftHsmToken& token);
  // Stops the server if it runs.
  ~P11KitServer();
  P11KitServer(const P11KitServer&) = delete;
  P11KitServer& operator=(const P11KitServer&) = delete;

  // Starts the server (again after Stop/Kill, on the same socket) and
  // waits until it accepts connections; sets P11_KIT_SERVER_ADDRESS in this
  // process's environment (children inherit it).
  absl::Status Start();
  // SIGTERM (Stop) or SIGKILL (Kill), then waits until it is gone.
  absl::Status Stop();
  absl::Status Kill();

  // "pkcs11:token=…?module-path=<p11-kit-client.so>&pin-source=…" plus
  // `extra` query attributes ("&x-lock-dir=…").
  std::string ClientUri(const std::string& extra = "") const;

 private:
  absl::Status Signal(int signal);

  const SoftHsmToken& token_;
  std::string socket_;
  pid_t pid_ = 0;
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_PKCS11_P11KIT_SERVER_H_

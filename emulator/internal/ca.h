// The emulator's certificate authority: an EC P-256 root and intermediate
// made at start, the token endpoint's server certificate, CSR validation and
// leaf issuance. Emulator-internal.
#ifndef CERTSTORE_EMULATOR_INTERNAL_CA_H_
#define CERTSTORE_EMULATOR_INTERNAL_CA_H_

#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/entry.h"
#include "certstore/key.h"
#include "certstore/openssl_types.h"

namespace certstore::emulator::internal {

// The DER encoding of `cert`.
std::string CertificateDer(X509* cert);

class EmulatorCa {
 public:
  // Generates the keys and certificates (valid 2000..2100). Their common
  // names carry a random suffix, so two emulators never share a CA name.
  static absl::StatusOr<std::unique_ptr<EmulatorCa>> Create();

  const std::string& root_der() const { return root_der_; }
  const std::string& intermediate_der() const { return intermediate_der_; }
  const std::string& root_pem() const { return root_pem_; }
  X509* root() const { return root_.get(); }
  X509* intermediate() const { return intermediate_.get(); }
  X509* server_cert() const { return server_.get(); }
  EVP_PKEY* server_key() const { return server_key_->evp_pkey(); }
  // The token endpoint's credential (server leaf + intermediate, its key)
  // as an entry, for the TlsIdentity that presents it.
  absl::StatusOr<std::shared_ptr<const Entry>> ServerEntry() const;

  // Decodes and checks a DER PKCS#10 request: it decodes with no trailing
  // bytes, its signature verifies, its key is RSA-2048 or EC P-256 and its
  // subject is exactly CN=`client_id`, DC=`tenant_id` (either order).
  // InvalidArgument saying which check failed.
  absl::StatusOr<UniqueX509Req> CheckCsr(absl::string_view der,
                                         absl::string_view client_id,
                                         absl::string_view tenant_id) const;

  // Issues a client-authentication leaf from the intermediate for the CSR's
  // subject and key, valid [not_before, not_after]. Returns its DER.
  absl::StatusOr<std::string> IssueLeaf(X509_REQ* csr, absl::Time not_before,
                                        absl::Time not_after) const;

 private:
  EmulatorCa() = default;
  absl::Status Init();

  std::shared_ptr<const Key> root_key_;
  std::shared_ptr<const Key> intermediate_key_;
  std::shared_ptr<const Key> server_key_;
  UniqueX509 root_;
  UniqueX509 intermediate_;
  UniqueX509 server_;
  std::string root_der_;
  std::string intermediate_der_;
  std::string root_pem_;
};

}  // namespace certstore::emulator::internal

#endif  // CERTSTORE_EMULATOR_INTERNAL_CA_H_

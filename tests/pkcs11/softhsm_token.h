// A private SoftHSM2 token for tests: its own SOFTHSM2_CONF and token
// directory in a temp dir (on /dev/shm when writable; removed at exit), a 0600
// PIN file, and helpers that drive the token from outside the store
// (pkcs11-tool, softhsm2-util, raw PKCS#11). Reused by the pkcs11,
// layered-cache and client tests.
#ifndef CERTSTORE_TESTS_PKCS11_SOFTHSM_TOKEN_H_
#define CERTSTORE_TESTS_PKCS11_SOFTHSM_TOKEN_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "certstore/clock.h"
#include "certstore/key.h"
#include "certstore/pkcs11_store.h"
#include "certstore/testing/test_pki.h"

namespace certstore::testing {

inline constexpr absl::string_view kSoftHsmModule =
    "/usr/lib/softhsm/libsofthsm2.so";

class SoftHsmToken {
 public:
  // Initialises a token labelled `label` (at most 32 bytes) with a user PIN.
  // The first call in a process points SOFTHSM2_CONF at a private config;
  // it must run before anything loads the SoftHSM module.
  static absl::StatusOr<std::unique_ptr<SoftHsmToken>> Create(
      std::string label);

  // Deletes the token (its objects and directory).
  ~SoftHsmToken();
  SoftHsmToken(const SoftHsmToken&) = delete;
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;

  const std::string& label() const { return label_; }
  const std::string& pin() const { return pin_; }
  const std::string& pin_file() const { return pin_file_; }

  // Options for OpenPkcs11Store on this token (module, label, PIN file,
  // LockDir()).
  Pkcs11StoreOptions Options() const;
  // The same as an RFC 7512 URI.
  std::string Uri() const;

  // Runs pkcs11-tool on this token, logged in, with `args` appended;
  // returns its output (stdout and stderr), or Internal with it on failure.
  absl::StatusOr<std::string> Pkcs11Tool(const std::string& args) const;

  // softhsm2-util --delete-token, then (Reinitialize) --init-token again
  // under the same label and PIN: what an operator does to a token.
  absl::Status DeleteToken() const;
  absl::Status Reinitialize() const;

  // Destroys every object on the token through the module's raw function
  // list, in this process. Only while a store on SoftHSM is open (the
  // module is initialised by it): this never calls C_Initialize for good
  // nor C_Finalize.
  absl::Status DestroyAllObjects() const;

  // The directory holding the config, tokens and PIN files.
  static const std::string& Dir();
  // The stores' mint lock directory, under Dir().
  static std::string LockDir();

 private:
  SoftHsmToken(std::string label, std::string pin_file);

  std::string label_;
  std::string pin_ = "1234";
  std::string so_pin_ = "87654321";
  std::string pin_file_;
};

// A Key holding only a public key (SubjectPublicKeyInfo DER): enough for
// TestPki::IssueChain to certify a key that lives elsewhere (a key made by
// pkcs11-tool). Sign fails.
absl::StatusOr<std::shared_ptr<const Key>> PublicOnlyKey(
    absl::string_view spki_der);

// The CKA_ID in a token key's location ("pkcs11:token=…;id=%17%d1…;…"),
// as the plain hex pkcs11-tool --id takes.
std::string KeyIdHex(const Key& key);

// Writes `bytes` to a new file in SoftHsmToken::Dir() and returns its path.
std::string WriteTempFile(absl::string_view name, absl::string_view bytes);

// A suite whose tests share one token labelled `label` (made on first use in
// the process, removed with the temp dir at exit), each with a new store on
// it whose clock is a ManualClock at TestNow().
class SoftHsmStoreTest : public ::testing::Test {
 protected:
  explicit SoftHsmStoreTest(std::string label) : label_(std::move(label)) {}

  void SetUp() override;

  const SoftHsmToken& token() const { return *token_; }
  // The token's options with clock_, and no wait between looks for a token
  // that went away.
  Pkcs11StoreOptions Options() const;

  static const TestPki& Pki();
  // A leaf valid from an hour before TestNow() for a week plus `extra`.
  static LeafOptions Leaf(absl::Duration extra = absl::ZeroDuration());
  static std::shared_ptr<const Entry> Issue(
      const std::string& alias, std::shared_ptr<const Key> key,
      absl::Duration extra = absl::ZeroDuration());

  ManualClock clock_{TestNow()};
  std::unique_ptr<CertStore> store_;

 private:
  std::string label_;
  const SoftHsmToken* token_ = nullptr;
};

// Runs a shell command line; returns its combined output, or Internal
// naming the command and its exit status.
absl::StatusOr<std::string> RunCommand(const std::string& command);

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_PKCS11_SOFTHSM_TOKEN_H_

// Reads a binding credential an operator hands the CLI: a PEM bundle
// (certificates + one private key), a PKCS#12 file, or a certificate file and
// a key file. Errors name the file and what is wrong; key bytes never appear.
#ifndef CERTSTORE_CLI_CREDENTIAL_FILES_H_
#define CERTSTORE_CLI_CREDENTIAL_FILES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "certstore/key.h"

namespace certstore::cli {

// Inputs larger than this are refused (a credential is a few KiB).
inline constexpr size_t kMaxCredentialFileBytes = 1 << 20;

struct CredentialFiles {
  // A PEM bundle or a PKCS#12 (.p12/.pfx) file. Or both of the next two.
  std::string bundle;
  std::string cert;  // PEM certificates (leaf and intermediates)
  std::string key;   // PEM private key (unencrypted)
  // PKCS#12 only: a file holding the password (0600, owned by the user).
  std::string password_file;
};

struct Credential {
  std::vector<std::string> chain_der;  // leaf first
  std::shared_ptr<const Key> key;
};

// The chain is reordered so that the certificate matching the key comes
// first; the store's Put validates the rest. NotFound / PermissionDenied for
// files that are missing or unreadable, InvalidArgument for content that is
// not a credential (naming the file), for encrypted PEM keys and for a wrong
// PKCS#12 password.
absl::StatusOr<Credential> ReadCredential(const CredentialFiles& files);

// The key half of a credential given as two files.
struct CredentialKey {
  bool separate = false;  // false: the key is in the certificate's file
  std::string path;
  std::string content;  // PEM private key
};

// ReadCredential once the files are read (and what fuzz/ drives):
// `cert_content` is a PEM bundle, PEM certificates (with `key_file`) or a
// PKCS#12 (DER) opened with `password` (wiped here). Errors name
// `cert_path` / the key's path, never the password or key bytes.
absl::StatusOr<Credential> DecodeCredential(absl::string_view cert_path,
                                            absl::string_view cert_content,
                                            const CredentialKey& key_file,
                                            std::string password,
                                            bool password_given);

// Reads a small regular file: NotFound, PermissionDenied, InvalidArgument
// (a directory, larger than `max_bytes`) naming `path` and `what`.
absl::StatusOr<std::string> ReadInputFile(const std::string& path,
                                          absl::string_view what,
                                          size_t max_bytes);

// Reads a secret (a password or PIN file): it must be private to the user
// (0600 or stricter, owned by us); one trailing newline is removed.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           absl::string_view what);

}  // namespace certstore::cli

#endif  // CERTSTORE_CLI_CREDENTIAL_FILES_H_

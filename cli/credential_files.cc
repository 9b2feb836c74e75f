#include "cli/credential_files.h"

#include <fcntl.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/internal/limits.h"
#include "api/internal/posix_status.h"
#include "api/internal/unique_fd.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"

namespace certstore::cli {
namespace {

struct Pkcs12Deleter {
  void operator()(PKCS12* p) const { PKCS12_free(p); }
};

bool LooksLikePem(absl::string_view content) {
  return absl::StrContains(content, "-----BEGIN ");
}

// Puts the certificate whose public key is the key's first.
absl::Status PutLeafFirst(std::vector<std::string>& chain_der, const Key& key,
                          absl::string_view file) {
  for (size_t i = 0; i < chain_der.size(); ++i) {
    CERTSTORE_ASSIGN_OR_RETURN(UniqueX509 cert,
                               DecodeCertificate(chain_der[i], file));
    absl::StatusOr<std::string> spki = PublicKeyDer(cert.get());
    if (spki.ok() && *spki == key.public_key_der()) {
      std::rotate(chain_der.begin(), chain_der.begin() + i,
                  chain_der.begin() + i + 1);
      return absl::OkStatus();
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat(file, ": no certificate matches the private key"));
}

// The iteration count (or scrypt cost) a password-based algorithm asks
// for: the PBES2 key function's, a PKCS#12 / PKCS#5 v1 PBE's; 1 when the
// algorithm has none; -1 when its parameters do not decode.
int64_t PbeCost(const X509_ALGOR* alg) {
  const ASN1_OBJECT* oid = nullptr;
  int type = 0;
  const void* param = nullptr;
  X509_ALGOR_get0(&oid, &type, &param, alg);
  const ASN1_TYPE* params = alg->parameter;
  auto value = [](const ASN1_INTEGER* n) -> int64_t {
    int64_t v = 1;
    return n == nullptr ? 1 : ASN1_INTEGER_get_int64(&v, n) == 1 ? v : -1;
  };
  if (OBJ_obj2nid(oid) != NID_pbes2) {
    PBEPARAM* pbe = static_cast<PBEPARAM*>(
        ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), params));
    const int64_t cost = pbe != nullptr ? value(pbe->iter) : -1;
    PBEPARAM_free(pbe);
    return cost;
  }
  PBE2PARAM* pbe2 = static_cast<PBE2PARAM*>(
      ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), params));
  int64_t cost = -1;
  if (pbe2 != nullptr &&
      OBJ_obj2nid(pbe2->keyfunc->algorithm) == NID_id_pbkdf2) {
    PBKDF2PARAM* kdf = static_cast<PBKDF2PARAM*>(ASN1_TYPE_unpack_sequence(
        ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter));
    cost = kdf != nullptr ? value(kdf->iter) : -1;
    PBKDF2PARAM_free(kdf);
  } else if (pbe2 != nullptr &&
             OBJ_obj2nid(pbe2->keyfunc->algorithm) == NID_id_scrypt) {
    SCRYPT_PARAMS* scrypt =
        static_cast<SCRYPT_PARAMS*>(ASN1_TYPE_unpack_sequence(
            ASN1_ITEM_rptr(SCRYPT_PARAMS), pbe2->keyfunc->parameter));
    const int64_t n = scrypt != nullptr ? value(scrypt->costParameter) : -1;
    // Measured against the scrypt cap, reported on the iteration scale.
    cost = n < 0                          ? -1
           : n > internal::kMaxScryptCost ? internal::kMaxKdfIterations + 1
                                          : 1;
    SCRYPT_PARAMS_free(scrypt);
  }
  PBE2PARAM_free(pbe2);
  return cost;
}

absl::Status CheckCost(const X509_ALGOR* alg, absl::string_view where,
                       absl::string_view path) {
  const int64_t cost = PbeCost(alg);
  if (cost < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the PKCS#12 ", where, " has parameters that do not decode"));
  }
  if (cost > internal::kMaxKdfIterations) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the PKCS#12 ", where, " asks for ", cost,
        " iterations; certstore runs at most ", internal::kMaxKdfIterations));
  }
  return absl::OkStatus();
}

// The shrouded keys' costs among `bags` (and bags nested in them).
absl::Status CheckBags(const STACK_OF(PKCS12_SAFEBAG) * bags,
                       absl::string_view path, int depth) {
  if (depth > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": PKCS#12 bags nested deeper than 4"));
  }
  for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); ++i) {
    const PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, i);
    if (PKCS12_SAFEBAG_get_nid(bag) == NID_pkcs8ShroudedKeyBag) {
      const X509_ALGOR* alg = nullptr;
      X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, nullptr);
      CERTSTORE_RETURN_IF_ERROR(CheckCost(alg, "key encryption", path));
    } else if (PKCS12_SAFEBAG_get_nid(bag) == NID_safeContentsBag) {
      CERTSTORE_RETURN_IF_ERROR(
          CheckBags(PKCS12_SAFEBAG_get0_safes(bag), path, depth + 1));
    }
  }
  return absl::OkStatus();
}

// Refuses a PKCS#12 that would make OpenSSL run more than
// kMaxKdfIterations for its MAC or any password-based encryption in it,
// before anything runs them (a file asking for 2^31 - 1 iterations would
// take minutes). Encrypted contents are decrypted with their already
// checked algorithm to reach the keys inside.
absl::Status CheckPkcs12Costs(const PKCS12* p12, const std::string& password,
                              absl::string_view path) {
  const ASN1_INTEGER* mac_iterations = nullptr;
  const X509_ALGOR* mac_alg = nullptr;
  PKCS12_get0_mac(nullptr, &mac_alg, nullptr, &mac_iterations, p12);
  int64_t mac_cost = 1;
  if (mac_iterations != nullptr &&
      (ASN1_INTEGER_get_int64(&mac_cost, mac_iterations) != 1 ||
       mac_cost > internal::kMaxKdfIterations)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the PKCS#12 MAC asks for more than ",
                     internal::kMaxKdfIterations,
                     " iterations; certstore runs at most that"));
  }
  auto free_p7 = [](STACK_OF(PKCS7) * s) { sk_PKCS7_pop_free(s, PKCS7_free); };
  std::unique_ptr<STACK_OF(PKCS7), decltype(free_p7)> safes(
      PKCS12_unpack_authsafes(p12), free_p7);
  if (safes == nullptr) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the PKCS#12 contents do not decode"));
  }
  auto free_bags = [](STACK_OF(PKCS12_SAFEBAG) * s) {
    sk_PKCS12_SAFEBAG_pop_free(s, PKCS12_SAFEBAG_free);
  };
  for (int i = 0; i < sk_PKCS7_num(safes.get()); ++i) {
    PKCS7* p7 = sk_PKCS7_value(safes.get(), i);
    std::unique_ptr<STACK_OF(PKCS12_SAFEBAG), decltype(free_bags)> bags(
        nullptr, free_bags);
    const int nid = OBJ_obj2nid(p7->type);
    if (nid == NID_pkcs7_data) {
      bags.reset(PKCS12_unpack_p7data(p7));
    } else if (nid == NID_pkcs7_encrypted) {
      if (p7->d.encrypted == nullptr || p7->d.encrypted->enc_data == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": a PKCS#12 encrypted part does not decode"));
      }
      CERTSTORE_RETURN_IF_ERROR(CheckCost(p7->d.encrypted->enc_data->algorithm,
                                          "content encryption", path));
      bags.reset(PKCS12_unpack_p7encdata(p7, password.c_str(),
                                         static_cast<int>(password.size())));
    }
    if (bags == nullptr) {
      ClearOpenSslErrors();
      continue;  // PKCS12_parse says why (wrong password, cipher)
    }
    CERTSTORE_RETURN_IF_ERROR(CheckBags(bags.get(), path, 0));
  }
  return absl::OkStatus();
}

// A library context with OpenSSL's default and legacy providers, for
// DecodePkcs12 alone; null when the legacy provider is not installed.
OSSL_LIB_CTX* LegacyPkcs12Context() {
  static OSSL_LIB_CTX* const context = [] {
    OSSL_LIB_CTX* ctx = OSSL_LIB_CTX_new();
    if (ctx == nullptr || OSSL_PROVIDER_load(ctx, "default") == nullptr ||
        OSSL_PROVIDER_load(ctx, "legacy") == nullptr) {
      ClearOpenSslErrors();
      OSSL_LIB_CTX_free(ctx);
      return static_cast<OSSL_LIB_CTX*>(nullptr);
    }
    return ctx;
  }();
  return context;
}

// `leaf` then `cas`, as DER.
std::vector<std::string> ChainDer(X509* leaf, STACK_OF(X509) * cas) {
  auto to_der = [](X509* cert) {
    unsigned char* der = nullptr;
    int len = i2d_X509(cert, &der);
    std::string out(reinterpret_cast<char*>(der), len > 0 ? len : 0);
    OPENSSL_free(der);
    return out;
  };
  std::vector<std::string> chain = {to_der(leaf)};
  for (int i = 0; cas != nullptr && i < sk_X509_num(cas); ++i) {
    chain.push_back(to_der(sk_X509_value(cas, i)));
  }
  return chain;
}

// `key` as unencrypted PKCS#8 DER (the caller wipes it).
absl::StatusOr<std::string> PrivateKeyPkcs8Der(EVP_PKEY* key,
                                               absl::string_view path) {
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(key);
  unsigned char* der = nullptr;
  const int len = p8 != nullptr ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
  PKCS8_PRIV_KEY_INFO_free(p8);
  if (len <= 0) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(path, ": the PKCS#12 key cannot be read"));
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_clear_free(der, static_cast<size_t>(len));
  return out;
}

absl::StatusOr<Credential> DecodePkcs12(absl::string_view path,
                                        absl::string_view content,
                                        std::string password,
                                        bool password_given) {
  const auto* data = reinterpret_cast<const unsigned char*>(content.data());
  std::unique_ptr<PKCS12, Pkcs12Deleter> p12(
      d2i_PKCS12(nullptr, &data, static_cast<long>(content.size())));
  if (p12 == nullptr) {
    return OpenSslError(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat(path, ": neither PEM nor a PKCS#12 (DER) file"));
  }
  // What a MAC-protected file's password is checked against before
  // anything is decrypted: a MAC that verifies with neither the password
  // nor (for an empty one) no password at all means a wrong password.
  absl::Status costs = CheckPkcs12Costs(p12.get(), password, path);
  if (costs.ok() && PKCS12_mac_present(p12.get()) &&
      PKCS12_verify_mac(p12.get(), password.c_str(),
                        static_cast<int>(password.size())) != 1 &&
      !(password.empty() && PKCS12_verify_mac(p12.get(), nullptr, 0) == 1)) {
    ClearOpenSslErrors();
    costs = absl::PermissionDeniedError(
        absl::StrCat(path, ": wrong PKCS#12 password (its MAC does not verify)",
                     password_given ? "" : "; give it with --password-file"));
  }
  if (!costs.ok()) {
    OPENSSL_cleanse(&password[0], password.size());
    return costs;
  }
  if (!PKCS12_mac_present(p12.get())) {
    // PKCS12_parse insists on a MAC; `openssl pkcs12` reads files without
    // one (-nomac). Give this in-memory copy a one-iteration MAC under the
    // password so that the parse goes on to decrypt, which still needs it.
    PKCS12_set_mac(p12.get(), password.c_str(),
                   static_cast<int>(password.size()), nullptr, 0, 1, nullptr);
    ClearOpenSslErrors();
  }
  EVP_PKEY* pkey = nullptr;
  X509* leaf = nullptr;
  STACK_OF(X509)* cas = nullptr;
  int ok = PKCS12_parse(p12.get(), password.c_str(), &pkey, &leaf, &cas);
  bool legacy = false;
  if (ok != 1 && LegacyPkcs12Context() != nullptr) {
    // RC2 and friends (Windows, `openssl pkcs12 -legacy`) live in OpenSSL's
    // legacy provider. It is loaded into a library context of its own and
    // made this thread's default only for this decode, so that the legacy
    // algorithms never become available to anything else (TLS included).
    ClearOpenSslErrors();
    OSSL_LIB_CTX* previous = OSSL_LIB_CTX_set0_default(LegacyPkcs12Context());
    costs = CheckPkcs12Costs(p12.get(), password, path);
    if (costs.ok()) {
      ok = PKCS12_parse(p12.get(), password.c_str(), &pkey, &leaf, &cas);
    }
    OSSL_LIB_CTX_set0_default(previous);
    legacy = true;
  }
  OPENSSL_cleanse(&password[0], password.size());
  UniqueEvpPkey owned_key(pkey);
  UniqueX509 owned_leaf(leaf);
  auto free_cas = [](STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); };
  std::unique_ptr<STACK_OF(X509), decltype(free_cas)> owned_cas(cas, free_cas);
  CERTSTORE_RETURN_IF_ERROR(costs);
  if (ok != 1) {
    absl::Status failed = OpenSslError(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat(path, ": cannot open the PKCS#12 file (wrong password ",
                     password_given ? "" : "(none given: --password-file) ",
                     "or an unsupported cipher)"));
    // Without a MAC to check first, a wrong password shows as a decryption
    // that fails: still the password's fault (PermissionDenied, exit 4).
    if (absl::StrContains(failed.message(), "bad decrypt")) {
      return absl::PermissionDeniedError(failed.message());
    }
    return failed;
  }
  if (owned_key == nullptr || owned_leaf == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the PKCS#12 file needs a private key and its certificate"));
  }
  if (legacy) {
    // Keys decoded in the legacy context are re-read in the default one.
    CERTSTORE_ASSIGN_OR_RETURN(std::string der,
                               PrivateKeyPkcs8Der(owned_key.get(), path));
    absl::StatusOr<std::shared_ptr<const Key>> key =
        SoftwareKeyFromPkcs8Der(der);
    OPENSSL_cleanse(&der[0], der.size());
    CERTSTORE_RETURN_IF_ERROR(key.status());
    Credential credential;
    credential.key = *std::move(key);
    credential.chain_der = ChainDer(owned_leaf.get(), owned_cas.get());
    return credential;
  }
  Credential credential;
  CERTSTORE_ASSIGN_OR_RETURN(credential.key,
                             SoftwareKeyFromEvp(owned_key.get()));
  credential.chain_der = ChainDer(owned_leaf.get(), owned_cas.get());
  return credential;
}

}  // namespace

absl::StatusOr<std::string> ReadInputFile(const std::string& path,
                                          absl::string_view what,
                                          size_t max_bytes) {
  const std::string context = absl::StrCat(what, " ", path);
  internal::UniqueFd owned(
      open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  const int fd = owned.get();
  if (fd < 0) {
    return internal::ErrnoStatus(errno, context);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return internal::ErrnoStatus(errno, context);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": ", st.st_size, " bytes, more than the ",
                     max_bytes, " a credential can be"));
  }
  std::string content(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = read(fd, &content[done], content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return internal::ErrnoStatus(errno, context);
    }
    if (n == 0) {
      break;
    }
    done += static_cast<size_t>(n);
  }
  content.resize(done);
  return content;
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           absl::string_view what) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return internal::ErrnoStatus(errno, absl::StrCat(what, " ", path));
  }
  CERTSTORE_RETURN_IF_ERROR(internal::CheckPrivateFile(st, path));
  CERTSTORE_ASSIGN_OR_RETURN(std::string secret,
                             ReadInputFile(path, what, 4096));
  if (absl::EndsWith(secret, "\r\n")) {
    secret.resize(secret.size() - 2);
  } else if (absl::EndsWith(secret, "\n")) {
    secret.resize(secret.size() - 1);
  }
  return secret;
}

absl::StatusOr<Credential> DecodeCredential(absl::string_view cert_path,
                                            absl::string_view cert_content,
                                            const CredentialKey& key_file,
                                            std::string password,
                                            bool password_given) {
  if (!key_file.separate && !LooksLikePem(cert_content)) {
    return DecodePkcs12(cert_path, cert_content, std::move(password),
                        password_given);
  }
  OPENSSL_cleanse(&password[0], password.size());
  if (!LooksLikePem(cert_content)) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_path, ": not a PEM file (no -----BEGIN line)"));
  }
  Credential credential;
  absl::StatusOr<std::vector<std::string>> chain = PemToDerChain(cert_content);
  if (!chain.ok() || chain->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        cert_path, ": no certificate could be read",
        chain.ok() ? "" : absl::StrCat(" (", chain.status().message(), ")")));
  }
  credential.chain_der = *std::move(chain);
  const absl::string_view key_path =
      key_file.separate ? key_file.path : cert_path;
  absl::StatusOr<std::shared_ptr<const Key>> key =
      SoftwareKeyFromPem(key_file.separate ? key_file.content : cert_content);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_path, ": ", key.status().message()));
  }
  credential.key = *std::move(key);
  CERTSTORE_RETURN_IF_ERROR(
      PutLeafFirst(credential.chain_der, *credential.key, cert_path));
  return credential;
}

absl::StatusOr<Credential> ReadCredential(const CredentialFiles& files) {
  const bool separate = !files.cert.empty() || !files.key.empty();
  if (files.bundle.empty() == !separate) {
    return absl::InvalidArgumentError(
        "give either one credential file (PEM bundle or PKCS#12) or --cert "
        "and --key");
  }
  if (separate && (files.cert.empty() || files.key.empty())) {
    return absl::InvalidArgumentError(
        "--cert and --key go together: both files are needed");
  }
  const std::string& cert_path = separate ? files.cert : files.bundle;
  CERTSTORE_ASSIGN_OR_RETURN(
      std::string cert_content,
      ReadInputFile(cert_path, "credential file", kMaxCredentialFileBytes));
  CredentialKey key_file;
  key_file.separate = separate;
  key_file.path = files.key;
  if (separate) {
    CERTSTORE_ASSIGN_OR_RETURN(
        key_file.content,
        ReadInputFile(files.key, "key file", kMaxCredentialFileBytes));
  }
  std::string password;
  if (!separate && !LooksLikePem(cert_content) &&
      !files.password_file.empty()) {
    CERTSTORE_ASSIGN_OR_RETURN(
        password, ReadSecretFile(files.password_file, "PKCS#12 password file"));
  }
  absl::StatusOr<Credential> credential =
      DecodeCredential(cert_path, cert_content, key_file, std::move(password),
                       !files.password_file.empty());
  OPENSSL_cleanse(&key_file.content[0], key_file.content.size());
  return credential;
}

}  // namespace certstore::cli

// Pkcs11StoreOptions from an RFC 7512 URI, option checks, the PIN source.
#include "pkcs11/pkcs11_options.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "api/internal/directories.h"
#include "api/internal/percent_encoding.h"
#include "api/internal/posix_status.h"
#include "api/internal/redact.h"
#include "certstore/status_macros.h"

namespace certstore {
namespace {

constexpr size_t kMaxTokenLabel = 32;  // CK_TOKEN_INFO.label
constexpr size_t kMaxPinBytes = 4096;

// Path attributes of RFC 7512 that select nothing here.
constexpr absl::string_view kIgnoredPathAttributes[] = {"manufacturer",
                                                        "model",
                                                        "library-manufacturer",
                                                        "library-description",
                                                        "library-version",
                                                        "slot-description",
                                                        "slot-manufacturer",
                                                        "slot-id",
                                                        "object",
                                                        "id",
                                                        "type"};

// Where module-name= looks for "<name>", "<name>.so" and "lib<name>.so".
constexpr absl::string_view kModuleDirs[] = {"/usr/lib/x86_64-linux-gnu/pkcs11",
                                             "/usr/lib/pkcs11",
                                             "/usr/lib/softhsm",
                                             "/usr/local/lib/softhsm",
                                             "/usr/lib64/pkcs11",
                                             "/usr/lib/x86_64-linux-gnu"};

absl::StatusOr<std::string> ModuleByName(absl::string_view name) {
  if (name.find('/') != absl::string_view::npos) {
    return std::string(name);
  }
  for (absl::string_view dir : kModuleDirs) {
    for (const std::string& file :
         {std::string(name), absl::StrCat(name, ".so"),
          absl::StrCat("lib", name, ".so")}) {
      std::string path = absl::StrCat(dir, "/", file);
      if (access(path.c_str(), R_OK) == 0) {
        return path;
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("module-name \"", name,
                   "\": no such module in the PKCS#11 module "
                   "directories (use module-path=)"));
}

absl::Status PathAttribute(absl::string_view name, const std::string& value,
                           Pkcs11StoreOptions& options) {
  if (name == "token") {
    options.token_label = value;
    return absl::OkStatus();
  }
  if (name == "serial") {
    return absl::OkStatus();  // tokens are selected by label
  }
  for (absl::string_view ignored : kIgnoredPathAttributes) {
    if (name == ignored) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown path attribute \"", name, "\""));
}

absl::Status QueryAttribute(absl::string_view name, const std::string& value,
                            Pkcs11StoreOptions& options) {
  if (name == "module-path") {
    options.module_path = value;
  } else if (name == "module-name") {
    CERTSTORE_ASSIGN_OR_RETURN(options.module_path, ModuleByName(value));
  } else if (name == "pin-source") {
    if (!absl::StartsWith(value, "file:")) {
      return absl::InvalidArgumentError(
          "pin-source must be file:<absolute path>");
    }
    options.pin_file = value.substr(5);
  } else if (name == "x-allow-import") {
    if (value != "true" && value != "false") {
      return absl::InvalidArgumentError(absl::StrCat(
          "x-allow-import must be true or false, not \"", value, "\""));
    }
    options.allow_import = value == "true";
  } else if (name == "x-lock-dir") {
    options.lock_dir = value;
  } else if (name == "x-token-lease") {
    int seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds) || seconds < 1 || seconds > 3600) {
      return absl::InvalidArgumentError(absl::StrCat(
          "x-token-lease must be a number of seconds from 1 to 3600, not \"",
          value, "\""));
    }
    options.token_lease = absl::Seconds(seconds);
  } else if (name == "pin-value") {
    return absl::InvalidArgumentError(
        "pin-value is refused: a PIN must not live in a URI (use "
        "pin-source=file:<path>)");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown query attribute \"", name, "\""));
  }
  return absl::OkStatus();
}

using AttributeFn = absl::Status (*)(absl::string_view, const std::string&,
                                     Pkcs11StoreOptions&);

absl::Status ParseAttributes(absl::string_view part, char separator,
                             AttributeFn apply, Pkcs11StoreOptions& options) {
  std::vector<std::string> seen;
  for (absl::string_view attr : absl::StrSplit(part, separator)) {
    if (attr.empty()) {
      continue;
    }
    const size_t eq = attr.find('=');
    const absl::string_view name = attr.substr(0, eq);
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute \"", name, "\" has no value"));
    }
    for (const std::string& s : seen) {
      if (s == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("attribute \"", name, "\" given twice"));
      }
    }
    seen.emplace_back(name);
    // An id is bytes (RFC 7512 §2.3) and may hold a NUL; nothing else may.
    internal::PercentDecodeOptions decoding;
    decoding.allow_nul = name == "id";
    absl::StatusOr<std::string> value =
        internal::PercentDecode(attr.substr(eq + 1), decoding);
    if (!value.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute \"", name, "\": ", value.status().message()));
    }
    CERTSTORE_RETURN_IF_ERROR(apply(name, *value, options));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Pkcs11StoreOptions> ParsePkcs11Uri(absl::string_view uri) {
  const std::string context = absl::StrCat("pkcs11 URI \"", uri, "\"");
  if (!absl::StartsWithIgnoreCase(uri, "pkcs11:")) {
    return absl::InvalidArgumentError(internal::RedactSecrets(
        absl::StrCat(context, ": must start with \"pkcs11:\""), uri));
  }
  const absl::string_view rest = uri.substr(7);
  const size_t q = rest.find('?');
  Pkcs11StoreOptions options;
  absl::Status status =
      ParseAttributes(rest.substr(0, q), ';', &PathAttribute, options);
  if (status.ok() && q != absl::string_view::npos) {
    status = ParseAttributes(rest.substr(q + 1), '&', &QueryAttribute, options);
  }
  if (status.ok() && options.token_label.empty()) {
    status = absl::InvalidArgumentError("token=<label> is required");
  }
  if (status.ok() && options.module_path.empty()) {
    status = absl::InvalidArgumentError(
        "module-path=<so> or module-name=<name> is required");
  }
  if (!status.ok()) {
    return absl::InvalidArgumentError(internal::RedactSecrets(
        absl::StrCat(context, ": ", status.message()), uri));
  }
  return options;
}

namespace pkcs11_internal {

std::string StoreName(absl::string_view token_label) {
  return absl::StrCat("pkcs11:token=", internal::PercentEncode(token_label));
}

std::string KeyUri(absl::string_view token_label, absl::string_view id) {
  return absl::StrCat("pkcs11:token=", internal::PercentEncode(token_label),
                      ";id=", internal::PercentEncodeAll(id), ";type=private");
}

std::string CertificateUri(absl::string_view token_label,
                           absl::string_view id) {
  return absl::StrCat("pkcs11:token=", internal::PercentEncode(token_label),
                      ";id=", internal::PercentEncodeAll(id), ";type=cert");
}

absl::Status CheckOptions(const Pkcs11StoreOptions& options) {
  if (options.token_label.empty()) {
    return absl::InvalidArgumentError("token_label is empty");
  }
  if (options.token_label.size() > kMaxTokenLabel) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token_label is ", options.token_label.size(),
        " bytes; a PKCS#11 token label has at most ", kMaxTokenLabel));
  }
  if (options.module_path.empty()) {
    return absl::InvalidArgumentError(
        "module_path is empty (module-path= or module-name=)");
  }
  if (options.pin_file.empty() == (options.pin_callback == nullptr)) {
    return absl::InvalidArgumentError(
        "exactly one of pin_file (pin-source=file:) and pin_callback must be "
        "set");
  }
  if (!options.lock_dir.empty() && options.lock_dir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("lock_dir (x-lock-dir=) \"", options.lock_dir,
                     "\" is not an absolute path"));
  }
  if (options.token_lease < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token_lease (x-token-lease=) is negative (",
                     absl::FormatDuration(options.token_lease), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<internal::UniqueFd> OpenLockDir(
    const Pkcs11StoreOptions& options) {
  std::string dir = options.lock_dir;
  if (dir.empty()) {
    absl::StatusOr<std::string> state = internal::StateDirectory();
    if (!state.ok()) {
      return absl::Status(state.status().code(),
                          absl::StrCat(state.status().message(),
                                       ", or set lock_dir (x-lock-dir=)"));
    }
    dir = absl::StrCat(*state, "/pkcs11-locks");
  }
  return internal::OpenPrivateDirectory(dir, "lock directory");
}

std::string MintLockFileName(absl::string_view token_label,
                             absl::string_view alias) {
  // Fixed length whatever the alias (up to kMaxAliasBytes) holds; the
  // length-prefixed label keeps tokens apart.
  const std::string key =
      absl::StrCat(token_label.size(), ":", token_label, alias);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(),
         digest);
  return absl::StrCat(".mint-",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(digest), 16)),
                      ".lock");
}

absl::StatusOr<std::string> ResolvePin(const Pkcs11StoreOptions& options) {
  if (options.pin_callback != nullptr) {
    return options.pin_callback();
  }
  const std::string& path = options.pin_file;
  const std::string context = absl::StrCat("pin file \"", path, "\"");
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return internal::ErrnoStatus(errno, context);
  }
  struct stat st;
  absl::Status status = fstat(fd, &st) == 0
                            ? internal::CheckPrivateFile(st, path)
                            : internal::ErrnoStatus(errno, context);
  std::string pin(kMaxPinBytes + 1, '\0');
  ssize_t n = status.ok() ? read(fd, pin.data(), pin.size()) : 0;
  close(fd);
  if (status.ok() && n < 0) {
    status = internal::ErrnoStatus(errno, context);
  }
  pin.resize(n > 0 ? static_cast<size_t>(n) : 0);
  if (status.ok() && pin.size() > kMaxPinBytes) {
    status = absl::InvalidArgumentError(absl::StrCat(context, ": too large"));
  }
  if (absl::EndsWith(pin, "\n")) {
    pin.resize(pin.size() - (absl::EndsWith(pin, "\r\n") ? 2 : 1));
  }
  if (status.ok() && pin.empty()) {
    status = absl::InvalidArgumentError(absl::StrCat(context, ": is empty"));
  }
  if (!status.ok()) {
    OPENSSL_cleanse(pin.data(), pin.size());
    return status;
  }
  return pin;
}

}  // namespace pkcs11_internal
}  // namespace certstore

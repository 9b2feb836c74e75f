#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/internal/posix_status.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "sqlite/passphrase_internal.h"

namespace certstore::sqlite_internal {
namespace {

constexpr size_t kMaxPassphraseBytes = 4096;

// What meta records about the key-encryption key of a file.
struct RecordedKdf {
  KdfParams params;
  std::string check;
};

absl::StatusOr<Secret> ReadPassphraseFile(const std::string& path) {
  const std::string what =
      absl::StrCat(path, " (SqliteStoreOptions::passphrase_file)");
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st;
  if (fd.get() < 0 || fstat(fd.get(), &st) != 0) {
    return internal::ErrnoStatus(errno, what);
  }
  CERTSTORE_RETURN_IF_ERROR(internal::CheckPrivateFile(st, what));
  std::string text(kMaxPassphraseBytes + 1, '\0');
  size_t size = 0;
  while (size < text.size()) {
    ssize_t n = read(fd.get(), &text[size], text.size() - size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      OPENSSL_cleanse(&text[0], text.size());
      return internal::ErrnoStatus(errno, what);
    }
    if (n == 0) {
      break;
    }
    size += static_cast<size_t>(n);
  }
  Secret secret(std::move(text));  // wiped whatever happens next
  if (size > kMaxPassphraseBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": longer than ", kMaxPassphraseBytes, " bytes"));
  }
  absl::string_view value(secret.value().data(), size);
  if (absl::EndsWith(value, "\n")) {
    value.remove_suffix(1);
    if (absl::EndsWith(value, "\r")) {
      value.remove_suffix(1);
    }
  }
  return Secret(std::string(value));
}

absl::StatusOr<std::optional<RecordedKdf>> ReadKdf(Connection& connection) {
  static constexpr char kSql[] =
      "SELECT key, value FROM meta WHERE key IN "
      "('kdf_salt', 'kdf_iterations', 'kdf_check')";
  CERTSTORE_ASSIGN_OR_RETURN(Statement select, connection.Prepare(kSql));
  RecordedKdf kdf;
  int found = 0;
  while (true) {
    CERTSTORE_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) {
      break;
    }
    ++found;
    const absl::string_view key = select.Text(0);
    if (key == "kdf_salt") {
      kdf.params.salt = std::string(select.Blob(1));
    } else if (key == "kdf_iterations") {
      kdf.params.iterations = static_cast<int>(select.Int(1));
    } else {
      kdf.check = std::string(select.Blob(1));
    }
  }
  if (found == 0) {
    return std::nullopt;
  }
  if (found != 3 || kdf.params.iterations <= 0) {
    return absl::DataLossError(
        "the key-encryption parameters in meta are incomplete");
  }
  return kdf;
}

absl::Status WriteKdf(Connection& connection, const RecordedKdf& kdf) {
  static constexpr char kSql[] =
      "INSERT INTO meta(key, value) VALUES('kdf_salt', ?1), "
      "('kdf_iterations', ?2), ('kdf_check', ?3)";
  CERTSTORE_ASSIGN_OR_RETURN(Statement insert, connection.Prepare(kSql));
  insert.BindBlob(1, kdf.params.salt);
  insert.BindInt(2, kdf.params.iterations);
  insert.BindBlob(3, kdf.check);
  return insert.Run();
}

// Records `mine` unless another process recorded parameters first; returns
// what the file holds afterwards.
absl::StatusOr<RecordedKdf> RecordKdf(Database& db, absl::string_view context,
                                      RecordedKdf mine) {
  std::optional<RecordedKdf> recorded;
  auto work = [&](Connection& connection) -> absl::Status {
    CERTSTORE_ASSIGN_OR_RETURN(recorded, ReadKdf(connection));
    if (recorded.has_value()) {
      return absl::OkStatus();
    }
    recorded = mine;
    return WriteKdf(connection, mine);
  };
  CERTSTORE_RETURN_IF_ERROR(db.Write(context, work));
  return *std::move(recorded);
}

}  // namespace

absl::StatusOr<std::optional<Secret>> LoadPassphrase(
    const SqliteStoreOptions& options) {
  if (!options.passphrase_file.empty() && options.passphrase_callback) {
    return absl::InvalidArgumentError(
        "set SqliteStoreOptions::passphrase_file or passphrase_callback, not "
        "both");
  }
  std::optional<Secret> secret;
  if (!options.passphrase_file.empty()) {
    CERTSTORE_ASSIGN_OR_RETURN(secret,
                               ReadPassphraseFile(options.passphrase_file));
  } else if (options.passphrase_callback) {
    absl::StatusOr<std::string> value = options.passphrase_callback();
    if (!value.ok()) {
      return WithContext(value.status(),
                         "SqliteStoreOptions::passphrase_callback");
    }
    secret.emplace(*std::move(value));
  }
  if (secret.has_value() && secret->value().empty()) {
    return absl::InvalidArgumentError("the passphrase is empty");
  }
  return secret;
}

absl::StatusOr<std::unique_ptr<KeyCipher>> SetUpKeyCipher(
    Database& db, const std::optional<Secret>& passphrase, int iterations) {
  const std::string context = OpContext(db.options().name, "Open", "");
  std::optional<RecordedKdf> recorded;
  auto read = [&](Connection& connection) -> absl::Status {
    CERTSTORE_ASSIGN_OR_RETURN(recorded, ReadKdf(connection));
    return absl::OkStatus();
  };
  CERTSTORE_RETURN_IF_ERROR(db.Read(context, read));
  if (!passphrase.has_value()) {
    if (!recorded.has_value()) {
      return nullptr;
    }
    return absl::PermissionDeniedError(absl::StrCat(
        context,
        ": keys in this file are encrypted; configure its passphrase "
        "(SqliteStoreOptions::passphrase_file or passphrase_callback)"));
  }
  if (!recorded.has_value()) {
    CERTSTORE_ASSIGN_OR_RETURN(KdfParams fresh, NewKdfParams(iterations));
    CERTSTORE_ASSIGN_OR_RETURN(std::unique_ptr<KeyCipher> cipher,
                               KeyCipher::Derive(passphrase->value(), fresh));
    CERTSTORE_ASSIGN_OR_RETURN(
        recorded, RecordKdf(db, context, {fresh, cipher->CheckValue()}));
    if (recorded->params.salt == fresh.salt) {
      return cipher;
    }
  }
  CERTSTORE_ASSIGN_OR_RETURN(
      std::unique_ptr<KeyCipher> cipher,
      KeyCipher::Derive(passphrase->value(), recorded->params));
  const std::string check = cipher->CheckValue();
  if (check.size() != recorded->check.size() ||
      CRYPTO_memcmp(check.data(), recorded->check.data(), check.size()) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        context,
        ": wrong passphrase (it is not the one this file's keys are "
        "encrypted with)"));
  }
  return cipher;
}

}  // namespace certstore::sqlite_internal

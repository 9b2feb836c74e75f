#include "client/state_records.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/internal/directories.h"
#include "api/internal/posix_status.h"
#include "api/internal/unique_fd.h"
#include "certstore/status_macros.h"

namespace certstore::client_internal {
namespace {

constexpr size_t kMaxRecordBytes = 16 * 1024;
constexpr size_t kMaxCachedPaths = 1024;

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), size));
}

std::string Dump(const internal::Json& record) {
  return record.dump(-1, ' ', true, internal::Json::error_handler_t::replace);
}

}  // namespace

StateRecords::StateRecords(std::string store_name, const std::string& directory,
                           absl::string_view kind)
    : store_name_(std::move(store_name)),
      in_process_only_(store_name_ == "memory:"),
      kind_(kind) {
  if (in_process_only_) {
    return;
  }
  if (!directory.empty()) {
    directory_ = absl::StrCat(directory, "/", kind);
    return;
  }
  absl::StatusOr<std::string> state = internal::StateDirectory();
  if (state.ok()) {
    directory_ = absl::StrCat(*state, "/", kind);
  }
}

// The file name hashes store and key: any bytes, a fixed length.
std::string StateRecords::PathOf(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = paths_.find(key);
  if (it != paths_.end()) {
    return it->second;
  }
  if (paths_.size() >= kMaxCachedPaths) {
    paths_.clear();  // a client has a few aliases; this is not one of them
  }
  std::string path = absl::StrCat(
      directory_, "/",
      Sha256Hex(absl::StrCat(store_name_, std::string(1, '\0'), key)), ".json");
  paths_.emplace(key, path);
  return path;
}

std::optional<internal::Json> StateRecords::Read(absl::string_view key) {
  if (in_process_only_) {
    absl::MutexLock lock(&mu_);
    auto it = memory_.find(key);
    return it == memory_.end() ? std::nullopt
                               : internal::ParseJsonObject(it->second);
  }
  if (directory_.empty()) {
    return std::nullopt;
  }
  internal::UniqueFd fd(
      open(PathOf(key).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    return std::nullopt;
  }
  std::string text(kMaxRecordBytes, '\0');
  const ssize_t n = read(fd.get(), &text[0], text.size());
  if (n <= 0) {
    return std::nullopt;
  }
  text.resize(static_cast<size_t>(n));
  return internal::ParseJsonObject(text);
}

absl::Status StateRecords::Write(absl::string_view key,
                                 const internal::Json& record) {
  const std::string text = Dump(record);
  if (in_process_only_) {
    absl::MutexLock lock(&mu_);
    memory_[std::string(key)] = text;
    return absl::OkStatus();
  }
  if (directory_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no state directory to keep ", kind_,
                     " records in (set HOME or "
                     "XDG_STATE_HOME)"));
  }
  CERTSTORE_RETURN_IF_ERROR(internal::MakeDirectories(
      directory_, 0700, absl::StrCat(kind_, " records")));
  const std::string path = PathOf(key);
  // A unique temporary name (0600), so that writers in several threads or
  // processes never share one; the rename is atomic.
  std::string temp = absl::StrCat(path, ".XXXXXX");
  internal::UniqueFd fd(mkostemp(&temp[0], O_CLOEXEC));
  if (fd.get() < 0 ||
      write(fd.get(), text.data(), text.size()) !=
          static_cast<ssize_t>(text.size()) ||
      rename(temp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    unlink(temp.c_str());
    return internal::ErrnoStatus(saved, absl::StrCat(path, ": write"));
  }
  return absl::OkStatus();
}

void StateRecords::Remove(absl::string_view key) {
  if (in_process_only_) {
    absl::MutexLock lock(&mu_);
    memory_.erase(key);
    return;
  }
  if (!directory_.empty()) {
    unlink(PathOf(key).c_str());
  }
}

}  // namespace certstore::client_internal

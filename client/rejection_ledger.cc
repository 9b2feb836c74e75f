#include "client/rejection_ledger.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/internal/directories.h"
#include "api/internal/json.h"
#include "api/internal/posix_status.h"
#include "api/internal/unique_fd.h"
#include "certstore/status_macros.h"

namespace certstore::client_internal {
namespace {

constexpr size_t kMaxRecordBytes = 16 * 1024;
constexpr size_t kMaxReason = 512;

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), size));
}

}  // namespace

RejectionLedger::RejectionLedger(std::string store_name, std::string directory,
                                 absl::Duration first_window,
                                 absl::Duration max_window)
    : store_name_(std::move(store_name)),
      in_process_only_(store_name_ == "memory:"),
      directory_(std::move(directory)),
      first_window_(first_window),
      max_window_(std::max(max_window, first_window)) {
  if (directory_.empty() && !in_process_only_) {
    // Without a state directory (no HOME) nothing is recorded: a mint is
    // never blocked by a ledger that cannot be kept.
    absl::StatusOr<std::string> state = internal::StateDirectory();
    if (state.ok()) {
      directory_ = absl::StrCat(*state, "/rejections");
    }
  }
}

std::string RejectionLedger::PathOf(absl::string_view alias) const {
  return absl::StrCat(
      directory_, "/",
      Sha256Hex(absl::StrCat(store_name_, std::string(1, '\0'), alias)),
      ".json");
}

std::optional<Rejection> RejectionLedger::Read(absl::string_view alias) {
  if (in_process_only_) {
    absl::MutexLock lock(&mu_);
    auto it = memory_.find(alias);
    return it == memory_.end() ? std::nullopt
                               : std::optional<Rejection>(it->second);
  }
  if (directory_.empty()) {
    return std::nullopt;  // nowhere to look (no state directory)
  }
  internal::UniqueFd fd(
      open(PathOf(alias).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    return std::nullopt;
  }
  std::string text(kMaxRecordBytes, '\0');
  const ssize_t n = read(fd.get(), &text[0], text.size());
  if (n <= 0) {
    return std::nullopt;
  }
  text.resize(static_cast<size_t>(n));
  std::optional<internal::Json> json = internal::ParseJsonObject(text);
  if (!json.has_value()) {
    return std::nullopt;
  }
  Rejection r;
  r.alias = internal::JsonString(*json, "alias").value_or("");
  r.thumbprint = internal::JsonString(*json, "thumbprint").value_or("");
  r.reason = internal::JsonString(*json, "reason").value_or("");
  std::optional<int64_t> since =
      internal::JsonInteger(*json, "since", 0, INT64_MAX);
  std::optional<int64_t> until =
      internal::JsonInteger(*json, "until", 0, INT64_MAX);
  std::optional<int64_t> count = internal::JsonInteger(*json, "count", 1, 64);
  if (r.alias != alias || !since.has_value() || !until.has_value() ||
      !count.has_value()) {
    return std::nullopt;  // another alias's (a hash clash) or damaged
  }
  r.since = absl::FromUnixSeconds(*since);
  r.until = absl::FromUnixSeconds(*until);
  r.count = static_cast<int>(*count);
  return r;
}

std::optional<Rejection> RejectionLedger::Active(absl::string_view alias,
                                                 absl::Time now,
                                                 bool* recorded) {
  std::optional<Rejection> r = Read(alias);
  if (recorded != nullptr) {
    *recorded = r.has_value();
  }
  if (!r.has_value() || now >= r->until) {
    return std::nullopt;
  }
  return r;
}

absl::Status RejectionLedger::Record(absl::string_view alias,
                                     absl::string_view thumbprint,
                                     absl::string_view reason, absl::Time now) {
  std::optional<Rejection> previous = Read(alias);
  Rejection r;
  r.alias = std::string(alias);
  r.thumbprint = std::string(thumbprint);
  r.reason = std::string(reason.substr(0, kMaxReason));
  r.count = previous.has_value() ? std::min(previous->count + 1, 64) : 1;
  r.since = previous.has_value() ? previous->since : now;
  absl::Duration window = first_window_;
  for (int i = 1; i < r.count && window < max_window_; ++i) {
    window *= 2;
  }
  r.until = now + std::min(window, max_window_);
  if (in_process_only_) {
    absl::MutexLock lock(&mu_);
    memory_[std::string(alias)] = std::move(r);
    return absl::OkStatus();
  }
  if (directory_.empty()) {
    return absl::FailedPreconditionError(
        "no state directory to keep rejection records in");
  }
  CERTSTORE_RETURN_IF_ERROR(
      internal::MakeDirectories(directory_, 0700, "rejection records"));
  const std::string path = PathOf(alias);
  const std::string temp = absl::StrCat(path, ".", getpid(), ".tmp");
  const std::string text = internal::Json{
      {"alias", r.alias},
      {"thumbprint", r.thumbprint},
      {"reason", r.reason},
      {"since", absl::ToUnixSeconds(r.since)},
      {"until", absl::ToUnixSeconds(r.until)},
      {"count",
       r.count}}.dump(-1, ' ', true, internal::Json::error_handler_t::replace);
  internal::UniqueFd fd(
      open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
           0600));
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

void RejectionLedger::Clear(absl::string_view alias) {
  if (in_process_only_) {
    absl::MutexLock lock(&mu_);
    memory_.erase(alias);
    return;
  }
  if (!directory_.empty()) {
    unlink(PathOf(alias).c_str());
  }
}

}  // namespace certstore::client_internal

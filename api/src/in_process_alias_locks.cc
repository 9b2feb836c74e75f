#include <utility>

#include "absl/strings/str_cat.h"
#include "certstore/backend_author.h"

namespace certstore {

class InProcessAliasLocks::Held final : public AliasLock {
 public:
  Held(InProcessAliasLocks* owner, std::string alias)
      : owner_(owner), alias_(std::move(alias)) {}
  ~Held() override { owner_->Release(alias_); }

 private:
  InProcessAliasLocks* owner_;
  std::string alias_;
};

absl::StatusOr<std::unique_ptr<AliasLock>> InProcessAliasLocks::Acquire(
    absl::string_view alias, absl::Duration timeout,
    absl::string_view context) {
  std::string key(alias);
  absl::MutexLock lock(&mu_);
  auto is_free = [this, &key]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !held_.contains(key);
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&is_free), timeout)) {
    return absl::UnavailableError(
        absl::StrCat(context, ": mint lock still held by another caller after ",
                     absl::FormatDuration(timeout)));
  }
  held_.insert(key);
  return std::unique_ptr<AliasLock>(new Held(this, std::move(key)));
}

void InProcessAliasLocks::Release(const std::string& alias) {
  absl::MutexLock lock(&mu_);
  held_.erase(alias);
}

}  // namespace certstore

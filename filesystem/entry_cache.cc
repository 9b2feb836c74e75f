#include "filesystem/entry_cache.h"

#include <openssl/sha.h>

#include <algorithm>
#include <utility>

namespace certstore::filesystem_internal {

DecodedEntryCache::Digest DecodedEntryCache::DigestOf(
    absl::string_view content) {
  Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(content.data()), content.size(),
         digest.data());
  return digest;
}

std::shared_ptr<const Entry> DecodedEntryCache::Lookup(
    const std::string& dir, const std::string& file, const Digest& digest,
    const struct timespec& mtime) const {
  absl::MutexLock lock(&mu_);
  auto dir_it = dirs_.find(dir);
  if (dir_it == dirs_.end()) {
    return nullptr;
  }
  auto it = dir_it->second.find(file);
  if (it == dir_it->second.end() || it->second.digest != digest ||
      it->second.mtime.tv_sec != mtime.tv_sec ||
      it->second.mtime.tv_nsec != mtime.tv_nsec) {
    return nullptr;
  }
  return it->second.entry;
}

void DecodedEntryCache::Insert(const std::string& dir, const std::string& file,
                               const Digest& digest,
                               const struct timespec& mtime,
                               std::shared_ptr<const Entry> entry) {
  absl::MutexLock lock(&mu_);
  dirs_[dir][file] = Cached{digest, mtime, std::move(entry)};
}

void DecodedEntryCache::Retain(const std::string& dir,
                               const std::vector<std::string>& present) {
  absl::MutexLock lock(&mu_);
  auto dir_it = dirs_.find(dir);
  if (dir_it == dirs_.end() || dir_it->second.size() <= present.size()) {
    // Cheap in the common case; stale files are at most one more than the
    // present ones, and go at the next Retain after an Insert.
    return;
  }
  Files& files = dir_it->second;
  for (auto it = files.begin(); it != files.end();) {
    auto next = std::next(it);
    if (!std::binary_search(present.begin(), present.end(), it->first)) {
      files.erase(it);
    }
    it = next;
  }
  if (files.empty()) {
    dirs_.erase(dir_it);
  }
}

void DecodedEntryCache::Forget(const std::string& dir) {
  absl::MutexLock lock(&mu_);
  dirs_.erase(dir);
}

}  // namespace certstore::filesystem_internal

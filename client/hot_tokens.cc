#include "client/hot_tokens.h"

#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "certstore/clock.h"

namespace certstore::client_internal {
namespace {

struct Remembered {
  std::shared_ptr<const AccessToken> token;
  int64_t until_ns = 0;    // the client's clock
  int64_t recheck_ns = 0;  // real time (a client's clock may stand still)
  uint64_t generation = 0;
};

int64_t RealNow() { return Clock::System()->NowUnixNanos(); }

using ThreadTokens = absl::flat_hash_map<std::string, Remembered>;

// A thread's copies for every client it used (by serial), and the last one
// it used: most threads talk to one client.
struct ThreadCache {
  absl::flat_hash_map<uint64_t, ThreadTokens> by_client;
  uint64_t last_serial = 0;
  ThreadTokens* last = nullptr;

  ThreadTokens& For(uint64_t serial) {
    if (serial != last_serial || last == nullptr) {
      // Clients come and go; a thread's copies for dead ones are dropped
      // wholesale past a bound rather than tracked.
      if (by_client.size() >= 64 && !by_client.contains(serial)) {
        by_client.clear();
      }
      last = &by_client[serial];
      last_serial = serial;
    }
    return *last;
  }
};

ThreadCache& Local() {
  thread_local ThreadCache cache;
  return cache;
}

std::atomic<uint64_t> g_next_serial{1};

// At most this many scopes per thread and client: a caller with ever new
// scopes must not grow every thread's copy without end.
constexpr size_t kMaxScopesPerThread = 256;

}  // namespace

HotTokens::HotTokens()
    : serial_(g_next_serial.fetch_add(1, std::memory_order_relaxed)) {}

std::shared_ptr<const AccessToken> HotTokens::Lookup(absl::string_view scope,
                                                     int64_t now_ns) const {
  ThreadTokens& tokens = Local().For(serial_);
  auto it = tokens.find(scope);
  if (it == tokens.end() || it->second.generation != generation() ||
      now_ns >= it->second.until_ns || RealNow() >= it->second.recheck_ns) {
    return nullptr;
  }
  return it->second.token;
}

void HotTokens::Remember(absl::string_view scope,
                         std::shared_ptr<const AccessToken> token,
                         int64_t until_ns, uint64_t generation) const {
  ThreadTokens& tokens = Local().For(serial_);
  if (tokens.size() >= kMaxScopesPerThread && !tokens.contains(scope)) {
    tokens.clear();
  }
  tokens[scope] =
      Remembered{std::move(token), until_ns,
                 RealNow() + absl::ToInt64Nanoseconds(kRecheck), generation};
}

void HotTokens::CountHit() const {
  static std::atomic<size_t> next_stripe{0};
  thread_local const size_t stripe =
      next_stripe.fetch_add(1, std::memory_order_relaxed);
  stripes_[stripe % stripes_.size()].hits.fetch_add(1,
                                                    std::memory_order_relaxed);
}

int64_t HotTokens::hits() const {
  int64_t total = 0;
  for (const Stripe& stripe : stripes_) {
    total += stripe.hits.load(std::memory_order_relaxed);
  }
  return total;
}

}  // namespace certstore::client_internal

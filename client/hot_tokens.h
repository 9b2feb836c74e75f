// The token cache's fast path. A cached token is asked for far more often
// than anything changes, from many threads: served from a copy each thread
// keeps (a map by scope, no lock, no write to memory another thread reads,
// no key built per call), valid while the client's generation is unchanged
// and for at most kRecheck. Every change the client makes (a token stored,
// a binding evicted or replaced) bumps the generation, so the next call of
// each thread takes the full path once; what another process changes in
// the store (a binding deleted or rotated) is seen within kRecheck.
// Project-internal (TokenClient).
#ifndef CERTSTORE_CLIENT_HOT_TOKENS_H_
#define CERTSTORE_CLIENT_HOT_TOKENS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/token_client.h"

namespace certstore::client_internal {

class HotTokens {
 public:
  // How long a thread serves its copy before the full path looks again.
  static constexpr absl::Duration kRecheck = absl::Seconds(1);

  HotTokens();
  HotTokens(const HotTokens&) = delete;
  HotTokens& operator=(const HotTokens&) = delete;

  // The calling thread's token for `scope`, if it remembered one at the
  // current generation, `now_ns` (the client's clock, Unix nanoseconds) is
  // before the time it was remembered until, and less than kRecheck of
  // real time has passed since; null otherwise.
  std::shared_ptr<const AccessToken> Lookup(absl::string_view scope,
                                            int64_t now_ns) const;

  // Read before the full path looks at the cache; passed to Remember.
  uint64_t generation() const {
    return generation_.load(std::memory_order_acquire);
  }
  // For the calling thread: serve `token` for `scope` until `until_ns` (the
  // client's clock) and for kRecheck of real time, while the generation is
  // still `generation`.
  void Remember(absl::string_view scope,
                std::shared_ptr<const AccessToken> token, int64_t until_ns,
                uint64_t generation) const;
  // Every thread's copies are stale (after any change to tokens or
  // bindings).
  void Invalidate() { generation_.fetch_add(1, std::memory_order_acq_rel); }

  // Hits served here, counted per thread stripe (no shared counter line).
  void CountHit() const;
  int64_t hits() const;

 private:
  const uint64_t serial_;  // this cache among all clients, never reused
  std::atomic<uint64_t> generation_{1};
  struct alignas(64) Stripe {
    std::atomic<int64_t> hits{0};
  };
  mutable std::array<Stripe, 16> stripes_;
};

}  // namespace certstore::client_internal

#endif  // CERTSTORE_CLIENT_HOT_TOKENS_H_

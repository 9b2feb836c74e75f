// The seed of a randomized test loop: CERTSTORE_DRILL_SEED when set (to
// replay a run), else a random one. Loops print it with every failure.
#ifndef CERTSTORE_TESTS_SUPPORT_REPLAY_SEED_H_
#define CERTSTORE_TESTS_SUPPORT_REPLAY_SEED_H_

#include <cstdint>
#include <cstdlib>
#include <random>

namespace certstore {

inline uint32_t ReplaySeed() {
  static const uint32_t seed = [] {
    const char* fixed = std::getenv("CERTSTORE_DRILL_SEED");
    return fixed != nullptr
               ? static_cast<uint32_t>(std::strtoul(fixed, nullptr, 10))
               : std::random_device{}();
  }();
  return seed;
}

}  // namespace certstore

#endif  // CERTSTORE_TESTS_SUPPORT_REPLAY_SEED_H_

// StripedCounter: exact totals whether threads own a stripe or share the
// overflow one, and across threads that exit and hand their stripe on.
#include "certstore/observability.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "certstore/backend_author.h"

namespace certstore {
namespace {

// Starts `threads` threads together, each adding 1 `adds` times.
void AddFromThreads(StripedCounter& counter, int threads, int adds) {
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t) {
    running.emplace_back([&counter, adds] {
      for (int i = 0; i < adds; ++i) {
        counter.Add();
      }
    });
  }
  for (std::thread& thread : running) {
    thread.join();
  }
}

TEST(StripedCounterTest, StartsAtZeroAndAddsAnyAmount) {
  StripedCounter counter;
  EXPECT_EQ(counter.Value(), 0);
  counter.Add();
  counter.Add(41);
  counter.Add(-2);
  EXPECT_EQ(counter.Value(), 40);
}

// More live threads than owned stripes: the rest share one stripe and must
// not lose an add to each other or to an owner.
TEST(StripedCounterTest, ExactWithMoreThreadsThanStripes) {
  StripedCounter counter;
  AddFromThreads(counter, 48, 20000);
  EXPECT_EQ(counter.Value(), 48 * 20000);
}

// Exited threads' stripes are reused by new threads, which continue from
// what the previous owner left.
TEST(StripedCounterTest, ExactAcrossThreadsThatComeAndGo) {
  StripedCounter counter;
  StripedCounter other;
  for (int round = 0; round < 10; ++round) {
    AddFromThreads(counter, 8, 1000);
    AddFromThreads(other, 3, 7);
  }
  EXPECT_EQ(counter.Value(), 10 * 8 * 1000);
  EXPECT_EQ(other.Value(), 10 * 3 * 7);
}

}  // namespace
}  // namespace certstore

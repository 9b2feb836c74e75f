// Unit tests for memory/read_epochs.h: the writer waits for every read
// section that began before it, and for nothing else.
#include "memory/read_epochs.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace certstore::memory_internal {
namespace {

using Clock = std::chrono::steady_clock;

// Polls `done` every millisecond for at most `timeout`. Bounded in time and
// in iterations.
bool WaitUntil(const std::function<bool()>& done,
               std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  const int64_t max_polls = timeout.count() + 1;
  for (int64_t i = 0; i < max_polls; ++i) {
    if (done()) {
      return true;
    }
    if (Clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

// Holds `done` false for the whole of `duration`.
bool StaysFalseFor(const std::atomic<bool>& flag,
                   std::chrono::milliseconds duration) {
  return !WaitUntil([&flag] { return flag.load(); }, duration);
}

// Runs WaitForReaders on its own thread. If it never returns, the thread is
// detached (the state it uses is shared, so it stays valid) and the test
// fails instead of hanging.
class WriterThread {
 public:
  explicit WriterThread(std::shared_ptr<ReadEpochs> epochs)
      : state_(std::make_shared<State>()) {
    state_->epochs = std::move(epochs);
    thread_ = std::thread([state = state_] {
      state->started.store(true);
      state->epochs->WaitForReaders();
      state->done.store(true);
    });
  }
  WriterThread(const WriterThread&) = delete;
  WriterThread& operator=(const WriterThread&) = delete;
  ~WriterThread() {
    if (WaitUntil([this] { return state_->done.load(); },
                  std::chrono::milliseconds(1000))) {
      thread_.join();
    } else {
      ADD_FAILURE() << "WaitForReaders did not return";
      thread_.detach();
    }
  }

  bool started() const { return state_->started.load(); }
  const std::atomic<bool>& done() const { return state_->done; }

 private:
  struct State {
    std::shared_ptr<ReadEpochs> epochs;
    std::atomic<bool> started{false};
    std::atomic<bool> done{false};
  };
  std::shared_ptr<State> state_;
  std::thread thread_;
};

TEST(ReadEpochsTest, WaitForReadersReturnsWithNoReaders) {
  auto epochs = std::make_shared<ReadEpochs>();
  WriterThread writer(epochs);
  EXPECT_TRUE(WaitUntil([&writer] { return writer.done().load(); },
                        std::chrono::milliseconds(500)));
}

TEST(ReadEpochsTest, WaitForReadersReturnsAfterSectionsEnded) {
  auto epochs = std::make_shared<ReadEpochs>();
  for (int i = 0; i < 5; ++i) {
    {
      ReadEpochs::Section outer = epochs->Enter();
      ReadEpochs::Section nested = epochs->Enter();
    }
    WriterThread writer(epochs);
    EXPECT_TRUE(WaitUntil([&writer] { return writer.done().load(); },
                          std::chrono::milliseconds(500)))
        << "round " << i;
  }
}

// A reader thread that holds one section until told to leave (or a bound
// passes, so that it never outlives the test by much).
class HeldSection {
 public:
  explicit HeldSection(std::shared_ptr<ReadEpochs> epochs)
      : state_(std::make_shared<State>()) {
    thread_ = std::thread([epochs = std::move(epochs), state = state_] {
      ReadEpochs::Section section = epochs->Enter();
      state->entered.store(true);
      WaitUntil([&state] { return state->release.load(); },
                std::chrono::milliseconds(1500));
      state->left.store(true);
    });
  }
  HeldSection(const HeldSection&) = delete;
  HeldSection& operator=(const HeldSection&) = delete;
  ~HeldSection() {
    Release();
    thread_.join();
  }

  bool WaitEntered() {
    return WaitUntil([this] { return state_->entered.load(); },
                     std::chrono::milliseconds(1000));
  }
  void Release() { state_->release.store(true); }
  bool left() const { return state_->left.load(); }

 private:
  struct State {
    std::atomic<bool> entered{false};
    std::atomic<bool> release{false};
    std::atomic<bool> left{false};
  };
  std::shared_ptr<State> state_;
  std::thread thread_;
};

TEST(ReadEpochsTest, WaitForReadersBlocksWhileAnEarlierSectionIsAlive) {
  auto epochs = std::make_shared<ReadEpochs>();
  HeldSection reader(epochs);
  ASSERT_TRUE(reader.WaitEntered());

  WriterThread writer(epochs);
  ASSERT_TRUE(WaitUntil([&writer] { return writer.started(); },
                        std::chrono::milliseconds(1000)));
  EXPECT_TRUE(StaysFalseFor(writer.done(), std::chrono::milliseconds(50)))
      << "WaitForReaders returned while a section was alive";
  EXPECT_FALSE(reader.left());

  reader.Release();
  EXPECT_TRUE(WaitUntil([&writer] { return writer.done().load(); },
                        std::chrono::milliseconds(1000)))
      << "WaitForReaders did not return after the section ended";
  EXPECT_TRUE(reader.left());
}

TEST(ReadEpochsTest, WaitForReadersWaitsForEverySection) {
  auto epochs = std::make_shared<ReadEpochs>();
  HeldSection first(epochs);
  HeldSection second(epochs);
  ASSERT_TRUE(first.WaitEntered());
  ASSERT_TRUE(second.WaitEntered());

  WriterThread writer(epochs);
  first.Release();
  EXPECT_TRUE(StaysFalseFor(writer.done(), std::chrono::milliseconds(50)))
      << "WaitForReaders returned while the second section was alive";

  second.Release();
  EXPECT_TRUE(WaitUntil([&writer] { return writer.done().load(); },
                        std::chrono::milliseconds(1000)));
}

struct Payload {
  explicit Payload(uint64_t v) : value(v) {}
  std::atomic<uint64_t> value;
};

constexpr uint64_t kPoison = 0xdeadbeefdeadbeefULL;

TEST(ReadEpochsTest, ReadersNeverSeeAFreedObject) {
  constexpr int kReaders = 4;
  constexpr uint64_t kReplacements = 2000;
  constexpr int kReadsPerSection = 1024;
  constexpr std::chrono::milliseconds kTimeLimit(1500);
  ReadEpochs epochs;
  std::atomic<Payload*> current{new Payload(0)};
  std::atomic<bool> stop{false};
  std::atomic<int> readers_running{0};
  std::atomic<int> poisoned{0};
  std::atomic<int> went_back{0};
  std::vector<int64_t> sections(kReaders, 0);

  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      const Clock::time_point deadline = Clock::now() + kTimeLimit;
      uint64_t last = 0;
      for (int64_t i = 0; i < 10'000'000 && !stop.load(); ++i) {
        {
          ReadEpochs::Section section = epochs.Enter();
          Payload* p = current.load(std::memory_order_acquire);
          // Keep reading for a while to widen the window for the writer.
          for (int k = 0; k < kReadsPerSection; ++k) {
            const uint64_t value = p->value.load(std::memory_order_relaxed);
            if (value == kPoison) {
              poisoned.fetch_add(1);
            } else if (value < last) {
              went_back.fetch_add(1);
            } else {
              last = value;
            }
          }
        }
        if (++sections[r] == 1) {
          readers_running.fetch_add(1);
        }
        // Outside any section: let the writer run on a loaded machine.
        std::this_thread::yield();
        if ((i & 255) == 0 && Clock::now() >= deadline) {
          break;
        }
      }
    });
  }

  std::atomic<uint64_t> replaced{0};
  std::thread writer([&] {
    const Clock::time_point deadline = Clock::now() + kTimeLimit;
    WaitUntil([&] { return readers_running.load() == kReaders; },
              std::chrono::milliseconds(500));
    for (uint64_t i = 1; i <= kReplacements; ++i) {
      Payload* old =
          current.exchange(new Payload(i), std::memory_order_acq_rel);
      epochs.WaitForReaders();
      old->value.store(kPoison, std::memory_order_relaxed);
      delete old;
      replaced.store(i);
      if (Clock::now() >= deadline) {
        break;
      }
    }
  });

  writer.join();
  stop.store(true);
  for (std::thread& reader : readers) {
    reader.join();
  }
  delete current.load();

  EXPECT_EQ(replaced.load(), kReplacements) << "writer ran out of time";
  EXPECT_EQ(poisoned.load(), 0) << "a reader saw a freed object";
  EXPECT_EQ(went_back.load(), 0)
      << "a reader saw an older object after a newer one";
  for (int r = 0; r < kReaders; ++r) {
    EXPECT_GT(sections[r], 0) << "reader " << r;
  }
}

}  // namespace
}  // namespace certstore::memory_internal

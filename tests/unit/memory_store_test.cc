// MemoryStore's own mechanics, beyond the conformance suite: the alias
// table growing, shrinking and reusing deleted slots, aliases too long for
// a node's inline bytes, Find results that outlive the node they came from
// (and pin nothing else),
// and lookups racing a writer that rebuilds the table.
#include "certstore/memory_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certstore/backend_author.h"
#include "certstore/clock.h"
#include "certstore/entry.h"
#include "certstore/testing/test_pki.h"

namespace certstore::testing {
namespace {

absl::Time NotBefore() { return TestNow() - absl::Hours(24); }
absl::Time NotAfter() { return TestNow() + absl::Hours(24 * 30); }

// `source`'s chain and key under `alias` (issuing thousands of certificates
// would dominate the test's time).
std::shared_ptr<const Entry> Renamed(const Entry& source, std::string alias) {
  EntryParts parts;
  parts.alias = std::move(alias);
  parts.chain_der = source.chain_der();
  parts.key = source.key();
  parts.created_at = source.created_at();
  absl::StatusOr<std::shared_ptr<const Entry>> entry = RestoreEntry(
      std::move(parts),
      LeafFacts{source.not_before(), source.not_after(), source.thumbprint()});
  EXPECT_TRUE(entry.ok()) << entry.status();
  return entry.ok() ? *std::move(entry) : nullptr;
}

class MemoryStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TestPki pki;
    template_entry_ = new std::shared_ptr<const Entry>(pki.MakeEntry(
        "template", PoolKey(KeyType::kEcP256), NotBefore(), NotAfter()));
  }
  static void TearDownTestSuite() { delete template_entry_; }

  MemoryStoreTest() : clock_(TestNow()) {
    MemoryStoreOptions options;
    options.clock = &clock_;
    store_ = NewMemoryStore(options);
  }

  std::shared_ptr<const Entry> EntryFor(std::string alias) const {
    return Renamed(**template_entry_, std::move(alias));
  }

  // Puts an entry for each alias; returns them in order.
  std::vector<std::shared_ptr<const Entry>> PutAll(
      const std::vector<std::string>& aliases) {
    std::vector<std::shared_ptr<const Entry>> entries;
    for (const std::string& alias : aliases) {
      entries.push_back(EntryFor(alias));
      EXPECT_TRUE(store_->Put(entries.back()).ok()) << alias;
    }
    return entries;
  }

  // Whether Find(alias) returns exactly `expected`.
  ::testing::AssertionResult FindsExactly(const std::string& alias,
                                          const Entry* expected) {
    absl::StatusOr<std::shared_ptr<const Entry>> found = store_->Find(alias);
    if (!found.ok()) {
      return ::testing::AssertionFailure() << alias << ": " << found.status();
    }
    if (found->get() != expected) {
      return ::testing::AssertionFailure() << alias << ": another entry";
    }
    return ::testing::AssertionSuccess();
  }

  static std::shared_ptr<const Entry>* template_entry_;
  ManualClock clock_;
  std::unique_ptr<CertStore> store_;
};

std::shared_ptr<const Entry>* MemoryStoreTest::template_entry_ = nullptr;

std::vector<std::string> Aliases(const std::string& prefix, int count) {
  std::vector<std::string> aliases;
  for (int i = 0; i < count; ++i) {
    aliases.push_back(absl::StrCat(prefix, i));
  }
  return aliases;
}

TEST_F(MemoryStoreTest, GrowsPastManyAliasesAndFindsEveryOne) {
  const std::vector<std::string> aliases = Aliases("grow-", 5000);
  const auto entries = PutAll(aliases);
  for (size_t i = 0; i < aliases.size(); ++i) {
    ASSERT_TRUE(FindsExactly(aliases[i], entries[i].get()));
  }
  absl::StatusOr<std::vector<EntryInfo>> listed = store_->List({});
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), aliases.size());
  EXPECT_EQ(store_->Find("grow-5000").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(MemoryStoreTest, ShrinksAfterDeletesAndKeepsTheRest) {
  const std::vector<std::string> aliases = Aliases("shrink-", 3000);
  const auto entries = PutAll(aliases);
  for (size_t i = 10; i < aliases.size(); ++i) {
    absl::StatusOr<int> removed = store_->DeleteAllForAlias(aliases[i]);
    ASSERT_TRUE(removed.ok()) << removed.status();
    ASSERT_EQ(*removed, 1) << aliases[i];
  }
  for (size_t i = 0; i < aliases.size(); ++i) {
    if (i < 10) {
      EXPECT_TRUE(FindsExactly(aliases[i], entries[i].get()));
    } else {
      EXPECT_EQ(store_->Find(aliases[i]).status().code(),
                absl::StatusCode::kNotFound)
          << aliases[i];
    }
  }
  absl::StatusOr<std::vector<EntryInfo>> listed = store_->List({});
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 10u);
}

// Deleted slots are reused and dropped by rebuilds; a long churn of put and
// delete over the same aliases must never lose or resurrect one.
TEST_F(MemoryStoreTest, ChurnOverTheSameAliasesStaysConsistent) {
  const std::vector<std::string> stable = Aliases("stable-", 50);
  const auto stable_entries = PutAll(stable);
  const std::vector<std::string> churned = Aliases("churn-", 200);
  for (int round = 0; round < 25; ++round) {
    const auto entries = PutAll(churned);
    for (size_t i = 0; i < churned.size(); ++i) {
      ASSERT_TRUE(FindsExactly(churned[i], entries[i].get()))
          << "round " << round;
    }
    for (size_t i = 0; i < churned.size(); i += (round % 2 == 0 ? 1 : 2)) {
      ASSERT_TRUE(store_->DeleteAllForAlias(churned[i]).ok());
      ASSERT_EQ(store_->Find(churned[i]).status().code(),
                absl::StatusCode::kNotFound)
          << "round " << round;
    }
  }
  for (size_t i = 0; i < stable.size(); ++i) {
    EXPECT_TRUE(FindsExactly(stable[i], stable_entries[i].get()));
  }
}

// Nodes keep up to 78 alias bytes inline (30 in the node's first cache
// line); longer aliases live out of line. Aliases that share a prefix up to
// either boundary must still be told apart.
TEST_F(MemoryStoreTest, AliasesAroundTheInlineLengthAreDistinct) {
  std::vector<std::string> aliases;
  for (size_t length : {29, 30, 31, 77, 78, 79, 80, 200, 1024}) {
    aliases.push_back(std::string(length - 1, 'a') + "x");
    aliases.push_back(std::string(length - 1, 'a') + "y");
  }
  const auto entries = PutAll(aliases);
  for (size_t i = 0; i < aliases.size(); ++i) {
    ASSERT_TRUE(FindsExactly(aliases[i], entries[i].get()))
        << aliases[i].size() << " bytes";
  }
  EXPECT_EQ(store_->Find(std::string(79, 'a')).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<EntryInfo>> listed = store_->List({});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), aliases.size());
  for (const EntryInfo& info : *listed) {
    EXPECT_EQ(info.alias.back() == 'x' || info.alias.back() == 'y', true)
        << info.alias;
  }
}

// A result holds its own entry: it stays whole after the alias is replaced
// or deleted, and the store moves on without it.
TEST_F(MemoryStoreTest, ResultOutlivesReplacementAndDeletion) {
  const std::shared_ptr<const Entry> first = EntryFor("kept-client");
  ASSERT_TRUE(store_->Put(first).ok());
  absl::StatusOr<std::shared_ptr<const Entry>> held =
      store_->Find("kept-client");
  ASSERT_TRUE(held.ok()) << held.status();

  // A newer entry for the alias replaces the node the result came from.
  TestPki pki;
  const std::shared_ptr<const Entry> newer =
      pki.MakeEntry("kept-client", PoolKey(KeyType::kEcP256, 1), NotBefore(),
                    NotAfter() + absl::Hours(1));
  ASSERT_TRUE(store_->Put(newer).ok());
  EXPECT_TRUE(FindsExactly("kept-client", newer.get()));

  absl::StatusOr<int> removed = store_->DeleteAllForAlias("kept-client");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 2);
  EXPECT_EQ(store_->Find("kept-client").status().code(),
            absl::StatusCode::kNotFound);

  // Drop every other reference: the held result alone keeps it alive.
  const std::string thumbprint = first->thumbprint();
  const Entry* held_entry = held->get();
  EXPECT_EQ(held_entry, first.get());
  store_.reset();
  EXPECT_EQ((*held)->alias(), "kept-client");
  EXPECT_EQ((*held)->thumbprint(), thumbprint);
  EXPECT_TRUE(ProbeEntryKey(**held).ok());
}

// A held result pins its own entry only, not the alias's other entries:
// once deleted, they go when their last outside reference does.
TEST_F(MemoryStoreTest, ResultDoesNotPinOtherEntriesOfItsAlias) {
  std::shared_ptr<const Entry> older = EntryFor("pair-client");
  TestPki pki;
  const std::shared_ptr<const Entry> newer =
      pki.MakeEntry("pair-client", PoolKey(KeyType::kEcP256, 1), NotBefore(),
                    NotAfter() + absl::Hours(1));
  ASSERT_TRUE(store_->Put(older).ok());
  ASSERT_TRUE(store_->Put(newer).ok());
  absl::StatusOr<std::shared_ptr<const Entry>> held =
      store_->Find("pair-client");
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_EQ(held->get(), newer.get());

  absl::StatusOr<int> removed = store_->DeleteAllForAlias("pair-client");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 2);
  const std::weak_ptr<const Entry> older_watch = older;
  older.reset();
  EXPECT_TRUE(older_watch.expired());
  EXPECT_EQ((*held)->thumbprint(), newer->thumbprint());
}

// Readers never miss an alias that stays in the store while a writer
// inserts and deletes enough others to rebuild the table many times over.
TEST_F(MemoryStoreTest, LookupsSurviveTableRebuilds) {
  const std::vector<std::string> stable = Aliases("steady-", 64);
  const auto stable_entries = PutAll(stable);
  const std::vector<std::string> churned = Aliases("wave-", 2000);
  std::vector<std::shared_ptr<const Entry>> churn_entries;
  for (const std::string& alias : churned) {
    churn_entries.push_back(EntryFor(alias));
  }

  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::atomic<long> lookups{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::seconds(60);
      for (size_t i = t; !stop.load() && i < 50'000'000; ++i) {
        const size_t k = i % stable.size();
        absl::StatusOr<std::shared_ptr<const Entry>> found =
            store_->Find(stable[k]);
        if (!found.ok() || found->get() != stable_entries[k].get()) {
          wrong.fetch_add(1);
        }
        lookups.fetch_add(1, std::memory_order_relaxed);
        if (i % 1024 == 0 && std::chrono::steady_clock::now() > deadline) {
          break;
        }
      }
    });
  }
  for (int wave = 0; wave < 5; ++wave) {
    for (const auto& entry : churn_entries) {
      ASSERT_TRUE(store_->Put(entry).ok());
    }
    for (const std::string& alias : churned) {
      ASSERT_TRUE(store_->DeleteAllForAlias(alias).ok());
    }
  }
  stop.store(true);
  for (std::thread& reader : readers) {
    reader.join();
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(lookups.load(), 0);
}

}  // namespace
}  // namespace certstore::testing

// SqliteStore beyond the conformance suite: persistence across reopen, the
// query plan, connection settings, damaged rows, options, busy budgets.
#include "certstore/sqlite_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/testing/failing_key.h"
#include "certstore/testing/status_matchers.h"
#include "sqlite/connection_internal.h"
#include "sqlite/row_codec_internal.h"
#include "tests/sqlite/sqlite_test_util.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class SqliteStoreTest : public SqliteFixture {};

// Flips one byte of the stored key; the row digest notices.
void FlipKeyByte(sqlite_internal::StoredRow& row) {
  row.key_der[row.key_der.size() / 2] ^= 0x40;
}

TEST_F(SqliteStoreTest, EverythingPutIsFoundAfterReopen) {
  std::vector<std::shared_ptr<const Entry>> entries = {
      Fresh("ec#att=0", 0), Fresh("rsa#att=0", 0, KeyType::kRsa2048),
      Fresh(std::string("nul\0alias", 9), 1), Fresh("two#att=0", 2),
      Fresh("two#att=0", 3, KeyType::kEcP256, kOneWeek + absl::Hours(1))};
  {
    auto store = Open();
    for (const auto& entry : entries) {
      ASSERT_OK(store->Put(entry));
    }
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (size_t i : {0, 1, 2, 4}) {
    const Entry& put = *entries[i];
    auto found = store->Find(put.alias());
    ASSERT_OK(found);
    EXPECT_EQ((*found)->thumbprint(), put.thumbprint());
    EXPECT_EQ((*found)->chain_der(), put.chain_der());
    EXPECT_EQ((*found)->metadata(), put.metadata());
    EXPECT_EQ((*found)->created_at(), put.created_at());
    EXPECT_EQ((*found)->not_before(), put.not_before());
    EXPECT_EQ((*found)->not_after(), put.not_after());
    EXPECT_EQ((*found)->key()->algorithm(), put.key()->algorithm());
    EXPECT_OK(store->ProbeKey(**found));
  }
  EXPECT_THAT(store->List({}), IsOkAndHolds(SizeIs(entries.size())));
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

TEST_F(SqliteStoreTest, NameIsTheSchemeAndTheAbsolutePath) {
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(chdir(dir_.path().c_str()), 0);
  auto store = OpenSqliteStore("./sub/../relative.db");
  ASSERT_EQ(chdir(cwd), 0);
  // sub/ does not exist: the path is normalised before use.
  ASSERT_OK(store);
  EXPECT_EQ((*store)->Name(), "sqlite:" + FileIn(dir_, "relative.db"));
}

TEST_F(SqliteStoreTest, AHeldEntryIsServedWithoutDecodingItAgain) {
  auto store = Open();
  ASSERT_OK(store->Put(Fresh("held#att=0")));
  auto first = store->Find("held#att=0");
  ASSERT_OK(first);
  auto second = store->Find("held#att=0");
  ASSERT_OK(second);
  EXPECT_EQ(first->get(), second->get());
  // Damage the stored key behind the store's back: while the entry is held
  // the row is not decoded again; once released it is, and fails.
  EditRow(path_, ReadAllRows(path_)[0].id, FlipKeyByte, /*fix_digest=*/false);
  EXPECT_OK(store->Find("held#att=0"));
  first->reset();
  second->reset();
  EXPECT_THAT(store->Find("held#att=0"), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(SqliteStoreTest, FindIsOneSeekOnTheAliasIndex) {
  ASSERT_NE(Open(), nullptr);
  auto connection = RawConnection(path_);
  ASSERT_NE(connection, nullptr);
  static const std::string* const explain = new std::string(
      absl::StrCat("EXPLAIN QUERY PLAN ", sqlite_internal::FindRowsSql()));
  auto plan = connection->Prepare(explain->c_str());
  ASSERT_OK(plan);
  std::string details;
  while (true) {
    auto more = plan->Step();
    ASSERT_OK(more);
    if (!*more) {
      break;
    }
    absl::StrAppend(&details, plan->Text(3), "\n");
  }
  EXPECT_THAT(details, HasSubstr("SEARCH entries USING INDEX entries_by_alias "
                                 "(alias=? AND not_after>?)"));
  // The index order is the result order: no sort step.
  EXPECT_THAT(details, ::testing::Not(HasSubstr("TEMP B-TREE")));
}

TEST_F(SqliteStoreTest, ConnectionsRunWithTheHardeningSettings) {
  ASSERT_NE(Open(), nullptr);
  auto connection = sqlite_internal::Connection::Open(
      path_, sqlite_internal::Journal::kWal,
      std::chrono::steady_clock::now() + std::chrono::seconds(5));
  ASSERT_OK(connection);
  sqlite_internal::Connection& c = **connection;
  EXPECT_THAT(c.QueryText("PRAGMA journal_mode"), IsOkAndHolds("wal"));
  EXPECT_THAT(c.QueryText("PRAGMA synchronous"), IsOkAndHolds("2"));  // FULL
  EXPECT_THAT(c.QueryText("PRAGMA secure_delete"), IsOkAndHolds("1"));
  EXPECT_THAT(c.QueryText("PRAGMA trusted_schema"), IsOkAndHolds("0"));
  EXPECT_THAT(c.QueryText("PRAGMA mmap_size"), IsOkAndHolds("0"));
  int defensive = -1;
  sqlite3_db_config(c.raw(), SQLITE_DBCONFIG_DEFENSIVE, -1, &defensive);
  EXPECT_EQ(defensive, 1);
  // Defensive mode refuses to corrupt the schema on purpose.
  EXPECT_FALSE(c.Exec("PRAGMA writable_schema=ON; "
                      "UPDATE sqlite_schema SET sql = 'x' WHERE 0")
                   .ok());
}

TEST_F(SqliteStoreTest, RollbackJournalOptionKeepsTheFileOutOfWal) {
  SqliteStoreOptions options = Options();
  options.journal = SqliteJournal::kRollback;
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Put(Fresh("rb#att=0")));
  auto connection = RawConnection(path_);
  ASSERT_NE(connection, nullptr);
  EXPECT_EQ(connection->journal_mode(), "delete");
}

TEST_F(SqliteStoreTest, AFoundEntryCanBeStoredElsewhere) {
  auto entry = Fresh("copy#att=0", 0, KeyType::kRsa2048);
  ASSERT_OK(Open()->Put(entry));
  auto found = Open()->Find("copy#att=0");  // decoded from the row
  ASSERT_OK(found);
  SqliteStoreOptions other = Options();
  other.path = FileIn(dir_, "other.db");
  auto copy = OpenOrDie(other);
  ASSERT_NE(copy, nullptr);
  ASSERT_OK(copy->Put(*found));
  EXPECT_EQ(ReadAllRows(other.path)[0].key_der, ReadAllRows(path_)[0].key_der);
  auto exported = (*found)->key()->ExportPkcs8Der();
  ASSERT_OK(exported);
  EXPECT_EQ(*exported, *entry->key()->ExportPkcs8Der());
}

// ---------------------------------------------------------- damaged rows

TEST_F(SqliteStoreTest, DamagedNewestRowFallsBackToAnOlderServableOne) {
  auto store = Open();
  auto older = Fresh("fb#att=0", 0);
  auto newer =
      Fresh("fb#att=0", 1, KeyType::kEcP256, kOneWeek + absl::Hours(5));
  auto other = Fresh("other#att=0", 2);
  for (const auto& e : {older, newer, other}) {
    ASSERT_OK(store->Put(e));
  }
  store.reset();  // forget held entries: the rows must be decoded
  for (const auto& row : ReadAllRows(path_)) {
    if (row.thumbprint == newer->thumbprint()) {
      EditRow(path_, row.id, FlipKeyByte, /*fix_digest=*/false);
    }
  }
  store = Open();
  auto found = store->Find("fb#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), older->thumbprint());
  EXPECT_OK(store->Find("other#att=0"));
}

TEST_F(SqliteStoreTest, AliasWithOnlyDamagedRowsIsDataLossNamingRowAndAlias) {
  {
    auto store = Open();
    ASSERT_OK(store->Put(Fresh("broken#att=0")));
    ASSERT_OK(store->Put(Fresh("fine#att=0", 1)));
  }
  const int64_t id = ReadAllRows(path_)[0].id;
  EditRow(path_, id, FlipKeyByte, /*fix_digest=*/false);
  auto store = Open();
  EXPECT_THAT(
      store->Find("broken#att=0"),
      StatusIs(absl::StatusCode::kDataLoss,
               AllOf(HasSubstr(store->Name()), HasSubstr("broken#att=0"),
                     HasSubstr(absl::StrCat("row ", id)))));
  EXPECT_OK(store->Find("fine#att=0"));
  EXPECT_EQ(IntegrityCheck(path_), "ok");  // the database itself is sound
}

TEST_F(SqliteStoreTest, TruncatedKeyIsDataLossEvenWhenTheDigestIsRight) {
  {
    auto store = Open();
    ASSERT_OK(store->Put(Fresh("short-key#att=0")));
  }
  EditRow(
      path_, ReadAllRows(path_)[0].id,
      [](sqlite_internal::StoredRow& row) { row.key_der.resize(20); },
      /*fix_digest=*/true);
  auto store = Open();
  EXPECT_THAT(store->Find("short-key#att=0"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("PKCS#8")));
}

TEST_F(SqliteStoreTest, AlteredCertificateIsDataLossEvenWhenTheDigestIsRight) {
  {
    auto store = Open();
    ASSERT_OK(store->Put(Fresh("bad-cert#att=0")));
  }
  EditRow(
      path_, ReadAllRows(path_)[0].id,
      [](sqlite_internal::StoredRow& row) { row.chain[40] ^= 0x01; },
      /*fix_digest=*/true);
  auto store = Open();
  EXPECT_THAT(store->Find("bad-cert#att=0"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("thumbprint")));
}

TEST_F(SqliteStoreTest, ListNeverDecodesKeys) {
  auto entry = Fresh("garbage-key#att=0");
  {
    auto store = Open();
    ASSERT_OK(store->Put(entry));
  }
  // A key that no decoder accepts, in an otherwise consistent row.
  EditRow(
      path_, ReadAllRows(path_)[0].id,
      [](sqlite_internal::StoredRow& row) { row.key_der = "not a key"; },
      /*fix_digest=*/true);
  auto store = Open();
  auto listed = store->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].thumbprint, entry->thumbprint());
  EXPECT_EQ((*listed)[0].key_algorithm, "EC-P256");
  EXPECT_EQ((*listed)[0].key_location, "software");
  EXPECT_EQ((*listed)[0].chain_length, 2u);
  EXPECT_THAT(store->Find("garbage-key#att=0"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(SqliteStoreTest, ListStillListsDamagedRowsAndSaysSo) {
  {
    auto store = Open();
    ASSERT_OK(store->Put(Fresh("a#att=0", 0)));
    ASSERT_OK(store->Put(Fresh("b#att=0", 1)));
  }
  const int64_t id = ReadAllRows(path_)[0].id;
  EditRow(path_, id, FlipKeyByte, /*fix_digest=*/false);
  auto listed = Open()->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(2));
  EXPECT_THAT((*listed)[0].key_location,
              AllOf(HasSubstr("corrupt"), HasSubstr(absl::StrCat("row ", id))));
  EXPECT_EQ((*listed)[1].key_location, "software");
}

TEST_F(SqliteStoreTest, DeleteRemovesDamagedRowsToo) {
  {
    auto store = Open();
    ASSERT_OK(store->Put(Fresh("del#att=0")));
  }
  EditRow(path_, ReadAllRows(path_)[0].id, FlipKeyByte, false);
  auto store = Open();
  EXPECT_THAT(store->DeleteAllForAlias("del#att=0"), IsOkAndHolds(1));
  EXPECT_THAT(store->Find("del#att=0"), StatusIs(absl::StatusCode::kNotFound));
}

// ------------------------------------------------------------ bad input

TEST_F(SqliteStoreTest, UnexportableKeyIsRefusedAndTheStoreUnchanged) {
  auto store = Open();
  auto key = std::make_shared<UnexportableKey>(PoolKey(KeyType::kEcP256, 4));
  LeafOptions leaf;
  leaf.not_before = clock_.Now() - absl::Hours(1);
  leaf.not_after = clock_.Now() + kOneWeek;
  EntryParts parts;
  parts.alias = "token#att=0";
  parts.chain_der = Pki().IssueChain(*key, leaf);
  parts.key = key;
  auto entry = Entry::Create(std::move(parts));
  ASSERT_OK(entry);
  EXPECT_THAT(
      store->Put(*entry),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("token#att=0"), HasSubstr("cannot be exported"),
                     HasSubstr("pkcs11:token=test"))));
  EXPECT_THAT(store->List({}), IsOkAndHolds(SizeIs(0)));
}

TEST_F(SqliteStoreTest, BadOptionsAreInvalidArgumentsAndCreateNothing) {
  struct Case {
    const char* option;
    void (*mutate)(SqliteStoreOptions&);
  };
  const Case cases[] = {
      {"path", [](SqliteStoreOptions& o) { o.path.clear(); }},
      {"busy_budget",
       [](SqliteStoreOptions& o) { o.busy_budget = absl::ZeroDuration(); }},
      {"lease_ttl",
       [](SqliteStoreOptions& o) { o.lease_ttl = absl::Milliseconds(10); }},
      {"pbkdf2_iterations",
       [](SqliteStoreOptions& o) { o.pbkdf2_iterations = 1000; }},
      {"passphrase_file",
       [](SqliteStoreOptions& o) {
         o.passphrase_file = "/nonexistent";
         o.passphrase_callback = [] {
           return absl::StatusOr<std::string>("x");
         };
       }},
  };
  for (const Case& c : cases) {
    SqliteStoreOptions options = Options();
    c.mutate(options);
    EXPECT_THAT(OpenSqliteStore(options),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("sqlite:"), HasSubstr(c.option))))
        << c.option;
    EXPECT_NE(access(path_.c_str(), F_OK), 0) << c.option;
  }
}

// ------------------------------------------------------------- busy

TEST_F(SqliteStoreTest, WriteLockHeldPastTheBudgetIsUnavailableNotAHang) {
  SqliteStoreOptions options = Options();
  options.busy_budget = absl::Milliseconds(300);
  auto store = OpenOrDie(options);
  ASSERT_OK(store->Put(Fresh("before#att=0")));
  auto other = RawConnection(path_);
  ASSERT_NE(other, nullptr);
  ASSERT_OK(other->Exec("BEGIN IMMEDIATE"));

  const absl::Time start = absl::Now();
  EXPECT_THAT(store->Put(Fresh("blocked#att=0", 1)),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr(path_), HasSubstr("blocked#att=0"),
                             HasSubstr("busy budget 300ms"))));
  const absl::Duration waited = absl::Now() - start;
  EXPECT_GE(waited, absl::Milliseconds(250));
  EXPECT_LT(waited, absl::Seconds(3));
  // Readers are not blocked by the writer (WAL).
  EXPECT_OK(store->Find("before#att=0"));

  ASSERT_OK(other->Exec("COMMIT"));
  EXPECT_OK(store->Put(Fresh("blocked#att=0", 1)));
}

TEST_F(SqliteStoreTest, ListPrefixesEndingInHighBytesAreExact) {
  auto store = Open();
  ASSERT_OK(store->Put(Fresh("p\xff", 0)));
  ASSERT_OK(
      store->Put(Fresh("p\xff\xff"
                       "a",
                       1)));
  ASSERT_OK(store->Put(Fresh("q", 2)));
  ListOptions options;
  options.alias_prefix = "p\xff";
  EXPECT_THAT(store->List(options), IsOkAndHolds(SizeIs(2)));
  options.alias_prefix = "p\xff\xff";
  EXPECT_THAT(store->List(options), IsOkAndHolds(SizeIs(1)));
  options.alias_prefix = "p";
  EXPECT_THAT(store->List(options), IsOkAndHolds(SizeIs(2)));
}

}  // namespace
}  // namespace certstore::testing

// The database file itself: how it is created, which files are refused,
// damaged files, schema versions and migration.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "sqlite/schema_internal.h"
#include "tests/sqlite/sqlite_test_util.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class SqliteFilesTest : public SqliteFixture {
 protected:
  void WriteFile(const std::string& path, const std::string& bytes,
                 mode_t mode) {
    std::ofstream(path, std::ios::binary) << bytes;
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }

  std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  mode_t ModeOf(const std::string& path) {
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  // A store file with `count` entries, closed (its WAL checkpointed away).
  void Populate(int count) {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < count; ++i) {
      ASSERT_OK(store->Put(Fresh(absl::StrCat("alias-", i), i % 8)));
    }
  }

  // Runs SQL on the file outside the store (defensive mode is off there).
  void RawSql(const std::string& sql) {
    auto connection = RawConnection(path_);
    ASSERT_NE(connection, nullptr);
    ASSERT_OK(connection->Exec(sql.c_str()));
  }
};

TEST_F(SqliteFilesTest, NewFileAndItsCompanionsAre0600) {
  auto store = Open();
  ASSERT_OK(store->Put(Fresh("mode#att=0")));
  EXPECT_EQ(ModeOf(path_), 0600u);
  EXPECT_EQ(ModeOf(path_ + "-wal"), 0600u);
  EXPECT_EQ(ModeOf(path_ + "-shm"), 0600u);
}

TEST_F(SqliteFilesTest, NewFileIs0600WhateverTheUmask) {
  const mode_t old = umask(0);
  auto store = Open();
  umask(old);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ModeOf(path_), 0600u);
}

TEST_F(SqliteFilesTest, ZeroLengthFileOpensAsAnEmptyStore) {
  // What a crash between creating the file and writing its schema leaves.
  WriteFile(path_, "", 0600);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->List({}), IsOkAndHolds(SizeIs(0)));
  EXPECT_OK(store->Put(Fresh("after-empty#att=0")));
}

TEST_F(SqliteFilesTest, FileThatIsNotSqliteIsDataLossAndLeftAlone) {
  const std::string text(4096, 'x');
  WriteFile(path_, text, 0600);
  EXPECT_THAT(OpenSqliteStore(Options()),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path_), HasSubstr("not a database"))));
  EXPECT_EQ(ReadFile(path_), text);
}

TEST_F(SqliteFilesTest, GroupOrWorldAccessibleFileIsPermissionDenied) {
  for (mode_t mode : {0644, 0640, 0604, 0660, 0602}) {
    Populate(1);
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
    const std::string before = ReadFile(path_);
    EXPECT_THAT(OpenSqliteStore(Options()),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         AllOf(HasSubstr(path_), HasSubstr("chmod 600"))))
        << std::oct << mode;
    EXPECT_EQ(ReadFile(path_), before);
    EXPECT_EQ(ModeOf(path_), mode);
    ASSERT_EQ(chmod(path_.c_str(), 0600), 0);
  }
}

TEST_F(SqliteFilesTest, FileOfAnotherUserIsPermissionDenied) {
  std::string path = path_;
  if (geteuid() == 0) {
    Populate(1);
    ASSERT_EQ(chown(path_.c_str(), 65534, 65534), 0);
  } else {
    path = "/etc/hostname";  // root's; never written: refused first
  }
  SqliteStoreOptions options = Options();
  options.path = path;
  EXPECT_THAT(OpenSqliteStore(options),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr(path), HasSubstr("owned by uid"))));
}

TEST_F(SqliteFilesTest, ReadableWalCompanionIsPermissionDenied) {
  Populate(1);
  WriteFile(path_ + "-wal", "", 0644);
  EXPECT_THAT(
      OpenSqliteStore(Options()),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr(path_ + "-wal")));
}

TEST_F(SqliteFilesTest, SymlinkIsRefused) {
  Populate(1);
  const std::string link = FileIn(dir_, "link.db");
  ASSERT_EQ(symlink(path_.c_str(), link.c_str()), 0);
  SqliteStoreOptions options = Options();
  options.path = link;
  EXPECT_THAT(OpenSqliteStore(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(link), HasSubstr("symbolic link"))));
}

TEST_F(SqliteFilesTest, MissingDirectoryIsNotFound) {
  SqliteStoreOptions options = Options();
  options.path = FileIn(dir_, "no/such/dir/store.db");
  EXPECT_THAT(OpenSqliteStore(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(options.path)));
}

TEST_F(SqliteFilesTest, TruncatedDatabaseIsDataLossNotACrash) {
  Populate(200);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  ASSERT_GT(st.st_size, 64 * 1024);  // many pages: the cut loses some
  ASSERT_EQ(truncate(path_.c_str(), st.st_size / 3), 0);
  auto store = OpenSqliteStore(Options());
  if (!store.ok()) {
    EXPECT_THAT(store, StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
    return;
  }
  // The header survived; reading the lost pages is DataLoss, never a crash.
  EXPECT_THAT((*store)->List({}),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
}

TEST_F(SqliteFilesTest, DatabaseCutInsideItsHeaderIsDataLoss) {
  Populate(3);
  ASSERT_EQ(truncate(path_.c_str(), 50), 0);
  EXPECT_THAT(OpenSqliteStore(Options()),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
}

TEST_F(SqliteFilesTest, SqliteFileOfSomethingElseIsInvalidArgument) {
  WriteFile(path_, "", 0600);
  RawSql("CREATE TABLE photos(id INTEGER PRIMARY KEY, data BLOB)");
  EXPECT_THAT(OpenSqliteStore(Options()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("something else"))));
  RawSql("PRAGMA application_id = 1234");
  EXPECT_THAT(OpenSqliteStore(Options()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("another application (application_id "
                                 "0x000004d2)")));
}

// ------------------------------------------------------------- schema

TEST_F(SqliteFilesTest, NewFileCarriesTheApplicationIdAndSchemaVersion) {
  Populate(0);
  auto connection = RawConnection(path_);
  ASSERT_NE(connection, nullptr);
  EXPECT_THAT(connection->QueryText("PRAGMA application_id"),
              IsOkAndHolds(absl::StrCat(sqlite_internal::kApplicationId)));
  EXPECT_THAT(connection->QueryText(
                  "SELECT value FROM meta WHERE key = 'schema_version'"),
              IsOkAndHolds(absl::StrCat(sqlite_internal::kSchemaVersion)));
}

TEST_F(SqliteFilesTest, NewerSchemaFailsClearlyAndLeavesTheFileAlone) {
  Populate(1);
  RawSql("UPDATE meta SET value = 99 WHERE key = 'schema_version'");
  const std::string before = ReadFile(path_);
  EXPECT_THAT(
      OpenSqliteStore(Options()),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr(path_), HasSubstr("schema version 99 is newer"),
                     HasSubstr(absl::StrCat(
                         "supports (", sqlite_internal::kSchemaVersion)))));
  EXPECT_EQ(ReadFile(path_), before);
}

TEST_F(SqliteFilesTest, VersionOneFileIsMigratedKeepingItsEntries) {
  auto entry = Fresh("kept#att=0");
  {
    auto store = Open();
    ASSERT_OK(store->Put(entry));
  }
  // What version 1 looked like: no leases table.
  RawSql(
      "DROP TABLE leases; "
      "UPDATE meta SET value = 1 WHERE key = 'schema_version'");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto found = store->Find("kept#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
  EXPECT_OK(store->LockAlias("kept#att=0", absl::Seconds(1)));
  auto connection = RawConnection(path_);
  ASSERT_NE(connection, nullptr);
  EXPECT_THAT(connection->QueryText(
                  "SELECT value FROM meta WHERE key = 'schema_version'"),
              IsOkAndHolds(absl::StrCat(sqlite_internal::kSchemaVersion)));
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

TEST_F(SqliteFilesTest, MissingSchemaVersionIsDataLoss) {
  Populate(1);
  RawSql("DELETE FROM meta WHERE key = 'schema_version'");
  EXPECT_THAT(OpenSqliteStore(Options()),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path_), HasSubstr("schema_version"))));
}

}  // namespace
}  // namespace certstore::testing

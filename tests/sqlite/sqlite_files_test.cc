// The database file itself: how it is created, which files are refused,
// damaged files, schema versions and migration.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "sqlite/schema_internal.h"
#include "tests/sqlite/sqlite_test_util.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
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

TEST_F(SqliteFilesTest, DirectoryOthersCanWriteIsPermissionDenied) {
  // Sticky or not: whoever can create files next to the database can plant
  // a hot journal that SQLite would replay into it.
  const std::string shared = FileIn(dir_, "shared");
  ASSERT_EQ(mkdir(shared.c_str(), 0700), 0);
  for (mode_t mode : {01777, 0777, 0770, 0720}) {
    ASSERT_EQ(chmod(shared.c_str(), mode), 0);
    SqliteStoreOptions options = Options();
    options.path = shared + "/store.db";
    EXPECT_THAT(OpenSqliteStore(options),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         AllOf(HasSubstr(shared), HasSubstr("group/others"))))
        << std::oct << mode;
    EXPECT_NE(access(options.path.c_str(), F_OK), 0) << "created the file";
  }
  ASSERT_EQ(chmod(shared.c_str(), 0755), 0);
  SqliteStoreOptions options = Options();
  options.path = shared + "/store.db";
  EXPECT_OK(OpenSqliteStore(options));
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

TEST_F(SqliteFilesTest, FileThisUserCannotOpenNamesItsOwner) {
  // Typically created by a setup step run as root: the message names the
  // owner and the fix, not strerror's "Permission denied".
  if (geteuid() != 0) {
    SqliteStoreOptions options = Options();
    options.path = "/etc/shadow";  // root's, 0640: never opened for writing
    EXPECT_THAT(
        OpenSqliteStore(options),
        StatusIs(absl::StatusCode::kPermissionDenied,
                 AllOf(HasSubstr("/etc/shadow"), HasSubstr("owned by uid 0"))));
    return;
  }
  Populate(1);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);  // nobody may look in
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) {
      _exit(2);
    }
    absl::StatusOr<std::unique_ptr<CertStore>> store =
        OpenSqliteStore(Options());
    const std::string message(store.status().message());
    const bool named =
        store.status().code() == absl::StatusCode::kPermissionDenied &&
        absl::StrContains(message, "owned by uid 0") &&
        absl::StrContains(message, path_);
    if (!named) {
      std::fprintf(stderr, "child got: %s\n",
                   store.status().ToString().c_str());
    }
    _exit(named ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
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

TEST_F(SqliteFilesTest, DatabaseCutAnywhereSaysItWasTruncated) {
  Populate(40);
  const std::string pristine = ReadFile(path_);
  ASSERT_GT(pristine.size(), 8 * 4096u);
  // Cuts on and off page boundaries, down to just past the header: never a
  // shorter listing with success.
  for (size_t cut : {pristine.size() - 1, pristine.size() - 4096,
                     pristine.size() / 2 + 7, size_t{4096}, size_t{100}}) {
    SCOPED_TRACE(cut);
    WriteFile(path_, pristine.substr(0, cut), 0600);
    absl::StatusOr<std::unique_ptr<CertStore>> store =
        OpenSqliteStore(Options());
    absl::Status status = store.status();
    if (store.ok()) {
      status = (*store)->List({}).status();
    }
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kDataLoss,
                         AllOf(HasSubstr(path_), HasSubstr("truncated"))));
  }
  WriteFile(path_, pristine, 0600);
  auto store = OpenSqliteStore(Options());
  ASSERT_OK(store);
  EXPECT_THAT((*store)->List({}), IsOkAndHolds(SizeIs(40)));
}

TEST_F(SqliteFilesTest, DamagedAliasIndexNeverCostsAnotherAliasItsEntry) {
  // The store holds alpha in row 1 and beta in row 2; its twin holds the
  // same entries in swapped rows.
  const auto alpha = Fresh("alpha", 0);
  const auto beta = Fresh("beta", 1);
  {
    auto store = Open();
    ASSERT_OK(store->Put(alpha));
    ASSERT_OK(store->Put(beta));
  }
  const std::string twin = FileIn(dir_, "twin.db");
  {
    SqliteStoreOptions options = Options();
    options.path = twin;
    auto store = OpenSqliteStore(options);
    ASSERT_OK(store);
    ASSERT_OK((*store)->Put(beta));
    ASSERT_OK((*store)->Put(alpha));
  }
  // Graft the twin's index pages into the store: its alias indexes now
  // file alpha under beta's row and beta under alpha's, as rotten index
  // pages do, while every row stays intact.
  std::vector<int> roots;
  {
    auto connection = RawConnection(path_);
    ASSERT_NE(connection, nullptr);
    sqlite3_stmt* select = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(connection->raw(),
                                 "SELECT rootpage FROM sqlite_schema WHERE "
                                 "type = 'index' AND tbl_name = 'entries'",
                                 -1, &select, nullptr),
              SQLITE_OK);
    while (sqlite3_step(select) == SQLITE_ROW) {
      roots.push_back(sqlite3_column_int(select, 0));
    }
    sqlite3_finalize(select);
  }
  ASSERT_EQ(roots.size(), 2u);  // entries_by_alias and UNIQUE(alias, ...)
  std::string bytes = ReadFile(path_);
  const std::string twin_bytes = ReadFile(twin);
  const size_t page_size = size_t{static_cast<uint8_t>(bytes[16])} << 8 |
                           static_cast<uint8_t>(bytes[17]);
  for (int root : roots) {
    const size_t at = (static_cast<size_t>(root) - 1) * page_size;
    ASSERT_LE(at + page_size, twin_bytes.size());
    bytes.replace(at, page_size, twin_bytes, at, page_size);
  }
  WriteFile(path_, bytes, 0600);

  // Eviction first, as the token client does on its own: it names the
  // damage and deletes nothing.
  {
    auto store = Open();
    EXPECT_THAT(store->DeleteAllForAlias("alpha"),
                StatusIs(absl::StatusCode::kDataLoss,
                         AllOf(HasSubstr("index is damaged"),
                               HasSubstr("\"beta\""), HasSubstr("REINDEX"))));
    EXPECT_THAT(store->Put(Fresh("gamma", 2)),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("REINDEX")));
  }
  // A lookup finds the damage without blaming beta's intact row.
  {
    auto store = Open();
    EXPECT_THAT(store->Find("alpha"),
                StatusIs(absl::StatusCode::kDataLoss,
                         AllOf(HasSubstr("index is damaged"),
                               Not(HasSubstr("row 2) is damaged")))));
    EXPECT_THAT(store->DeleteAllForAlias("beta"),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("REINDEX")));
  }
  // The documented repair brings both entries back.
  RawSql("REINDEX");
  auto store = Open();
  auto found_alpha = store->Find("alpha");
  ASSERT_OK(found_alpha);
  EXPECT_EQ((*found_alpha)->thumbprint(), alpha->thumbprint());
  auto found_beta = store->Find("beta");
  ASSERT_OK(found_beta);
  EXPECT_EQ((*found_beta)->thumbprint(), beta->thumbprint());
  EXPECT_THAT(store->DeleteAllForAlias("alpha"), IsOkAndHolds(1));
  EXPECT_OK(store->Find("beta"));
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

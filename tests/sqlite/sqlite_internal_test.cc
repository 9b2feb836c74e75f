// The SQLite store's building blocks on their own: filesystem detection,
// the SQLite status converter, chain framing, row digests, the key cipher.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/statfs.h>

#include <functional>
#include <string>
#include <vector>

#include "certstore/testing/status_matchers.h"
#include "sqlite/database_internal.h"
#include "sqlite/key_cipher_internal.h"
#include "sqlite/row_codec_internal.h"
#include "sqlite/sqlite_status_internal.h"
#include "tests/sqlite/sqlite_test_util.h"

namespace certstore::testing {
namespace {

using sqlite_internal::StoredRow;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(NetworkFilesystemTest, DetectsNetworkAndFuseFilesystemsByMagic) {
  struct Case {
    const char* name;
    int64_t magic;
    bool network;
  };
  const Case cases[] = {
      {"nfs", 0x6969, true},        {"smb", 0x517B, true},
      {"cifs", 0xFF534D42, true},   {"smb2", 0xFE534D42, true},
      {"fuse", 0x65735546, true},   {"ceph", 0x00C36400, true},
      {"9p", 0x01021997, true},     {"afs", 0x5346414F, true},
      {"lustre", 0x0BD00BD0, true}, {"ext4", 0xEF53, false},
      {"xfs", 0x58465342, false},   {"btrfs", 0x9123683E, false},
      {"tmpfs", 0x01021994, false}, {"overlayfs", 0x794C7630, false},
      {"zfs", 0x2FC12FC1, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(sqlite_internal::IsNetworkFilesystem(c.magic), c.network)
        << c.name;
  }
  // Some platforms hand out f_type sign-extended.
  EXPECT_TRUE(sqlite_internal::IsNetworkFilesystem(
      static_cast<int64_t>(static_cast<int32_t>(0xFF534D42))));
}

TEST(NetworkFilesystemTest, TheStoreChoosesWalOnlyOnLocalFilesystems) {
  TempDir dir;
  struct statfs fs;
  ASSERT_EQ(statfs(dir.path().c_str(), &fs), 0);
  auto store = OpenOrDie(TestOptions(FileIn(dir, "store.db")));
  ASSERT_NE(store, nullptr);
  auto connection = RawConnection(FileIn(dir, "store.db"));
  ASSERT_NE(connection, nullptr);
  EXPECT_EQ(connection->journal_mode(),
            sqlite_internal::IsNetworkFilesystem(fs.f_type) ? "delete" : "wal");
}

// A lease write skips the fsync in WAL mode only, and never leaves the
// connection unsynced for the writes after it (even when it fails).
TEST(DatabaseTest, UnsyncedWritesAreUnsyncedOnlyWhileTheyRun) {
  TempDir dir;
  for (bool rollback : {false, true}) {
    SCOPED_TRACE(rollback ? "rollback journal" : "wal");
    const std::string path = FileIn(dir, rollback ? "rollback.db" : "wal.db");
    ASSERT_OK(sqlite_internal::PreparePrivateFile(path));
    sqlite_internal::DatabaseOptions options;
    options.path = path;
    options.name = "sqlite:" + path;
    options.force_rollback_journal = rollback;
    auto db = sqlite_internal::Database::Open(options);
    ASSERT_OK(db);
    auto synchronous = [](sqlite_internal::Connection& c, std::string* out) {
      auto value = c.QueryText("PRAGMA synchronous");
      *out = value.ok() ? *value : value.status().ToString();
      return absl::OkStatus();
    };
    std::string during, after_write, after_failure, in_write;
    ASSERT_OK((*db)->WriteUnsynced(
        "unsynced", [&](auto& c) { return synchronous(c, &during); }));
    ASSERT_OK((*db)->Read(
        "read", [&](auto& c) { return synchronous(c, &after_write); }));
    EXPECT_THAT(
        (*db)->WriteUnsynced(
            "failing",
            [](auto&) { return absl::InternalError("work failed"); }),
        StatusIs(absl::StatusCode::kInternal, HasSubstr("work failed")));
    ASSERT_OK((*db)->Read(
        "read", [&](auto& c) { return synchronous(c, &after_failure); }));
    ASSERT_OK((*db)->Write("synced",
                           [&](auto& c) { return synchronous(c, &in_write); }));
    EXPECT_EQ(during, rollback ? "2" : "1");  // FULL : NORMAL
    EXPECT_EQ(after_write, "2");
    EXPECT_EQ(after_failure, "2");
    EXPECT_EQ(in_write, "2");
  }
}

TEST(SqliteStatusTest, MapsResultCodesToProjectCodes) {
  struct Case {
    int rc;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {SQLITE_BUSY, absl::StatusCode::kUnavailable},
      {SQLITE_BUSY_SNAPSHOT, absl::StatusCode::kUnavailable},
      {SQLITE_LOCKED, absl::StatusCode::kUnavailable},
      {SQLITE_CORRUPT, absl::StatusCode::kDataLoss},
      {SQLITE_NOTADB, absl::StatusCode::kDataLoss},
      {SQLITE_IOERR_SHORT_READ, absl::StatusCode::kDataLoss},
      {SQLITE_IOERR_FSYNC, absl::StatusCode::kUnavailable},
      {SQLITE_READONLY, absl::StatusCode::kPermissionDenied},
      {SQLITE_CANTOPEN, absl::StatusCode::kPermissionDenied},
      {SQLITE_FULL, absl::StatusCode::kResourceExhausted},
      {SQLITE_TOOBIG, absl::StatusCode::kInvalidArgument},
      {SQLITE_CONSTRAINT, absl::StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    absl::Status status = sqlite_internal::SqliteStatus(c.rc, nullptr, "ctx");
    EXPECT_EQ(status.code(), c.code) << c.rc;
    EXPECT_THAT(std::string(status.message()),
                AllOf(HasSubstr("ctx: "), HasSubstr("SQLITE_")));
  }
  EXPECT_TRUE(sqlite_internal::IsBusyCode(SQLITE_BUSY_RECOVERY));
  EXPECT_FALSE(sqlite_internal::IsBusyCode(SQLITE_IOERR));
}

TEST(SqliteStatusTest, AFullDiskSaysSoNotThatALockIsHeld) {
  // SQLITE_IOERR_SHMSIZE is what a full disk (or /dev/shm) gives when the
  // -shm file cannot grow, even for a read.
  for (int rc : {SQLITE_IOERR_SHMSIZE, SQLITE_FULL}) {
    absl::Status status = sqlite_internal::SqliteStatus(rc, nullptr, "ctx");
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << rc;
    EXPECT_THAT(std::string(status.message()),
                AllOf(HasSubstr("no space left"), Not(HasSubstr("lock"))));
  }
}

TEST(ChainFramingTest, RoundTripsAndRefusesDamage) {
  const std::vector<std::string> chain = {"leaf-der", std::string(300, 'i')};
  const std::string framed = sqlite_internal::FrameChain(chain);
  EXPECT_THAT(sqlite_internal::UnframeChain(framed), IsOkAndHolds(chain));
  for (size_t cut : {size_t{0}, size_t{3}, size_t{7}, framed.size() - 1}) {
    EXPECT_THAT(sqlite_internal::UnframeChain(framed.substr(0, cut)),
                StatusIs(absl::StatusCode::kDataLoss))
        << cut;
  }
  EXPECT_THAT(sqlite_internal::UnframeChain(std::string(4, '\0') + "x"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(RowDigestTest, EveryFieldButTheIdCounts) {
  StoredRow base;
  base.alias = "a";
  base.thumbprint = "t";
  base.key_der = "k";
  base.chain = "c";
  const std::string digest = sqlite_internal::RowDigest(base);
  EXPECT_EQ(digest.size(), 32u);
  const std::vector<std::function<void(StoredRow&)>> edits = {
      [](StoredRow& r) { r.alias = "b"; },
      [](StoredRow& r) { r.thumbprint = "u"; },
      [](StoredRow& r) { r.not_before = 1; },
      [](StoredRow& r) { r.not_after = 1; },
      [](StoredRow& r) { r.created_at_ns = 1; },
      [](StoredRow& r) { r.key_type = 1; },
      [](StoredRow& r) { r.key_algorithm = "x"; },
      [](StoredRow& r) { r.key_encrypted = true; },
      [](StoredRow& r) { r.key_der = "l"; },
      [](StoredRow& r) { r.chain = "d"; },
      [](StoredRow& r) { r.endpoint = "e"; },
      [](StoredRow& r) { r.client_id = "i"; },
      [](StoredRow& r) { r.tenant_id = "n"; },
      // Moving a byte between adjacent fields changes the digest too.
      [](StoredRow& r) {
        r.alias = "at";
        r.thumbprint = "";
      },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    StoredRow row;
    row.alias = base.alias;
    row.thumbprint = base.thumbprint;
    row.key_der = base.key_der;
    row.chain = base.chain;
    edits[i](row);
    EXPECT_NE(sqlite_internal::RowDigest(row), digest) << "edit " << i;
  }
  base.id = 42;
  EXPECT_EQ(sqlite_internal::RowDigest(base), digest);
}

TEST(KeyCipherTest, RoundTripsWithAFreshIvEachTime) {
  auto params =
      sqlite_internal::NewKdfParams(sqlite_internal::kMinPbkdf2Iterations);
  ASSERT_OK(params);
  auto cipher = sqlite_internal::KeyCipher::Derive("pass", *params);
  ASSERT_OK(cipher);
  const std::string plain = "not really PKCS#8, but bytes";
  auto first = (*cipher)->Encrypt(plain);
  auto second = (*cipher)->Encrypt(plain);
  ASSERT_OK(first);
  ASSERT_OK(second);
  EXPECT_NE(*first, *second);
  auto decrypted = (*cipher)->Decrypt(*first);
  ASSERT_OK(decrypted);
  EXPECT_EQ(decrypted->value(), plain);
  // A damaged last block fails the padding check, or (1 in ~256) decrypts
  // to other bytes: never to the key.
  std::string damaged = *first;
  damaged[damaged.size() - 1] ^= 0x01;
  auto garbled = (*cipher)->Decrypt(damaged);
  EXPECT_TRUE(garbled.ok()
                  ? garbled->value() != plain
                  : garbled.status().code() == absl::StatusCode::kDataLoss);
  EXPECT_THAT((*cipher)->Decrypt("garbage"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(KeyCipherTest, CheckValueDependsOnThePassphrase) {
  sqlite_internal::KdfParams params{std::string(16, 's'),
                                    sqlite_internal::kMinPbkdf2Iterations};
  auto a = sqlite_internal::KeyCipher::Derive("one", params);
  auto b = sqlite_internal::KeyCipher::Derive("two", params);
  auto a_again = sqlite_internal::KeyCipher::Derive("one", params);
  ASSERT_OK(a);
  ASSERT_OK(b);
  ASSERT_OK(a_again);
  EXPECT_NE((*a)->CheckValue(), (*b)->CheckValue());
  EXPECT_EQ((*a)->CheckValue(), (*a_again)->CheckValue());
  auto sealed = (*a)->Encrypt("x");
  ASSERT_OK(sealed);
  auto other = (*b)->Decrypt(*sealed);
  EXPECT_TRUE(!other.ok() || other->value() != "x");
}

}  // namespace
}  // namespace certstore::testing

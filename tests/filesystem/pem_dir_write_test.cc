// PemDirStore's write path and locks: injected fsync / rename / write
// failures leave the old entries and no temp file; keys that cannot be
// written; the writers' flock and the mint lock across real processes.
#include <errno.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "certstore/key.h"
#include "certstore/testing/failing_key.h"
#include "filesystem/file_system_ops.h"
#include "tests/filesystem/pem_dir_fixture.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Each countdown fails the Nth call from when it is set (1: the next one),
// once, with `error`; 0 or less: never.
struct Faults {
  std::atomic<int> write{0};
  std::atomic<int> fsync{0};
  std::atomic<int> rename{0};
  std::atomic<int> error{EIO};
};
Faults faults;

bool Trip(std::atomic<int>& countdown) {
  return countdown.load() > 0 && --countdown == 0;
}

ssize_t FaultyWrite(int fd, const void* data, size_t size) {
  if (Trip(faults.write)) {
    errno = faults.error;
    return -1;
  }
  return write(fd, data, size);
}

int FaultyFsync(int fd) {
  if (Trip(faults.fsync)) {
    errno = faults.error;
    return -1;
  }
  return fsync(fd);
}

int FaultyRenameat(int old_dir, const char* old_name, int new_dir,
                   const char* new_name) {
  if (Trip(faults.rename)) {
    errno = faults.error;
    return -1;
  }
  return renameat(old_dir, old_name, new_dir, new_name);
}

const filesystem_internal::FileSystemOps kFaultyOps{&FaultyWrite, &FaultyFsync,
                                                    &FaultyRenameat};

class PemDirWriteTest : public PemDirTest {
 protected:
  void SetUp() override {
    faults.write = 0;
    faults.fsync = 0;
    faults.rename = 0;
    faults.error = EIO;
    PemDirTest::SetUp();
    PemDirStoreOptions options;
    options.directory = StoreDir();
    options.clock = &clock_;
    auto faulty =
        filesystem_internal::OpenPemDirStoreWithOps(options, kFaultyOps);
    ASSERT_OK(faulty);
    faulty_ = *std::move(faulty);
    old_ = With(*Fresh("f"), "f", {"https://old", "old-id", "t"});
    ASSERT_OK(faulty_->Put(old_));
  }

  // What a store that never saw the failed write finds.
  std::string FoundByFreshStore(const std::string& alias) {
    auto fresh = Open();
    EXPECT_OK(fresh);
    return fresh.ok() ? FoundThumbprint(**fresh, alias) : "open failed";
  }

  std::string OldFileName() const {
    return "x5t-" + old_->thumbprint() + ".pem";
  }

  std::unique_ptr<CertStore> faulty_;
  std::shared_ptr<const Entry> old_;
};

TEST_F(PemDirWriteTest, FailedFsyncOfTheFileKeepsTheOldEntry) {
  faults.fsync = 1;
  EXPECT_THAT(faulty_->Put(Fresh("f", 1, absl::Hours(1))),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("Put(\"f\")"), HasSubstr("fsync"),
                             HasSubstr("errno 5"))));
  EXPECT_THAT(ListNames(DirOf("f")), ElementsAre(OldFileName()));
  EXPECT_EQ(FoundByFreshStore("f"), old_->thumbprint());
  EXPECT_EQ(FoundThumbprint(*faulty_, "f"), old_->thumbprint());
}

TEST_F(PemDirWriteTest, FailedFsyncOfTheDirectoryTakesTheNewNameBack) {
  faults.fsync = 2;  // the file's fsync passes; the directory's fails
  EXPECT_THAT(
      faulty_->Put(Fresh("f", 1, absl::Hours(1))),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("fsync after renaming")));
  EXPECT_THAT(ListNames(DirOf("f")), ElementsAre(OldFileName()));
  EXPECT_EQ(FoundByFreshStore("f"), old_->thumbprint());
}

TEST_F(PemDirWriteTest, FailedFsyncWhenReplacingKeepsTheOldBytes) {
  faults.fsync = 1;
  auto replacement = With(*old_, "f", {"https://new", "new-id", "t"});
  EXPECT_FALSE(faulty_->Put(replacement).ok());
  auto fresh = Open();
  ASSERT_OK(fresh);
  auto found = (*fresh)->Find("f");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->metadata().client_id, "old-id");
}

TEST_F(PemDirWriteTest, FailedRenameLeavesNoTempFile) {
  faults.rename = 1;
  EXPECT_THAT(faulty_->Put(Fresh("f", 1, absl::Hours(1))),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("rename")));
  EXPECT_THAT(ListNames(DirOf("f")), ElementsAre(OldFileName()));
  EXPECT_EQ(FoundByFreshStore("f"), old_->thumbprint());
}

TEST_F(PemDirWriteTest, FullDiskIsResourceExhausted) {
  faults.error = ENOSPC;
  faults.write = 1;
  EXPECT_THAT(
      faulty_->Put(Fresh("f", 1, absl::Hours(1))),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("write")));
  EXPECT_THAT(ListNames(DirOf("f")), ElementsAre(OldFileName()));
}

TEST_F(PemDirWriteTest, FailedFsyncOfANewAliasDirectoryRemovesIt) {
  faults.fsync = 1;  // the store directory's, after mkdir
  EXPECT_THAT(
      faulty_->Put(Fresh("g")),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("fsync after creating")));
  EXPECT_THAT(ListNames(StoreDir()),
              ElementsAre(".lock", filesystem_internal::AliasDirName("f")));
}

TEST_F(PemDirWriteTest, PutAfterAFailureSucceeds) {
  faults.fsync = 1;
  auto next = Fresh("f", 1, absl::Hours(1));
  ASSERT_FALSE(faulty_->Put(next).ok());
  ASSERT_OK(faulty_->Put(next));
  EXPECT_EQ(FoundByFreshStore("f"), next->thumbprint());
}

TEST_F(PemDirWriteTest, FailedFsyncOfADeleteIsReported) {
  faults.fsync = 1;
  EXPECT_THAT(faulty_->DeleteAllForAlias("f"),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("DeleteAllForAlias(\"f\")"),
                             HasSubstr("fsync"))));
}

TEST_F(PemDirWriteTest, KeyThatCannotBeExportedIsInvalidAndNothingIsWritten) {
  auto key = std::make_shared<UnexportableKey>(PoolKey(KeyType::kEcP256, 2));
  auto entry = Pki().MakeEntry("token", key, clock_.Now() - absl::Hours(1),
                               clock_.Now() + absl::Hours(24 * 7));
  EXPECT_THAT(store_->Put(entry),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("Put(\"token\")"),
                             HasSubstr("pkcs11:token=test"),
                             HasSubstr("cannot be stored in a file"))));
  EXPECT_THAT(ListNames(StoreDir()),
              ElementsAre(".lock", filesystem_internal::AliasDirName("f")));
}

// ------------------------------------------------ locks across processes

TEST_F(PemDirWriteTest, WriterLockHeldElsewhereIsUnavailableAndReadersGoOn) {
  const std::string lock_path = StoreDir() + "/.lock";
  ChildProcess holder([&](int ready_fd) {
    int fd = open(lock_path.c_str(), O_RDWR);
    if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(ready_fd, "L", 1) != 1) {
      return 1;
    }
    sleep(60);
    return 0;
  });
  ASSERT_TRUE(holder.WaitReady(absl::Seconds(10)));
  PemDirStoreOptions options;
  options.write_lock_timeout = absl::Milliseconds(100);
  auto impatient = Open(options);
  ASSERT_OK(impatient);
  const absl::Time start = absl::Now();
  EXPECT_THAT((*impatient)->Put(Fresh("f", 1, absl::Hours(1))),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr(".lock"), HasSubstr("100ms"))));
  EXPECT_THAT((*impatient)->DeleteAllForAlias("f"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(FoundThumbprint(**impatient, "f"), old_->thumbprint());
  holder.Kill();  // the kernel releases the flock of a dead process
  EXPECT_OK((*impatient)->Put(Fresh("f", 1, absl::Hours(1))));
}

TEST_F(PemDirWriteTest, MintLockIsSharedWithOtherProcessesAndDiesWithThem) {
  ChildProcess holder([&](int ready_fd) {
    auto store = Open();
    if (!store.ok()) {
      return 1;
    }
    auto lock = (*store)->LockAlias("mint#att=0", absl::Seconds(5));
    if (!lock.ok() || write(ready_fd, "L", 1) != 1) {
      return 2;
    }
    sleep(60);
    return 0;
  });
  ASSERT_TRUE(holder.WaitReady(absl::Seconds(10)));
  EXPECT_THAT(store_->LockAlias("mint#att=0", absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("LockAlias(\"mint#att=0\")"),
                             HasSubstr("held by another process"))));
  EXPECT_OK(store_->LockAlias("mint#att=1", absl::Milliseconds(50)));
  holder.Kill();
  EXPECT_OK(store_->LockAlias("mint#att=0", absl::Seconds(2)));
}

TEST_F(PemDirWriteTest, MintLockWaiterGetsItWhenAnotherProcessReleases) {
  ChildProcess holder([&](int ready_fd) {
    auto store = Open();
    auto lock = store.ok() ? (*store)->LockAlias("handoff", absl::Seconds(5))
                           : store.status();
    if (!lock.ok() || write(ready_fd, "L", 1) != 1) {
      return 1;
    }
    usleep(200 * 1000);
    return 0;  // exits normally: the lock goes with it
  });
  ASSERT_TRUE(holder.WaitReady(absl::Seconds(10)));
  EXPECT_OK(store_->LockAlias("handoff", absl::Seconds(10)));
  EXPECT_EQ(holder.Wait(absl::Seconds(10)), 0);
}

TEST_F(PemDirWriteTest, MintLockIsSharedByTwoStoresOfOneProcess) {
  auto other = Open();
  ASSERT_OK(other);
  auto held = store_->LockAlias("both", absl::Seconds(1));
  ASSERT_OK(held);
  EXPECT_THAT((*other)->LockAlias("both", absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kUnavailable));
  held->reset();
  EXPECT_OK((*other)->LockAlias("both", absl::Milliseconds(50)));
  EXPECT_THAT(ListNames(StoreDir()),
              ElementsAre(".lock",
                          ".mint-" + filesystem_internal::AliasDirName("both") +
                              ".lock",
                          filesystem_internal::AliasDirName("f")));
}

}  // namespace
}  // namespace certstore::testing

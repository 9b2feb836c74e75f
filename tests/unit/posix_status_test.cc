#include "api/internal/posix_status.h"

#include <errno.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "certstore/testing/status_matchers.h"

namespace certstore::internal {
namespace {

using ::certstore::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ErrnoStatusTest, MapsCodesAndNamesTheContext) {
  EXPECT_THAT(ErrnoStatus(EACCES, "/x/key.pem: open"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("/x/key.pem: open: ")));
  EXPECT_THAT(ErrnoStatus(ENOENT, "c"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ErrnoStatus(EAGAIN, "c"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(ErrnoStatus(ENOSPC, "c"),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(ErrnoStatus(ELOOP, "c"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ErrnoStatus(EIO, "c"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("errno 5")));
}

class CheckPrivateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/certstore-posix-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
  }
  void TearDown() override { unlink(path_.c_str()); }

  struct stat Stat() {
    struct stat st;
    EXPECT_EQ(lstat(path_.c_str(), &st), 0);
    return st;
  }

  std::string path_;
};

TEST_F(CheckPrivateFileTest, AcceptsOwner0600) {
  ASSERT_EQ(chmod(path_.c_str(), 0600), 0);
  EXPECT_TRUE(CheckPrivateFile(Stat(), path_).ok());
}

TEST_F(CheckPrivateFileTest, RefusesGroupOrWorldBits) {
  for (mode_t mode : {0640, 0604, 0660, 0644, 0602}) {
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
    EXPECT_THAT(
        CheckPrivateFile(Stat(), path_),
        StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("chmod 600")))
        << std::oct << mode;
  }
}

TEST_F(CheckPrivateFileTest, RefusesAnotherOwner) {
  struct stat st = Stat();
  st.st_mode = S_IFREG | 0600;
  st.st_uid = geteuid() + 1;
  EXPECT_THAT(
      CheckPrivateFile(st, path_),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("owned by uid")));
}

TEST_F(CheckPrivateFileTest, RefusesNonRegularFiles) {
  std::string link = path_ + ".lnk";
  ASSERT_EQ(symlink(path_.c_str(), link.c_str()), 0);
  struct stat st;
  ASSERT_EQ(lstat(link.c_str(), &st), 0);
  EXPECT_THAT(CheckPrivateFile(st, link),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("not a regular file")));
  unlink(link.c_str());
}

}  // namespace
}  // namespace certstore::internal

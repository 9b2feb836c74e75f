// The security table: files and directories a PEM directory store must
// refuse (modes, owners, symlinks, hard links, FIFOs, devices), a store
// directory swapped for a symlink after open, and aliases that look like
// paths. The foreign-owner rows chown to nobody (uid 65534) and so need
// root, which is how CI runs; without root they fail rather than skip.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/filesystem/pem_dir_fixture.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr uid_t kNobody = 65534;

struct Row {
  std::string name;
  bool needs_root;
  std::string message;  // in the PermissionDenied message
  // Tampers with the stored `file` in alias directory `dir`; `outside` is a
  // scratch directory outside the store.
  std::function<void(const std::string& file, const std::string& dir,
                     const std::string& outside)>
      tamper;
};

void Check(bool ok, const char* what) { ASSERT_TRUE(ok) << what; }

std::vector<Row> Rows() {
  return {
      {"key file 0644", false, "fix with chmod 600",
       [](auto& file, auto&, auto&) {
         Check(chmod(file.c_str(), 0644) == 0, "chmod");
       }},
      {"key file 0640", false, "lets group/others read or write it",
       [](auto& file, auto&, auto&) {
         Check(chmod(file.c_str(), 0640) == 0, "chmod");
       }},
      {"key file of another owner", true, "owned by uid 65534",
       [](auto& file, auto&, auto&) {
         Check(chown(file.c_str(), kNobody, kNobody) == 0, "chown");
       }},
      {"symlink to a private copy", false, "is a symbolic link",
       [](auto& file, auto&, auto& outside) {
         const std::string copy = outside + "/copy.pem";
         WriteFile(copy, ReadFile(file));
         Check(unlink(file.c_str()) == 0 &&
                   symlink(copy.c_str(), file.c_str()) == 0,
               "symlink");
       }},
      {"second hard link", false, "has 2 hard links",
       [](auto& file, auto&, auto& outside) {
         Check(link(file.c_str(), (outside + "/link.pem").c_str()) == 0,
               "link");
       }},
      {"FIFO in place of the file", false, "not a regular file",
       [](auto& file, auto&, auto&) {
         Check(unlink(file.c_str()) == 0 && mkfifo(file.c_str(), 0600) == 0,
               "mkfifo");
       }},
      {"character device in place of the file", true, "not a regular file",
       [](auto& file, auto&, auto&) {
         Check(unlink(file.c_str()) == 0 &&
                   mknod(file.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0,
               "mknod");
       }},
      {"directory in place of the file", false, "not a regular file",
       [](auto& file, auto&, auto&) {
         Check(unlink(file.c_str()) == 0 && mkdir(file.c_str(), 0700) == 0,
               "mkdir");
       }},
      {"alias directory is a symlink", false, "is a symbolic link",
       [](auto&, auto& dir, auto& outside) {
         const std::string moved = outside + "/moved-dir";
         Check(rename(dir.c_str(), moved.c_str()) == 0 &&
                   symlink(moved.c_str(), dir.c_str()) == 0,
               "symlink dir");
       }},
      {"alias directory group-writable", false, "fix with chmod 700",
       [](auto&, auto& dir, auto&) {
         Check(chmod(dir.c_str(), 0770) == 0, "chmod dir");
       }},
      {"alias directory of another owner", true, "owned by uid 65534",
       [](auto&, auto& dir, auto&) {
         Check(chown(dir.c_str(), kNobody, kNobody) == 0, "chown dir");
       }},
  };
}

// Find, but unblocks (and reports) a Find that would hang on a FIFO.
absl::StatusOr<std::shared_ptr<const Entry>> FindWithoutHanging(
    CertStore& store, const std::string& alias, const std::string& file) {
  auto pending = std::async(std::launch::async,
                            [&store, &alias] { return store.Find(alias); });
  if (pending.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "Find blocked on " << file;
    close(open(file.c_str(), O_RDWR | O_NONBLOCK));  // a writer frees it
  }
  return pending.get();
}

using PemDirSecurityTest = PemDirTest;

TEST_F(PemDirSecurityTest, RefusesWhatItMustNotTrustOneEntryAtATime) {
  auto bystander = Fresh("bystander");
  ASSERT_OK(store_->Put(bystander));
  const std::vector<Row> rows = Rows();
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    SCOPED_TRACE(row.name);
    if (row.needs_root && geteuid() != 0) {
      ADD_FAILURE() << "needs root to chown or mknod (CI runs as root)";
      continue;
    }
    const std::string alias = absl::StrCat("victim-", i);
    auto victim = Fresh(alias, 1);
    ASSERT_OK(store_->Put(victim));
    ASSERT_OK(store_->Find(alias));  // decoded and cached before tampering
    const std::string outside = PathIn(temp_, absl::StrCat("outside-", i));
    ASSERT_EQ(mkdir(outside.c_str(), 0700), 0);
    row.tamper(FileOf(*victim), DirOf(alias), outside);

    auto fresh = Open();
    ASSERT_OK(fresh);
    for (CertStore* store : {store_.get(), fresh->get()}) {
      EXPECT_THAT(FindWithoutHanging(*store, alias, FileOf(*victim)),
                  StatusIs(absl::StatusCode::kPermissionDenied,
                           AllOf(HasSubstr(absl::StrCat("Find(\"", alias)),
                                 HasSubstr(row.message))));
      EXPECT_EQ(FoundThumbprint(*store, "bystander"), bystander->thumbprint());
      auto listed = store->List({});
      ASSERT_OK(listed);
      EXPECT_THAT(*listed, SizeIs(1));
    }
  }
}

TEST_F(PemDirSecurityTest, RefusedFileIsEvictedByDeleteAllForAlias) {
  auto entry = Fresh("evict");
  ASSERT_OK(store_->Put(entry));
  ASSERT_EQ(chmod(FileOf(*entry).c_str(), 0644), 0);
  EXPECT_THAT(store_->DeleteAllForAlias("evict"), IsOkAndHolds(1));
  ASSERT_OK(store_->Put(entry));
  EXPECT_EQ(FoundThumbprint(*store_, "evict"), entry->thumbprint());
  EXPECT_EQ(ModeOf(FileOf(*entry)), 0600u);
}

TEST_F(PemDirSecurityTest, StoreDirectoryOthersControlIsRefusedAtOpen) {
  if (geteuid() != 0) {
    FAIL() << "needs root to chown to nobody (CI runs as root)";
  }
  ASSERT_EQ(chown(StoreDir().c_str(), kNobody, kNobody), 0);
  EXPECT_THAT(OpenPemDirStore(StoreDir()),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("file:" + StoreDir()),
                             HasSubstr("owned by uid 65534"))));
}

TEST_F(PemDirSecurityTest, StoreDirectoryThatIsASymlinkIsRefused) {
  const std::string link = PathIn(temp_, "link");
  ASSERT_EQ(symlink(StoreDir().c_str(), link.c_str()), 0);
  for (const std::string& path : {link, link + "/", link + "//"}) {
    EXPECT_THAT(OpenPemDirStore(path),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         HasSubstr("is a symbolic link")))
        << path;
  }
}

TEST_F(PemDirSecurityTest, LockFileThatIsASymlinkIsRefused) {
  const std::string target = PathIn(temp_, "target");
  WriteFile(target, "untouched");
  const std::string lock = StoreDir() + "/.lock";
  ASSERT_EQ(unlink(lock.c_str()), 0);
  ASSERT_EQ(symlink(target.c_str(), lock.c_str()), 0);
  EXPECT_THAT(store_->Put(Fresh("x")),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("is a symbolic link")));
  EXPECT_THAT(OpenPemDirStore(StoreDir()),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(ReadFile(target), "untouched");
}

// The store keeps the directory it opened: swapping the path for a symlink
// afterwards redirects nothing.
TEST_F(PemDirSecurityTest, DirectorySwappedForASymlinkAfterOpenIsNotFollowed) {
  auto before = Fresh("before");
  ASSERT_OK(store_->Put(before));
  const std::string moved = PathIn(temp_, "moved");
  const std::string decoy = PathIn(temp_, "decoy");
  ASSERT_EQ(rename(StoreDir().c_str(), moved.c_str()), 0);
  ASSERT_EQ(mkdir(decoy.c_str(), 0700), 0);
  ASSERT_EQ(symlink(decoy.c_str(), StoreDir().c_str()), 0);

  auto after = Fresh("after", 1);
  ASSERT_OK(store_->Put(after));
  EXPECT_EQ(FoundThumbprint(*store_, "before"), before->thumbprint());
  EXPECT_THAT(ListNames(decoy), ElementsAre());
  EXPECT_THAT(ListTree(moved),
              ElementsAre(".lock",
                          filesystem_internal::AliasDirName("after") + "/x5t-" +
                              after->thumbprint() + ".pem",
                          filesystem_internal::AliasDirName("before") +
                              "/x5t-" + before->thumbprint() + ".pem"));
  EXPECT_THAT(store_->DeleteAllForAlias("after"), IsOkAndHolds(1));
  EXPECT_THAT(OpenPemDirStore(StoreDir()),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("is a symbolic link")));
}

TEST_F(PemDirSecurityTest, AliasesThatLookLikePathsNeverLeaveTheDirectory) {
  const std::vector<std::string> aliases = {"../x",
                                            "a/b",
                                            "/etc/passwd",
                                            ".",
                                            "..",
                                            "../../../../tmp/escape",
                                            "x/../../y",
                                            std::string("nul\0byte", 8),
                                            std::string(1, '\0'),
                                            "-rf",
                                            "*",
                                            "~root",
                                            "a\nb",
                                            "%2e%2e",
                                            std::string(kMaxAliasBytes, '/'),
                                            std::string(kMaxAliasBytes, '.')};
  const std::vector<std::string> parent_before = ListNames(temp_.path());
  for (size_t i = 0; i < aliases.size(); ++i) {
    const std::string& alias = aliases[i];
    SCOPED_TRACE(i);
    auto entry = Fresh(alias, static_cast<int>(i % 8));
    ASSERT_OK(store_->Put(entry));
    EXPECT_EQ(FoundThumbprint(*store_, alias), entry->thumbprint());
    EXPECT_OK(store_->LockAlias(alias, absl::Seconds(1)));
    EXPECT_EQ(ListNames(temp_.path()), parent_before);
  }
  for (const std::string& name : ListTree(StoreDir())) {
    const bool expected =
        name == ".lock" ||
        (absl::StartsWith(name, ".mint-") && absl::EndsWith(name, ".lock") &&
         name.find('/') == std::string::npos) ||
        ((absl::StartsWith(name, "a-") || absl::StartsWith(name, "h-")) &&
         name.find("/x5t-") != std::string::npos &&
         name.find('/') == name.rfind('/'));
    EXPECT_TRUE(expected) << name;
  }
  auto listed = store_->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(aliases.size()));
  for (const std::string& alias : aliases) {
    EXPECT_THAT(store_->DeleteAllForAlias(alias), IsOkAndHolds(1));
  }
  EXPECT_EQ(ListNames(temp_.path()), parent_before);
}

}  // namespace
}  // namespace certstore::testing

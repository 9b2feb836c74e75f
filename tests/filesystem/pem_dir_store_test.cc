// PemDirStore beyond the conformance suite: opening, the on-disk layout and
// file format, hand-made files, damaged files, and the decoded-entry cache
// seeing files replaced by other store instances and other processes.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "certstore/chain.h"
#include "certstore/key.h"
#include "tests/filesystem/pem_dir_fixture.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

// chain PEM + key PEM, as `cat cert.pem key.pem` makes it.
std::string HandMade(const Entry& entry) {
  auto key = KeyToPem(*entry.key());
  EXPECT_OK(key);
  return DerChainToPem(entry.chain_der()) + (key.ok() ? *key : "");
}

using PemDirStoreTest = PemDirTest;

// ----------------------------------------------------------------- Open

TEST_F(PemDirStoreTest, OpenCreatesAPrivateDirectoryNamedByItsPath) {
  EXPECT_EQ(store_->Name(), "file:" + StoreDir());
  EXPECT_EQ(ModeOf(StoreDir()), 0700u);
  EXPECT_EQ(ModeOf(StoreDir() + "/.lock"), 0600u);
}

TEST_F(PemDirStoreTest, OpenTakesARelativePathFromTheCurrentDirectory) {
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(chdir(temp_.path().c_str()), 0);
  auto store = OpenPemDirStore("relative/");
  ASSERT_EQ(chdir(cwd), 0);
  ASSERT_OK(store);
  EXPECT_EQ((*store)->Name(), "file:" + PathIn(temp_, "relative"));
}

TEST_F(PemDirStoreTest, OpenRefusesBadDirectoriesNamingThem) {
  EXPECT_THAT(OpenPemDirStore(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(OpenPemDirStore(std::string("/tmp/a\0b", 8)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
  EXPECT_THAT(OpenPemDirStore(PathIn(temp_, "missing/store")),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(PathIn(temp_, "missing/store"))));
  WriteFile(PathIn(temp_, "plain"), "not a directory");
  EXPECT_THAT(OpenPemDirStore(PathIn(temp_, "plain")),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("file:" + PathIn(temp_, "plain")),
                             HasSubstr("not a directory"))));
  ASSERT_EQ(chmod(StoreDir().c_str(), 0770), 0);
  EXPECT_THAT(
      OpenPemDirStore(StoreDir()),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("chmod 700")));
}

// ------------------------------------------------------ layout and format

TEST_F(PemDirStoreTest, PutWritesOneFilePerEntryInTheDocumentedLayout) {
  auto entry = Fresh("app#att=0");
  ASSERT_OK(store_->Put(entry));
  const std::string dir =
      "a-" + absl::WebSafeBase64Escape(absl::string_view("app#att=0"));
  EXPECT_EQ(dir, "a-YXBwI2F0dD0w");
  const std::string file = "x5t-" + entry->thumbprint() + ".pem";
  EXPECT_THAT(ListTree(StoreDir()), ElementsAre(".lock", dir + "/" + file));
  EXPECT_EQ(ModeOf(StoreDir() + "/" + dir), 0700u);
  EXPECT_EQ(ModeOf(StoreDir() + "/" + dir + "/" + file), 0600u);

  const std::string content = ReadFile(StoreDir() + "/" + dir + "/" + file);
  EXPECT_THAT(content, HasSubstr("\ncertstore-alias: app#att=0\n"));
  EXPECT_THAT(content,
              HasSubstr("\ncertstore-thumbprint: " + entry->thumbprint()));
  EXPECT_THAT(content, HasSubstr("\ncertstore-key-algorithm: EC-P256\n"));
  EXPECT_THAT(content,
              HasSubstr(absl::StrCat(
                  "\ncertstore-not-after: ",
                  absl::FormatTime(absl::RFC3339_full, entry->not_after(),
                                   absl::UTCTimeZone()),
                  "\n")));
  // Leaf, intermediate, then the key.
  const size_t leaf = content.find("-----BEGIN CERTIFICATE-----");
  const size_t second = content.find("-----BEGIN CERTIFICATE-----", leaf + 1);
  const size_t key = content.find("-----BEGIN PRIVATE KEY-----");
  EXPECT_LT(leaf, second);
  EXPECT_LT(second, key);
  EXPECT_NE(key, std::string::npos);
  auto chain = PemToDerChain(content);
  ASSERT_OK(chain);
  EXPECT_EQ(*chain, entry->chain_der());
}

TEST_F(PemDirStoreTest, MetadataAndCreatedAtRoundTripThroughTheHeader) {
  EntryMetadata metadata{"https://login.example/tenant one/token",
                         "client\nid%with\r\ncontrols and ünïcode", ""};
  auto entry = With(*Fresh("meta"), "meta", metadata);
  ASSERT_OK(store_->Put(entry));
  const std::string content = ReadFile(FileOf(*entry));
  EXPECT_THAT(content, HasSubstr("certstore-endpoint: "
                                 "https://login.example/tenant%20one/token\n"));
  EXPECT_THAT(content, HasSubstr("certstore-client-id: client%0Aid%25with"));
  // A second store decodes the file (no cache shared).
  auto other = Open();
  ASSERT_OK(other);
  auto found = (*other)->Find("meta");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->metadata(), metadata);
  EXPECT_EQ((*found)->created_at(), entry->created_at());
  EXPECT_EQ((*found)->not_after(), entry->not_after());
}

TEST_F(PemDirStoreTest, LongAliasesLiveInAHashedDirectory) {
  const std::string longest_encoded(150, 'e');  // 200 base64url characters
  const std::string hashed(151, 'h');
  ASSERT_OK(store_->Put(Fresh(longest_encoded)));
  ASSERT_OK(store_->Put(Fresh(hashed, 1)));
  EXPECT_TRUE(absl::StartsWith(
      filesystem_internal::AliasDirName(longest_encoded), "a-"));
  const std::string dir = filesystem_internal::AliasDirName(hashed);
  EXPECT_TRUE(absl::StartsWith(dir, "h-"));
  EXPECT_EQ(dir.size(), 2u + 64u);
  auto other = Open();
  ASSERT_OK(other);
  auto listed = (*other)->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(2));
  EXPECT_EQ((*listed)[0].alias, longest_encoded);
  EXPECT_EQ((*listed)[1].alias, hashed);
  EXPECT_OK((*other)->Find(hashed));
}

// ------------------------------------------------------- hand-made files

TEST_F(PemDirStoreTest, HandMadeFileWithoutHeaderIsFoundListedAndDeleted) {
  auto entry = Fresh("hand#att=0");
  ASSERT_EQ(mkdir(DirOf("hand#att=0").c_str(), 0700), 0);
  const std::string path = DirOf("hand#att=0") + "/mine.pem";
  WriteFile(path, HandMade(*entry));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);

  auto found = store_->Find("hand#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
  EXPECT_EQ((*found)->created_at(), absl::TimeFromTimespec(st.st_mtim));
  EXPECT_EQ((*found)->metadata(), EntryMetadata{});
  EXPECT_OK(store_->ProbeKey(**found));
  auto listed = store_->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].alias, "hand#att=0");
  EXPECT_EQ((*listed)[0].key_algorithm, "EC-P256");
  EXPECT_EQ((*listed)[0].chain_length, 2u);
  EXPECT_THAT(store_->DeleteAllForAlias("hand#att=0"), IsOkAndHolds(1));
  EXPECT_THAT(ListNames(StoreDir()), ElementsAre(".lock"));
}

TEST_F(PemDirStoreTest, KeyBeforeCertificatesIsFoundToo) {
  auto entry = Fresh("order");
  ASSERT_EQ(mkdir(DirOf("order").c_str(), 0700), 0);
  auto key = KeyToPem(*entry->key());
  ASSERT_OK(key);
  WriteFile(DirOf("order") + "/k-then-c.pem",
            *key + DerChainToPem(entry->chain_der()));
  EXPECT_EQ(FoundThumbprint(*store_, "order"), entry->thumbprint());
}

TEST_F(PemDirStoreTest, HandMadeFileInAHashedDirectoryNeedsTheAliasHeader) {
  const std::string alias(300, 'q');
  ASSERT_EQ(mkdir(DirOf(alias).c_str(), 0700), 0);
  WriteFile(DirOf(alias) + "/mine.pem", HandMade(*Fresh(alias)));
  EXPECT_THAT(store_->Find(alias),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("no certstore-alias header line")));
  EXPECT_THAT(store_->List({}), IsOkAndHolds(IsEmpty()));
}

// --------------------------------------------------------- damaged files

TEST_F(PemDirStoreTest, DamagedFileIsDataLossForThatEntryOnly) {
  auto good = Fresh("good");
  auto damaged = Fresh("damaged", 1);
  ASSERT_OK(store_->Put(good));
  ASSERT_OK(store_->Put(damaged));
  std::string content = ReadFile(FileOf(*damaged));
  const size_t body = content.find("-----BEGIN CERTIFICATE-----\n") + 40;
  content[body] = '*';  // not base64
  WriteFile(FileOf(*damaged), content);

  auto fresh_store = Open();  // no cached decode to fall back on
  ASSERT_OK(fresh_store);
  EXPECT_THAT((*fresh_store)->Find("damaged"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("Find(\"damaged\")"),
                             HasSubstr(FileOf(*damaged)))));
  EXPECT_EQ(FoundThumbprint(**fresh_store, "good"), good->thumbprint());
  EXPECT_EQ(FoundThumbprint(*store_, "damaged"), "DATA_LOSS");
  auto listed = (*fresh_store)->List({});
  ASSERT_OK(listed);
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0].alias, "good");
  // Eviction clears it; the alias works again.
  EXPECT_THAT((*fresh_store)->DeleteAllForAlias("damaged"), IsOkAndHolds(1));
  ASSERT_OK((*fresh_store)->Put(damaged));
  EXPECT_EQ(FoundThumbprint(**fresh_store, "damaged"), damaged->thumbprint());
}

TEST_F(PemDirStoreTest, GoodEntryIsServedBesideADamagedOne) {
  auto good = Fresh("mixed");
  ASSERT_OK(store_->Put(good));
  WriteFile(DirOf("mixed") + "/broken.pem", "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(FoundThumbprint(*store_, "mixed"), good->thumbprint());
}

TEST_F(PemDirStoreTest, FileOfAnotherAliasIsNeverServed) {
  auto a = Fresh("alias-a");
  ASSERT_OK(store_->Put(a));
  ASSERT_EQ(mkdir(DirOf("alias-b").c_str(), 0700), 0);
  WriteFile(DirOf("alias-b") + "/copied.pem", ReadFile(FileOf(*a)));
  EXPECT_THAT(store_->Find("alias-b"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("records alias \"alias-a\"")));
  EXPECT_EQ(FoundThumbprint(*store_, "alias-a"), a->thumbprint());
}

TEST_F(PemDirStoreTest, KeyOfAnotherCertificateInAFileIsDataLoss) {
  auto entry = Fresh("wrong-key");
  auto other_key = KeyToPem(*PoolKey(KeyType::kEcP256, 5));
  ASSERT_OK(other_key);
  ASSERT_EQ(mkdir(DirOf("wrong-key").c_str(), 0700), 0);
  WriteFile(DirOf("wrong-key") + "/mine.pem",
            DerChainToPem(entry->chain_der()) + *other_key);
  EXPECT_THAT(store_->Find("wrong-key"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("key does not match certificate")));
}

TEST_F(PemDirStoreTest, HeaderThatDisagreesWithTheCertificateIsDataLoss) {
  auto entry = Fresh("edited");
  ASSERT_OK(store_->Put(entry));
  const std::string written = ReadFile(FileOf(*entry));
  const std::string recorded = absl::FormatTime(
      absl::RFC3339_full, entry->not_after(), absl::UTCTimeZone());
  // Edited with its digest kept: the digest sees it.
  WriteFile(FileOf(*entry),
            absl::StrReplaceAll(written, {{recorded, "2099-01-01T00:00:00Z"}}));
  auto fresh_store = Open();
  ASSERT_OK(fresh_store);
  EXPECT_THAT(
      (*fresh_store)->Find("edited"),
      StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr("certstore-digest"),
                                                  HasSubstr(FileOf(*entry)))));
  // Edited by hand, digest dropped: the header's facts are still checked.
  const std::string content = WithoutDigest(written);
  WriteFile(FileOf(*entry),
            absl::StrReplaceAll(content, {{recorded, "2099-01-01T00:00:00Z"}}));
  EXPECT_THAT(
      (*fresh_store)->Find("edited"),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("certstore-not-after")));
  WriteFile(FileOf(*entry), "certstore-created-at: yesterday\n" + content);
  EXPECT_THAT(
      (*fresh_store)->Find("edited"),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("certstore-created-at")));
}

TEST_F(PemDirStoreTest, StrayFilesAndDirectoriesAreIgnored) {
  auto entry = Fresh("real");
  ASSERT_OK(store_->Put(entry));
  WriteFile(StoreDir() + "/README", "notes");
  ASSERT_EQ(mkdir((StoreDir() + "/a-!!").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((StoreDir() + "/h-empty").c_str(), 0700), 0);
  WriteFile(DirOf("real") + "/notes.txt", "not an entry");
  WriteFile(DirOf("real") + "/.tmp-dead", "a dead writer's temp file");
  EXPECT_EQ(FoundThumbprint(*store_, "real"), entry->thumbprint());
  auto listed = store_->List({});
  ASSERT_OK(listed);
  EXPECT_THAT(*listed, SizeIs(1));
  // The next writer removes the dead writer's temp file.
  auto second = Fresh("real", 1);
  ASSERT_OK(store_->Put(second));
  EXPECT_THAT(
      ListNames(DirOf("real")),
      UnorderedElementsAre("notes.txt", "x5t-" + entry->thumbprint() + ".pem",
                           "x5t-" + second->thumbprint() + ".pem"));
  // DeleteAllForAlias leaves the directory while a stray file is in it.
  EXPECT_THAT(store_->DeleteAllForAlias("real"), IsOkAndHolds(2));
  EXPECT_THAT(ListNames(DirOf("real")), ElementsAre("notes.txt"));
}

// --------------------------------------------------- the decoded entries

TEST_F(PemDirStoreTest, FindSeesWritesOfAnotherStoreInstance) {
  auto reader = Open();
  ASSERT_OK(reader);
  auto first = With(*Fresh("shared"), "shared", {"https://a", "id-1", "t"});
  ASSERT_OK(store_->Put(first));
  ASSERT_EQ(FoundThumbprint(**reader, "shared"), first->thumbprint());
  // Same certificate (same file name), other metadata.
  auto replaced = With(*first, "shared", {"https://b", "id-2", "t"});
  ASSERT_OK(store_->Put(replaced));
  auto found = (*reader)->Find("shared");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->metadata().client_id, "id-2");
  auto newer = Fresh("shared", 1, absl::Hours(1));
  ASSERT_OK(store_->Put(newer));
  EXPECT_EQ(FoundThumbprint(**reader, "shared"), newer->thumbprint());
  ASSERT_OK(store_->DeleteAllForAlias("shared"));
  EXPECT_EQ(FoundThumbprint(**reader, "shared"), "NOT_FOUND");
}

// A child process rewrites the file in place keeping its size and mtime: a
// cache keyed by (inode, size, mtime) would serve the old entry.
TEST_F(PemDirStoreTest, FindSeesAFileRewrittenByAnotherProcess) {
  auto first = With(*Fresh("proc"), "proc", {"https://a", "id-1", "t"});
  ASSERT_OK(store_->Put(first));
  ASSERT_OK(store_->Find("proc"));
  const std::string path = FileOf(*first);
  struct stat before;
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  const std::string content =
      Redigested(absl::StrReplaceAll(ReadFile(path), {{"id-1", "id-9"}}));
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = open(path.c_str(), O_WRONLY | O_TRUNC);
    bool ok = fd >= 0 && write(fd, content.data(), content.size()) ==
                             static_cast<ssize_t>(content.size());
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    ok = ok && futimens(fd, times) == 0 && close(fd) == 0;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct stat after;
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  ASSERT_EQ(after.st_ino, before.st_ino);
  ASSERT_EQ(after.st_size, before.st_size);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  auto found = store_->Find("proc");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->metadata().client_id, "id-9");
}

TEST_F(PemDirStoreTest, FindReturnsThePutEntryWhileItsFileIsUnchanged) {
  auto entry = Fresh("same");
  ASSERT_OK(store_->Put(entry));
  auto found = store_->Find("same");
  ASSERT_OK(found);
  EXPECT_EQ(found->get(), entry.get());
  auto other = Open();
  ASSERT_OK(other);
  auto decoded = (*other)->Find("same");
  ASSERT_OK(decoded);
  auto again = (*other)->Find("same");
  ASSERT_OK(again);
  EXPECT_NE(decoded->get(), entry.get());
  EXPECT_EQ(again->get(), decoded->get());  // decoded once
}

}  // namespace
}  // namespace certstore::testing

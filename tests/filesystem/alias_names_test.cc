// Unit tests for filesystem/alias_names.h: alias <-> directory names and
// header value escaping.
#include "filesystem/alias_names.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "certstore/testing/status_matchers.h"

namespace certstore::filesystem_internal {
namespace {

using ::certstore::testing::IsOkAndHolds;
using ::certstore::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<std::string> Aliases() {
  return {"app#att=0",
          "a",
          "../x",
          "a/b",
          ".",
          "..",
          "~",
          "é東",
          std::string("a\0b", 3),
          std::string(150, 'x'),
          std::string(151, 'x'),
          std::string(1024, '/')};
}

TEST(AliasNamesTest, DirectoryNamesAreSafeAndReversible) {
  for (const std::string& alias : Aliases()) {
    const std::string name = AliasDirName(alias);
    EXPECT_TRUE(IsAliasDirName(name)) << name;
    EXPECT_EQ(name.find('/'), std::string::npos) << name;
    EXPECT_EQ(name.find('\0'), std::string::npos) << name;
    EXPECT_LE(name.size(), 2 + kMaxEncodedAliasBytes);
    if (name[0] == 'a') {
      EXPECT_EQ(AliasOfDirName(name), alias);
      EXPECT_THAT(ResolveAlias(name, std::nullopt), IsOkAndHolds(alias));
    } else {
      EXPECT_EQ(name.size(), 2u + 64u);
      EXPECT_EQ(AliasOfDirName(name), std::nullopt);
    }
    EXPECT_THAT(ResolveAlias(name, alias), IsOkAndHolds(alias));
  }
}

TEST(AliasNamesTest, ExamplesFromTheDocs) {
  EXPECT_EQ(AliasDirName("app#att=0"), "a-YXBwI2F0dD0w");
  EXPECT_EQ(AliasDirName(std::string(151, 'x')).substr(0, 2), "h-");
  EXPECT_EQ(EntryFileName("abc"), "x5t-abc.pem");
  EXPECT_EQ(MintLockFileName("app#att=0"), ".mint-a-YXBwI2F0dD0w.lock");
}

TEST(AliasNamesTest, OnlyCanonicalNamesDecode) {
  for (const char* name :
       {"a-", "a-YQ==", "a-YQ=", "a-!!", "b-YQ", "h-00", "a-YR"}) {
    EXPECT_EQ(AliasOfDirName(name), std::nullopt) << name;
  }
  EXPECT_EQ(AliasOfDirName("a-YQ"), "a");
}

TEST(AliasNamesTest, RecordedAliasMustBelongToTheDirectory) {
  EXPECT_THAT(
      ResolveAlias(AliasDirName("b"), std::string("a")),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("records alias \"a\"")));
  EXPECT_THAT(ResolveAlias(AliasDirName(std::string(200, 'h')), std::nullopt),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("no certstore-alias header line")));
}

TEST(AliasNamesTest, EntryFileNamesAreVisiblePemFiles) {
  EXPECT_TRUE(IsEntryFileName("x5t-abc.pem"));
  EXPECT_TRUE(IsEntryFileName("mine.pem"));
  EXPECT_FALSE(IsEntryFileName(".pem"));
  EXPECT_FALSE(IsEntryFileName(".tmp-0123.pem"));
  EXPECT_FALSE(IsEntryFileName("mine.pem.bak"));
  EXPECT_FALSE(IsEntryFileName("notes.txt"));
}

TEST(AliasNamesTest, HeaderValuesRoundTripEveryByte) {
  std::string every_byte;
  for (int c = 0; c < 256; ++c) {
    every_byte.push_back(static_cast<char>(c));
  }
  const std::string escaped = EscapeHeaderValue(every_byte);
  EXPECT_EQ(escaped.find_first_of(" \r\n\t"), std::string::npos);
  EXPECT_THAT(UnescapeHeaderValue(escaped), IsOkAndHolds(every_byte));
  EXPECT_EQ(EscapeHeaderValue("https://x/a b%"), "https://x/a%20b%25");
  for (const char* bad : {"%", "%4", "%zz", "a%g1"}) {
    EXPECT_THAT(UnescapeHeaderValue(bad),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

}  // namespace
}  // namespace certstore::filesystem_internal

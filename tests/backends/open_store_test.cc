#include "certstore/open_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "api/internal/percent_encoding.h"
#include "certstore/testing/status_matchers.h"
#include "tests/support/replay_seed.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(SplitStoreUriTest, SplitsLayersTopFirst) {
  EXPECT_THAT(SplitStoreUri("memory:"), IsOkAndHolds(ElementsAre("memory:")));
  EXPECT_THAT(SplitStoreUri("memory:,sqlite:/var/a.db"),
              IsOkAndHolds(ElementsAre("memory:", "sqlite:/var/a.db")));
  EXPECT_THAT(SplitStoreUri("memory:,file:/d,sqlite:/a.db"),
              IsOkAndHolds(ElementsAre("memory:", "file:/d", "sqlite:/a.db")));
}

TEST(SplitStoreUriTest, CommaInsidePkcs11AttributeStaysInTheLayer) {
  const std::string p11 =
      "pkcs11:token=a,b;object=x?module-path=/m.so&pin-source=file:/p";
  EXPECT_THAT(SplitStoreUri(absl::StrCat("memory:,", p11)),
              IsOkAndHolds(ElementsAre("memory:", p11)));
}

struct BadUri {
  std::string name;
  std::string uri;
  std::string says;
};

class SplitStoreUriBadInput : public ::testing::TestWithParam<BadUri> {};

TEST_P(SplitStoreUriBadInput, IsInvalidArgumentSayingWhy) {
  EXPECT_THAT(
      SplitStoreUri(GetParam().uri),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().says)));
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, SplitStoreUriBadInput,
    ::testing::Values(
        BadUri{"Empty", "", "empty"},
        BadUri{"LeadingComma", ",memory:", "empty layer"},
        BadUri{"DoubleComma", "memory:,,sqlite:/a.db", "empty layer"},
        BadUri{"TrailingComma", "memory:,", "empty layer"},
        BadUri{"UnknownScheme", "ftp://x", "unknown scheme"},
        BadUri{"UnknownSchemeListsKnown", "redis:", "sqlite:"},
        BadUri{"NoScheme", "/var/lib/a.db", "unknown scheme"},
        BadUri{"Nul", std::string("memory:\0,sqlite:/a", 18), "NUL"},
        BadUri{"SixtyFourKib", "sqlite:/" + std::string(64 * 1024, 'a'),
               "longer than"}),
    [](const auto& param_info) { return param_info.param.name; });

class OpenStoreTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(OpenStoreTest, OpensMemoryOverSqliteAndRoundTrips) {
  const std::string uri = absl::StrCat("memory:,sqlite:", dir_.path(), "/s.db");
  auto store = OpenStore(uri);
  ASSERT_OK(store);
  EXPECT_EQ((*store)->Name(), uri);
  EXPECT_EQ((*store)->layers().size(), 2u);
  struct stat st;
  ASSERT_EQ(stat((dir_.path() + "/s.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(OpenStoreTest, OpensMemoryOverPemDirectory) {
  const std::string uri = absl::StrCat("memory:,file:", dir_.path(), "/certs");
  auto store = OpenStore(uri);
  ASSERT_OK(store);
  EXPECT_EQ((*store)->Name(), uri);
}

TEST_F(OpenStoreTest, DecodesPercentEscapesInPaths) {
  auto store =
      OpenStore(absl::StrCat("sqlite:", dir_.path(), "/with%20space.db"));
  ASSERT_OK(store);
  EXPECT_EQ(access((dir_.path() + "/with space.db").c_str(), F_OK), 0);
}

// Property: any directory name, percent-encoded by the project's encoder,
// is opened by the registry at exactly that path.
TEST_F(OpenStoreTest, EncodedPathsOfRandomBytesOpenThatPath) {
  std::mt19937_64 rng(ReplaySeed());
  std::uniform_int_distribution<int> byte(1, 255);
  std::uniform_int_distribution<int> size(1, 24);
  for (int round = 0; round < 50; ++round) {
    std::string name;
    for (int n = size(rng); n > 0; --n) {
      const char c = static_cast<char>(byte(rng));
      if (c != '/') name.push_back(c);
    }
    if (name.empty() || name == "." || name == "..") continue;
    const std::string path = absl::StrCat(dir_.path(), "/", name);
    const std::string uri =
        absl::StrCat("file:", internal::PercentEncode(path, "/"));
    ASSERT_OK(OpenStore(uri)) << "seed " << ReplaySeed() << " round " << round;
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0)
        << "seed " << ReplaySeed() << " round " << round;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
  }
}

TEST_F(OpenStoreTest, AcceptsEmptyAuthority) {
  EXPECT_OK(OpenStore(absl::StrCat("sqlite://", dir_.path(), "/triple.db")));
}

struct BadLayer {
  std::string name;
  std::string layer;  // "{dir}" is replaced by a temp directory
  std::string says;
};

class OpenStoreBadInput : public ::testing::TestWithParam<BadLayer> {
 protected:
  TempDir dir_;
};

TEST_P(OpenStoreBadInput, IsInvalidArgumentQuotingThePart) {
  std::string uri = GetParam().layer;
  if (size_t pos = uri.find("{dir}"); pos != std::string::npos) {
    uri.replace(pos, 5, dir_.path());
  }
  EXPECT_THAT(OpenStore(uri), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr(GetParam().says)));
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, OpenStoreBadInput,
    ::testing::Values(
        BadLayer{"RelativeSqlitePath", "sqlite:relative.db", "absolute path"},
        BadLayer{"RelativeFilePath", "file:certs", "absolute path"},
        BadLayer{"PercentNul", "sqlite:{dir}/a%00b.db", "%00"},
        BadLayer{"BadEscape", "sqlite:{dir}/a%G1.db", "%-escape"},
        BadLayer{"TruncatedEscape", "sqlite:{dir}/a%4", "%-escape"},
        BadLayer{"DuplicateAttribute",
                 "sqlite:{dir}/a.db?busy-budget-ms=1&busy-budget-ms=2",
                 "given twice"},
        BadLayer{"UnknownAttribute", "sqlite:{dir}/a.db?cache=big",
                 "unknown attribute \"cache\""},
        BadLayer{"BadBudget", "sqlite:{dir}/a.db?busy-budget-ms=soon",
                 "busy-budget-ms"},
        BadLayer{"BadJournal", "sqlite:{dir}/a.db?journal=fast", "journal"},
        BadLayer{"FileTakesNoAttributes", "file:{dir}/c?x=1", "unknown"},
        BadLayer{"MemoryWithPath", "memory:/x", "no path"},
        BadLayer{"MemoryBelowTop", "sqlite:{dir}/a.db,memory:", "top layer"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(OpenStorePkcs11Test, PinInTheUriIsRefusedAndNeverQuoted) {
  auto store = OpenStore(
      "memory:,pkcs11:token=t?module-path=/usr/lib/softhsm/libsofthsm2.so"
      "&pin-value=SECRET-1234");
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kInvalidArgument,
                              Not(HasSubstr("SECRET-1234"))));
}

TEST(RedactStoreUriTest, MasksSecrets) {
  EXPECT_EQ(RedactStoreUri("pkcs11:token=t?pin-value=1234&module-path=/m"),
            "pkcs11:token=t?pin-value=***&module-path=/m");
  EXPECT_EQ(RedactStoreUri("sqlite:/a.db"), "sqlite:/a.db");
}

class ResolveStoreUriTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("CERTSTORE_URI");
    unsetenv("CERTSTORE_CONFIG");
    setenv("XDG_STATE_HOME", (dir_.path() + "/state").c_str(), 1);
  }
  void TearDown() override {
    unsetenv("CERTSTORE_URI");
    unsetenv("CERTSTORE_CONFIG");
    unsetenv("XDG_STATE_HOME");
  }
  std::string WriteConfig(const std::string& text) {
    std::string path = dir_.path() + "/config.json";
    std::ofstream(path) << text;
    return path;
  }
  TempDir dir_;
};

TEST_F(ResolveStoreUriTest, FlagThenEnvironmentThenConfigThenDefault) {
  const std::string config = WriteConfig(R"({"store": "memory:"})");
  setenv("CERTSTORE_URI", "sqlite:/env.db", 1);
  EXPECT_THAT(ResolveStoreUri("file:/flag", config),
              IsOkAndHolds(std::string("file:/flag")));
  EXPECT_THAT(ResolveStoreUri("", config),
              IsOkAndHolds(std::string("sqlite:/env.db")));
  unsetenv("CERTSTORE_URI");
  EXPECT_THAT(ResolveStoreUri("", config),
              IsOkAndHolds(std::string("memory:")));
  setenv("CERTSTORE_CONFIG", config.c_str(), 1);
  EXPECT_THAT(ResolveStoreUri("", ""), IsOkAndHolds(std::string("memory:")));
  unsetenv("CERTSTORE_CONFIG");
  EXPECT_THAT(ResolveStoreUri("", ""),
              IsOkAndHolds(absl::StrCat("memory:,sqlite:", dir_.path(),
                                        "/state/certstore/certstore.db")));
}

TEST_F(ResolveStoreUriTest, DefaultStateDirectoryIsCreatedPrivate) {
  ASSERT_OK(DefaultStoreUri());
  struct stat st;
  ASSERT_EQ(stat((dir_.path() + "/state/certstore").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(ResolveStoreUriTest, NoStateDirectoryNamesTheVariablesAndTheFlag) {
  const char* home = getenv("HOME");
  const std::string saved_home = home != nullptr ? home : "";
  unsetenv("XDG_STATE_HOME");
  unsetenv("HOME");
  absl::StatusOr<std::string> uri = DefaultStoreUri();
  if (home != nullptr) {
    setenv("HOME", saved_home.c_str(), 1);
  }
  EXPECT_THAT(uri, StatusIs(absl::StatusCode::kFailedPrecondition,
                            AllOf(HasSubstr("XDG_STATE_HOME"),
                                  HasSubstr("HOME"), HasSubstr("--store"))));
}

TEST_F(ResolveStoreUriTest, ConfigWithLayersIsJoined) {
  const std::string config =
      WriteConfig(R"({"layers": ["memory:", "sqlite:/var/a.db"]})");
  EXPECT_THAT(ResolveStoreUri("", config),
              IsOkAndHolds(std::string("memory:,sqlite:/var/a.db")));
}

TEST_F(ResolveStoreUriTest, MalformedConfigsNameTheFile) {
  for (const char* text :
       {"not json", "[]", R"({"store": 42})", R"({"layers": []})",
        R"({"layers": ["memory:", 7]})", R"({"other": "memory:"})"}) {
    const std::string config = WriteConfig(text);
    EXPECT_THAT(ResolveStoreUri("", config),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(config), HasSubstr("expected"))))
        << text;
  }
}

TEST_F(ResolveStoreUriTest, MissingConfigIsNotFoundNamingTheFile) {
  EXPECT_THAT(ResolveStoreUri("", dir_.path() + "/absent.json"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.json")));
}

}  // namespace
}  // namespace certstore::testing

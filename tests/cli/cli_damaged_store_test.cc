// Stores whose bytes are not what certstore wrote, through the certstore
// command as a child process: entries whose alias and metadata hold bytes
// that are not text (printed escaped, docs/cli.md "Bytes that are not
// text"), and the corruption drill: copies of a 20-entry store with 1–16
// random bytes flipped each, on which `list` and `show` must answer with a
// documented exit code and valid output, never a signal.
//
// CERTSTORE_DRILL_COPIES sets the copies per store (default 200;
// scripts/soak runs 10,000); CERTSTORE_DRILL_SEED replays one run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certstore/entry.h"
#include "certstore/open_store.h"
#include "certstore/testing/test_pki.h"
#include "tests/cli/cli_runner.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// An alias with invalid UTF-8, an escape sequence that would recolour a
// terminal, and a right-to-left override.
const std::string kOddAlias = "odd\xff\xfe\x1b[31m\xe2\x80\xae!";
const char kOddAliasPrinted[] = R"(odd\xff\xfe\x1b[31m\xe2\x80\xae!)";

// What every answer on a damaged store keeps: no signal, a documented exit
// code, a message when it fails, only valid JSON lines in JSON mode, and no
// byte a terminal would act on.
void ExpectAnswered(const ProcessResult& r, bool json) {
  EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << ": " << r.err;
  EXPECT_FALSE(r.timed_out);
  EXPECT_GE(r.exit_code, 0) << r.err;
  EXPECT_LE(r.exit_code, 6) << r.err;
  if (r.exit_code != 0) {
    EXPECT_FALSE(r.out.empty() && r.err.empty());  // says why
  }
  EXPECT_THAT(r.err, Not(HasSubstr("unexpected exception")));
  if (json) {
    JsonLines(r.out);  // fails the test on a line that does not parse
    JsonLines(r.err);
  }
  for (unsigned char c : r.out + r.err) {
    ASSERT_TRUE(c >= 0x20 || c == '\n' || c == '\t')
        << "control byte " << int{c} << " in: " << r.out << r.err;
    ASSERT_NE(c, 0x7f);
  }
}

class CliDamagedStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool IsSqlite() const { return GetParam() == "sqlite"; }
  // The store's location (a file or a directory) under `root`.
  std::string Location(const std::string& root) const {
    return root + (IsSqlite() ? "/store.db" : "/certs");
  }
  std::string Uri(const std::string& root) const {
    return absl::StrCat(GetParam(), ":", Location(root));
  }

  void Put(const std::string& root, EntryParts parts) {
    auto store = OpenStore(Uri(root));
    ASSERT_TRUE(store.ok()) << store.status();
    auto entry = Entry::Create(std::move(parts));
    ASSERT_TRUE(entry.ok()) << entry.status();
    ASSERT_TRUE((*store)->Put(*entry).ok());
  }

  EntryParts Parts(const std::string& alias, int key_index) const {
    const absl::Time now =
        absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
    LeafOptions leaf;
    leaf.not_before = now - absl::Hours(1);
    leaf.not_after = now + absl::Hours(24 * 7);
    EntryParts parts;
    parts.alias = alias;
    parts.key = PoolKey(KeyType::kEcP256, key_index % 4);
    parts.chain_der = pki_.IssueChain(*parts.key, leaf);
    parts.created_at = now;
    return parts;
  }

  ProcessResult Cli(const std::string& root, std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", Uri(root)});
    return RunCli(args, {}, absl::Seconds(30));
  }

  TempDir dir_;
  TestPki pki_;
};

TEST_P(CliDamagedStoreTest, BytesThatAreNotTextPrintEscaped) {
  EntryParts parts = Parts(kOddAlias, 0);
  parts.metadata.endpoint = "https://issuer.test/\xc3\x28";
  parts.metadata.client_id = "\x1b]0;owned\x07";
  Put(dir_.path(), std::move(parts));

  for (const bool json : {false, true}) {
    SCOPED_TRACE(json ? "json" : "text");
    std::vector<std::string> output;
    if (json) {
      output = {"--output", "json"};
    }
    std::vector<std::string> list_args = output;
    list_args.push_back("list");
    ProcessResult list = Cli(dir_.path(), list_args);
    ExpectAnswered(list, json);
    EXPECT_EQ(list.exit_code, 0) << list.err;
    std::vector<std::string> show_args = output;
    show_args.insert(show_args.end(), {"show", kOddAlias});
    ProcessResult show = Cli(dir_.path(), show_args);
    ExpectAnswered(show, json);
    EXPECT_EQ(show.exit_code, 0) << show.err;
    if (json) {
      std::vector<nlohmann::json> entries = JsonOfKind(list.out, "entry");
      ASSERT_EQ(entries.size(), 1u) << list.out;
      EXPECT_EQ(entries[0]["alias"], kOddAliasPrinted);
      std::vector<nlohmann::json> details =
          JsonOfKind(show.out, "entry_details");
      ASSERT_EQ(details.size(), 1u) << show.out;
      EXPECT_EQ(details[0]["alias"], kOddAliasPrinted);
      EXPECT_EQ(details[0]["metadata"]["endpoint"],
                "https://issuer.test/\\xc3(");
      EXPECT_EQ(details[0]["metadata"]["client_id"], "\\x1b]0;owned\\x07");
    } else {
      EXPECT_THAT(list.out, HasSubstr(kOddAliasPrinted));
      EXPECT_THAT(show.out, HasSubstr(kOddAliasPrinted));
      EXPECT_THAT(show.out, HasSubstr("\\x1b]0;owned\\x07"));
    }
  }
  // An alias the store does not hold is named escaped too.
  ProcessResult missing = Cli(dir_.path(), {"show", "gone\x1b[2J"});
  ExpectAnswered(missing, false);
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
}

// The regular files of a store, in a stable order.
std::vector<fs::path> StoreFiles(const fs::path& location) {
  std::vector<fs::path> files;
  if (fs::is_regular_file(location)) {
    files.push_back(location);
  } else {
    for (const auto& item : fs::recursive_directory_iterator(location)) {
      if (item.is_regular_file()) {
        files.push_back(item.path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Damages `files` in place: `count` random bytes flipped (a random file,
// offset and non-zero mask each), or one file cut at a random length.
// Returns the damaged files.
std::set<fs::path> Damage(const std::vector<fs::path>& files, int count,
                          bool truncate, std::mt19937* random) {
  std::set<fs::path> damaged;
  for (int i = 0; i < (truncate ? 1 : count); ++i) {
    const fs::path& file = files[(*random)() % files.size()];
    std::string bytes = ReadFile(file.string());
    if (bytes.empty()) {
      continue;
    }
    if (truncate) {
      bytes.resize((*random)() % bytes.size());
    } else {
      bytes[(*random)() % bytes.size()] ^=
          static_cast<char>(1 + (*random)() % 255);
    }
    const auto mode = fs::status(file).permissions();
    WriteFile(file.string(), bytes, static_cast<mode_t>(mode));
    damaged.insert(file);
  }
  return damaged;
}

TEST_P(CliDamagedStoreTest, CorruptionDrillNeverAborts) {
  const std::string pristine = dir_.path() + "/pristine";
  fs::create_directory(pristine);
  for (int i = 0; i < 20; ++i) {
    EntryParts parts = Parts(absl::StrCat("app-", i), i);
    // doctor's endpoint step meets a closed loopback port, not the network.
    parts.metadata.endpoint = absl::StrCat("https://127.0.0.1:9/", i);
    Put(pristine, std::move(parts));
  }
  const uint32_t seed = ReplaySeed();
  std::mt19937 random(seed);
  const int copies = LoopCount("CERTSTORE_DRILL_COPIES", 200);
  int failed_runs = 0;
  for (int copy = 0; copy < copies && !HasFatalFailure(); ++copy) {
    SCOPED_TRACE(absl::StrCat("CERTSTORE_DRILL_SEED=", seed, " copy ", copy));
    const std::string root = absl::StrCat(dir_.path(), "/copy");
    fs::remove_all(root);
    fs::copy(pristine, root, fs::copy_options::recursive);
    fs::permissions(root, fs::status(pristine).permissions());
    if (!IsSqlite()) {
      fs::permissions(Location(root),
                      fs::status(Location(pristine)).permissions());
    }
    const bool truncate = random() % 4 == 0;
    const std::set<fs::path> damaged = Damage(
        StoreFiles(Location(root)), 1 + random() % 16, truncate, &random);

    const std::string alias = absl::StrCat("app-", random() % 20);
    ProcessResult list = Cli(root, {"--output", "json", "list"});
    ExpectAnswered(list, true);
    failed_runs += list.exit_code != 0;
    for (const std::vector<std::string>& verb :
         std::vector<std::vector<std::string>>{
             {"show", alias},
             {"--output", "json", "show", alias},
             {"export", alias},
             {"probe", alias},
             {"doctor", alias, "--deadline", "2s"}}) {
      SCOPED_TRACE(verb[0] == "--output" ? "show json" : verb[0]);
      ProcessResult r = Cli(root, verb);
      ExpectAnswered(r, verb[0] == "--output");
      failed_runs += r.exit_code != 0;
    }
    // A PEM directory keeps each alias in its own directory: the aliases
    // whose files are untouched still list.
    if (!IsSqlite()) {
      std::set<std::string> listed;
      for (const nlohmann::json& entry : JsonOfKind(list.out, "entry")) {
        listed.insert(entry.value("alias", ""));
      }
      for (int i = 0; i < 20; ++i) {
        const std::string intact = absl::StrCat("app-", i);
        std::string dir_name = "a-" + absl::WebSafeBase64Escape(intact);
        bool touched = false;
        for (const fs::path& file : damaged) {
          touched = touched || file.parent_path().filename() == dir_name;
        }
        EXPECT_TRUE(touched || listed.count(intact) == 1)
            << intact << " is intact but not listed: " << list.out << list.err;
      }
    }
  }
  // The drill reached damage that the store noticed.
  EXPECT_GT(failed_runs, 0);
}

INSTANTIATE_TEST_SUITE_P(Stores, CliDamagedStoreTest,
                         ::testing::Values("sqlite", "file"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });

}  // namespace
}  // namespace certstore::testing

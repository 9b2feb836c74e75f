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
#include <sqlite3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
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

// Which pages of a pristine SQLite store each alias's lookup depends on,
// read with the dbstat virtual table: page 1 (header and schema), every
// page of the alias index, every interior or overflow page (a lookup may
// walk any of them), and the table leaf that holds the alias's row (found
// by its leaf certificate's bytes).
struct SqlitePageMap {
  int64_t page_size = 0;
  std::set<int64_t> shared;
  std::map<std::string, int64_t> leaf_of;  // alias -> page

  // The aliases a lookup of which cannot meet a damaged byte.
  bool Intact(const std::string& alias,
              const std::set<int64_t>& damaged_pages) const {
    auto leaf = leaf_of.find(alias);
    if (leaf == leaf_of.end() || damaged_pages.count(leaf->second) > 0) {
      return false;
    }
    for (int64_t page : damaged_pages) {
      if (shared.count(page) > 0) return false;
    }
    return true;
  }
};

SqlitePageMap MapPages(const std::string& db,
                       const std::map<std::string, std::string>& leaf_der) {
  SqlitePageMap map;
  sqlite3* handle = nullptr;
  if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << db;
    sqlite3_close(handle);
    return map;
  }
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(handle, "PRAGMA page_size", -1, &stmt, nullptr);
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    map.page_size = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  sqlite3_prepare_v2(handle, "SELECT name, pageno, pagetype FROM dbstat", -1,
                     &stmt, nullptr);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const std::string name =
        reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    const std::string type =
        reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2));
    if (name != "entries" || type != "leaf") {
      map.shared.insert(sqlite3_column_int64(stmt, 1));
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close(handle);
  map.shared.insert(1);
  const std::string bytes = ReadFile(db);
  for (const auto& [alias, der] : leaf_der) {
    const size_t at = bytes.find(der);
    if (at != std::string::npos && map.page_size > 0) {
      map.leaf_of[alias] = static_cast<int64_t>(at) / map.page_size + 1;
    }
  }
  return map;
}

TEST_P(CliDamagedStoreTest, CorruptionDrillNeverAborts) {
  const std::string pristine = dir_.path() + "/pristine";
  fs::create_directory(pristine);
  std::map<std::string, std::string> leaf_der;  // alias -> leaf certificate
  for (int i = 0; i < 20; ++i) {
    EntryParts parts = Parts(absl::StrCat("app-", i), i);
    // doctor's endpoint step meets a closed loopback port, not the network.
    parts.metadata.endpoint = absl::StrCat("https://127.0.0.1:9/", i);
    leaf_der[parts.alias] = parts.chain_der[0];
    Put(pristine, std::move(parts));
  }
  SqlitePageMap pages;
  if (IsSqlite()) {
    pages = MapPages(Location(pristine), leaf_der);
    ASSERT_EQ(pages.leaf_of.size(), 20u) << "every row found in the file";
  }
  int intact_checked = 0;
  const uint32_t seed = ReplaySeed();
  std::mt19937 random(seed);
  const int copies = LoopCount("CERTSTORE_DRILL_COPIES", 200);
  int failed_runs = 0;
  int runs = 0;
  int copy = 0;
  for (; copy < copies && !HasFatalFailure(); ++copy) {
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
    ++runs;
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
      ++runs;
      failed_runs += r.exit_code != 0;
    }
    // SQLite: an alias whose lookup path (see SqlitePageMap) holds no
    // damaged byte is still found, with its own certificate. A truncated
    // file is refused as a whole, by design.
    if (IsSqlite() && !truncate && fs::exists(Location(root))) {
      const std::string before = ReadFile(Location(pristine));
      const std::string after = ReadFile(Location(root));
      std::set<int64_t> damaged_pages;
      for (size_t at = 0; at < before.size() && at < after.size(); ++at) {
        if (before[at] != after[at]) {
          damaged_pages.insert(static_cast<int64_t>(at) / pages.page_size + 1);
        }
      }
      auto store = OpenStore(Uri(root));
      for (int i = 0; i < 20 && store.ok(); ++i) {
        const std::string intact = absl::StrCat("app-", i);
        if (!pages.Intact(intact, damaged_pages)) continue;
        ++intact_checked;
        auto found = (*store)->Find(intact);
        EXPECT_TRUE(found.ok() && (*found)->chain_der()[0] == leaf_der[intact])
            << intact << " is intact (damaged pages elsewhere) but "
            << (found.ok() ? "another certificate came back"
                           : found.status().ToString());
      }
      bool shared_page_damaged = false;
      for (int64_t page : damaged_pages) {
        shared_page_damaged = shared_page_damaged || pages.shared.count(page);
      }
      EXPECT_TRUE(store.ok() || shared_page_damaged)
          << "only damage to the header, schema, meta, index or interior "
             "pages may refuse the whole store: "
          << store.status();
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
  RecordProperty("intact_rows_checked", intact_checked);
  std::printf(
      "corruption drill (%s): %d copies, %d command runs (%d exited non-zero "
      "with a documented code), %d intact rows checked\n",
      GetParam().c_str(), copy, runs, failed_runs, intact_checked);
  if (IsSqlite() && copies >= 100) {
    EXPECT_GT(intact_checked, 0) << "no copy left a row intact to check";
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, CliDamagedStoreTest,
                         ::testing::Values("sqlite", "file"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });

}  // namespace
}  // namespace certstore::testing

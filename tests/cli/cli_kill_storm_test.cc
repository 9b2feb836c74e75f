// Kill storms through the command: `certstore import` and `delete` on a
// persistent store, each SIGKILLed at a random point of its run (or let
// finish), over and over. After every storm step the store must hold what
// was acknowledged: an import that exited 0 is there, a delete that exited
// 0 removed it, an operation that was killed left the alias either way —
// and never torn (every verb still answers with a documented code).
//
// CERTSTORE_KILL_STORM sets the steps per store (default 100; scripts/soak
// runs 500); CERTSTORE_DRILL_SEED replays one run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/key.h"
#include "certstore/testing/test_pki.h"
#include "tests/cli/cli_runner.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

enum class Known { kPresent, kAbsent, kEither };

class CliKillStormTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    store_ = absl::StrCat(GetParam(), ":", dir_.path(),
                          GetParam() == "sqlite" ? "/store.db" : "/certs");
    const absl::Time now = absl::Now();
    LeafOptions leaf;
    leaf.not_before = now - absl::Hours(1);
    leaf.not_after = now + absl::Hours(24 * 7);
    auto key = PoolKey(KeyType::kEcP256, 0);
    const std::vector<std::string> chain = pki_.IssueChain(*key, leaf);
    thumbprint_ = Thumbprint(chain[0]);
    bundle_ = dir_.path() + "/bundle.pem";
    WriteFile(bundle_, DerChainToPem(chain) + *KeyToPem(*key));
  }

  ProcessResult Cli(std::vector<std::string> args, absl::Duration timeout) {
    args.insert(args.begin(), {"--store", store_});
    return RunCli(args, {}, timeout);
  }

  // What `show` says of `alias` agrees with what was acknowledged.
  void ExpectState(const std::string& alias, Known known) {
    ProcessResult show = Cli({"show", alias}, absl::Seconds(30));
    EXPECT_EQ(show.signal, 0) << show.err;
    EXPECT_FALSE(show.timed_out);
    switch (known) {
      case Known::kPresent:
        EXPECT_EQ(show.exit_code, 0) << alias << ": " << show.err;
        EXPECT_THAT(show.out, ::testing::HasSubstr(thumbprint_));
        break;
      case Known::kAbsent:
        EXPECT_EQ(show.exit_code, 3) << alias << ": " << show.out << show.err;
        break;
      case Known::kEither:
        EXPECT_TRUE(show.exit_code == 0 || show.exit_code == 3)
            << alias << " is torn: exit " << show.exit_code << ": " << show.err;
        break;
    }
  }

  TempDir dir_;
  TestPki pki_;
  std::string store_;
  std::string thumbprint_;
  std::string bundle_;
};

TEST_P(CliKillStormTest, AcknowledgedWritesSurviveAndNothingIsTorn) {
  const uint32_t seed = ReplaySeed();
  std::mt19937 random(seed);
  const std::vector<std::string> aliases = {"a0", "a1", "a2", "a3"};
  std::map<std::string, Known> known;
  for (const std::string& alias : aliases) {
    known[alias] = Known::kAbsent;
  }
  int acknowledged = 0;
  int killed = 0;
  const int steps = LoopCount("CERTSTORE_KILL_STORM", 100);
  for (int step = 0; step < steps && !HasFailure(); ++step) {
    SCOPED_TRACE(absl::StrCat("CERTSTORE_DRILL_SEED=", seed, " step ", step));
    const std::string& alias = aliases[random() % aliases.size()];
    const bool import = random() % 3 != 0;
    // Killed anywhere from before main() to after the write; one step in
    // eight runs to the end, so that acknowledged writes keep coming on a
    // slow machine too.
    const absl::Duration timeout =
        random() % 8 == 0 ? absl::Seconds(30)
                          : absl::Microseconds(500 + random() % 80000);
    std::vector<std::string> args = {"--store", store_};
    if (import) {
      args.insert(args.end(), {"import", alias, bundle_});
    } else {
      args.insert(args.end(), {"delete", alias});
    }
    ProcessResult r = RunCliKilledAfter(args, timeout);
    if (r.timed_out || r.signal != 0) {
      ++killed;
      known[alias] = Known::kEither;
    } else if (import) {
      ASSERT_EQ(r.exit_code, 0) << r.err;
      ++acknowledged;
      known[alias] = Known::kPresent;
    } else {
      ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 3) << r.err;
      ++acknowledged;
      known[alias] = Known::kAbsent;
    }
    ExpectState(alias, known[alias]);
  }
  for (const std::string& alias : aliases) {
    ExpectState(alias, known[alias]);
  }
  ProcessResult list = Cli({"--output", "json", "list"}, absl::Seconds(30));
  EXPECT_EQ(list.exit_code, 0) << list.err;
  JsonLines(list.out);
  EXPECT_GT(acknowledged, 0);
  RecordProperty("killed", killed);
  RecordProperty("acknowledged", acknowledged);
}

INSTANTIATE_TEST_SUITE_P(Stores, CliKillStormTest,
                         ::testing::Values("sqlite", "file"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });

}  // namespace
}  // namespace certstore::testing

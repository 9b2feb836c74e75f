// Many processes opening the same SoftHSM token at once: SoftHSM reads a
// token's files while others rewrite them and can report it absent or
// uninitialised; the store re-initialises its module and asks again, so
// that no process fails. 16 `certstore list` (and `show`) runs at once,
// 10 rounds, against a token that holds an entry.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/key.h"
#include "certstore/testing/test_pki.h"
#include "tests/cli/cli_runner.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

TEST(CliPkcs11ConcurrencyTest, SixteenProcessesOpenTheSameTokenAtOnce) {
  auto token = SoftHsmToken::Create("concurrent-open");
  ASSERT_TRUE(token.ok()) << token.status();
  const std::string store = (*token)->Uri() + "&x-allow-import=true";
  TempDir dir;
  TestPki pki;
  const absl::Time now = absl::Now();
  LeafOptions leaf;
  leaf.not_before = now - absl::Hours(1);
  leaf.not_after = now + absl::Hours(24 * 7);
  auto key = PoolKey(KeyType::kEcP256, 0);
  const std::string bundle = dir.path() + "/app.pem";
  WriteFile(bundle,
            DerChainToPem(pki.IssueChain(*key, leaf)) + *KeyToPem(*key));
  ProcessResult imported = RunCli({"--store", store, "import", "app", bundle});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;

  constexpr int kProcesses = 16;
  int failures = 0;
  for (int round = 0; round < 10; ++round) {
    std::vector<ProcessResult> results(kProcesses);
    std::vector<std::thread> threads;
    for (int i = 0; i < kProcesses; ++i) {
      threads.emplace_back([&, i] {
        results[i] = RunCli(
            i % 2 == 0
                ? std::vector<std::string>{"--store", store, "list"}
                : std::vector<std::string>{"--store", store, "show", "app"});
      });
    }
    for (std::thread& t : threads) {
      t.join();
    }
    for (const ProcessResult& r : results) {
      if (r.exit_code != 0) {
        ++failures;
        ADD_FAILURE() << "round " << round << ": exit " << r.exit_code << ": "
                      << r.err;
      }
    }
  }
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace certstore::testing

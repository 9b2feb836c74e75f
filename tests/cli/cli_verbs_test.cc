// Every verb of the certstore command, through the real binary, on every
// persistent backend (and memory over one): output (text and JSON) and exit
// codes, and bad input answered with a clear message and its exit code.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/chain.h"
#include "certstore/key.h"
#include "certstore/testing/test_pki.h"
#include "tests/cli/cli_runner.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

struct Backend {
  std::string name;
  bool keys_leave_the_store;  // export --include-key works
};

class CliVerbsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    const std::string& name = GetParam().name;
    if (name == "sqlite") {
      store_ = "sqlite:" + dir_.path() + "/store.db";
    } else if (name == "file") {
      store_ = "file:" + dir_.path() + "/certs";
    } else if (name == "memory_over_sqlite") {
      store_ = "memory:,sqlite:" + dir_.path() + "/store.db";
    } else {
      static std::atomic<int> next{0};
      auto token = SoftHsmToken::Create(absl::StrCat("cli-", next++));
      ASSERT_TRUE(token.ok()) << token.status();
      token_ = *std::move(token);
      store_ = token_->Uri() + "&x-allow-import=true";
    }
    now_ = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
    key_ = PoolKey(KeyType::kEcP256, 0);
    chain_ = pki_.IssueChain(
        *key_, Validity(now_ - absl::Hours(1), now_ + absl::Hours(24 * 7)));
    thumbprint_ = Thumbprint(chain_[0]);
    bundle_ = dir_.path() + "/app.pem";
    WriteFile(bundle_, DerChainToPem(chain_) + *KeyToPem(*key_));
  }

  static LeafOptions Validity(absl::Time not_before, absl::Time not_after) {
    LeafOptions options;
    options.not_before = not_before;
    options.not_after = not_after;
    return options;
  }

  ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", store_});
    return RunCli(args);
  }

  void Import(const std::string& alias) {
    ProcessResult r = Cli({"import", alias, bundle_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  TempDir dir_;
  std::unique_ptr<SoftHsmToken> token_;
  std::string store_;
  TestPki pki_;
  absl::Time now_;
  std::shared_ptr<const Key> key_;
  std::vector<std::string> chain_;
  std::string thumbprint_;
  std::string bundle_;
};

TEST_P(CliVerbsTest, ImportThenListAndShowInTextAndJson) {
  ProcessResult imported = Cli({"import", "app#att=0", bundle_});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out, AllOf(HasSubstr("imported \"app#att=0\""),
                                  HasSubstr(thumbprint_)));

  ProcessResult list = Cli({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, AllOf(HasSubstr("ALIAS\tTHUMBPRINT"),
                              HasSubstr("\"app#att=0\"\t" + thumbprint_),
                              HasSubstr("6d 23h")));
  ProcessResult json = Cli({"--output", "json", "list"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  std::vector<nlohmann::json> entries = JsonOfKind(json.out, "entry");
  ASSERT_THAT(entries, SizeIs(1));
  EXPECT_EQ(entries[0]["alias"], "app#att=0");
  EXPECT_EQ(entries[0]["thumbprint"], thumbprint_);
  EXPECT_EQ(entries[0]["chain_length"], 2);
  EXPECT_EQ(entries[0]["key_algorithm"], "EC-P256");
  EXPECT_GT(entries[0]["seconds_left"].get<int64_t>(), 6 * 86400);
  EXPECT_THAT(entries[0]["layer"].get<std::string>(),
              HasSubstr(GetParam().name == "pkcs11" ? "pkcs11:" : ":/"));

  ProcessResult show = Cli({"show", "app#att=0"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_THAT(show.out,
              AllOf(HasSubstr("subject:      CN=test-client"),
                    HasSubstr("issuer:       "), HasSubstr(thumbprint_),
                    HasSubstr("chain:        2 certificate(s)"),
                    HasSubstr("key:          EC-P256"),
                    HasSubstr("servable:     yes")));
  ProcessResult show_json = Cli({"--output", "json", "show", "app#att=0"});
  std::vector<nlohmann::json> details =
      JsonOfKind(show_json.out, "entry_details");
  ASSERT_THAT(details, SizeIs(1));
  EXPECT_EQ(details[0]["thumbprint"], thumbprint_);
  EXPECT_THAT(details[0]["subject"].get<std::string>(),
              HasSubstr("CN=test-client"));
  EXPECT_EQ(details[0]["current"], true);
  EXPECT_EQ(details[0]["servable"], true);
  // Nothing printed is key material.
  EXPECT_THAT(list.out + show.out + show_json.out,
              Not(HasSubstr("PRIVATE KEY")));
}

TEST_P(CliVerbsTest, ImportsCertAndKeyFilesAndPkcs12) {
  const std::string cert = dir_.path() + "/chain.pem";
  const std::string key = dir_.path() + "/key.pem";
  WriteFile(cert, DerChainToPem(chain_), 0644);
  WriteFile(key, *KeyToPem(*key_));
  ProcessResult separate =
      Cli({"put", "separate", "--cert", cert, "--key", key});
  ASSERT_EQ(separate.exit_code, 0) << separate.err;

  // A PKCS#12 with the leaf NOT first in the file order does not matter.
  const std::string p12 = dir_.path() + "/app.p12";
  const std::string pass = dir_.path() + "/p12.pass";
  WriteFile(p12, MakePkcs12(chain_, *key_, "s3cret"));
  WriteFile(pass, "s3cret\n");
  ProcessResult pkcs12 =
      Cli({"import", "from-p12", p12, "--password-file", pass, "--endpoint",
           "https://login.example", "--client-id", "c1", "--tenant-id", "t1"});
  ASSERT_EQ(pkcs12.exit_code, 0) << pkcs12.err;

  ProcessResult json = Cli({"--output", "json", "show", "from-p12"});
  std::vector<nlohmann::json> details = JsonOfKind(json.out, "entry_details");
  ASSERT_THAT(details, SizeIs(1));
  EXPECT_EQ(details[0]["thumbprint"], thumbprint_);
  EXPECT_EQ(details[0]["metadata"]["endpoint"], "https://login.example");
  EXPECT_EQ(details[0]["metadata"]["tenant_id"], "t1");
  EXPECT_THAT(JsonOfKind(Cli({"--output", "json", "list"}).out, "entry"),
              SizeIs(2));
}

TEST_P(CliVerbsTest, ExportWritesTheChainAndTheKeyOnlyWhereAllowed) {
  Import("app");
  ProcessResult chain = Cli({"export", "app"});
  ASSERT_EQ(chain.exit_code, 0) << chain.err;
  EXPECT_EQ(chain.out, DerChainToPem(chain_));

  ProcessResult to_stdout = Cli({"export", "app", "--include-key"});
  EXPECT_EQ(to_stdout.exit_code, 2);
  EXPECT_THAT(to_stdout.err, HasSubstr("--include-key needs --out"));
  EXPECT_THAT(to_stdout.out, Not(HasSubstr("PRIVATE KEY")));

  const std::string out = dir_.path() + "/exported.pem";
  ProcessResult with_key =
      Cli({"export", "app", "--include-key", "--out", out});
  if (GetParam().keys_leave_the_store) {
    ASSERT_EQ(with_key.exit_code, 0) << with_key.err;
    struct stat st;
    ASSERT_EQ(stat(out.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto key = SoftwareKeyFromPem(ReadFile(out));
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ((*key)->public_key_der(), key_->public_key_der());
    // An existing file is not replaced without --force.
    ProcessResult again = Cli({"export", "app", "--out", out});
    EXPECT_EQ(again.exit_code, 1);
    EXPECT_THAT(again.err, AllOf(HasSubstr(out), HasSubstr("--force")));
    EXPECT_EQ(Cli({"export", "app", "--out", out, "--force"}).exit_code, 0);
    EXPECT_THAT(ReadFile(out), Not(HasSubstr("PRIVATE KEY")));
  } else {
    EXPECT_EQ(with_key.exit_code, 4);
    EXPECT_THAT(with_key.err,
                AllOf(HasSubstr("cannot leave"), HasSubstr("pkcs11:")));
    EXPECT_NE(access(out.c_str(), F_OK), 0) << "no file on refusal";
  }
}

TEST_P(CliVerbsTest, DeleteAndEvictRemoveEveryEntryOfTheAlias) {
  Import("app");
  Import("other");
  ProcessResult evicted = Cli({"--output", "json", "evict", "app"});
  ASSERT_EQ(evicted.exit_code, 0) << evicted.err;
  std::vector<nlohmann::json> lines = JsonOfKind(evicted.out, "evicted");
  ASSERT_THAT(lines, SizeIs(1));
  EXPECT_EQ(lines[0]["removed"], 1);
  EXPECT_EQ(lines[0]["layers"].size(),
            GetParam().name == "memory_over_sqlite" ? 2u : 1u);
  // Evicting nothing is fine; deleting nothing is "not found".
  EXPECT_EQ(Cli({"evict", "app"}).exit_code, 0);
  ProcessResult missing = Cli({"delete", "app"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_THAT(missing.err, HasSubstr("no entry for alias \"app\""));

  Import("app");
  ProcessResult deleted = Cli({"delete", "app"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_THAT(deleted.out, HasSubstr("deleted 1 entry of \"app\""));
  ProcessResult list = Cli({"--output", "json", "list"});
  std::vector<nlohmann::json> left = JsonOfKind(list.out, "entry");
  ASSERT_THAT(left, SizeIs(1));
  EXPECT_EQ(left[0]["alias"], "other");

  ProcessResult bad_layer = Cli({"delete", "other", "--layer", "7"});
  EXPECT_EQ(bad_layer.exit_code, 2);
  EXPECT_THAT(bad_layer.err, HasSubstr("--layer \"7\" is not a layer"));
  // The bottom layer is the persistent one (a fresh process's memory layer
  // holds nothing).
  const std::string bottom =
      GetParam().name == "memory_over_sqlite" ? "1" : "0";
  if (bottom == "1") {
    EXPECT_EQ(Cli({"delete", "other", "--layer", "0"}).exit_code, 3);
  }
  EXPECT_EQ(Cli({"delete", "other", "--layer", bottom}).exit_code, 0);
}

TEST_P(CliVerbsTest, ProbeSignsAndReportsTheTime) {
  Import("app");
  ProcessResult probe = Cli({"probe", "app"});
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  EXPECT_THAT(probe.out,
              AllOf(HasSubstr("✓ key of \"app\""),
                    HasSubstr("signs and verifies"), HasSubstr(" ms")));
  ProcessResult json = Cli({"--output", "json", "probe", "app"});
  std::vector<nlohmann::json> lines = JsonOfKind(json.out, "probe");
  ASSERT_THAT(lines, SizeIs(1));
  EXPECT_EQ(lines[0]["ok"], true);
  EXPECT_GT(lines[0]["elapsed_ms"].get<double>(), 0);
  ProcessResult missing = Cli({"probe", "nope"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_THAT(missing.err, HasSubstr("no entry for alias \"nope\""));
}

TEST_P(CliVerbsTest, NeedsRenewalExitsLikeStepCli) {
  // Valid [now - 2d, now + 5d]: 29 % of its lifetime has passed.
  const std::vector<std::string> chain = pki_.IssueChain(
      *key_, Validity(now_ - absl::Hours(48), now_ + absl::Hours(120)));
  const std::string file = dir_.path() + "/partial.pem";
  WriteFile(file, DerChainToPem(chain) + *KeyToPem(*key_));
  ASSERT_EQ(Cli({"import", "app", file}).exit_code, 0);

  ProcessResult fresh = Cli({"needs-renewal", "app"});
  EXPECT_EQ(fresh.exit_code, 1) << fresh.err;
  EXPECT_THAT(fresh.out, HasSubstr("is fresh: fresh until"));
  EXPECT_EQ(Cli({"needs-renewal", "app", "--invert"}).exit_code, 0);
  EXPECT_EQ(Cli({"needs-renewal", "app", "--expires-in", "20%"}).exit_code, 0);
  EXPECT_EQ(Cli({"needs-renewal", "app", "--expires-in", "50%"}).exit_code, 1);
  EXPECT_EQ(Cli({"needs-renewal", "app", "--expires-in", "6d"}).exit_code, 0);
  EXPECT_EQ(Cli({"needs-renewal", "app", "--expires-in", "4d"}).exit_code, 1);
  EXPECT_EQ(Cli({"needs-renewal", "app", "--expires-in", "144h"}).exit_code, 0);
  EXPECT_EQ(Cli({"needs-renewal", "app", "--expires-in", "96h"}).exit_code, 1);
  ProcessResult json =
      Cli({"--output", "json", "needs-renewal", "app", "--expires-in", "20%"});
  std::vector<nlohmann::json> lines = JsonOfKind(json.out, "renewal");
  ASSERT_THAT(lines, SizeIs(1));
  EXPECT_EQ(lines[0]["needs_renewal"], true);
  EXPECT_EQ(lines[0]["thumbprint"], Thumbprint(chain[0]));

  // Less than the 24 h the token client needs: renew whatever the policy.
  const std::vector<std::string> short_lived = pki_.IssueChain(
      *key_, Validity(now_ - absl::Hours(1), now_ + absl::Hours(12)));
  WriteFile(file, DerChainToPem(short_lived) + *KeyToPem(*key_));
  ASSERT_EQ(Cli({"import", "short", file}).exit_code, 0);
  ProcessResult needs = Cli({"-q", "needs-renewal", "short"});
  EXPECT_EQ(needs.exit_code, 0);
  EXPECT_EQ(needs.out, "") << "-q prints nothing";

  EXPECT_EQ(Cli({"needs-renewal", "nope"}).exit_code, 3);
  for (const char* bad : {"abc", "150%", "0%", "-5h"}) {
    ProcessResult r = Cli({"needs-renewal", "app", "--expires-in", bad});
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_THAT(r.err, HasSubstr("--expires-in")) << bad;
  }
}

// Bad input: a clear message naming the file / alias, the documented exit
// code, and the store left as it was.
TEST_P(CliVerbsTest, BadCredentialFilesAreRefusedAndChangeNothing) {
  const std::string garbage = dir_.path() + "/garbage.pem";
  WriteFile(garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
            "-----END CERTIFICATE-----\n");
  const std::string certs_only = dir_.path() + "/certs-only.pem";
  WriteFile(certs_only, DerChainToPem(chain_), 0644);
  const std::string other_key = dir_.path() + "/other-key.pem";
  WriteFile(other_key, *KeyToPem(*PoolKey(KeyType::kEcP256, 1)));
  const std::string encrypted = dir_.path() + "/encrypted.pem";
  WriteFile(encrypted, DerChainToPem(chain_) +
                           "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
                           "MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAh\n"
                           "-----END ENCRYPTED PRIVATE KEY-----\n");
  const std::string p12 = dir_.path() + "/app.p12";
  const std::string pass = dir_.path() + "/wrong.pass";
  WriteFile(p12, MakePkcs12(chain_, *key_, "right"));
  WriteFile(pass, "wrong\n");
  const std::string open_pass = dir_.path() + "/open.pass";
  WriteFile(open_pass, "right\n", 0644);
  const std::string missing = dir_.path() + "/missing.pem";

  const struct {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  } kCases[] = {
      {{"import", "a", missing}, 3, missing},
      {{"import", "a", dir_.path()}, 2, "not a regular file"},
      {{"import", "a", garbage}, 2, garbage},
      {{"import", "a", certs_only}, 2, "no usable PEM private key"},
      {{"import", "a", encrypted}, 2, "encrypted"},
      {{"import", "a", "--cert", certs_only, "--key", other_key},
       6,
       "no certificate matches the private key"},
      {{"import", "a", "--cert", certs_only},
       2,
       "--cert and --key go together"},
      {{"import", "a", p12, "--password-file", pass},
       4,
       "wrong PKCS#12 password"},
      {{"import", "a", p12, "--password-file", open_pass}, 4, open_pass},
      {{"import", "a"}, 2, "either one credential file"},
      {{"import", "", bundle_}, 2, "alias"},
      {{"import", std::string(1025, 'x'), bundle_}, 2, "1024"},
      {{"show", std::string(1025, 'x')}, 2, "1024"},
  };
  for (const auto& c : kCases) {
    ProcessResult r = Cli(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.args[1] << " " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << r.err;
    EXPECT_THAT(r.err, HasSubstr("certstore: error: "));
    EXPECT_THAT(r.err + r.out, Not(HasSubstr("PRIVATE KEY-----\nMI")));
  }
  if (geteuid() != 0) {  // root reads a 0000 file anyway
    const std::string unreadable = dir_.path() + "/unreadable.pem";
    WriteFile(unreadable, "x", 0000);
    EXPECT_EQ(Cli({"import", "a", unreadable}).exit_code, 4);
  }
  ProcessResult list = Cli({"--output", "json", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(JsonOfKind(list.out, "entry"), SizeIs(0))
      << "a refused import leaves the store unchanged";
}

INSTANTIATE_TEST_SUITE_P(
    Backends, CliVerbsTest,
    ::testing::Values(Backend{"sqlite", true}, Backend{"file", true},
                      Backend{"pkcs11", false},
                      Backend{"memory_over_sqlite", true}),
    [](const ::testing::TestParamInfo<Backend>& param_info) {
      return param_info.param.name;
    });

// ------------------------------------------------ the command line itself

TEST(CliUsageTest, UnknownVerbsAndOptionsAreUsageErrors) {
  ProcessResult verb = RunCli({"frobnicate"});
  EXPECT_EQ(verb.exit_code, 2);
  EXPECT_THAT(verb.err, HasSubstr("frobnicate"));
  ProcessResult option = RunCli({"list", "--frobnicate"});
  EXPECT_EQ(option.exit_code, 2);
  EXPECT_THAT(option.err, HasSubstr("--frobnicate"));
  EXPECT_EQ(RunCli({}).exit_code, 2);
  EXPECT_EQ(RunCli({"--output", "yaml", "list"}).exit_code, 2);
  ProcessResult no_alias = RunCli({"show"});
  EXPECT_EQ(no_alias.exit_code, 2);
  EXPECT_THAT(no_alias.err, HasSubstr("alias"));
}

TEST(CliUsageTest, EveryVerbHasHelpWithExitCodesAndExamples) {
  ProcessResult top = RunCli({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const char* verb :
       {"list", "show", "import", "export", "delete", "evict", "probe", "token",
        "needs-renewal", "doctor"}) {
    EXPECT_THAT(top.out, HasSubstr(verb));
    ProcessResult help = RunCli({verb, "--help"});
    EXPECT_EQ(help.exit_code, 0) << verb;
    EXPECT_THAT(help.out, AllOf(HasSubstr("Exit codes"), HasSubstr("Examples"),
                                HasSubstr(std::string("certstore ") + verb)))
        << verb;
  }
}

TEST(CliUsageTest, BadStoresNameTheUriAndTheProblem) {
  TempDir dir;
  ProcessResult scheme = RunCli({"--store", "redis://x", "list"});
  EXPECT_EQ(scheme.exit_code, 2);
  EXPECT_THAT(scheme.err, HasSubstr("redis"));
  ProcessResult json =
      RunCli({"--output", "json", "--store", "redis://x", "list"});
  std::vector<nlohmann::json> errors = JsonOfKind(json.err, "error");
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_EQ(errors[0]["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(errors[0]["exit_code"], 2);

  // A PIN file others can read: permission, naming the file, never the PIN.
  auto token = SoftHsmToken::Create("cli-pin-mode");
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_EQ(chmod((*token)->pin_file().c_str(), 0644), 0);
  ProcessResult pin = RunCli({"--store", (*token)->Uri(), "list"});
  EXPECT_EQ(pin.exit_code, 4);
  EXPECT_THAT(pin.err, AllOf(HasSubstr((*token)->pin_file()),
                             Not(HasSubstr((*token)->pin()))));

  const std::string config = dir.path() + "/config.json";
  WriteFile(config, "{\"store\": 42}");
  ProcessResult bad_config = RunCli({"--config", config, "list"});
  EXPECT_EQ(bad_config.exit_code, 2);
  EXPECT_THAT(bad_config.err, HasSubstr(config));
  ProcessResult no_config =
      RunCli({"--config", dir.path() + "/none.json", "list"});
  EXPECT_EQ(no_config.exit_code, 3);

  // The config file and $CERTSTORE_URI choose the store too.
  WriteFile(config, "{\"store\": \"file:" + dir.path() + "/certs\"}");
  ProcessResult from_config = RunCli({"--config", config, "list"});
  EXPECT_EQ(from_config.exit_code, 0) << from_config.err;
  EXPECT_THAT(from_config.out, HasSubstr("no entries in file:"));
  ProcessResult from_env =
      RunCli({"list"}, {"CERTSTORE_URI=sqlite:" + dir.path() + "/env.db"});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;
  EXPECT_THAT(from_env.out, HasSubstr("no entries in sqlite:" + dir.path()));
}

TEST(CliUsageTest, MemoryStoreListsNothingAndFindsNothing) {
  ProcessResult list = RunCli({"--store", "memory:", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_THAT(list.out, HasSubstr("no entries in memory:"));
  EXPECT_EQ(RunCli({"--store", "memory:", "show", "app"}).exit_code, 3);
  ProcessResult verbose = RunCli({"-v", "--store", "memory:", "list"});
  EXPECT_EQ(verbose.exit_code, 0);
  EXPECT_THAT(verbose.err, HasSubstr("certstore: store: memory:"));
  EXPECT_EQ(RunCli({"--store", "memory:", "list"}).err, "");
}

}  // namespace
}  // namespace certstore::testing

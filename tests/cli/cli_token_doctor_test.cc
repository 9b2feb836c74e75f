// `certstore token` and `certstore doctor` against the real emulator on
// loopback: the token verb mints once across processes and hides the token;
// doctor passes every check on a healthy binding and names the right
// failing step, within its deadline, for each fault.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/chain.h"
#include "certstore/testing/test_pki.h"
#include "emulator/emulator.h"
#include "tests/cli/cli_runner.h"
#include "tests/filesystem/fs_test_util.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using emulator::ConnectBlackhole;
using emulator::Emulator;
using emulator::EmulatorOptions;
using emulator::FaultKind;
using emulator::FaultSpec;
using emulator::TlsAlert;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kScope[] = "https://vault.example";

class CliAgainstEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = Emulator::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    emulator_ = *std::move(started);
    ca_file_ = dir_.path() + "/token-ca.pem";
    WriteFile(ca_file_, emulator_->ca_root_pem(), 0644);
    store_ = "sqlite:" + dir_.path() + "/store.db";
  }

  ProcessResult Cli(std::vector<std::string> args,
                    absl::Duration timeout = absl::Seconds(60)) {
    args.insert(args.begin(), {"--store", store_});
    return RunCli(args, {}, timeout);
  }

  // `certstore token`: the binding's alias and thumbprint.
  std::pair<std::string, std::string> Mint() {
    ProcessResult r =
        Cli({"--output", "json", "token", "--scope", kScope, "--issuing-url",
             emulator_->issuing_url(), "--server-ca", ca_file_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<nlohmann::json> tokens = JsonOfKind(r.out, "token");
    if (tokens.size() != 1) {
      ADD_FAILURE() << r.out << r.err;
      return {};
    }
    return {tokens[0]["alias"], tokens[0]["thumbprint"]};
  }

  struct Doctor {
    ProcessResult run;
    std::vector<nlohmann::json> checks;
    std::string first_failure;  // "" when all passed
    std::string Result(const std::string& step) const {
      for (const nlohmann::json& c : checks) {
        if (c["step"] == step) {
          return c["result"];
        }
      }
      return "absent";
    }
    std::string Detail(const std::string& step) const {
      for (const nlohmann::json& c : checks) {
        if (c["step"] == step) {
          return c["detail"];
        }
      }
      return "";
    }
  };

  Doctor RunDoctor(std::vector<std::string> args) {
    args.insert(args.begin(), {"--output", "json", "doctor"});
    Doctor doctor;
    doctor.run = Cli(args, absl::Seconds(30));
    doctor.checks = JsonOfKind(doctor.run.out, "check");
    std::vector<nlohmann::json> summary = JsonOfKind(doctor.run.out, "doctor");
    EXPECT_THAT(summary, SizeIs(1)) << doctor.run.out << doctor.run.err;
    if (summary.size() == 1) {
      doctor.first_failure = summary[0].value("first_failure", "");
      EXPECT_EQ(summary[0]["exit_code"], doctor.run.exit_code);
    }
    EXPECT_THAT(doctor.checks, SizeIs(9)) << doctor.run.out;
    return doctor;
  }

  TempDir dir_;
  std::unique_ptr<Emulator> emulator_;
  std::string ca_file_;
  std::string store_;
};

// The same on every persistent backend.
class CliBackendAgainstEmulatorTest
    : public CliAgainstEmulatorTest,
      public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    CliAgainstEmulatorTest::SetUp();
    if (GetParam() == "file") {
      store_ = "file:" + dir_.path() + "/certs";
    } else if (GetParam() == "pkcs11") {
      static int next = 0;
      auto token = SoftHsmToken::Create(absl::StrCat("cli-emu-", next++));
      ASSERT_TRUE(token.ok()) << token.status();
      token_ = *std::move(token);
      store_ = token_->Uri();
    }  // else the fixture's sqlite store
  }

  std::unique_ptr<SoftHsmToken> token_;
};

TEST_P(CliBackendAgainstEmulatorTest,
       TokenMintsOnceAcrossProcessesAndHidesTheToken) {
  auto [alias, thumbprint] = Mint();
  ASSERT_FALSE(alias.empty());
  EXPECT_EQ(alias, emulator_->client_id() + "#att=0");

  ProcessResult text = Cli({"token", "--scope", kScope, "--issuing-url",
                            emulator_->issuing_url(), "--server-ca", ca_file_});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, AllOf(HasSubstr("mtls_pop"), HasSubstr(thumbprint),
                              HasSubstr("(hidden; --print-token prints it)")));

  ProcessResult printed =
      Cli({"--output", "json", "token", "--scope", kScope, "--issuing-url",
           emulator_->issuing_url(), "--server-ca", ca_file_, "--print-token"});
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  std::vector<nlohmann::json> tokens = JsonOfKind(printed.out, "token");
  ASSERT_THAT(tokens, SizeIs(1));
  auto claims =
      emulator_->DecodeToken(tokens[0]["access_token"].get<std::string>());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->thumbprint, thumbprint);
  // Three processes, one binding.
  EXPECT_EQ(emulator_->GetCounters().mints, 1);
  EXPECT_EQ(emulator_->GetCounters().tokens_issued, 3);

  ProcessResult no_url = Cli({"token", "--scope", kScope});
  EXPECT_EQ(no_url.exit_code, 2);
  EXPECT_THAT(no_url.err, HasSubstr("--issuing-url"));
  ProcessResult from_env =
      RunCli({"--store", store_, "-q", "token", "--scope", kScope,
              "--server-ca", ca_file_},
             {"CERTSTORE_ISSUING_URL=" + emulator_->issuing_url()});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;
  EXPECT_EQ(from_env.out, "");
}

TEST_P(CliBackendAgainstEmulatorTest, TokenHealsARevokedBindingAndReportsIt) {
  auto [alias, thumbprint] = Mint();
  emulator_->Revoke(thumbprint);
  ProcessResult r =
      Cli({"--output", "json", "token", "--scope", kScope, "--issuing-url",
           emulator_->issuing_url(), "--server-ca", ca_file_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<nlohmann::json> tokens = JsonOfKind(r.out, "token");
  ASSERT_THAT(tokens, SizeIs(1));
  EXPECT_EQ(tokens[0]["healed"], true);
  EXPECT_NE(tokens[0]["thumbprint"], thumbprint);
  EXPECT_EQ(emulator_->GetCounters().mints, 2);
}

TEST_P(CliBackendAgainstEmulatorTest, DoctorPassesEveryCheckOnAHealthyBinding) {
  auto [alias, thumbprint] = Mint();
  Doctor doctor = RunDoctor({alias, "--server-ca", ca_file_});
  EXPECT_EQ(doctor.run.exit_code, 0) << doctor.run.out;
  EXPECT_EQ(doctor.first_failure, "");
  for (const nlohmann::json& check : doctor.checks) {
    EXPECT_EQ(check["result"], "passed") << check.dump();
  }
  EXPECT_THAT(doctor.Detail("issuer"), HasSubstr("the server accepts"));
  EXPECT_THAT(doctor.Detail("token"), HasSubstr("HTTP 200"));

  ProcessResult text = Cli({"doctor", alias, "--server-ca", ca_file_});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_THAT(
      text.out,
      AllOf(HasSubstr("✓ store opens"),
            HasSubstr("✓ entry present and unexpired"),
            HasSubstr("✓ key matches certificate"), HasSubstr("✓ key signs"),
            HasSubstr("✓ chain complete"), HasSubstr("✓ endpoint reachable"),
            HasSubstr("✓ server accepts our issuer"),
            HasSubstr("✓ TLS handshake completes"),
            HasSubstr("✓ token request answered"),
            HasSubstr("doctor: no problem found")));
}

TEST_F(CliAgainstEmulatorTest, DoctorNamesTheFailingStepForEachFault) {
  auto [alias, thumbprint] = Mint();
  const struct {
    const char* name;
    FaultSpec fault;
    std::vector<std::string> extra;
    const char* step;
    int exit_code;
    const char* detail;
  } kCases[] = {
      {"reset",
       {FaultKind::kResetDuringHandshake, 10},
       {},
       "handshake",
       5,
       "reset"},
      {"hang",
       {FaultKind::kHang, 10},
       {"--handshake-timeout", "1s"},
       "handshake",
       5,
       "TLS handshake"},
      {"alert",
       {FaultKind::kTlsAlert, 10, TlsAlert::kBadCertificate},
       {},
       "handshake",
       4,
       "bad_certificate"},
      {"invalid_client",
       {FaultKind::kInvalidClient, 10},
       {},
       "token",
       4,
       "invalid_client"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    emulator_->ClearFaults();
    ASSERT_TRUE(emulator_->InjectFault(c.fault).ok());
    std::vector<std::string> args = {alias, "--server-ca", ca_file_};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const absl::Time start = absl::Now();
    Doctor doctor = RunDoctor(args);
    EXPECT_LT(absl::Now() - start, absl::Seconds(8));
    EXPECT_EQ(doctor.first_failure, c.step) << doctor.run.out;
    EXPECT_EQ(doctor.run.exit_code, c.exit_code) << doctor.run.out;
    EXPECT_THAT(doctor.Detail(c.step), HasSubstr(c.detail));
    // The local checks still pass: the fault is on the path, not the key.
    EXPECT_EQ(doctor.Result("key_signs"), "passed");
  }
  emulator_->ClearFaults();
}

// Persistent invalid_client through the command: one re-mint, then every
// process is told at once ("rejected since") until `certstore evict`.
TEST_F(CliAgainstEmulatorTest, PersistentRejectionIsOneReMintUntilEvicted) {
  auto [alias, thumbprint] = Mint();
  FaultSpec fault;
  fault.kind = FaultKind::kInvalidClient;
  fault.count = 100;
  ASSERT_TRUE(emulator_->InjectFault(fault).ok());
  const std::vector<std::string> token = {"token",
                                          "--scope",
                                          kScope,
                                          "--issuing-url",
                                          emulator_->issuing_url(),
                                          "--server-ca",
                                          ca_file_};
  ProcessResult first = Cli(token);
  EXPECT_EQ(first.exit_code, 4) << first.err;
  for (int process = 0; process < 2; ++process) {
    ProcessResult again = Cli(token);
    EXPECT_EQ(again.exit_code, 4) << again.err;
    EXPECT_THAT(again.err, HasSubstr("rejected since"));
  }
  EXPECT_EQ(emulator_->GetCounters().mints, 2);
  emulator_->ClearFaults();
  ASSERT_EQ(Cli({"evict", alias}).exit_code, 0);
  ProcessResult after = Cli(token);
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(emulator_->GetCounters().mints, 3);
}

TEST_F(CliAgainstEmulatorTest, DoctorSeesAServerThatDoesNotAcceptOurIssuer) {
  auto [alias, thumbprint] = Mint();
  auto other = Emulator::Start();
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string other_ca = dir_.path() + "/other-ca.pem";
  WriteFile(other_ca, (*other)->ca_root_pem(), 0644);
  Doctor doctor = RunDoctor(
      {alias, "--endpoint", (*other)->token_url(), "--server-ca", other_ca});
  EXPECT_EQ(doctor.first_failure, "issuer") << doctor.run.out;
  EXPECT_EQ(doctor.run.exit_code, 6);
  EXPECT_THAT(doctor.Detail("issuer"), HasSubstr("accepted CAs"));
  EXPECT_EQ(doctor.Result("handshake"), "failed");
}

TEST_F(CliAgainstEmulatorTest,
       DoctorOnAnUnreachableEndpointStaysInItsDeadline) {
  auto [alias, thumbprint] = Mint();
  auto blackhole = ConnectBlackhole::Start();
  ASSERT_TRUE(blackhole.ok()) << blackhole.status();
  absl::Time start = absl::Now();
  Doctor doctor = RunDoctor(
      {alias, "--endpoint", (*blackhole)->url(), "--connect-timeout", "1s"});
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  EXPECT_EQ(doctor.first_failure, "connect") << doctor.run.out;
  EXPECT_EQ(doctor.run.exit_code, 5);
  EXPECT_THAT(doctor.Detail("connect"), HasSubstr("TCP connect"));
  EXPECT_EQ(doctor.Result("handshake"), "skipped");

  // The whole diagnosis is cut to --deadline, whatever the phase timeouts.
  start = absl::Now();
  Doctor cut = RunDoctor({alias, "--endpoint", (*blackhole)->url(),
                          "--connect-timeout", "30s", "--deadline", "2s"});
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(cut.first_failure, "connect");
  EXPECT_EQ(cut.run.exit_code, 5);
}

TEST_F(CliAgainstEmulatorTest, DoctorReportsAnExpiredEntryAndAMissingOne) {
  TestPki pki;
  auto key = PoolKey(KeyType::kEcP256, 0);
  LeafOptions expired;
  expired.not_before = absl::Now() - absl::Hours(24 * 8);
  expired.not_after = absl::Now() - absl::Hours(24);
  const std::string file = dir_.path() + "/expired.pem";
  WriteFile(file,
            DerChainToPem(pki.IssueChain(*key, expired)) + *KeyToPem(*key));
  ASSERT_EQ(Cli({"import", "old", file, "--endpoint", emulator_->token_url()})
                .exit_code,
            0);
  Doctor doctor = RunDoctor({"old", "--server-ca", ca_file_});
  EXPECT_EQ(doctor.first_failure, "entry") << doctor.run.out;
  EXPECT_EQ(doctor.run.exit_code, 1);
  EXPECT_THAT(doctor.Detail("entry"), HasSubstr("expired at"));
  EXPECT_EQ(doctor.Result("key_signs"), "skipped");

  Doctor missing = RunDoctor({"nope"});
  EXPECT_EQ(missing.first_failure, "entry");
  EXPECT_EQ(missing.run.exit_code, 3);
  EXPECT_THAT(missing.Detail("entry"),
              HasSubstr("no entry for alias \"nope\""));
}

TEST_F(CliAgainstEmulatorTest, DoctorReportsAStoreThatDoesNotOpen) {
  const std::string db = dir_.path() + "/store.db";
  WriteFile(db, "this is not an SQLite database, it is just text ...........");
  Doctor doctor = RunDoctor({"app"});
  EXPECT_EQ(doctor.first_failure, "store") << doctor.run.out;
  EXPECT_NE(doctor.run.exit_code, 0);
  EXPECT_THAT(doctor.Detail("store"), HasSubstr(db));
  EXPECT_EQ(doctor.Result("entry"), "skipped");
}

// A PEM entry whose key was swapped for another: the store refuses to read
// it, and doctor says so at the entry.
TEST_F(CliAgainstEmulatorTest, DoctorOnAPemEntryWithAnotherKey) {
  store_ = "file:" + dir_.path() + "/certs";
  auto [alias, thumbprint] = Mint();
  const std::string alias_dir = AliasDir(dir_.path() + "/certs", alias);
  std::vector<std::string> files;
  for (const std::string& name : ListNames(alias_dir)) {
    if (absl::EndsWith(name, ".pem")) {
      files.push_back(name);
    }
  }
  ASSERT_THAT(files, SizeIs(1)) << alias_dir;
  const std::string path = alias_dir + "/" + files[0];
  std::string content = ReadFile(path);
  const size_t key_at = content.find("-----BEGIN PRIVATE KEY-----");
  ASSERT_NE(key_at, std::string::npos);
  WriteFile(path, content.substr(0, key_at) +
                      *KeyToPem(*PoolKey(KeyType::kEcP256, 3)));
  Doctor doctor = RunDoctor({alias, "--server-ca", ca_file_});
  EXPECT_EQ(doctor.first_failure, "entry") << doctor.run.out;
  EXPECT_THAT(doctor.Detail("entry"),
              AllOf(HasSubstr(path), HasSubstr("does not match")));
  EXPECT_EQ(doctor.Result("key_signs"), "skipped");
}

// On a real token: the key deleted, then a different key under its id.
TEST_F(CliAgainstEmulatorTest, DoctorOnATokenWhoseKeyWasDeletedOrReplaced) {
  auto token = SoftHsmToken::Create("cli-doctor");
  ASSERT_TRUE(token.ok()) << token.status();
  store_ = (*token)->Uri();
  auto [alias, thumbprint] = Mint();
  ASSERT_FALSE(alias.empty());
  ProcessResult show = Cli({"--output", "json", "show", alias});
  std::vector<nlohmann::json> details = JsonOfKind(show.out, "entry_details");
  ASSERT_THAT(details, SizeIs(1));
  const std::string location = details[0]["key_location"];
  const size_t at = location.find(";id=");
  ASSERT_NE(at, std::string::npos) << location;
  std::string id = location.substr(at + 4);
  id = id.substr(0, id.find(';'));
  id.erase(std::remove(id.begin(), id.end(), '%'), id.end());  // RFC 7512
  ASSERT_FALSE(id.empty());

  for (const char* type : {"privkey", "pubkey"}) {
    ASSERT_TRUE((*token)
                    ->Pkcs11Tool(absl::StrCat("--login --delete-object --type ",
                                              type, " --id ", id))
                    .ok());
  }
  // A certificate without its key is no binding: the token client mints.
  Doctor deleted = RunDoctor({alias, "--server-ca", ca_file_});
  EXPECT_EQ(deleted.first_failure, "entry") << deleted.run.out;
  EXPECT_EQ(deleted.run.exit_code, 3);
  EXPECT_THAT(deleted.Detail("entry"), HasSubstr(alias));

  ASSERT_TRUE((*token)
                  ->Pkcs11Tool("--login --keypairgen --key-type EC:prime256v1 "
                               "--id " +
                               id + " --label '" + alias + "'")
                  .ok());
  // A new key under the old certificate's id: the store refuses the pair.
  Doctor replaced = RunDoctor({alias, "--server-ca", ca_file_});
  EXPECT_EQ(replaced.first_failure, "entry") << replaced.run.out;
  EXPECT_THAT(replaced.Detail("entry"), HasSubstr("does not match"));
}

INSTANTIATE_TEST_SUITE_P(Backends, CliBackendAgainstEmulatorTest,
                         ::testing::Values("sqlite", "file", "pkcs11"));

}  // namespace
}  // namespace certstore::testing

// PKCS#12 files as operators hold them, made by the openssl CLI at test
// time, imported through the command into every persistent backend:
// AES/PBKDF2 (OpenSSL 3's default), RC2/3DES with a SHA-1 MAC (`-legacy`,
// what Windows exports), no MAC, an empty password, and several
// certificates with the key's not first plus friendly names. A wrong
// password is exit 4 (permission/secret), never 2. And the validity
// warnings of `import`: expired, not yet valid, expiring within 24 h —
// imported with a warning, refused with --strict.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/key.h"
#include "certstore/testing/test_pki.h"
#include "tests/cli/cli_runner.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/files.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

struct Variant {
  std::string name;
  std::vector<std::string> export_args;  // to `openssl pkcs12 -export`
  std::string password;
};

std::vector<Variant> Variants() {
  return {
      {"aes_pbkdf2", {}, "pw-1"},
      {"legacy_rc2_3des_sha1_mac", {"-legacy"}, "pw-2"},
      {"no_mac", {"-nomac"}, "pw-3"},
      {"empty_password", {}, ""},
      {"several_certificates_friendly_names",
       {"-name", "app credential", "-caname", "intermediate"},
       "pw-5"},
  };
}

class CliPkcs12Test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string& name = GetParam();
    if (name == "sqlite") {
      store_ = "sqlite:" + dir_.path() + "/store.db";
    } else if (name == "file") {
      store_ = "file:" + dir_.path() + "/certs";
    } else {
      static std::atomic<int> next{0};
      auto token = SoftHsmToken::Create(absl::StrCat("p12-", next++));
      ASSERT_TRUE(token.ok()) << token.status();
      token_ = *std::move(token);
      store_ = token_->Uri() + "&x-allow-import=true";
    }
    now_ = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
    key_ = PoolKey(KeyType::kEcP256, 0);
    key_file_ = dir_.path() + "/key.pem";
    WriteFile(key_file_, *KeyToPem(*key_));
  }

  // The chain (leaf first) for `key_` valid [not_before, not_after].
  std::vector<std::string> Chain(absl::Time not_before, absl::Time not_after) {
    LeafOptions leaf;
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    return pki_.IssueChain(*key_, leaf);
  }

  // A PKCS#12 of a valid chain made by `openssl pkcs12 -export`; the
  // intermediate goes first in its input, so the key's certificate is not.
  std::string Export(const Variant& variant, std::string* thumbprint) {
    const std::vector<std::string> chain =
        Chain(now_ - absl::Hours(1), now_ + absl::Hours(24 * 30));
    *thumbprint = Thumbprint(chain[0]);
    const std::string certs = dir_.path() + "/" + variant.name + ".pem";
    WriteFile(certs, DerChainToPem({chain[1], chain[0]}));
    const std::string out = dir_.path() + "/" + variant.name + ".p12";
    std::vector<std::string> argv = {"openssl",
                                     "pkcs12",
                                     "-export",
                                     "-in",
                                     certs,
                                     "-inkey",
                                     key_file_,
                                     "-out",
                                     out,
                                     "-passout",
                                     "pass:" + variant.password};
    argv.insert(argv.end(), variant.export_args.begin(),
                variant.export_args.end());
    ProcessResult made = RunProcess(argv);
    EXPECT_EQ(made.exit_code, 0) << made.err;
    return out;
  }

  std::string PasswordFile(const std::string& password) {
    static int next = 0;
    const std::string path = absl::StrCat(dir_.path(), "/pw", next++);
    WriteFile(path, password, 0600);
    return path;
  }

  ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--store", store_});
    return RunCli(args);
  }

  TempDir dir_;
  std::unique_ptr<SoftHsmToken> token_;
  std::string store_;
  TestPki pki_;
  absl::Time now_;
  std::shared_ptr<const Key> key_;
  std::string key_file_;
};

TEST_P(CliPkcs12Test, EveryVariantOpensslWritesImports) {
  for (const Variant& variant : Variants()) {
    SCOPED_TRACE(variant.name);
    std::string thumbprint;
    const std::string p12 = Export(variant, &thumbprint);
    ProcessResult imported =
        Cli({"--output", "json", "import", variant.name, p12, "--password-file",
             PasswordFile(variant.password)});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    std::vector<nlohmann::json> lines = JsonOfKind(imported.out, "imported");
    ASSERT_THAT(lines, SizeIs(1));
    EXPECT_EQ(lines[0]["thumbprint"], thumbprint);
    EXPECT_EQ(lines[0]["chain_length"], 2);
    EXPECT_EQ(lines[0]["warnings"], nlohmann::json::array());
    ProcessResult probe = Cli({"probe", variant.name});
    EXPECT_EQ(probe.exit_code, 0) << probe.err;
  }
}

TEST_P(CliPkcs12Test, WrongPasswordIsTheSecretExitCode) {
  for (const Variant& variant : Variants()) {
    if (variant.password.empty()) {
      continue;
    }
    SCOPED_TRACE(variant.name);
    std::string thumbprint;
    const std::string p12 = Export(variant, &thumbprint);
    ProcessResult refused = Cli({"import", variant.name, p12, "--password-file",
                                 PasswordFile("not-" + variant.password)});
    EXPECT_EQ(refused.exit_code, 4) << refused.err;
    EXPECT_THAT(refused.err, HasSubstr("password"));
    EXPECT_THAT(refused.err, ::testing::Not(HasSubstr(variant.password)));
    ProcessResult listed = Cli({"--output", "json", "list"});
    EXPECT_THAT(JsonOfKind(listed.out, "entry"), ::testing::IsEmpty());
  }
}

TEST_P(CliPkcs12Test, CertificatesNotUsableNowImportWithAWarning) {
  const struct {
    const char* name;
    absl::Time not_before;
    absl::Time not_after;
    const char* says;
  } kCases[] = {
      {"expired", now_ - absl::Hours(48), now_ - absl::Hours(1), "expired"},
      {"not_yet_valid", now_ + absl::Hours(1), now_ + absl::Hours(48),
       "not valid before"},
      {"expiring", now_ - absl::Hours(1), now_ + absl::Hours(3),
       "less than the 24 h"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const std::string bundle = absl::StrCat(dir_.path(), "/", c.name, ".pem");
    WriteFile(bundle, DerChainToPem(Chain(c.not_before, c.not_after)) +
                          *KeyToPem(*key_));
    ProcessResult strict = Cli({"import", c.name, bundle, "--strict"});
    EXPECT_EQ(strict.exit_code, 2) << strict.err;
    EXPECT_THAT(strict.err, HasSubstr(c.says));
    ProcessResult shown = Cli({"show", c.name});
    EXPECT_EQ(shown.exit_code, 3) << "--strict imported it: " << shown.out;

    ProcessResult imported =
        Cli({"--output", "json", "import", c.name, bundle});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    EXPECT_THAT(imported.err, HasSubstr("certstore: warning:"));
    EXPECT_THAT(imported.err, HasSubstr(c.says));
    std::vector<nlohmann::json> lines = JsonOfKind(imported.out, "imported");
    ASSERT_THAT(lines, SizeIs(1));
    ASSERT_THAT(lines[0]["warnings"], SizeIs(1));
    EXPECT_THAT(lines[0]["warnings"][0].get<std::string>(), HasSubstr(c.says));
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, CliPkcs12Test,
                         ::testing::Values("sqlite", "file", "pkcs11"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });

}  // namespace
}  // namespace certstore::testing

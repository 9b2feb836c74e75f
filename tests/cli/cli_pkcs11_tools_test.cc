// What `certstore list`/`show` print for a token entry is usable by the
// tools operators have: the key and certificate URIs work in p11tool,
// pkcs11-tool (--id), and in curl and openssl s_client (libp11's engine)
// against a real TLS server (openssl s_server requiring a client
// certificate). And what breaks outside certstore is shown by `list --all`
// and removed by `gc`, foreign objects only when asked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/internal/percent_encoding.h"
#include "certstore/chain.h"
#include "certstore/key.h"
#include "certstore/testing/test_pki.h"
#include "tests/cli/cli_runner.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/files.h"
#include "tests/support/loopback.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kEngine[] = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";

// The RFC 7512 id attribute of `uri` as hex, for pkcs11-tool --id.
std::string IdHex(const std::string& uri) {
  for (absl::string_view attr : absl::StrSplit(uri.substr(7), ';')) {
    if (absl::ConsumePrefix(&attr, "id=")) {
      internal::PercentDecodeOptions bytes;
      bytes.allow_nul = true;
      auto id = internal::PercentDecode(attr, bytes);
      return id.ok() ? absl::BytesToHexString(*id) : "";
    }
  }
  return "";
}

class CliPkcs11ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto token = SoftHsmToken::Create("tools-interop");
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *std::move(token);
    store_ = token_->Uri() + "&x-allow-import=true";
    const absl::Time now = absl::Now();
    LeafOptions leaf;
    leaf.not_before = now - absl::Hours(1);
    leaf.not_after = now + absl::Hours(24 * 7);
    auto key = PoolKey(KeyType::kEcP256, 0);
    chain_ = pki_.IssueChain(*key, leaf);
    const std::string bundle = dir_.path() + "/app.pem";
    WriteFile(bundle, DerChainToPem(chain_) + *KeyToPem(*key));
    ProcessResult imported =
        RunCli({"--store", store_, "import", "app", bundle});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }

  ProcessResult Tool(std::vector<std::string> argv) {
    ProcessOptions options;
    options.env = {"GNUTLS_PIN=" + token_->pin(),
                   "OPENSSL_CONF=" + EngineConfig()};
    options.timeout = absl::Seconds(60);
    return RunProcess(argv, options);
  }

  // libp11's engine, told the module and the PIN by configuration, so that
  // the URIs are used exactly as printed.
  std::string EngineConfig() {
    const std::string path = dir_.path() + "/openssl-engine.cnf";
    if (access(path.c_str(), F_OK) != 0) {
      WriteFile(path, absl::StrCat("openssl_conf = openssl_init\n"
                                   "[openssl_init]\nengines = engine_section\n"
                                   "[engine_section]\npkcs11 = pkcs11_section\n"
                                   "[pkcs11_section]\nengine_id = pkcs11\n"
                                   "dynamic_path = ",
                                   kEngine, "\nMODULE_PATH = ", kSoftHsmModule,
                                   "\nPIN = ", token_->pin(), "\ninit = 0\n"));
      chmod(path.c_str(), 0600);
    }
    return path;
  }

  std::string Module() const { return std::string(kSoftHsmModule); }

  // The objects on the token labelled `label`.
  int ObjectsLabelled(const std::string& label) {
    auto listing = token_->Pkcs11Tool("--list-objects");
    if (!listing.ok()) {
      ADD_FAILURE() << listing.status();
      return -1;
    }
    int n = 0;
    for (absl::string_view line : absl::StrSplit(*listing, '\n')) {
      if (absl::StrContains(line, "label:") &&
          absl::EndsWith(absl::StripTrailingAsciiWhitespace(line),
                         "  " + label)) {
        ++n;
      }
    }
    return n;
  }

  TempDir dir_;
  TestPki pki_;
  std::unique_ptr<SoftHsmToken> token_;
  std::string store_;
  std::vector<std::string> chain_;
};

TEST_F(CliPkcs11ToolsTest, PrintedUrisWorkInP11toolPkcs11ToolCurlAndOpenssl) {
  ProcessResult listed =
      RunCli({"--store", store_, "--output", "json", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  auto entries = JsonOfKind(listed.out, "entry");
  ASSERT_EQ(entries.size(), 1u) << listed.out;
  const std::string key_uri = entries[0].value("key_location", "");
  const std::string cert_uri = entries[0].value("certificate_location", "");
  ASSERT_THAT(key_uri, StartsWith("pkcs11:token=tools-interop;id=%"));
  ASSERT_THAT(cert_uri, StartsWith("pkcs11:token=tools-interop;id=%"));
  EXPECT_THAT(cert_uri, HasSubstr(";type=cert"));
  ProcessResult shown = RunCli({"--store", store_, "show", "app"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("certificate:  " + cert_uri));
  EXPECT_THAT(shown.out, HasSubstr(key_uri));

  // p11tool: the key URI selects exactly the key, the certificate URI
  // exports the leaf.
  ProcessResult key = Tool({"p11tool", "--provider=" + Module(), "--login",
                            "--list-privkeys", key_uri});
  ASSERT_EQ(key.exit_code, 0) << key.err;
  EXPECT_THAT(key.out, HasSubstr("Type: Private key"));
  EXPECT_EQ(key.out.find("Object 1:"), std::string::npos) << key.out;
  ProcessResult cert =
      Tool({"p11tool", "--provider=" + Module(), "--export", cert_uri});
  ASSERT_EQ(cert.exit_code, 0) << cert.err;
  auto exported = PemToDerChain(cert.out);
  ASSERT_TRUE(exported.ok()) << cert.out;
  EXPECT_EQ((*exported)[0], chain_[0]);

  // pkcs11-tool: the id of each URI reads the leaf and signs with the key.
  const std::string leaf_der = dir_.path() + "/read-leaf.der";
  ProcessResult read =
      Tool({"pkcs11-tool", "--module", Module(), "--read-object", "--type",
            "cert", "--id", IdHex(cert_uri), "--output-file", leaf_der});
  ASSERT_EQ(read.exit_code, 0) << read.err;
  EXPECT_EQ(ReadFile(leaf_der), chain_[0]);
  const std::string data = dir_.path() + "/data";
  WriteFile(data, std::string(32, 'h'));  // a SHA-256-sized digest
  ProcessResult signed_data = Tool(
      {"pkcs11-tool", "--module", Module(), "--login", "--pin", token_->pin(),
       "--sign", "--mechanism", "ECDSA", "--id", IdHex(key_uri), "--input-file",
       data, "--output-file", dir_.path() + "/sig"});
  ASSERT_EQ(signed_data.exit_code, 0) << signed_data.err;

  // A real TLS server that requires a client certificate from the test CA.
  const std::string server_key = dir_.path() + "/server.key";
  const std::string server_cert = dir_.path() + "/server.pem";
  ProcessResult made =
      RunProcess({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-nodes", "-keyout", server_key,
                  "-out", server_cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                  "-addext", "subjectAltName=IP:127.0.0.1"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string client_ca = dir_.path() + "/client-ca.pem";
  WriteFile(client_ca,
            DerChainToPem({pki_.root_der(), pki_.intermediate_der()}));
  const std::string leaf_pem = dir_.path() + "/leaf.pem";
  WriteFile(leaf_pem, DerChainToPem({chain_[0]}));
  const int port = FreeLoopbackPort();
  ProcessResult server;
  std::thread server_thread([&] {
    ProcessOptions options;
    options.timeout = absl::Seconds(60);
    // Three connections: curl, s_client, and curl without a key (refused).
    server = RunProcess(
        {"openssl", "s_server", "-accept", absl::StrCat("127.0.0.1:", port),
         "-naccept", "3", "-cert", server_cert, "-key", server_key, "-CAfile",
         client_ca, "-Verify", "2", "-verify_return_error", "-www"},
        options);
  });
  const std::string url = absl::StrCat("https://127.0.0.1:", port, "/");
  ProcessResult curl;
  for (int attempt = 0; attempt < 100; ++attempt) {
    curl = Tool({"curl", "-sS", "--fail", "--max-time", "20", "--cacert",
                 server_cert, "--cert", cert_uri, "--key", key_uri, url});
    if (curl.exit_code != 7) break;  // 7: not listening yet
    usleep(100 * 1000);
  }
  EXPECT_EQ(curl.exit_code, 0) << curl.err;
  EXPECT_THAT(curl.out, HasSubstr("Cipher"));
  ProcessResult s_client =
      Tool({"openssl", "s_client", "-connect", absl::StrCat("127.0.0.1:", port),
            "-tls1_2", "-engine", "pkcs11", "-keyform", "engine", "-key",
            key_uri, "-cert", leaf_pem, "-CAfile", server_cert,
            "-verify_return_error", "-brief"});
  EXPECT_EQ(s_client.exit_code, 0) << s_client.err;
  EXPECT_THAT(s_client.err, HasSubstr("CONNECTION ESTABLISHED"));
  // The control: without the token's key the server refuses the client.
  ProcessResult no_key =
      Tool({"curl", "-sS", "--fail", "--max-time", "20", "--tls-max", "1.2",
            "--cacert", server_cert, url});
  EXPECT_NE(no_key.exit_code, 0) << no_key.out;
  server_thread.join();
  EXPECT_FALSE(server.timed_out) << server.err;
}

TEST_F(CliPkcs11ToolsTest, ListAllShowsBrokenPairsAndGcRemovesOnlyThose) {
  const int one_pair = ObjectsLabelled("app");
  ASSERT_GE(one_pair, 3);
  // Another tool deletes the key; and writes a certificate of its own with
  // no key at all.
  ASSERT_TRUE(
      token_->Pkcs11Tool("--delete-object --type privkey --label app").ok());
  const std::string leaf = dir_.path() + "/leaf.der";
  WriteFile(leaf, chain_[0]);
  ASSERT_TRUE(token_
                  ->Pkcs11Tool(absl::StrCat("--write-object ", leaf,
                                            " --type cert --id 99 "
                                            "--label foreign"))
                  .ok());

  ProcessResult plain = RunCli({"--store", store_, "list"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_THAT(plain.err, HasSubstr("2 unservable entries not shown"));
  ProcessResult counted =
      RunCli({"--store", store_, "--output", "json", "list"});
  auto not_shown = JsonOfKind(counted.out, "not_shown");
  ASSERT_EQ(not_shown.size(), 1u) << counted.out;
  EXPECT_EQ(not_shown[0].value("unservable", -1), 2);
  ProcessResult all =
      RunCli({"--store", store_, "--output", "json", "list", "--all"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  auto entries = JsonOfKind(all.out, "entry");
  ASSERT_EQ(entries.size(), 2u) << all.out;
  for (const auto& entry : entries) {
    EXPECT_EQ(entry.value("problem", ""), "key missing") << entry.dump();
    EXPECT_EQ(entry.value("foreign", false),
              entry.value("alias", "") == "foreign")
        << entry.dump();
  }

  ProcessResult dry =
      RunCli({"--store", store_, "--output", "json", "gc", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  auto summary = JsonOfKind(dry.out, "gc");
  ASSERT_EQ(summary.size(), 1u) << dry.out;
  EXPECT_EQ(summary[0].value("unservable", -1), 1);
  EXPECT_EQ(summary[0].value("removed", -1), 0);
  EXPECT_EQ(summary[0].value("kept_foreign", -1), 1);
  EXPECT_EQ(ObjectsLabelled("app"), one_pair - 1);  // nothing removed yet

  ProcessResult gc = RunCli({"--store", store_, "--output", "json", "gc"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  summary = JsonOfKind(gc.out, "gc");
  ASSERT_EQ(summary.size(), 1u) << gc.out;
  EXPECT_EQ(summary[0].value("removed", -1), 1);
  EXPECT_EQ(ObjectsLabelled("app"), 0);
  EXPECT_EQ(ObjectsLabelled("foreign"), 1);

  ProcessResult foreign =
      RunCli({"--store", store_, "gc", "--include-foreign"});
  ASSERT_EQ(foreign.exit_code, 0) << foreign.err;
  EXPECT_THAT(foreign.out, HasSubstr("1 unservable entry removed"));
  EXPECT_EQ(ObjectsLabelled("foreign"), 0);
}

TEST(CliFileGcTest, RefusedEntryFileIsListedAndCollected) {
  TempDir dir;
  const std::string store = "file:" + dir.path() + "/certs";
  TestPki pki;
  const absl::Time now = absl::Now();
  LeafOptions leaf;
  leaf.not_before = now - absl::Hours(1);
  leaf.not_after = now + absl::Hours(24 * 7);
  auto key = PoolKey(KeyType::kEcP256, 1);
  const std::vector<std::string> chain = pki.IssueChain(*key, leaf);
  const std::string bundle = dir.path() + "/app.pem";
  WriteFile(bundle, DerChainToPem(chain) + *KeyToPem(*key));
  ASSERT_EQ(RunCli({"--store", store, "import", "app", bundle}).exit_code, 0);
  const std::string file =
      absl::StrCat(dir.path(), "/certs/a-", absl::WebSafeBase64Escape("app"),
                   "/x5t-", Thumbprint(chain[0]), ".pem");
  ASSERT_EQ(chmod(file.c_str(), 0640), 0) << file;

  ProcessResult plain = RunCli({"--store", store, "list"});
  EXPECT_THAT(plain.err, HasSubstr("1 unservable entry not shown"));
  ProcessResult all =
      RunCli({"--store", store, "--output", "json", "list", "--all"});
  auto entries = JsonOfKind(all.out, "entry");
  ASSERT_EQ(entries.size(), 1u) << all.out << all.err;
  EXPECT_THAT(entries[0].value("problem", ""), StartsWith("unreadable: "));
  EXPECT_EQ(entries[0].value("alias", ""), "app");

  ProcessResult gc = RunCli({"--store", store, "gc"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_THAT(gc.out, HasSubstr("1 unservable entry removed"));
  EXPECT_NE(access(file.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace certstore::testing

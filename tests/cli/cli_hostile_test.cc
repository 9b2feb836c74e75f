// Hostile input from outside, through the certstore command as a child
// process: a table of issuing-endpoint and token-endpoint answers (wrong
// JSON types, absurd sizes, broken chunking, endless streams, binary
// garbage) served by the emulator's raw faults, and hostile local files
// (configs, credential files, PKCS#12 asking for 2^31 - 1 iterations).
//
// For every row: no signal (no abort, no crash), an exit code from the
// documented table, done within its deadline, peak memory within 64 MiB of
// a healthy run, and a message with no terminal control bytes a server
// could have planted. Faults repeat, so that retries meet them too.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/testing/test_pki.h"
#include "emulator/emulator.h"
#include "tests/cli/cli_runner.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using emulator::Emulator;
using emulator::FaultKind;
using emulator::FaultSpec;

constexpr long kRssMarginKib = 64 * 1024;
constexpr absl::Duration kTokenTimeout = absl::Seconds(5);
// A healthy run's time is the floor; a hostile one may add its deadline.
constexpr absl::Duration kSlack = absl::Seconds(3);

std::string Http(int status, const std::string& body,
                 const std::string& extra_headers = "") {
  return absl::StrCat("HTTP/1.1 ", status,
                      " X\r\nContent-Type: application/json\r\n", extra_headers,
                      "Content-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

struct Hostile {
  std::string name;
  std::string raw;
  int64_t stream_bytes = 0;
  bool may_succeed = false;  // the answer is odd but usable
};

// Answers no endpoint should survive by buffering, wrapping or throwing.
std::vector<Hostile> TransportAttacks() {
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  return {
      {"fifty_gib_content_length",
       "HTTP/1.1 200 OK\r\nContent-Length: 53687091200\r\n\r\n{", 256 << 20},
      {"chunk_size_two_to_the_64_minus_3", chunked + "fffffffffffffffd\r\n",
       64 << 20},
      {"two_gib_chunk_streamed", chunked + "7fffffff\r\n", 256 << 20},
      {"endless_header_line", "HTTP/1.1 200 OK\r\nX-Long: ", 64 << 20},
      {"no_header_end", "HTTP/1.1 200 OK\r\nContent-Type: x\r\n"},
      {"garbage_status_line", "HTTX/9 abc\r\n\r\n"},
      {"binary_garbage", std::string("\x00\xff\x1b[2J\x07\r\n\r\n\x80", 12)},
      {"truncated_body",
       "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"access_token\":"},
      {"deeply_nested_json",
       Http(200, std::string(100000, '[') + std::string(100000, ']'))},
      {"invalid_utf8_json", Http(200, "{\"error\":\"\xff\xfe\x80\"}")},
  };
}

std::vector<Hostile> MetadataAttacks() {
  std::vector<Hostile> rows = {
      {"client_id_number", Http(200, R"({"clientId":123,"tenantId":"t"})")},
      {"client_id_array", Http(200, R"({"clientId":["a"],"tenantId":"t"})")},
      {"client_id_null", Http(200, R"({"clientId":null,"tenantId":"t"})")},
      {"tenant_id_object", Http(200, R"({"clientId":"c","tenantId":{}})")},
      {"client_id_control_bytes",
       Http(200, "{\"clientId\":\"a\\u001b[31m\",\"tenantId\":\"t\"}")},
      {"client_id_100_kib",
       Http(200, absl::StrCat(R"({"clientId":")", std::string(100 << 10, 'a'),
                              R"(","tenantId":"t"})"))},
      {"body_is_array", Http(200, "[]")},
      {"body_is_string", Http(200, "\"text\"")},
      {"body_not_json", Http(200, "{")},
      {"body_empty", Http(200, "")},
      {"error_number_on_500", Http(500, R"({"error":123})")},
      {"error_null_on_500", Http(500, R"({"error":null})")},
      {"error_description_object",
       Http(400, R"({"error":"x","error_description":{}})")},
  };
  for (Hostile row : TransportAttacks()) {
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<Hostile> IssueAttacks() {
  return {
      {"certificate_number",
       Http(
           200,
           R"({"certificate":123,"mtls_authentication_endpoint":"https://x"})")},
      {"certificate_not_base64",
       Http(
           200,
           R"({"certificate":"!!!","mtls_authentication_endpoint":"https://x"})")},
      {"certificate_garbage_der",
       Http(
           200,
           R"({"certificate":"AAAA","mtls_authentication_endpoint":"https://x"})")},
      {"chain_is_string",
       Http(200, R"({"certificate":"AAAA","certificate_chain":"x"})")},
      {"chain_of_numbers",
       Http(200, R"({"certificate":"AAAA","certificate_chain":[1,2]})")},
      {"chain_of_10000",
       Http(200, absl::StrCat(R"({"certificate":"AAAA","certificate_chain":[)",
                              std::string(10000 * 7 - 1, ' '), "]}"))},
      {"endpoint_object",
       Http(200,
            R"({"certificate":"AAAA","mtls_authentication_endpoint":{}})")},
      {"endpoint_number",
       Http(200, R"({"certificate":"AAAA","mtls_authentication_endpoint":7})")},
      {"client_id_array",
       Http(200, R"({"certificate":"AAAA","client_id":[1]})")},
      {"fifty_gib_content_length",
       "HTTP/1.1 200 OK\r\nContent-Length: 53687091200\r\n\r\n{", 256 << 20},
      {"chunk_size_two_to_the_64_minus_3",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
       "chunked\r\n\r\nfffffffffffffffd\r\n",
       64 << 20},
      {"error_null_on_500", Http(500, R"({"error":null})")},
  };
}

std::vector<Hostile> TokenAttacks() {
  std::vector<Hostile> rows = {
      {"access_token_number",
       Http(200, R"({"access_token":123,"expires_in":3600})")},
      {"expires_in_word",
       Http(200, R"({"access_token":"t","expires_in":"soon"})")},
      {"expires_in_negative",
       Http(200, R"({"access_token":"t","expires_in":-5})")},
      {"expires_in_1e300",
       Http(200, R"({"access_token":"t","expires_in":1e300})")},
      {"expires_in_uint64_max",
       Http(200, R"({"access_token":"t","expires_in":18446744073709551615})")},
      {"token_type_array",
       Http(200, R"({"access_token":"t","expires_in":60,"token_type":[]})"), 0,
       /*may_succeed=*/true},
      {"error_number_on_401", Http(401, R"({"error":123})")},
      {"error_null_on_500", Http(500, R"({"error":null})")},
      {"error_description_object_on_400",
       Http(400, R"({"error":"invalid_request","error_description":{}})")},
      {"body_is_array", Http(200, "[]")},
  };
  for (Hostile row : TransportAttacks()) {
    rows.push_back(std::move(row));
  }
  return rows;
}

class CliHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = Emulator::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    emulator_ = *std::move(started);
    ca_file_ = dir_.path() + "/token-ca.pem";
    WriteFile(ca_file_, emulator_->ca_root_pem(), 0644);
    // A healthy run: the time and memory every hostile one is held to.
    healthy_ = Token("healthy");
    ASSERT_EQ(healthy_.exit_code, 0) << healthy_.err;
    ASSERT_GT(healthy_.max_rss_kib, 0);
  }

  // `certstore token` on a new store (so that every run mints).
  ProcessResult Token(const std::string& store_name,
                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--store",
        absl::StrCat("sqlite:", dir_.path(), "/", store_name, ".db"),
        "token",
        "--scope",
        "https://vault.example",
        "--issuing-url",
        emulator_->issuing_url(),
        "--server-ca",
        ca_file_,
        "--timeout",
        absl::StrCat(absl::ToInt64Seconds(kTokenTimeout), "s")};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args, {}, absl::Seconds(60));
  }

  void Inject(FaultKind kind, const Hostile& row, int skip) {
    FaultSpec fault;
    fault.kind = kind;
    fault.raw = row.raw;
    fault.stream_bytes = row.stream_bytes;
    fault.skip = skip;
    fault.count = 20;  // every retry meets it too
    ASSERT_TRUE(emulator_->InjectFault(fault).ok());
  }

  // The invariants every hostile row must keep.
  void ExpectContained(const ProcessResult& r, const Hostile& row,
                       absl::Duration deadline) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << ": " << r.err;
    EXPECT_FALSE(r.timed_out);
    EXPECT_GE(r.exit_code, row.may_succeed ? 0 : 1) << r.err;
    EXPECT_LE(r.exit_code, 6) << r.err;
    EXPECT_LT(r.elapsed, deadline + healthy_.elapsed + kSlack);
    EXPECT_LT(r.max_rss_kib, healthy_.max_rss_kib + kRssMarginKib);
    const std::string said = r.err + r.out;
    EXPECT_THAT(said,
                ::testing::Not(::testing::HasSubstr("unexpected exception")));
    if (r.exit_code != 0) {
      EXPECT_FALSE(said.empty());
    }
    for (unsigned char c : said) {
      EXPECT_TRUE(c >= 0x20 || c == '\n' || c == '\t')
          << "control byte " << int{c} << " in the output: " << said;
    }
    emulator_->ClearFaults();
  }

  TempDir dir_;
  std::unique_ptr<Emulator> emulator_;
  std::string ca_file_;
  ProcessResult healthy_;
  int run_ = 0;
};

TEST_F(CliHostileTest, MetadataAnswers) {
  for (const Hostile& row : MetadataAttacks()) {
    Inject(FaultKind::kRawIssuing, row, /*skip=*/0);
    ExpectContained(Token(absl::StrCat("m", run_++)), row, kTokenTimeout);
  }
}

TEST_F(CliHostileTest, IssueCredentialAnswers) {
  for (const Hostile& row : IssueAttacks()) {
    Inject(FaultKind::kRawIssuing, row, /*skip=*/1);  // after the metadata
    ExpectContained(Token(absl::StrCat("i", run_++)), row, kTokenTimeout);
  }
}

TEST_F(CliHostileTest, TokenAnswers) {
  for (const Hostile& row : TokenAttacks()) {
    Inject(FaultKind::kRawResponse, row, /*skip=*/0);
    ExpectContained(Token(absl::StrCat("t", run_++)), row, kTokenTimeout);
  }
}

// doctor reads token answers with its own HTTP code (cli/endpoint_probe.cc).
TEST_F(CliHostileTest, DoctorTokenAnswers) {
  const std::string store =
      absl::StrCat("sqlite:", dir_.path(), "/healthy.db");  // minted above
  for (const Hostile& row : TokenAttacks()) {
    Inject(FaultKind::kRawResponse, row, /*skip=*/0);
    ProcessResult r =
        RunCli({"--store", store, "doctor", "--server-ca", ca_file_,
                "--deadline", "5s", "--scope", "https://vault.example",
                absl::StrCat(emulator_->client_id(), "#att=0")},
               {}, absl::Seconds(60));
    Hostile doctored = row;
    doctored.may_succeed = true;  // doctor's verdict is its exit code
    ExpectContained(r, doctored, absl::Seconds(5));
  }
}

// Hostile files on the local side: a config, a credential to import.
class CliHostileFilesTest : public ::testing::Test {
 protected:
  ProcessResult Cli(std::vector<std::string> args) {
    return RunCli(args, {}, absl::Seconds(60));
  }

  void ExpectRefused(const ProcessResult& r, const std::string& name,
                     const std::string& says) {
    SCOPED_TRACE(name);
    EXPECT_EQ(r.signal, 0) << r.err;
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, ::testing::HasSubstr(says));
    EXPECT_THAT(r.err,
                ::testing::Not(::testing::HasSubstr("unexpected exception")));
    EXPECT_LT(r.elapsed, absl::Seconds(10));
    EXPECT_LT(r.max_rss_kib, Baseline().max_rss_kib + kRssMarginKib);
  }

  // A healthy run of the CLI on an empty store: the memory every refused
  // file is held to.
  const ProcessResult& Baseline() {
    if (baseline_.max_rss_kib == 0) {
      baseline_ = Cli(
          {"--store", absl::StrCat("sqlite:", dir_.path(), "/b.db"), "list"});
      EXPECT_EQ(baseline_.exit_code, 0) << baseline_.err;
      EXPECT_GT(baseline_.max_rss_kib, 0);
    }
    return baseline_;
  }

  std::string File(const std::string& name, const std::string& content) {
    const std::string path = absl::StrCat(dir_.path(), "/", name);
    WriteFile(path, content, 0600);
    return path;
  }

  // A PKCS#12 of a test credential whose MAC or key encryption asks for
  // `iterations` (the stored values are edited; nothing computes them).
  std::string Pkcs12Asking(int64_t mac_iterations, int64_t key_iterations);

  TempDir dir_;
  ProcessResult baseline_;
};

// One DER element.
std::string Tlv(unsigned char tag, const std::string& contents) {
  std::string length;
  size_t n = contents.size();
  if (n < 0x80) {
    length = std::string(1, static_cast<char>(n));
  } else {
    for (; n > 0; n >>= 8) {
      length.insert(length.begin(), static_cast<char>(n & 0xff));
    }
    length.insert(length.begin(), static_cast<char>(0x80 | length.size()));
  }
  return absl::StrCat(std::string(1, static_cast<char>(tag)), length, contents);
}

std::string CliHostileFilesTest::Pkcs12Asking(int64_t mac_iterations,
                                              int64_t key_iterations) {
  TestPki pki;
  LeafOptions leaf;
  leaf.not_before = absl::Now() - absl::Hours(1);
  leaf.not_after = absl::Now() + absl::Hours(24 * 7);
  const std::string leaf_der =
      pki.IssueChain(*PoolKey(KeyType::kEcP256), leaf)[0];
  // The key bag: PBES2 parameters asking for `key_iterations` around
  // random bytes where the encrypted key would be.
  unsigned char salt[16], iv[16];
  RAND_bytes(salt, sizeof(salt));
  RAND_bytes(iv, sizeof(iv));
  X509_ALGOR* alg =
      PKCS5_pbe2_set_iv(EVP_aes_256_cbc(), static_cast<int>(key_iterations),
                        salt, sizeof(salt), iv, NID_hmacWithSHA256);
  unsigned char* alg_der = nullptr;
  const int alg_len = i2d_X509_ALGOR(alg, &alg_der);
  X509_ALGOR_free(alg);
  std::string encrypted(48, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(&encrypted[0]), encrypted.size());
  const std::string sig_der =
      Tlv(0x30, std::string(reinterpret_cast<char*>(alg_der), alg_len) +
                    Tlv(0x04, encrypted));
  OPENSSL_free(alg_der);
  const auto* p = reinterpret_cast<const unsigned char*>(sig_der.data());
  X509_SIG* sig = d2i_X509_SIG(nullptr, &p, static_cast<long>(sig_der.size()));
  EXPECT_NE(sig, nullptr);
  const auto* c = reinterpret_cast<const unsigned char*>(leaf_der.data());
  X509* cert = d2i_X509(nullptr, &c, static_cast<long>(leaf_der.size()));

  STACK_OF(PKCS12_SAFEBAG)* bags = sk_PKCS12_SAFEBAG_new_null();
  sk_PKCS12_SAFEBAG_push(bags, PKCS12_SAFEBAG_create_cert(cert));
  sk_PKCS12_SAFEBAG_push(bags, PKCS12_SAFEBAG_create0_pkcs8(sig));
  X509_free(cert);
  STACK_OF(PKCS7)* safes = sk_PKCS7_new_null();
  sk_PKCS7_push(safes, PKCS12_pack_p7data(bags));
  sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
  PKCS12* p12 = PKCS12_init(NID_pkcs7_data);
  PKCS12_pack_authsafes(p12, safes);
  sk_PKCS7_pop_free(safes, PKCS7_free);
  // A real MAC, then its count edited to ask for more. (Two iterations, not
  // one: DER omits a count of one, leaving nothing to edit.)
  EXPECT_EQ(PKCS12_set_mac(p12, "pw", 2, nullptr, 0, 2, EVP_sha256()), 1);
  const ASN1_INTEGER* iter = nullptr;
  PKCS12_get0_mac(nullptr, nullptr, nullptr, &iter, p12);
  EXPECT_NE(iter, nullptr);
  if (iter != nullptr) {
    ASN1_INTEGER_set_int64(const_cast<ASN1_INTEGER*>(iter), mac_iterations);
  }
  unsigned char* der = nullptr;
  const int len = i2d_PKCS12(p12, &der);
  PKCS12_free(p12);
  std::string out(reinterpret_cast<char*>(der), len > 0 ? len : 0);
  OPENSSL_free(der);
  return out;
}

TEST_F(CliHostileFilesTest, ConfigFiles) {
  const std::string store =
      absl::StrCat("--store=sqlite:", dir_.path(), "/s.db");
  struct Row {
    std::string name;
    std::string path;
    std::string says;
  };
  const std::vector<Row> rows = {
      {"dev_urandom", "/dev/urandom", "not a regular file"},
      {"ten_mib", File("big.json", std::string(10 << 20, ' ')), "larger than"},
      {"store_number", File("n.json", R"({"store":123})"),
       "expected a JSON object"},
      {"layers_of_numbers", File("l.json", R"({"layers":[1,2]})"), "layers"},
      {"nested",
       File("d.json", std::string(30000, '[') + std::string(30000, ']')),
       "expected a JSON object"},
      {"binary", File("b.json", std::string("\xff\x00\xfe", 3)),
       "expected a JSON object"},
  };
  for (const Row& row : rows) {
    ExpectRefused(Cli({"--config", row.path, "list"}), row.name, row.says);
  }
}

TEST_F(CliHostileFilesTest, CredentialFiles) {
  const std::string store = absl::StrCat("sqlite:", dir_.path(), "/s.db");
  struct Row {
    std::string name;
    std::string path;
    std::string says;
  };
  const std::vector<Row> rows = {
      {"pkcs12_mac_2_31", File("mac.p12", Pkcs12Asking(2147483647, 2048)),
       "iterations"},
      {"pkcs12_key_2_31", File("key.p12", Pkcs12Asking(2, 2147483647)),
       "iterations"},
      {"dev_urandom", "/dev/urandom", "not a regular file"},
      {"hundred_mib", File("big.pem", std::string(100 << 20, 'A')), "bytes"},
      {"garbage_der", File("g.p12", std::string("\x30\x82\xff\xff\x02\x01", 6)),
       "PKCS#12"},
  };
  for (const Row& row : rows) {
    ProcessResult r = Cli({"--store", store, "import", "app#att=0", row.path,
                           "--password-file", File("pw", "pw")});
    ExpectRefused(r, row.name, row.says);
  }
  // Nothing was stored by any of them.
  ProcessResult listed = Cli({"--store", store, "--output", "json", "list"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(JsonOfKind(listed.out, "entry"), ::testing::IsEmpty());
}

}  // namespace
}  // namespace certstore::testing

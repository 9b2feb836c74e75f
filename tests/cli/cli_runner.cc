#include "tests/cli/cli_runner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/pkcs12.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_split.h"
#include "certstore/openssl_types.h"

namespace certstore::testing {

namespace {

ProcessResult Run(const std::vector<std::string>& args,
                  std::vector<std::string> env, absl::Duration timeout) {
  std::vector<std::string> argv = {CERTSTORE_CLI_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions options;
  options.env = std::move(env);
  for (const std::string& isolated : std::vector<std::string>{
           "CERTSTORE_URI=", "CERTSTORE_CONFIG=", "CERTSTORE_ISSUING_URL=",
           "XDG_STATE_HOME=" + ::testing::TempDir() + "/cli-state"}) {
    const std::string name = isolated.substr(0, isolated.find('=') + 1);
    bool given = false;
    for (const std::string& e : options.env) {
      given = given || e.rfind(name, 0) == 0;
    }
    if (!given) {
      options.env.push_back(isolated);
    }
  }
  options.timeout = timeout;
  ProcessResult result = RunProcess(argv, options);
  return result;
}

}  // namespace

ProcessResult RunCli(const std::vector<std::string>& args,
                     std::vector<std::string> env, absl::Duration timeout) {
  ProcessResult result = Run(args, std::move(env), timeout);
  EXPECT_FALSE(result.timed_out) << "certstore timed out: " << result.err;
  return result;
}

ProcessResult RunCliKilledAfter(const std::vector<std::string>& args,
                                absl::Duration kill_after) {
  return Run(args, {}, kill_after);
}

int LoopCount(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : fallback;
}

std::vector<nlohmann::json> JsonLines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    if (parsed.is_discarded()) {
      ADD_FAILURE() << "not a JSON line: " << line;
      continue;
    }
    EXPECT_EQ(parsed.value("schema", ""), "certstore.cli/v1") << line;
    lines.push_back(std::move(parsed));
  }
  return lines;
}

std::vector<nlohmann::json> JsonOfKind(const std::string& out,
                                       const std::string& kind) {
  std::vector<nlohmann::json> matching;
  for (nlohmann::json& line : JsonLines(out)) {
    if (line.value("kind", "") == kind) {
      matching.push_back(std::move(line));
    }
  }
  return matching;
}

std::string MakePkcs12(const std::vector<std::string>& chain_der,
                       const Key& key, const std::string& password) {
  auto decode = [](const std::string& der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    return d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  };
  X509* leaf = decode(chain_der[0]);
  STACK_OF(X509)* cas = sk_X509_new_null();
  for (size_t i = 1; i < chain_der.size(); ++i) {
    sk_X509_push(cas, decode(chain_der[i]));
  }
  PKCS12* p12 = PKCS12_create(password.c_str(), "binding", key.evp_pkey(), leaf,
                              cas, 0, 0, 0, 0, 0);
  std::string out;
  if (p12 != nullptr) {
    unsigned char* der = nullptr;
    int len = i2d_PKCS12(p12, &der);
    out.assign(reinterpret_cast<char*>(der), len > 0 ? len : 0);
    OPENSSL_free(der);
  }
  EXPECT_FALSE(out.empty()) << "PKCS12_create failed";
  PKCS12_free(p12);
  X509_free(leaf);
  sk_X509_pop_free(cas, X509_free);
  return out;
}

}  // namespace certstore::testing

// No secret in any message: every error path of the store URI, PKCS#11
// URI and config parsers, fed inputs that carry a sentinel secret in every
// place one can sit (pin-value=, pin=, passphrase=, password=, secret=,
// percent-encoded, inside another attribute's value, before the scheme,
// in a path), must answer without the sentinel. The number of distinct
// error paths reached is recorded (ctest --verbose shows it).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "api/internal/redact.h"
#include "backends/store_config_internal.h"
#include "certstore/open_store.h"
#include "certstore/pkcs11_store.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

constexpr char kSentinel[] = "S3NT1NEL-s3cr3t";

// Templates: "{S}" is the sentinel, "{E}" its percent-encoded form.
std::vector<std::string> UriTemplates(const std::string& dir) {
  const std::vector<std::string> carriers = {
      "pin-value={S}",          "pin={S}",       "passphrase={S}",
      "password={S}",           "secret={S}",    "client_secret={S}",
      "PIN-VALUE={S}",          "pin-value={E}", "pin%2Dvalue%3D{S}",
      "x-a=b%26pin-value%3D{S}"};
  std::vector<std::string> out;
  for (const std::string& c : carriers) {
    for (const std::string& shape : std::vector<std::string>{
             // store URIs
             "", "memory:?" + c, "memory:,memory:?" + c, "sqlite:relative?" + c,
             "sqlite:" + dir + "/s.db?" + c,
             "sqlite:" + dir + "/s.db?busy-budget-ms=0&" + c,
             "sqlite:" + dir + "/s.db?journal=x&" + c,
             "sqlite:" + dir + "/s.db?%zz=1&" + c,
             "sqlite:" + dir + "/s.db?a=%00&" + c,
             "sqlite:" + dir + "/no/such/" + c + "/s.db",
             "file:" + dir + "/no/such/" + c, "file:" + dir + "/d?" + c,
             "nosuch:" + c, c + ",memory:", "memory:,," + c,
             // pkcs11 URIs
             "pkcs11:" + c, "pkcs11:token=t;" + c,
             "pkcs11:token=t?module-path=/m.so&" + c,
             "pkcs11:token=t;module-name=x%3B" + c,
             "pkcs11:token=t;token=u;" + c, "pkcs11:token=t;" + c + ";%zz",
             "pkcs11:module-name=nosuchmodule;token=t?" + c,
             "pkcs11:token=t?module-path=/m.so&pin-source=file:/" + c,
             "pkcs11:token=t;" + c + "?module-path=/m.so",
             "pkcs11:mod" + c + "\": attribute \"mod" + c + "\": bad",
             c + ":pkcs11",
             "sqlite:" + dir + "/" + c + "/s.db?busy-budget-ms=0",
             "sqlite:" + dir + "/" + c + "/s.db?journal=x",
             "sqlite:" + dir + "/" + c + "/s.db?journal=%zz",
             "sqlite:" + dir + "/" + c + "/s.db?journal=auto&journal=auto",
             "memory:,,sqlite:" + dir + "/" + c,
             "pkcs11:object=" + c + "?module-path=/m.so",
             "pkcs11:token=t;object=" + c, "pkcs11:token=t;object=%zz" + c,
             "pkcs11:token=t?module-name=" + c,
             "pkcs11:token=t?module-name=x&x-cache-ttl=" + c,
             std::string("memory:\0") + c, c + std::string(9000, 'a')}) {
      if (!shape.empty()) {
        out.push_back(shape);
      }
    }
  }
  return out;
}

std::string Fill(const std::string& text) {
  return absl::StrReplaceAll(
      text, {{"{S}", kSentinel}, {"{E}", "S3NT1NEL%2Ds3cr3t"}});
}

TEST(SecretSentinelTest, NoParserErrorQuotesASecret) {
  TempDir dir;
  std::set<std::string> paths;  // distinct messages, sentinel removed
  int errors = 0;
  auto check = [&](const std::string& input, const absl::Status& status) {
    if (status.ok()) {
      return;
    }
    ++errors;
    const std::string message(status.message());
    EXPECT_THAT(message, ::testing::Not(::testing::HasSubstr(kSentinel)))
        << "input: " << input;
    EXPECT_THAT(message, ::testing::Not(::testing::HasSubstr("S3NT1NEL")))
        << "input: " << input;
    // The path, not the input: what is quoted varies, the wording not.
    paths.insert(std::regex_replace(
        std::regex_replace(message, std::regex("\"[^\"]*\""), "\"\""),
        std::regex(dir.path() + "[^ :\"]*"), "DIR"));
  };
  for (const std::string& t : UriTemplates(dir.path())) {
    const std::string uri = Fill(t);
    check(uri, SplitStoreUri(uri).status());
    check(uri, OpenStore(uri).status());
    check(uri, ParsePkcs11Uri(uri).status());
    const std::string redacted = RedactStoreUri(uri);
    EXPECT_THAT(redacted, ::testing::Not(::testing::HasSubstr("S3NT1NEL")))
        << uri;
  }
  for (const std::string& t : std::vector<std::string>{
           "{\"store\": \"memory:?pin-value={S}\"}",
           "{\"store\": 7, \"pin-value\": \"{S}\"}",
           "{\"layers\": [\"memory:\", 1, \"passphrase={S}\"]}",
           "{\"layers\": []}", "[\"pin-value={S}\"]", "pin-value={S}",
           "{\"password\": \"{S}\"", "{\"secret\": \"{S}\"}",
           "{\"layers\": \"pin={S}\"}"}) {
    const std::string config = Fill(t);
    absl::StatusOr<std::string> uri =
        internal::StoreUriFromConfig(config, "app.json");
    check(config, uri.status());
    if (uri.ok()) {
      check(config, OpenStore(*uri).status());
    }
  }
  RecordProperty("error_messages", errors);
  RecordProperty("distinct_error_paths", static_cast<int>(paths.size()));
  std::printf("secret sentinel: %d error messages, %zu distinct paths\n",
              errors, paths.size());
  for (const std::string& path : paths) {
    std::printf("  %s\n", path.c_str());
  }
  EXPECT_GE(paths.size(), 25u);  // the parsers' distinct refusals
}

TEST(SecretSentinelTest, RedactSecretsMasksEveryKeyAndKeepsTheRest) {
  EXPECT_EQ(internal::RedactSecrets("a?pin-value=1234&b=2"),
            "a?pin-value=***&b=2");
  EXPECT_EQ(internal::RedactSecrets("passphrase: hunter22 (file)"),
            "passphrase: *** (file)");
  EXPECT_EQ(internal::RedactSecrets("client_secret=xyz;z"),
            "client_secret=***;z");
  EXPECT_EQ(internal::RedactSecrets("pin-source=file:/p"),
            "pin-source=file:/p");
  // A value quoted without its key is found through the source.
  EXPECT_EQ(internal::RedactSecrets("attribute \"x;pin-value=9999\" is bad",
                                    "pkcs11:module-name=x%3Bpin-value%3D9999"),
            "attribute \"x;pin-value=***\" is bad");
  EXPECT_EQ(internal::RedactSecrets("value 9999 is bad", "pin-value=9999"),
            "value *** is bad");
  // A PIN of spaces, from the input (found by pkcs11_uri_fuzz).
  EXPECT_EQ(internal::RedactSecrets("\"x;pin-value=       ?\" is bad",
                                    "x%3Bpin-value=       ?"),
            "\"x;pin-value=***?\" is bad");
}

}  // namespace
}  // namespace certstore::testing

#include "api/internal/redact.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "api/internal/percent_encoding.h"

namespace certstore::internal {
namespace {

constexpr const char* kSecretKeys[] = {"pin-value", "passphrase", "password",
                                       "secret", "pin"};
constexpr size_t kMaxSecrets = 32;

// The values following a secret-bearing key in `view`, read up to the
// first separator or quote; with `long_reading` also up to the first URI
// separator only (what a parser of the input may have taken as the value,
// quotes and spaces included).
void CollectValues(const std::string& view, bool long_reading,
                   std::vector<std::string>* out) {
  const std::string lower = absl::AsciiStrToLower(view);
  for (const char* key : kSecretKeys) {
    const size_t key_size = std::char_traits<char>::length(key);
    for (size_t at = lower.find(key); at != std::string::npos;
         at = lower.find(key, at + 1)) {
      // Wherever the key sits, even inside a longer name ("client_secret",
      // "xpin="): masking too much is harmless, too little is not.
      const size_t separator = at + key_size;
      if (separator >= view.size() ||
          (view[separator] != '=' && view[separator] != ':')) {
        continue;
      }
      // The short reading skips the spaces after "key:"; the long one
      // keeps them (a PIN may start with, or be, spaces).
      static constexpr const char* kReadings[] = {"&;,?\"' \t\r\n)}", "&;,?"};
      for (int r = 0; r < (long_reading ? 2 : 1); ++r) {
        const char* stops = kReadings[r];
        size_t begin = separator + 1;
        while (r == 0 && begin < view.size() && view[begin] == ' ') {
          ++begin;
        }
        const size_t end = view.find_first_of(stops, begin);
        std::string value = view.substr(
            begin, (end == std::string::npos ? view.size() : end) - begin);
        if (!value.empty() && value != "***") {
          out->push_back(std::move(value));
        }
      }
    }
  }
}

}  // namespace

std::string RedactSecrets(absl::string_view text, absl::string_view source) {
  std::vector<std::string> secrets;
  CollectValues(std::string(text), false, &secrets);
  CollectValues(PercentDecodeLenient(text), false, &secrets);
  if (!source.empty()) {
    CollectValues(std::string(source), true, &secrets);
    CollectValues(PercentDecodeLenient(source), true, &secrets);
  }
  if (secrets.empty()) {
    return std::string(text);
  }
  // Longest first, so that a value containing another goes whole.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) {
              return a.size() != b.size() ? a.size() > b.size() : a < b;
            });
  secrets.erase(std::unique(secrets.begin(), secrets.end()), secrets.end());
  if (secrets.size() > kMaxSecrets) {
    return kWithheldMessage;
  }
  std::string out(text);
  for (const std::string& secret : secrets) {
    out = absl::StrReplaceAll(out, {{secret, "***"}});
  }
  for (const std::string& secret : secrets) {
    if (out.find(secret) != std::string::npos) {
      return kWithheldMessage;
    }
  }
  return out;
}

}  // namespace certstore::internal

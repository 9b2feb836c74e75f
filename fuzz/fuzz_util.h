// Shared by the fuzz targets: the invariant checks that are more than
// "no crash". A failed check aborts, which libFuzzer reports as a crash
// with the input that caused it.
#ifndef CERTSTORE_FUZZ_FUZZ_UTIL_H_
#define CERTSTORE_FUZZ_FUZZ_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "api/internal/redact.h"

namespace certstore::fuzz {

[[noreturn]] inline void Fail(const char* what, absl::string_view detail) {
  std::fprintf(stderr, "invariant broken: %s: %.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void Check(bool ok, const char* what, absl::string_view detail = "") {
  if (!ok) {
    Fail(what, detail);
  }
}

// The values of secret-bearing attributes (`pin-value=`, `passphrase=`,
// `pin=`) in `input` that are long enough to recognise and appear exactly
// once in it: no message may contain them.
inline std::vector<std::string> SecretsIn(absl::string_view input) {
  std::vector<std::string> secrets;
  for (absl::string_view key : {"pin-value=", "passphrase=", "pin="}) {
    for (size_t at = input.find(key); at != absl::string_view::npos;
         at = input.find(key, at + 1)) {
      const size_t start = at + key.size();
      size_t end = input.find_first_of("&;,?", start);
      if (end == absl::string_view::npos) {
        end = input.size();
      }
      const absl::string_view value = input.substr(start, end - start);
      if (value.size() >= 6 && input.find(value) == input.rfind(value)) {
        secrets.emplace_back(value);
      }
    }
  }
  return secrets;
}

// `message_for(input)` must not hold a secret of `input`: a secret that
// also appears when the input carries another value in its place comes
// from the message's own words, not from the input.
template <typename MessageFor>
void CheckNoSecret(const std::string& input, MessageFor message_for) {
  const std::vector<std::string> secrets = SecretsIn(input);
  if (secrets.empty()) {
    return;
  }
  // The withheld sentence is a constant: it holds nothing of the input.
  auto without_constant = [](std::string text) {
    const std::string constant = certstore::internal::kWithheldMessage;
    for (size_t at = text.find(constant); at != std::string::npos;
         at = text.find(constant, at)) {
      text.erase(at, constant.size());
    }
    return text;
  };
  const std::string message = without_constant(message_for(input));
  for (const std::string& secret : secrets) {
    if (message.find(secret) == std::string::npos) {
      continue;
    }
    std::string other = input;
    other.replace(other.find(secret), secret.size(),
                  std::string(secret.size(), '\x01'));
    if (without_constant(message_for(other)).find(secret) ==
        std::string::npos) {
      Fail("a secret reached a message", message);
    }
  }
}

}  // namespace certstore::fuzz

#endif  // CERTSTORE_FUZZ_FUZZ_UTIL_H_

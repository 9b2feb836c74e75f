// The one redaction function: every message that quotes a URI, a config
// or a header passes through it. Project-internal (RedactStoreUri is its
// public face).
#ifndef CERTSTORE_API_INTERNAL_REDACT_H_
#define CERTSTORE_API_INTERNAL_REDACT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "api/internal/internal_export.h"

namespace certstore::internal {

// `text` with the value of every secret-bearing key replaced by "***":
// pin-value, pin, passphrase, password, secret (any case, also inside a
// longer name such as client_secret), followed by '=' or ':', written
// plainly or percent-encoded, wherever it sits — in `text` itself or in
// `source`, the input `text` was built from (a parser's message may quote
// a value without its key). When masking cannot remove every such value
// (a text built to echo itself), nothing of it is kept: a fixed sentence
// says a secret was withheld.
// What RedactSecrets answers when it withholds a whole text: a constant,
// so it holds nothing of the input.
inline constexpr char kWithheldMessage[] =
    "(message withheld: it would have shown a PIN, passphrase or password)";

CERTSTORE_INTERNAL_EXPORT std::string RedactSecrets(
    absl::string_view text, absl::string_view source = {});

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_REDACT_H_

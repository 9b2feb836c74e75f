// The one percent-encoding pair (RFC 3986 §2.1): store URIs, RFC 7512
// PKCS#11 URIs, form bodies and the emulator's requests all encode and
// decode through it. Project-internal.
#ifndef CERTSTORE_API_INTERNAL_PERCENT_ENCODING_H_
#define CERTSTORE_API_INTERNAL_PERCENT_ENCODING_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/internal/internal_export.h"

namespace certstore::internal {

// `value` with every byte outside RFC 3986's unreserved set (ALPHA DIGIT
// - . _ ~) and outside `keep` written as %XX (upper-case hex). Decoding the
// result gives `value` back, whatever bytes it holds.
CERTSTORE_INTERNAL_EXPORT std::string PercentEncode(
    absl::string_view value, absl::string_view keep = {});

// Every byte of `bytes` as %XX, unreserved ones included: RFC 7512's form
// for an object id.
CERTSTORE_INTERNAL_EXPORT std::string PercentEncodeAll(absl::string_view bytes);

struct PercentDecodeOptions {
  // application/x-www-form-urlencoded: '+' is a space.
  bool plus_is_space = false;
  // %00 (or a plain NUL) yields a NUL byte (a PKCS#11 id may hold one);
  // otherwise both are refused, since a NUL would cut a path or a label
  // short where C reads it.
  bool allow_nul = false;
};

// The bytes `encoded` stands for. InvalidArgument, naming the offset (never
// quoting the input, which may hold a secret), for a '%' not followed by
// two hex digits or a refused %00.
CERTSTORE_INTERNAL_EXPORT absl::StatusOr<std::string> PercentDecode(
    absl::string_view encoded, const PercentDecodeOptions& options = {});

// As PercentDecode, but a malformed escape is kept as it is: for reading
// text whatever its shape (redaction looks for secrets in the decoded form).
CERTSTORE_INTERNAL_EXPORT std::string PercentDecodeLenient(
    absl::string_view encoded);

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_PERCENT_ENCODING_H_

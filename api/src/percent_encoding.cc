#include "api/internal/percent_encoding.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace certstore::internal {
namespace {

constexpr char kHexDigits[] = "0123456789ABCDEF";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsUnreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

void AppendEscaped(unsigned char c, std::string* out) {
  out->push_back('%');
  out->push_back(kHexDigits[c >> 4]);
  out->push_back(kHexDigits[c & 15]);
}

// The byte of the escape at `in[i]` ('%'), or -1 when it is malformed.
int EscapedByte(absl::string_view in, size_t i) {
  if (i + 2 >= in.size()) return -1;
  const int high = HexValue(in[i + 1]);
  const int low = HexValue(in[i + 2]);
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

}  // namespace

std::string PercentEncode(absl::string_view value, absl::string_view keep) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (IsUnreserved(u) ||
        (c != '%' && keep.find(c) != absl::string_view::npos)) {
      out.push_back(c);
    } else {
      AppendEscaped(u, &out);
    }
  }
  return out;
}

std::string PercentEncodeAll(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 3);
  for (const char c : bytes) {
    AppendEscaped(static_cast<unsigned char>(c), &out);
  }
  return out;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view encoded,
                                          const PercentDecodeOptions& options) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    const char c = encoded[i];
    if (c == '+' && options.plus_is_space) {
      out.push_back(' ');
      continue;
    }
    if (c == '\0' && !options.allow_nul) {
      // Written plainly or as %00, a NUL is the same byte.
      return absl::InvalidArgumentError(
          absl::StrCat("NUL byte at offset ", i, " is not allowed"));
    }
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    const int byte = EscapedByte(encoded, i);
    if (byte < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad %-escape at offset ", i, " (expected %XX with two hex digits)"));
    }
    if (byte == 0 && !options.allow_nul) {
      return absl::InvalidArgumentError(
          absl::StrCat("%00 at offset ", i, " is not allowed"));
    }
    out.push_back(static_cast<char>(byte));
    i += 2;
  }
  return out;
}

std::string PercentDecodeLenient(absl::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    const int byte = encoded[i] == '%' ? EscapedByte(encoded, i) : -1;
    if (byte < 0) {
      out.push_back(encoded[i]);
    } else {
      out.push_back(static_cast<char>(byte));
      i += 2;
    }
  }
  return out;
}

}  // namespace certstore::internal

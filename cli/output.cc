#include "cli/output.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/internal/redact.h"
#include "cli/exit_codes.h"

namespace certstore::cli {
namespace {

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629:
// no overlongs, no surrogates, nothing above U+10FFFF) and its code point;
// 0 when the first byte does not start one.
size_t Utf8Sequence(absl::string_view s, uint32_t* code_point) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t lead = byte(0);
  size_t length = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, cp = lead & 0x1F, min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, cp = lead & 0x0F, min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < length) {
    return 0;
  }
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (byte(i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  *code_point = cp;
  return length;
}

// Code points that change how a terminal shows what follows: controls and
// the bidirectional overrides and isolates ("Trojan Source").
bool IsDisplayControl(uint32_t cp, bool keep_line_breaks) {
  if (cp == '\n' || cp == '\t') {
    return !keep_line_breaks;
  }
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

// Every string in `value`, keys included, through PrintableText.
nlohmann::json PrintableJson(const nlohmann::json& value) {
  if (value.is_string()) {
    return PrintableText(value.get_ref<const std::string&>(),
                         /*keep_line_breaks=*/true);
  }
  if (value.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& element : value) {
      out.push_back(PrintableJson(element));
    }
    return out;
  }
  if (value.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, element] : value.items()) {
      out[PrintableText(key, /*keep_line_breaks=*/false)] =
          PrintableJson(element);
    }
    return out;
  }
  return value;
}

std::string JsonLine(const nlohmann::json& line) {
  // PrintableJson leaves only valid UTF-8; `replace` is the last guard so
  // that dump() can never throw.
  return PrintableJson(line).dump(-1, ' ', false,
                                  nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string PrintableText(absl::string_view bytes, bool keep_line_breaks) {
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    uint32_t cp = 0;
    size_t length = Utf8Sequence(bytes, &cp);
    if (length > 0 && !IsDisplayControl(cp, keep_line_breaks)) {
      out.append(bytes.data(), length);
    } else {
      length = length > 0 ? length : 1;
      for (size_t i = 0; i < length; ++i) {
        absl::StrAppendFormat(&out, "\\x%02x", static_cast<uint8_t>(bytes[i]));
      }
    }
    bytes.remove_prefix(length);
  }
  return out;
}

void Output::Emit(absl::string_view kind, nlohmann::json object,
                  absl::string_view text) {
  if (quiet_) {
    return;
  }
  if (json()) {
    nlohmann::json line = {{"schema", kJsonSchema},
                           {"kind", std::string(kind)}};
    line.update(object);
    std::fprintf(out_, "%s\n", JsonLine(line).c_str());
  } else {
    std::fprintf(out_, "%s\n", PrintableText(text, true).c_str());
  }
  std::fflush(out_);
}

void Output::Note(absl::string_view text) {
  if (quiet_ || json()) {
    return;
  }
  std::fprintf(out_, "%s\n", PrintableText(text, true).c_str());
  std::fflush(out_);
}

void Output::Verbose(absl::string_view text) {
  if (!verbose_) {
    return;
  }
  std::fprintf(err_, "certstore: %s\n",
               PrintableText(internal::RedactSecrets(text), true).c_str());
}

void Output::Warn(absl::string_view text) {
  if (quiet_) {
    return;
  }
  std::fprintf(err_, "certstore: warning: %s\n",
               PrintableText(text, true).c_str());
}

int Output::Fail(const absl::Status& status) {
  const int code = ExitCodeFor(status);
  // The last net: parsers redact what they quote; this catches what a
  // message built elsewhere might still carry.
  const std::string message = internal::RedactSecrets(status.message());
  if (json()) {
    nlohmann::json line = {{"schema", kJsonSchema},
                           {"kind", "error"},
                           {"code", StatusCodeName(status.code())},
                           {"exit_code", code},
                           {"message", message}};
    std::fprintf(err_, "%s\n", JsonLine(line).c_str());
  } else {
    std::fprintf(err_, "certstore: error: %s\n",
                 PrintableText(message, true).c_str());
  }
  return code;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string FormatTimeLeft(absl::Duration left) {
  const bool expired = left < absl::ZeroDuration();
  const int64_t s = absl::ToInt64Seconds(absl::AbsDuration(left));
  std::string amount;
  if (s >= 86400) {
    amount = absl::StrCat(s / 86400, "d ", (s % 86400) / 3600, "h");
  } else if (s >= 3600) {
    amount = absl::StrCat(s / 3600, "h ", (s % 3600) / 60, "m");
  } else if (s >= 60) {
    amount = absl::StrCat(s / 60, "m");
  } else {
    amount = absl::StrCat(s, "s");
  }
  return expired ? absl::StrCat("expired ", amount, " ago") : amount;
}

std::string FormatElapsed(absl::Duration elapsed) {
  if (elapsed < absl::Seconds(1)) {
    return absl::StrFormat("%.2f ms", absl::ToDoubleMilliseconds(elapsed));
  }
  return absl::StrFormat("%.1f s", absl::ToDoubleSeconds(elapsed));
}

std::string StatusCodeName(absl::StatusCode code) {
  return absl::StatusCodeToString(code);  // "NOT_FOUND"
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return kExitPermission;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kFailedPrecondition:
      return kExitKeyUnusable;
    default:
      return kExitFailure;
  }
}

}  // namespace certstore::cli

#include "cli/output.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/exit_codes.h"

namespace certstore::cli {

void Output::Emit(absl::string_view kind, nlohmann::json object,
                  absl::string_view text) {
  if (quiet_) {
    return;
  }
  if (json()) {
    nlohmann::json line = {{"schema", kJsonSchema},
                           {"kind", std::string(kind)}};
    line.update(object);
    std::fprintf(out_, "%s\n", line.dump().c_str());
  } else {
    std::fprintf(out_, "%.*s\n", static_cast<int>(text.size()), text.data());
  }
  std::fflush(out_);
}

void Output::Note(absl::string_view text) {
  if (quiet_ || json()) {
    return;
  }
  std::fprintf(out_, "%.*s\n", static_cast<int>(text.size()), text.data());
  std::fflush(out_);
}

void Output::Verbose(absl::string_view text) {
  if (!verbose_) {
    return;
  }
  std::fprintf(err_, "certstore: %.*s\n", static_cast<int>(text.size()),
               text.data());
}

int Output::Fail(const absl::Status& status) {
  const int code = ExitCodeFor(status);
  if (json()) {
    nlohmann::json line = {{"schema", kJsonSchema},
                           {"kind", "error"},
                           {"code", StatusCodeName(status.code())},
                           {"exit_code", code},
                           {"message", std::string(status.message())}};
    std::fprintf(err_, "%s\n", line.dump().c_str());
  } else {
    std::fprintf(err_, "certstore: error: %s\n",
                 std::string(status.message()).c_str());
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

// How the certstore command prints: text for people, one JSON object per
// line for programs (schema "certstore.cli/v1", docs/cli.md), errors on
// stderr. Nothing printed here ever holds key bytes, PINs or tokens: callers
// pass thumbprints and metadata only.
#ifndef CERTSTORE_CLI_OUTPUT_H_
#define CERTSTORE_CLI_OUTPUT_H_

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace certstore::cli {

// Versioned: a field is never removed or renamed within a version.
inline constexpr const char* kJsonSchema = "certstore.cli/v1";

class Output {
 public:
  enum class Format { kText, kJson };

  Output(Format format, bool quiet, bool verbose, std::FILE* out = stdout,
         std::FILE* err = stderr)
      : format_(format),
        quiet_(quiet),
        verbose_(verbose),
        out_(out),
        err_(err) {}

  bool json() const { return format_ == Format::kJson; }
  bool verbose() const { return verbose_; }

  // One result: `text` (one or more lines) in text mode; in JSON mode
  // `object` with "schema" and "kind" added, on one line. Silent with -q.
  void Emit(absl::string_view kind, nlohmann::json object,
            absl::string_view text);
  // A line for people only (not in JSON mode; silent with -q).
  void Note(absl::string_view text);
  // A line on stderr with -v only.
  void Verbose(absl::string_view text);
  // "certstore: warning: ..." on stderr (silent with -q), in both formats.
  void Warn(absl::string_view text);
  // Prints the error (stderr; JSON object in JSON mode, even with -q) and
  // returns its exit code.
  int Fail(const absl::Status& status);

 private:
  Format format_;
  bool quiet_;
  bool verbose_;
  std::FILE* out_;
  std::FILE* err_;
};

// `bytes` as text that is safe on a terminal and in JSON (docs/cli.md,
// "Bytes that are not text"): printable UTF-8 passes unchanged; every other
// byte (invalid UTF-8, C0/C1 controls, DEL, bidirectional overrides) prints
// as `\xHH`. Line feeds and tabs pass when `keep_line_breaks`. Output
// applies it to everything it prints, so no caller can forget.
std::string PrintableText(absl::string_view bytes, bool keep_line_breaks);

// "2026-11-23T19:02:42Z".
std::string Rfc3339(absl::Time t);
// "6d 23h", "41m", "12s"; "expired 2h ago" for negative durations.
std::string FormatTimeLeft(absl::Duration left);
// "0.42 ms", "1.3 s".
std::string FormatElapsed(absl::Duration elapsed);
// "NOT_FOUND" etc.
std::string StatusCodeName(absl::StatusCode code);

}  // namespace certstore::cli

#endif  // CERTSTORE_CLI_OUTPUT_H_

#include "certstore/errors.h"

#include <openssl/err.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace certstore {
namespace {
constexpr size_t kMaxQuotedAliasBytes = 80;
}  // namespace

std::string QuoteAlias(absl::string_view alias) {
  if (alias.size() <= kMaxQuotedAliasBytes) {
    return absl::StrCat("\"", absl::CHexEscape(alias), "\"");
  }
  return absl::StrCat("\"", absl::CHexEscape(alias.substr(0, 48)), "…\" (",
                      alias.size(), " bytes)");
}

std::string OpContext(absl::string_view store, absl::string_view op,
                      absl::string_view alias) {
  // "memory:" ends in the scheme's colon already.
  absl::string_view sep = absl::EndsWith(store, ":") ? " " : ": ";
  if (alias.empty()) {
    return absl::StrCat(store, sep, op);
  }
  return absl::StrCat(store, sep, op, "(", QuoteAlias(alias), ")");
}

absl::Status WithContext(const absl::Status& status,
                         absl::string_view context) {
  if (status.ok()) {
    return status;
  }
  return absl::Status(status.code(),
                      absl::StrCat(context, ": ", status.message()));
}

absl::Status OpenSslError(absl::StatusCode code, absl::string_view what) {
  std::string message(what);
  const char* separator = ": ";
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    absl::StrAppend(&message, separator, buf);
    separator = "; ";
  }
  return absl::Status(code, message);
}

void ClearOpenSslErrors() { ERR_clear_error(); }

}  // namespace certstore

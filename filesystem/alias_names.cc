#include "filesystem/alias_names.h"

#include <openssl/sha.h>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "certstore/errors.h"

namespace certstore::filesystem_internal {
namespace {

constexpr absl::string_view kEncodedPrefix = "a-";
constexpr absl::string_view kHashedPrefix = "h-";

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), sizeof(digest)));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

}  // namespace

std::string AliasDirName(absl::string_view alias) {
  std::string encoded = absl::WebSafeBase64Escape(alias);  // no padding
  if (encoded.size() <= kMaxEncodedAliasBytes) {
    return absl::StrCat(kEncodedPrefix, encoded);
  }
  return absl::StrCat(kHashedPrefix, Sha256Hex(alias));
}

bool IsAliasDirName(absl::string_view name) {
  return absl::StartsWith(name, kEncodedPrefix) ||
         absl::StartsWith(name, kHashedPrefix);
}

std::optional<std::string> AliasOfDirName(absl::string_view name) {
  std::string alias;
  if (!absl::StartsWith(name, kEncodedPrefix) ||
      !absl::WebSafeBase64Unescape(name.substr(kEncodedPrefix.size()),
                                   &alias) ||
      alias.empty() || AliasDirName(alias) != name) {
    return std::nullopt;
  }
  return alias;
}

absl::StatusOr<std::string> ResolveAlias(
    absl::string_view dir_name, const std::optional<std::string>& recorded) {
  if (recorded.has_value()) {
    const std::string home = AliasDirName(*recorded);
    if (home != dir_name) {
      return absl::DataLossError(absl::StrCat(
          "records alias ", QuoteAlias(*recorded), ", whose directory is ",
          home, ", not ", dir_name, " (moved or copied by hand?)"));
    }
    return *recorded;
  }
  if (std::optional<std::string> alias = AliasOfDirName(dir_name)) {
    return *std::move(alias);
  }
  return absl::DataLossError(
      absl::StrCat("no certstore-alias header line, which files in hashed "
                   "directories (",
                   dir_name, ") need to say which alias they belong to"));
}

std::string EntryFileName(absl::string_view thumbprint) {
  return absl::StrCat("x5t-", thumbprint, ".pem");
}

bool IsEntryFileName(absl::string_view name) {
  return !absl::StartsWith(name, ".") && name.size() > 4 &&
         absl::EndsWith(name, ".pem");
}

std::string MintLockFileName(absl::string_view alias) {
  return absl::StrCat(".mint-", AliasDirName(alias), ".lock");
}

std::string EscapeHeaderValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte > 0x20 && byte < 0x7f && c != '%') {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "%%%02X", byte);
    }
  }
  return out;
}

absl::StatusOr<std::string> UnescapeHeaderValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') {
      out.push_back(value[i]);
      continue;
    }
    const bool complete = i + 2 < value.size();
    const int high = complete ? HexValue(value[i + 1]) : -1;
    const int low = complete ? HexValue(value[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'%' at offset ", i, " is not followed by two hex digits"));
    }
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

}  // namespace certstore::filesystem_internal

// How aliases become file names in a PEM directory, and back. An alias is
// never used as a path: it is encoded (base64url, no padding) into a
// directory name that cannot contain '/', NUL, or be "." or "..". Internal
// to filesystem/.
#ifndef CERTSTORE_FILESYSTEM_ALIAS_NAMES_H_
#define CERTSTORE_FILESYSTEM_ALIAS_NAMES_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certstore::filesystem_internal {

// Longest encoded alias kept in a directory name (aliases up to 150 bytes);
// longer aliases are named by their SHA-256.
inline constexpr size_t kMaxEncodedAliasBytes = 200;

// The directory holding the alias's entries: "a-" + base64url(alias), or
// "h-" + hex(SHA-256(alias)) when that would exceed kMaxEncodedAliasBytes.
std::string AliasDirName(absl::string_view alias);

// Whether `name` is shaped like an alias directory ("a-…" or "h-…").
bool IsAliasDirName(absl::string_view name);

// The alias an "a-" name encodes, if `name` is its canonical encoding;
// nullopt for "h-" names and anything else.
std::optional<std::string> AliasOfDirName(absl::string_view name);

// The alias a file in directory `dir_name` belongs to: the alias its header
// records (`recorded`), which must be one whose AliasDirName is `dir_name`,
// or else the one the directory name encodes. DataLoss when the recorded
// alias belongs elsewhere, or when an "h-" directory's file records none.
absl::StatusOr<std::string> ResolveAlias(
    absl::string_view dir_name, const std::optional<std::string>& recorded);

// The name certstore gives an entry's file in its alias directory:
// "x5t-<thumbprint>.pem". Hand-made files may use any "*.pem" name.
std::string EntryFileName(absl::string_view thumbprint);

// Whether readers consider `name` an entry file: "*.pem", not hidden.
bool IsEntryFileName(absl::string_view name);

// The per-alias mint lock file in the store directory:
// ".mint-" + AliasDirName(alias) + ".lock".
std::string MintLockFileName(absl::string_view alias);

// Header values: printable ASCII but '%' stays as is, every other byte
// (space, controls, non-ASCII, '%') becomes %XX. Unescape refuses a '%' not
// followed by two hex digits (InvalidArgument).
std::string EscapeHeaderValue(absl::string_view value);
absl::StatusOr<std::string> UnescapeHeaderValue(absl::string_view value);

}  // namespace certstore::filesystem_internal

#endif  // CERTSTORE_FILESYSTEM_ALIAS_NAMES_H_

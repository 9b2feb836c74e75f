#include "certstore/open_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/internal/directories.h"
#include "api/internal/json.h"
#include "api/internal/percent_encoding.h"
#include "api/internal/posix_status.h"
#include "api/internal/redact.h"
#include "api/internal/unique_fd.h"
#include "backends/store_config_internal.h"
#include "certstore/errors.h"
#include "certstore/memory_store.h"
#include "certstore/pem_dir_store.h"
#include "certstore/status_macros.h"
#if CERTSTORE_HAS_PKCS11
#include "certstore/pkcs11_store.h"
#endif
#if CERTSTORE_HAS_SQLITE
#include "certstore/sqlite_store.h"
#endif

namespace certstore {
namespace {

using internal::Json;
using Opener = std::function<absl::StatusOr<std::unique_ptr<CertStore>>(
    absl::string_view layer, const OpenStoreOptions& options)>;
using Query = absl::flat_hash_map<std::string, std::string>;

std::string Quote(absl::string_view part) {
  return QuoteAlias(RedactStoreUri(part));
}

absl::Status Invalid(absl::string_view layer, absl::string_view what) {
  return absl::InvalidArgumentError(internal::RedactSecrets(
      absl::StrCat("store URI layer ", Quote(layer), ": ", what), layer));
}

absl::StatusOr<std::string> PercentDecode(absl::string_view layer,
                                          absl::string_view in) {
  absl::StatusOr<std::string> decoded = internal::PercentDecode(in);
  if (!decoded.ok()) {
    return Invalid(layer, decoded.status().message());
  }
  return decoded;
}

// "scheme:[//]/abs/path[?k=v&…]" -> decoded absolute path and query.
absl::StatusOr<std::pair<std::string, Query>> PathAndQuery(
    absl::string_view layer, absl::string_view scheme) {
  absl::string_view rest = layer.substr(scheme.size());
  absl::ConsumePrefix(&rest, "//");
  absl::string_view raw_query;
  if (size_t q = rest.find('?'); q != rest.npos) {
    raw_query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  CERTSTORE_ASSIGN_OR_RETURN(std::string path, PercentDecode(layer, rest));
  if (!absl::StartsWith(path, "/")) {
    return Invalid(layer, absl::StrCat("expected an absolute path after \"",
                                       scheme, "\""));
  }
  Query query;
  for (absl::string_view pair :
       absl::StrSplit(raw_query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    CERTSTORE_ASSIGN_OR_RETURN(std::string value,
                               PercentDecode(layer, kv.second));
    if (!query.emplace(std::string(kv.first), std::move(value)).second) {
      return Invalid(layer,
                     absl::StrCat("attribute \"", kv.first, "\" given twice"));
    }
  }
  return std::make_pair(std::move(path), std::move(query));
}

absl::Status RefuseUnknown(absl::string_view layer, const Query& query,
                           absl::string_view known) {
  for (const auto& [key, value] : query) {
    if (!absl::StrContains(absl::StrCat(",", known, ","),
                           absl::StrCat(",", key, ","))) {
      return Invalid(layer, absl::StrCat("unknown attribute \"", key,
                                         "\" (expected one of: ", known, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CertStore>> OpenMemory(
    absl::string_view layer, const OpenStoreOptions& options) {
  if (layer != "memory:") {
    return Invalid(layer, "memory: takes no path or attributes");
  }
  MemoryStoreOptions memory;
  memory.clock = options.clock;
  return NewMemoryStore(memory);
}

#if CERTSTORE_HAS_SQLITE
absl::StatusOr<std::unique_ptr<CertStore>> OpenSqlite(
    absl::string_view layer, const OpenStoreOptions& options) {
  CERTSTORE_ASSIGN_OR_RETURN(auto parsed, PathAndQuery(layer, "sqlite:"));
  Query& query = parsed.second;
  CERTSTORE_RETURN_IF_ERROR(
      RefuseUnknown(layer, query, "busy-budget-ms,passphrase-file,journal"));
  SqliteStoreOptions sqlite;
  sqlite.path = parsed.first;
  sqlite.clock = options.clock;
  if (auto it = query.find("busy-budget-ms"); it != query.end()) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(it->second, &ms) || ms <= 0) {
      return Invalid(layer, "busy-budget-ms must be a positive integer");
    }
    sqlite.busy_budget = absl::Milliseconds(ms);
  }
  if (auto it = query.find("passphrase-file"); it != query.end()) {
    sqlite.passphrase_file = it->second;
  }
  if (auto it = query.find("journal"); it != query.end()) {
    const absl::flat_hash_map<std::string, SqliteJournal> journals = {
        {"auto", SqliteJournal::kAuto}, {"rollback", SqliteJournal::kRollback}};
    auto j = journals.find(it->second);
    if (j == journals.end()) {
      return Invalid(layer, "journal must be auto or rollback");
    }
    sqlite.journal = j->second;
  }
  return OpenSqliteStore(sqlite);
}
#endif  // CERTSTORE_HAS_SQLITE

absl::StatusOr<std::unique_ptr<CertStore>> OpenFile(
    absl::string_view layer, const OpenStoreOptions& options) {
  CERTSTORE_ASSIGN_OR_RETURN(auto parsed, PathAndQuery(layer, "file:"));
  CERTSTORE_RETURN_IF_ERROR(RefuseUnknown(layer, parsed.second, ""));
  PemDirStoreOptions file;
  file.directory = parsed.first;
  file.clock = options.clock;
  return OpenPemDirStore(file);
}

#if CERTSTORE_HAS_PKCS11
absl::StatusOr<std::unique_ptr<CertStore>> OpenPkcs11(
    absl::string_view layer, const OpenStoreOptions& options) {
  CERTSTORE_ASSIGN_OR_RETURN(Pkcs11StoreOptions pkcs11, ParsePkcs11Uri(layer));
  pkcs11.clock = options.clock;
  return OpenPkcs11Store(pkcs11);
}
#endif  // CERTSTORE_HAS_PKCS11

// The registry: scheme -> opener for the backends this build has, built
// once.
const std::vector<std::pair<std::string, Opener>>& Schemes() {
  static const auto* const schemes =
      new std::vector<std::pair<std::string, Opener>> {
    {"memory:", OpenMemory},
#if CERTSTORE_HAS_SQLITE
        {"sqlite:", OpenSqlite},
#endif
        {"file:", OpenFile},
#if CERTSTORE_HAS_PKCS11
        {"pkcs11:", OpenPkcs11},
#endif
  };
  return *schemes;
}

// Schemes certstore has a backend for, whether or not this build has it,
// and the CMake option that builds it.
constexpr std::pair<absl::string_view, absl::string_view> kOptionalSchemes[] = {
    {"sqlite:", "CERTSTORE_WITH_SQLITE"}, {"pkcs11:", "CERTSTORE_WITH_PKCS11"}};

const Opener* OpenerFor(absl::string_view layer) {
  for (const auto& [scheme, opener] : Schemes()) {
    if (absl::StartsWith(layer, scheme)) {
      return &opener;
    }
  }
  return nullptr;
}

std::string KnownSchemes() { return absl::StrJoin(StoreSchemes(), " "); }

// Whether a layer of some scheme certstore knows starts here, built into
// this binary or not: where a comma separates layers.
bool StartsLayer(absl::string_view rest) {
  if (OpenerFor(rest) != nullptr) {
    return true;
  }
  for (const auto& [scheme, option] : kOptionalSchemes) {
    if (absl::StartsWith(rest, scheme)) {
      return true;
    }
  }
  return false;
}

// The config file's bytes: a regular file of at most kMaxConfigBytes (a
// device, a FIFO or a huge file is refused before it is read).
absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  const std::string context = absl::StrCat("config ", path);
  internal::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    return internal::ErrnoStatus(errno, absl::StrCat(context, ": open"));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return internal::ErrnoStatus(errno, absl::StrCat(context, ": stat"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": not a regular file"));
  }
  if (st.st_size > static_cast<off_t>(kMaxConfigBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": ", st.st_size, " bytes is larger than ",
                     kMaxConfigBytes, " (a config is a few lines of JSON)"));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = read(fd.get(), &text[got], text.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return internal::ErrnoStatus(errno, absl::StrCat(context, ": read"));
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return text;
}

}  // namespace

std::vector<std::string> StoreSchemes() {
  std::vector<std::string> names;
  for (const auto& [scheme, opener] : Schemes()) {
    names.push_back(scheme);
  }
  return names;
}

std::string RedactStoreUri(absl::string_view uri) {
  return internal::RedactSecrets(uri, uri);
}

absl::StatusOr<std::vector<std::string>> SplitStoreUri(absl::string_view uri) {
  if (uri.empty()) {
    return absl::InvalidArgumentError(
        "store URI is empty (expected e.g. "
        "\"memory:,sqlite:/var/lib/app/certstore.db\")");
  }
  if (uri.size() > kMaxStoreUriBytes) {
    return absl::InvalidArgumentError(absl::StrCat("store URI of ", uri.size(),
                                                   " bytes is longer than ",
                                                   kMaxStoreUriBytes));
  }
  if (uri.find('\0') != uri.npos) {
    return absl::InvalidArgumentError("store URI contains a NUL byte");
  }
  std::vector<std::string> layers;
  size_t start = 0;
  for (size_t i = 0; i <= uri.size(); ++i) {
    const bool boundary =
        i == uri.size() ||
        (uri[i] == ',' && (i + 1 == uri.size() || uri[i + 1] == ',' ||
                           StartsLayer(uri.substr(i + 1))));
    if (!boundary) {
      continue;
    }
    absl::string_view layer = uri.substr(start, i - start);
    if (layer.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("store URI ", Quote(uri),
                       " has an empty layer (expected "
                       "comma-separated URIs, top first)"));
    }
    if (OpenerFor(layer) == nullptr) {
      for (const auto& [scheme, option] : kOptionalSchemes) {
        if (absl::StartsWith(layer, scheme)) {
          return Invalid(
              layer, absl::StrCat("scheme ", scheme,
                                  " is not in this build of certstore (",
                                  option, "=OFF); it has: ", KnownSchemes()));
        }
      }
      return Invalid(layer, absl::StrCat("unknown scheme (expected one of: ",
                                         KnownSchemes(), ")"));
    }
    layers.emplace_back(layer);
    start = i + 1;
  }
  return layers;
}

absl::StatusOr<std::unique_ptr<LayeredStore>> OpenStore(
    absl::string_view uri, const OpenStoreOptions& options) {
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<std::string> layer_uris,
                             SplitStoreUri(uri));
  std::vector<std::unique_ptr<CertStore>> layers;
  for (size_t i = 0; i < layer_uris.size(); ++i) {
    const std::string& layer = layer_uris[i];
    if (i > 0 && absl::StartsWith(layer, "memory:")) {
      return Invalid(layer, "memory: can only be the top layer");
    }
    absl::StatusOr<std::unique_ptr<CertStore>> store =
        (*OpenerFor(layer))(layer, options);
    if (!store.ok()) {
      // A backend names its path, token or file; none may carry a secret
      // the URI held.
      return absl::Status(
          store.status().code(),
          internal::RedactSecrets(store.status().message(), layer));
    }
    layers.push_back(*std::move(store));
  }
  LayeredStoreOptions layered;
  layered.log = options.log;
  return LayeredStore::Open(std::move(layers), layered);
}

absl::StatusOr<std::string> DefaultStoreUri() {
  absl::StatusOr<std::string> dir = internal::StateDirectory();
  if (!dir.ok()) {
    return absl::Status(
        dir.status().code(),
        absl::StrCat(dir.status().message(), ", or give --store"));
  }
  return absl::StrCat("memory:,sqlite:", *dir, "/certstore.db");
}

absl::StatusOr<std::string> ResolveStoreUri(absl::string_view flag_store,
                                            absl::string_view flag_config) {
  if (!flag_store.empty()) {
    return std::string(flag_store);
  }
  if (const char* env = getenv("CERTSTORE_URI"); env != nullptr && *env) {
    return std::string(env);
  }
  std::string config(flag_config);
  if (config.empty()) {
    if (const char* env = getenv("CERTSTORE_CONFIG"); env != nullptr && *env) {
      config = env;
    }
  }
  if (config.empty()) {
    return DefaultStoreUri();
  }
  CERTSTORE_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(config));
  return internal::StoreUriFromConfig(text, config);
}

namespace internal {

absl::StatusOr<std::string> StoreUriFromConfig(absl::string_view text,
                                               absl::string_view source) {
  const std::string context = absl::StrCat("config ", source);
  std::optional<Json> json = internal::ParseJsonObject(text);
  if (json.has_value()) {
    if (std::optional<std::string> store =
            internal::JsonString(*json, "store")) {
      return *store;
    }
    auto layers = json->find("layers");
    if (layers != json->end() && layers->is_array() && !layers->empty()) {
      std::vector<std::string> uris;
      for (const Json& layer : *layers) {
        if (!layer.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              context, ": expected every entry of \"layers\" to be a string"));
        }
        uris.push_back(layer.get<std::string>());
      }
      return absl::StrJoin(uris, ",");
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(context,
                   ": expected a JSON object with \"store\": \"<uri>\" "
                   "or \"layers\": [\"<uri>\", …]"));
}

}  // namespace internal
}  // namespace certstore

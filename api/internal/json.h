// JSON from outside (a server, a config file, a store), read without
// exceptions: nlohmann::json throws type_error when a field has a type the
// code did not expect and out_of_range on missing keys, and nothing may
// throw across a certstore function. Every read of outside JSON goes
// through these; output goes through DumpJson. Header-only, for the
// components that link nlohmann_json (client, CLI, emulator, the store
// registry). Project-internal.
#ifndef CERTSTORE_API_INTERNAL_JSON_H_
#define CERTSTORE_API_INTERNAL_JSON_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace certstore::internal {

using Json = nlohmann::json;

// The most JSON certstore parses from one source (a response body, a
// config file): far above any real document, far below what hurts.
inline constexpr size_t kMaxJsonBytes = 1 << 20;

// `text` as a JSON object; nullopt when it is not valid JSON, not an
// object, or longer than kMaxJsonBytes. Never throws.
inline std::optional<Json> ParseJsonObject(absl::string_view text) {
  if (text.size() > kMaxJsonBytes) {
    return std::nullopt;
  }
  Json json = Json::parse(text.begin(), text.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return std::nullopt;
  }
  return json;
}

// The member `field` of `object` when it is a string; nullopt when absent,
// of another type, or `object` is not an object.
inline std::optional<std::string> JsonString(const Json& object,
                                             const char* field) {
  if (!object.is_object()) {
    return std::nullopt;
  }
  auto it = object.find(field);
  if (it == object.end() || !it->is_string()) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

// The member `field` when it is an integer in [min, max] (a JSON number
// without fraction, or a string of decimal digits, which some servers
// send); nullopt otherwise.
inline std::optional<int64_t> JsonInteger(const Json& object, const char* field,
                                          int64_t min, int64_t max) {
  if (!object.is_object()) {
    return std::nullopt;
  }
  auto it = object.find(field);
  if (it == object.end()) {
    return std::nullopt;
  }
  int64_t value = 0;
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      return std::nullopt;
    }
    value = static_cast<int64_t>(u);
  } else if (it->is_number_integer()) {
    value = it->get<int64_t>();
  } else if (it->is_string()) {
    const std::string& text = it->get_ref<const std::string&>();
    if (text.empty() || text.size() > 18 ||
        text.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    value = std::stoll(text);
  } else {
    return std::nullopt;
  }
  if (value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

// `json` as text that is always valid JSON: bytes that are not UTF-8 (an
// alias or a certificate field can hold any bytes) become U+FFFD instead of
// an exception. Callers that must keep such bytes recognisable escape them
// first (see EscapedForJson in the CLI).
inline std::string DumpJson(const Json& json, int indent = -1) {
  return json.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_JSON_H_

#include "client/endpoint_url.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "api/internal/redact.h"

namespace certstore::client_internal {
namespace {

constexpr size_t kMaxQuotedUrl = 200;

struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};

// `url` with any userinfo ("user:password@") replaced by "***@": a message
// never quotes a password from a URL.
std::string MaskUserinfo(absl::string_view url) {
  const size_t authority = url.find("://");
  if (authority == absl::string_view::npos) {
    return std::string(url);
  }
  const size_t start = authority + 3;
  const size_t end = url.find_first_of("/?#", start);
  const size_t at = url.substr(0, end).rfind('@');
  if (at == absl::string_view::npos || at < start) {
    return std::string(url);
  }
  return absl::StrCat(url.substr(0, start), "***", url.substr(at));
}

absl::Status Refuse(absl::string_view raw_url, absl::string_view what,
                    EndpointUse use) {
  const std::string url = MaskUserinfo(raw_url);
  const absl::string_view role = use == EndpointUse::kTokenEndpoint
                                     ? "token endpoint"
                                     : "issuing endpoint";
  return absl::InvalidArgumentError(internal::RedactSecrets(
      absl::StrCat(
          role, " URL \"",
          absl::CHexEscape(absl::string_view(url).substr(0, kMaxQuotedUrl)),
          url.size() > kMaxQuotedUrl ? "…" : "", "\" ", what,
          "; no request was sent"),
      raw_url));
}

// The part of `url`, or empty when it has none.
std::string Part(CURLU* url, CURLUPart part) {
  char* value = nullptr;
  if (curl_url_get(url, part, &value, 0) != CURLUE_OK || value == nullptr) {
    return "";
  }
  std::unique_ptr<char, CurlStringDeleter> owned(value);
  return std::string(value);
}

// 127.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10, or "localhost".
bool IsLoopbackOrLinkLocal(std::string host) {
  if (absl::AsciiStrToLower(host) == "localhost") {
    return true;
  }
  absl::string_view bare = host;
  if (absl::ConsumePrefix(&bare, "[") && absl::ConsumeSuffix(&bare, "]")) {
    in6_addr v6;
    const std::string text(bare);
    if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) {
      return false;
    }
    static const in6_addr kLoopback = IN6ADDR_LOOPBACK_INIT;
    return std::memcmp(&v6, &kLoopback, sizeof(v6)) == 0 ||
           (v6.s6_addr[0] == 0xfe && (v6.s6_addr[1] & 0xc0) == 0x80);
  }
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) != 1) {
    return false;
  }
  const uint32_t address = ntohl(v4.s_addr);
  return (address >> 24) == 127 || (address >> 16) == 0xa9fe;
}

}  // namespace

absl::Status CheckEndpointUrl(absl::string_view url, EndpointUse use) {
  if (url.empty()) {
    return Refuse(url, "is empty", use);
  }
  if (url.find('\0') != absl::string_view::npos) {
    return Refuse(url, "holds a NUL byte", use);
  }
  std::unique_ptr<CURLU, UrlDeleter> parsed(curl_url());
  if (parsed == nullptr) {
    return absl::ResourceExhaustedError("curl_url: out of memory");
  }
  const std::string text(url);
  if (curl_url_set(parsed.get(), CURLUPART_URL, text.c_str(),
                   CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    return Refuse(url, "is not an absolute URL with a host", use);
  }
  const std::string scheme =
      absl::AsciiStrToLower(Part(parsed.get(), CURLUPART_SCHEME));
  const bool plain_http_allowed =
      scheme == "http" && use == EndpointUse::kIssuingEndpoint;
  if (scheme != "https" && !plain_http_allowed) {
    return Refuse(url,
                  use == EndpointUse::kTokenEndpoint
                      ? "is not https:// (the credential and the token "
                        "never travel in clear)"
                      : "is neither https:// nor http:// to this machine",
                  use);
  }
  const std::string host = Part(parsed.get(), CURLUPART_HOST);
  // curl reads "https:///x" as host "x": an empty authority is no host.
  if (host.empty() || absl::StrContains(text, ":///")) {
    return Refuse(url, "has no host", use);
  }
  if (!Part(parsed.get(), CURLUPART_USER).empty() ||
      !Part(parsed.get(), CURLUPART_PASSWORD).empty()) {
    return Refuse(url, "carries a user name or password", use);
  }
  if (plain_http_allowed && !IsLoopbackOrLinkLocal(host)) {
    return Refuse(url,
                  "is http:// to a host that is not loopback or link-local "
                  "(only an IMDS-style endpoint on this machine may be "
                  "plain HTTP)",
                  use);
  }
  return absl::OkStatus();
}

}  // namespace certstore::client_internal

// URL parsing, DNS with a deadline and a bounded non-blocking TCP connect.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli/endpoint_probe_internal.h"

namespace certstore::cli::probe_internal {
namespace {

absl::Status BadUrl(absl::string_view url, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("endpoint \"", absl::CEscape(url),
                   "\": expected https://host[:port][/path]: ", why));
}

// Splits "host[:port]" / "[v6][:port]".
absl::Status SplitAuthority(absl::string_view url, absl::string_view authority,
                            ParsedEndpoint* ep) {
  absl::string_view port;
  if (absl::ConsumePrefix(&authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return BadUrl(url, "unterminated '[' in the host");
    }
    ep->host = std::string(authority.substr(0, close));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && !absl::ConsumePrefix(&authority, ":")) {
      return BadUrl(url, "junk after ']'");
    }
    port = authority;
  } else {
    const size_t colon = authority.find(':');
    ep->host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port = authority.substr(colon + 1);
    }
  }
  if (ep->host.empty()) {
    return BadUrl(url, "no host");
  }
  if (absl::StrContains(ep->host, '@')) {
    return BadUrl(url, "user information is not supported");
  }
  uint32_t number = 443;
  if (!port.empty() &&
      (!absl::SimpleAtoi(port, &number) || number == 0 || number > 65535)) {
    return BadUrl(url, absl::StrCat("bad port \"", port, "\""));
  }
  ep->port = static_cast<uint16_t>(number);
  return absl::OkStatus();
}

std::string AddressText(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return absl::StrCat("[", host, "]:", ntohs(in6->sin6_port));
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
  inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
  return absl::StrCat(host, ":", ntohs(in->sin_port));
}

// One lookup, shared with its thread so that an abandoned lookup can
// finish on its own.
struct Lookup {
  absl::Mutex mu;
  bool done = false;
  int rc = 0;
  std::vector<SocketAddress> addresses;
};

void RunLookup(const std::shared_ptr<Lookup>& lookup, const std::string& host,
               const std::string& port) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
  std::vector<SocketAddress> addresses;
  for (addrinfo* ai = rc == 0 ? result : nullptr; ai != nullptr;
       ai = ai->ai_next) {
    SocketAddress address;
    std::memcpy(&address.storage, ai->ai_addr,
                std::min<size_t>(ai->ai_addrlen, sizeof(address.storage)));
    address.length = ai->ai_addrlen;
    address.text = AddressText(ai->ai_addr);
    addresses.push_back(std::move(address));
  }
  if (result != nullptr) {
    freeaddrinfo(result);
  }
  absl::MutexLock lock(&lookup->mu);
  lookup->rc = rc;
  lookup->addresses = std::move(addresses);
  lookup->done = true;
}

}  // namespace

absl::StatusOr<ParsedEndpoint> ParseEndpoint(absl::string_view url) {
  if (!absl::StartsWithIgnoreCase(url, "https://")) {
    return BadUrl(url, "the scheme must be https");
  }
  const absl::string_view rest = url.substr(8);
  const size_t slash = rest.find_first_of("/?#");
  ParsedEndpoint ep;
  if (absl::Status s = SplitAuthority(url, rest.substr(0, slash), &ep);
      !s.ok()) {
    return s;
  }
  if (slash != absl::string_view::npos) {
    absl::string_view path = rest.substr(slash);
    path = path.substr(0, path.find_first_of("?#"));
    while (absl::ConsumeSuffix(&path, "/")) {
    }
    ep.path = std::string(path);
  }
  return ep;
}

absl::StatusOr<std::vector<SocketAddress>> Resolve(const ParsedEndpoint& ep,
                                                   absl::Time deadline,
                                                   absl::Duration budget) {
  auto lookup = std::make_shared<Lookup>();
  std::thread(RunLookup, lookup, ep.host, absl::StrCat(ep.port)).detach();
  absl::MutexLock lock(&lookup->mu);
  if (!lookup->mu.AwaitWithDeadline(absl::Condition(&lookup->done), deadline)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "resolve: looking up \"", ep.host, "\" did not complete within ",
        absl::FormatDuration(budget)));
  }
  if (lookup->rc != 0 || lookup->addresses.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "resolve: cannot resolve \"", ep.host,
        "\": ", lookup->rc != 0 ? gai_strerror(lookup->rc) : "no address"));
  }
  return lookup->addresses;
}

bool WaitFd(int fd, short events, absl::Time deadline) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return false;
    }
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(
        absl::Ceil(std::min(left, absl::Hours(1)), absl::Milliseconds(1))));
    pollfd pfd = {fd, events, 0};
    const int rc = poll(&pfd, 1, ms);
    if (rc > 0) {
      return true;  // ready, or an error the next call will report
    }
    if (rc < 0 && errno != EINTR) {
      return true;
    }
  }
}

absl::StatusOr<UniqueFd> ConnectTcp(const SocketAddress& address,
                                    absl::Time deadline,
                                    absl::Duration budget) {
  const auto* sa = reinterpret_cast<const sockaddr*>(&address.storage);
  UniqueFd fd(socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                     IPPROTO_TCP));
  int err = fd.get() < 0 ? errno : 0;
  if (err == 0 && connect(fd.get(), sa, address.length) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      if (!WaitFd(fd.get(), POLLOUT, deadline)) {
        return absl::DeadlineExceededError(absl::StrCat(
            "TCP connect to ", address.text, " did not complete within ",
            absl::FormatDuration(budget)));
      }
      socklen_t len = sizeof(err);
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    }
  }
  if (err == 0) {
    // The request follows the handshake's last flight at once: without
    // this, Nagle holds it for the server's delayed ACK (~40 ms).
    const int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
  }
  if (err == ECONNREFUSED) {
    return absl::UnavailableError(
        absl::StrCat("TCP connect: connection refused by ", address.text));
  }
  // Network trouble of any kind is transient from the caller's view.
  return absl::UnavailableError(
      absl::StrCat("TCP connect to ", address.text, ": ", std::strerror(err)));
}

}  // namespace certstore::cli::probe_internal

#include "emulator/internal/http.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "api/internal/percent_encoding.h"
#include "api/internal/posix_status.h"

namespace certstore::emulator::internal {
namespace {

constexpr absl::string_view kHeadEnd = "\r\n\r\n";

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed request: ", what));
}

// A form field: '+' is a space (application/x-www-form-urlencoded).
absl::StatusOr<std::string> FormDecode(absl::string_view in) {
  certstore::internal::PercentDecodeOptions form;
  form.plus_is_space = true;
  return certstore::internal::PercentDecode(in, form);
}

absl::Status ParseRequestLine(absl::string_view line, HttpRequest* request) {
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
      parts[1][0] != '/') {
    return Malformed("request line is not \"METHOD /target HTTP/1.x\"");
  }
  if (parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0") {
    return Malformed(absl::StrCat("unsupported version ",
                                  absl::CHexEscape(parts[2].substr(0, 16))));
  }
  request->method = std::string(parts[0]);
  request->target = std::string(parts[1]);
  request->keep_alive = parts[2] == "HTTP/1.1";
  std::pair<absl::string_view, absl::string_view> target =
      absl::StrSplit(parts[1], absl::MaxSplits('?', 1));
  request->path = std::string(target.first);
  auto query = ParseForm(target.second);
  if (!query.ok()) {
    return Malformed(absl::StrCat("query: ", query.status().message()));
  }
  request->query = *std::move(query);
  return absl::OkStatus();
}

absl::Status ParseHeaderLine(absl::string_view line, HttpRequest* request) {
  const size_t colon = line.find(':');
  if (colon == 0 || colon == absl::string_view::npos ||
      line.substr(0, colon).find_first_of(" \t") != absl::string_view::npos) {
    return Malformed("header line without \"name:\"");
  }
  std::string name = absl::AsciiStrToLower(line.substr(0, colon));
  std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  auto [it, inserted] = request->headers.emplace(name, value);
  if (!inserted) {
    if (name == "content-length" && it->second != value) {
      return Malformed("conflicting Content-Length headers");
    }
    if (name != "content-length") {
      absl::StrAppend(&it->second, ", ", value);
    }
  }
  return absl::OkStatus();
}

void ApplyConnectionHeader(HttpRequest* request) {
  const std::string connection =
      absl::AsciiStrToLower(request->Header("connection"));
  if (connection == "close") {
    request->keep_alive = false;
  } else if (connection == "keep-alive") {
    request->keep_alive = true;
  }
}

absl::StatusOr<size_t> BodyLength(const HttpRequest& request) {
  if (!request.Header("transfer-encoding").empty()) {
    return Malformed("Transfer-Encoding is not supported; send Content-Length");
  }
  const std::string length = request.Header("content-length");
  size_t n = 0;
  if (length.empty()) {
    return n;
  }
  if (!absl::SimpleAtoi(length, &n) || length[0] == '-' || length[0] == '+') {
    return Malformed("Content-Length is not a number");
  }
  if (n > kMaxBodyBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "request body of ", n, " bytes is over the limit of ", kMaxBodyBytes));
  }
  return n;
}

}  // namespace

absl::StatusOr<size_t> PlainConn::Read(char* buf, size_t size,
                                       absl::Time deadline) {
  for (;;) {
    const ssize_t n = recv(fd_, buf, size, 0);
    if (n >= 0) {
      return static_cast<size_t>(n);
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::UnavailableError(
          certstore::internal::ErrnoStatus(errno, "recv").message());
    }
    const WaitResult ready = WaitFd(fd_, POLLIN, deadline, *stop_);
    if (ready != WaitResult::kReady) {
      return WaitFailure(ready, "reading");
    }
  }
}

absl::Status PlainConn::Write(absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::UnavailableError(
          certstore::internal::ErrnoStatus(errno, "send").message());
    }
    const WaitResult ready = WaitFd(fd_, POLLOUT, deadline, *stop_);
    if (ready != WaitResult::kReady) {
      return WaitFailure(ready, "writing");
    }
  }
  return absl::OkStatus();
}

absl::Status WaitFailure(WaitResult result, absl::string_view what) {
  if (result == WaitResult::kStopped) {
    return absl::CancelledError(absl::StrCat(what, ": emulator stopping"));
  }
  return absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
}

std::string HttpRequest::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

absl::StatusOr<bool> RequestReader::Fill(absl::Time deadline) {
  char buf[8192];
  auto n = conn_->Read(buf, sizeof(buf), deadline);
  if (!n.ok()) {
    return n.status();
  }
  buffer_.append(buf, *n);
  return *n > 0;
}

absl::StatusOr<std::optional<size_t>> RequestReader::ReadHead(
    absl::Time idle_deadline, absl::Duration io_timeout, absl::Time* deadline) {
  if (buffer_.empty()) {
    auto more = Fill(idle_deadline);
    if (!more.ok() && !absl::IsDeadlineExceeded(more.status())) {
      return more.status();
    }
    if (!more.ok() || !*more) {
      return std::nullopt;  // closed, or idle past the keep-alive limit
    }
  }
  *deadline = absl::Now() + io_timeout;
  for (;;) {
    const size_t end = buffer_.find(kHeadEnd.data(), 0, kHeadEnd.size());
    if (end != std::string::npos && end + kHeadEnd.size() <= kMaxHeadBytes) {
      return end;
    }
    if (buffer_.size() > kMaxHeadBytes) {
      return absl::OutOfRangeError(absl::StrCat(
          "request head is over the limit of ", kMaxHeadBytes, " bytes"));
    }
    auto more = Fill(*deadline);
    if (!more.ok()) {
      return more.status();
    }
    if (!*more) {
      return absl::UnavailableError("peer closed the connection mid-request");
    }
  }
}

absl::StatusOr<std::optional<HttpRequest>> RequestReader::Next(
    absl::Time idle_deadline, absl::Duration io_timeout) {
  absl::Time deadline;
  auto head_end = ReadHead(idle_deadline, io_timeout, &deadline);
  if (!head_end.ok() || !head_end->has_value()) {
    return head_end.ok()
               ? absl::StatusOr<std::optional<HttpRequest>>(std::nullopt)
               : head_end.status();
  }
  const size_t body_start = **head_end + kHeadEnd.size();
  auto request = ParseHead(absl::string_view(buffer_).substr(0, **head_end));
  if (!request.ok()) {
    return request.status();
  }
  auto length = BodyLength(*request);
  if (!length.ok()) {
    return length.status();
  }
  while (buffer_.size() < body_start + *length) {
    auto more = Fill(deadline);
    if (!more.ok() || !*more) {
      return more.ok() ? absl::UnavailableError("peer closed mid-body")
                       : more.status();
    }
  }
  request->body = buffer_.substr(body_start, *length);
  buffer_.erase(0, body_start + *length);
  return std::optional<HttpRequest>(*std::move(request));
}

absl::StatusOr<HttpRequest> ParseHead(absl::string_view head) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  HttpRequest request;
  if (absl::Status s = ParseRequestLine(lines[0], &request); !s.ok()) {
    return s;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    if (absl::Status s = ParseHeaderLine(lines[i], &request); !s.ok()) {
      return s;
    }
  }
  ApplyConnectionHeader(&request);
  return request;
}

HttpResponse RawResponse(const FaultSpec& fault) {
  HttpResponse response;
  response.raw = fault.raw;
  response.stream_bytes = fault.stream_bytes;
  response.close = true;
  return response;
}

absl::Status WriteResponse(Conn& conn, const HttpResponse& response,
                           absl::Time deadline) {
  if (response.raw.has_value()) {
    absl::Status status = conn.Write(*response.raw, deadline);
    const std::string filler(64 * 1024, 'x');
    for (int64_t left = response.stream_bytes; status.ok() && left > 0;
         left -= static_cast<int64_t>(filler.size())) {
      status = conn.Write(
          absl::string_view(filler).substr(
              0, static_cast<size_t>(std::min<int64_t>(left, filler.size()))),
          deadline);
    }
    return status;
  }
  std::string out = absl::StrCat(
      "HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status),
      "\r\nContent-Type: ", response.content_type,
      "\r\nContent-Length: ", response.body.size(),
      "\r\nCache-Control: no-store\r\nConnection: ",
      response.close ? "close" : "keep-alive", "\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&out, "\r\n", response.body);
  return conn.Write(out, deadline);
}

std::optional<HttpResponse> ResponseForReadError(const absl::Status& status) {
  std::optional<HttpResponse> response;
  if (absl::IsInvalidArgument(status)) {
    response = JsonError(400, "invalid_request", status.message());
  } else if (absl::IsResourceExhausted(status)) {
    response = JsonError(413, "invalid_request", status.message());
  } else if (absl::IsOutOfRange(status)) {
    response = JsonError(431, "invalid_request", status.message());
  }
  if (response.has_value()) {
    response->close = true;
  }
  return response;
}

absl::StatusOr<std::map<std::string, std::string>> ParseForm(
    absl::string_view form) {
  std::map<std::string, std::string> fields;
  for (absl::string_view pair : absl::StrSplit(form, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    auto name = FormDecode(kv.first);
    auto value = FormDecode(kv.second);
    if (!name.ok() || !value.ok()) {
      return !name.ok() ? name.status() : value.status();
    }
    if (!fields.emplace(*std::move(name), *std::move(value)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("field \"", absl::CHexEscape(kv.first),
                       "\" is given more than once"));
    }
  }
  return fields;
}

HttpResponse JsonResponse(int status, const nlohmann::json& body) {
  HttpResponse response;
  response.status = status;
  // Descriptions may quote client input: never throw on bad UTF-8.
  response.body =
      body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return response;
}

HttpResponse JsonError(int status, absl::string_view error,
                       absl::string_view description) {
  return JsonResponse(status,
                      {{"error", std::string(error)},
                       {"error_description", std::string(description)}});
}

absl::string_view ReasonPhrase(int status) {
  static const auto* const kPhrases = new std::map<int, absl::string_view>{
      {200, "OK"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {413, "Payload Too Large"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"}};
  auto it = kPhrases->find(status);
  return it == kPhrases->end() ? "Unknown" : it->second;
}

}  // namespace certstore::emulator::internal

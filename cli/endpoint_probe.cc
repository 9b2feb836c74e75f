#include "cli/endpoint_probe.h"

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "api/internal/json.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "cli/endpoint_probe_internal.h"
#include "client/failure_classifier.h"
#include "client/token_request.h"

namespace certstore::cli {
namespace {

using probe_internal::JudgeTokenResponse;
using probe_internal::ParsedEndpoint;
using probe_internal::SocketAddress;
using probe_internal::TlsSession;
using probe_internal::UniqueFd;

constexpr size_t kMaxResponse = 64 * 1024;
// How long a TLS 1.3 probe without a token request waits for a late
// rejection of its certificate (one round trip is enough).
constexpr absl::Duration kConfirmWindow = absl::Seconds(1);

// A phase's deadline: its own timeout from now, cut to the overall one.
struct Budget {
  absl::Time deadline;
  absl::Duration length;  // for messages
};

Budget BudgetFor(absl::Duration timeout, absl::Time overall) {
  const absl::Time now = absl::Now();
  const absl::Time deadline = std::min(now + timeout, overall);
  return {deadline, absl::Trunc(std::max(deadline - now, absl::ZeroDuration()),
                                absl::Milliseconds(1))};
}

// Marks `phase` reached, runs `body` and records its status and duration.
template <typename Body>
bool RunPhase(ProbePhase* phase, Body body) {
  phase->reached = true;
  const absl::Time start = absl::Now();
  phase->status = body();
  phase->elapsed = absl::Now() - start;
  return phase->status.ok();
}

std::string TokenRequest(const ParsedEndpoint& ep,
                         const EndpointProbeOptions& options) {
  std::string target;
  client_internal::TokenRequestForm form;
  form.client_id = options.client_id;
  if (options.generic) {
    target = ep.path.empty() ? "/" : ep.path;
    form.scope = options.scope;
    form.extra_parameters = options.extra_parameters;
  } else {
    target = absl::StrCat(ep.path,
                          client_internal::ImdsTokenPath(options.tenant_id));
    form.scope = client_internal::ImdsScope(options.scope);
    form.mtls_pop = true;
  }
  const std::string body = client_internal::TokenRequestBody(form);
  const bool v6 = absl::StrContains(ep.host, ':');
  const std::string host =
      absl::StrCat(v6 ? "[" : "", ep.host, v6 ? "]" : "",
                   ep.port == 443 ? "" : absl::StrCat(":", ep.port));
  return absl::StrCat("POST ", target, " HTTP/1.1\r\nHost: ", host,
                      "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      "Accept: application/json\r\nContent-Length: ",
                      body.size(), "\r\nConnection: close\r\n\r\n", body);
}

struct ResponseHead {
  int status = 0;  // 0: malformed status line
  std::optional<size_t> content_length;
  bool chunked = false;
  size_t body_start = 0;
};

// nullopt until the head is complete.
std::optional<ResponseHead> ParseHead(absl::string_view raw) {
  const size_t end = raw.find("\r\n\r\n");
  if (end == absl::string_view::npos) {
    return std::nullopt;
  }
  ResponseHead head;
  head.body_start = end + 4;
  std::vector<absl::string_view> lines =
      absl::StrSplit(raw.substr(0, end), "\r\n");
  std::vector<absl::string_view> status = absl::StrSplit(lines[0], ' ');
  if (status.size() < 2 || !absl::StartsWith(status[0], "HTTP/1.") ||
      !absl::SimpleAtoi(status[1], &head.status)) {
    head.status = 0;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
    const absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    size_t length = 0;
    if (absl::EqualsIgnoreCase(kv.first, "content-length") &&
        absl::SimpleAtoi(value, &length)) {
      head.content_length = length;
    } else if (absl::EqualsIgnoreCase(kv.first, "transfer-encoding")) {
      head.chunked = absl::StrContains(absl::AsciiStrToLower(value), "chunked");
    }
  }
  return head;
}

// Decodes a chunked body; false until the last chunk arrived. A chunk
// size is compared with what is buffered before any arithmetic on it, so
// that a hostile size (2^64 - 3) cannot wrap.
bool Dechunk(absl::string_view in, std::string* out) {
  out->clear();
  for (;;) {
    const size_t eol = in.find("\r\n");
    size_t size = 0;
    if (eol == absl::string_view::npos ||
        !absl::SimpleHexAtoi(in.substr(0, in.find_first_of(";\r")), &size)) {
      return false;
    }
    if (size == 0) {
      return true;
    }
    if (size > in.size() || in.size() - size < eol + 4) {
      return false;
    }
    out->append(in.data() + eol + 2, size);
    in.remove_prefix(eol + 2 + size + 2);
  }
}

// True when `raw` holds the whole response; sets `body`.
bool Complete(absl::string_view raw, const ResponseHead& head, bool eof,
              std::string* body) {
  const absl::string_view rest = raw.substr(head.body_start);
  if (head.chunked) {
    return Dechunk(rest, body);
  }
  if (head.content_length.has_value()) {
    if (rest.size() < *head.content_length) {
      return false;
    }
    *body = std::string(rest.substr(0, *head.content_length));
    return true;
  }
  *body = std::string(rest);
  return eof;
}

// The response holds an access token: overwrite it before it is freed.
struct WipeOnExit {
  std::string* text;
  ~WipeOnExit() { OPENSSL_cleanse(text->data(), text->size()); }
};

// Reads one response (status, body) until complete, closed or `deadline`.
absl::Status ReadResponse(TlsSession& session, absl::Time deadline, int* status,
                          std::string* body) {
  std::string raw;
  raw.reserve(kMaxResponse);  // never reallocated: one buffer to wipe
  body->reserve(kMaxResponse);
  const WipeOnExit wipe{&raw};
  bool eof = false;
  for (;;) {
    std::optional<ResponseHead> head = ParseHead(raw);
    if (head.has_value() && Complete(raw, *head, eof, body)) {
      *status = head->status;
      return head->status != 0
                 ? absl::OkStatus()
                 : absl::UnknownError("malformed HTTP status line");
    }
    if (eof) {
      return absl::UnavailableError(
          "the server closed the connection before a complete response");
    }
    if (raw.size() >= kMaxResponse) {
      return absl::ResourceExhaustedError("response larger than 64 KiB");
    }
    CERTSTORE_ASSIGN_OR_RETURN(
        const size_t n,
        session.Read(&raw, std::min<size_t>(16384, kMaxResponse - raw.size()),
                     deadline));
    eof = n == 0;
  }
}

std::string JsonString(const internal::Json& json, const char* field) {
  return internal::JsonString(json, field).value_or("");
}

bool RunResolve(const EndpointProbeOptions& options, ParsedEndpoint* ep,
                std::vector<SocketAddress>* addresses,
                EndpointProbeReport* report) {
  return RunPhase(&report->resolve, [&]() -> absl::Status {
    CERTSTORE_ASSIGN_OR_RETURN(*ep,
                               probe_internal::ParseEndpoint(options.endpoint));
    const Budget budget = BudgetFor(options.resolve_timeout, options.deadline);
    CERTSTORE_ASSIGN_OR_RETURN(
        *addresses,
        probe_internal::Resolve(*ep, budget.deadline, budget.length));
    return absl::OkStatus();
  });
}

// Tries each address in turn within one connect budget.
bool RunConnect(const EndpointProbeOptions& options,
                const std::vector<SocketAddress>& addresses, UniqueFd* fd,
                EndpointProbeReport* report) {
  return RunPhase(&report->connect, [&]() -> absl::Status {
    const Budget budget = BudgetFor(options.connect_timeout, options.deadline);
    absl::Status status;
    for (const SocketAddress& address : addresses) {
      report->address = address.text;
      absl::StatusOr<UniqueFd> connected =
          probe_internal::ConnectTcp(address, budget.deadline, budget.length);
      if (connected.ok()) {
        *fd = *std::move(connected);
        return absl::OkStatus();
      }
      status = connected.status();
      if (absl::IsDeadlineExceeded(status)) {
        break;
      }
    }
    return status;
  });
}

bool RunHandshake(const EndpointProbeOptions& options, const ParsedEndpoint& ep,
                  UniqueFd fd, std::unique_ptr<TlsSession>* session,
                  EndpointProbeReport* report) {
  return RunPhase(&report->handshake, [&]() -> absl::Status {
    const Budget budget =
        BudgetFor(options.handshake_timeout, options.deadline);
    CERTSTORE_ASSIGN_OR_RETURN(
        *session,
        TlsSession::Create(std::move(fd), ep.host, report->address,
                           options.server_ca_pem, options.client_entry));
    absl::Status status = (*session)->Handshake(budget.deadline, budget.length);
    if (status.ok() && !options.request_token) {
      status = (*session)->ConfirmAccepted(
          std::min(budget.deadline, absl::Now() + kConfirmWindow));
    }
    const probe_internal::TlsTrace& trace = (*session)->trace();
    report->tls_version = (*session)->version();
    report->certificate_requested = trace.certificate_requested;
    report->acceptable_ca_names = trace.ca_names;
    report->acceptable_ca_names_der = trace.ca_names_der;
    return status;
  });
}

void RunToken(const EndpointProbeOptions& options, const ParsedEndpoint& ep,
              TlsSession& session, EndpointProbeReport* report) {
  const std::string context =
      absl::StrCat("token request (POST ", ep.path, "/", options.tenant_id,
                   "/oauth2/v2.0/token) to ", report->address);
  const Budget budget = BudgetFor(options.token_timeout, options.deadline);
  RunPhase(&report->token, [&]() -> absl::Status {
    absl::Status status =
        session.Write(TokenRequest(ep, options), budget.deadline);
    std::string body;
    const WipeOnExit wipe{&body};
    if (status.ok()) {
      status =
          ReadResponse(session, budget.deadline, &report->http_status, &body);
    }
    if (status.ok()) {
      status = JudgeTokenResponse(report->http_status, body, report);
    }
    if (session.late_certificate_rejection()) {
      return status;  // moved to the handshake below
    }
    if (absl::IsDeadlineExceeded(status)) {
      return absl::DeadlineExceededError(
          absl::StrCat(context, ": no complete response within ",
                       absl::FormatDuration(budget.length)));
    }
    if (report->http_status == 0) {
      status = session.ExplainEarlyClose(status);
    }
    return status.ok() ? status : WithContext(status, context);
  });
  if (session.late_certificate_rejection()) {
    // TLS 1.3 delivers the rejection at the first read: it is the
    // handshake that failed.
    report->handshake.status = report->token.status;
    report->token = ProbePhase{"token"};
  }
}

}  // namespace

namespace probe_internal {

// What the body says; the access token is looked at by nobody.
absl::Status JudgeTokenResponse(int http_status, const std::string& body,
                                EndpointProbeReport* report) {
  const internal::Json json =
      internal::ParseJsonObject(body).value_or(internal::Json());
  if (http_status == 200) {
    report->token_type = JsonString(json, "token_type");
    report->expires_in =
        internal::JsonInteger(json, "expires_in", 0, INT64_MAX).value_or(0);
    return report->token_type.empty()
               ? absl::UnknownError("HTTP 200 without a token_type")
               : absl::OkStatus();
  }
  std::string message = absl::StrCat("HTTP ", http_status);
  // Server text is escaped: it reaches a terminal.
  if (!JsonString(json, "error").empty()) {
    absl::StrAppend(&message, ": ",
                    absl::CHexEscape(JsonString(json, "error").substr(0, 300)));
    const std::string description = JsonString(json, "error_description");
    if (!description.empty()) {
      absl::StrAppend(&message, ": ",
                      absl::CHexEscape(description.substr(0, 300)));
    }
  }
  // The token client's table, so that doctor and `token` agree.
  TransportOutcome outcome;
  outcome.http_status = http_status;
  outcome.oauth_error = JsonString(json, "error");
  return absl::Status(FailureStatusCode(outcome), message);
}

}  // namespace probe_internal

bool EndpointProbeReport::ok() const {
  return resolve.ok() && connect.ok() && handshake.ok() &&
         (!token.reached || token.ok());
}

std::vector<const ProbePhase*> EndpointProbeReport::phases() const {
  return {&resolve, &connect, &handshake, &token};
}

EndpointProbeReport ProbeEndpoint(const EndpointProbeOptions& options) {
  EndpointProbeReport report;
  report.endpoint = options.endpoint;
  if (!options.request_token) {
    report.token.status = absl::CancelledError("not requested");
  }
  ParsedEndpoint ep;
  std::vector<SocketAddress> addresses;
  UniqueFd fd;
  std::unique_ptr<TlsSession> session;
  if (RunResolve(options, &ep, &addresses, &report) &&
      RunConnect(options, addresses, &fd, &report) &&
      RunHandshake(options, ep, std::move(fd), &session, &report) &&
      options.request_token) {
    RunToken(options, ep, *session, &report);
  }
  return report;
}

bool ChainIssuerAccepted(
    const std::vector<std::string>& chain_der,
    const std::vector<std::string>& acceptable_ca_names_der,
    std::string* matched) {
  if (matched != nullptr) {
    matched->clear();
  }
  if (acceptable_ca_names_der.empty()) {
    return true;
  }
  std::vector<UniqueX509Name> names;
  for (const std::string& der : acceptable_ca_names_der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    UniqueX509Name name(
        d2i_X509_NAME(nullptr, &p, static_cast<long>(der.size())));
    if (name != nullptr) {
      names.push_back(std::move(name));
    }
  }
  for (const std::string& der : chain_der) {
    absl::StatusOr<UniqueX509> cert = DecodeCertificate(der, "chain");
    if (!cert.ok()) {
      continue;
    }
    for (const UniqueX509Name& name : names) {
      if (X509_NAME_cmp(X509_get_subject_name(cert->get()), name.get()) == 0 ||
          X509_NAME_cmp(X509_get_issuer_name(cert->get()), name.get()) == 0) {
        if (matched != nullptr) {
          *matched = NameToString(name.get());
        }
        return true;
      }
    }
  }
  return false;
}

}  // namespace certstore::cli

#include "cli/doctor.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "certstore/chain.h"
#include "certstore/clock.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "cli/endpoint_probe.h"
#include "cli/exit_codes.h"

namespace certstore::cli {
namespace {

// The checks, in walk order: (id for JSON, title for people).
struct Step {
  const char* id;
  const char* title;
};
constexpr Step kStore{"store", "store opens"};
constexpr Step kEntry{"entry", "entry present and unexpired"};
constexpr Step kKeyMatch{"key_match", "key matches certificate"};
constexpr Step kKeySigns{"key_signs", "key signs"};
constexpr Step kChain{"chain", "chain complete"};
constexpr Step kConnect{"connect", "endpoint reachable"};
// The server names the issuers it accepts during the handshake; checked
// first because a refused issuer is why such a handshake fails.
constexpr Step kIssuer{"issuer", "server accepts our issuer"};
constexpr Step kHandshake{"handshake", "TLS handshake completes"};
constexpr Step kToken{"token", "token request answered"};

// Prints each check as it completes (so a stuck step is visible) and
// remembers the first failure. Thread-safe: the watchdog may report the
// step in progress while the walk is stuck in it.
class CheckList {
 public:
  explicit CheckList(Output& out) : out_(out) {}

  void Begin(const Step& step) {
    absl::MutexLock lock(&mu_);
    current_ = &step;
    started_ = absl::Now();
  }
  void Pass(const Step& step, const std::string& detail) {
    Record(step, "passed", "✓", detail, absl::OkStatus());
  }
  void Fail(const Step& step, const absl::Status& status) {
    Record(step, "failed", "✗", std::string(status.message()), status);
  }
  void Skip(const Step& step, const std::string& why) {
    Record(step, "skipped", "–", why, absl::OkStatus());
  }
  // The watchdog's verdict on the step that did not finish.
  void Abandon(absl::Duration deadline) {
    absl::MutexLock lock(&mu_);
    const Step& step = current_ == nullptr ? kStore : *current_;
    RecordLocked(step, "failed", "✗",
                 absl::StrCat("did not finish within the ",
                              absl::FormatDuration(deadline),
                              " deadline of the diagnosis"),
                 absl::DeadlineExceededError("deadline"));
    SummaryLocked();
  }
  int Summary() {
    absl::MutexLock lock(&mu_);
    return SummaryLocked();
  }

 private:
  void Record(const Step& step, const char* result, const char* mark,
              const std::string& detail, const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    RecordLocked(step, result, mark, detail, status);
  }
  void RecordLocked(const Step& step, const char* result, const char* mark,
                    const std::string& detail, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Duration elapsed =
        current_ == &step ? absl::Now() - started_ : absl::ZeroDuration();
    current_ = nullptr;
    nlohmann::json object = {
        {"step", step.id},
        {"title", step.title},
        {"result", result},
        {"detail", detail},
        {"elapsed_ms", absl::ToDoubleMilliseconds(elapsed)}};
    if (!status.ok()) {
      object["code"] = StatusCodeName(status.code());
      if (first_failure_ == nullptr) {
        first_failure_ = &step;
        exit_code_ = ExitCodeFor(status);
      }
      ++failures_;
    }
    ++checks_;
    out_.Emit("check", object,
              absl::StrCat(mark, " ", step.title, ": ", detail));
  }
  int SummaryLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    nlohmann::json object = {{"ok", failures_ == 0},
                             {"failures", failures_},
                             {"exit_code", exit_code_}};
    if (first_failure_ != nullptr) {
      object["first_failure"] = first_failure_->id;
    }
    out_.Emit(
        "doctor", object,
        failures_ == 0
            ? absl::StrCat("doctor: no problem found (", checks_, " checks)")
            : absl::StrCat("doctor: ", failures_, " check",
                           failures_ == 1 ? "" : "s",
                           " failed; the first: ", first_failure_->title));
    return exit_code_;
  }

  Output& out_;
  absl::Mutex mu_;
  const Step* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time started_ ABSL_GUARDED_BY(mu_);
  const Step* first_failure_ ABSL_GUARDED_BY(mu_) = nullptr;
  int exit_code_ ABSL_GUARDED_BY(mu_) = kExitOk;
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  int checks_ ABSL_GUARDED_BY(mu_) = 0;
};

// Each certificate is signed by the next; the last is a root or names the
// issuer the server must hold.
absl::StatusOr<std::string> CheckChainLinks(const Entry& entry) {
  absl::StatusOr<absl::Span<X509* const>> chain = entry.Chain();
  if (!chain.ok()) {
    return chain.status();
  }
  for (size_t i = 0; i + 1 < chain->size(); ++i) {
    X509* cert = (*chain)[i];
    X509* issuer = (*chain)[i + 1];
    if (X509_check_issued(issuer, cert) != X509_V_OK ||
        X509_verify(cert, X509_get0_pubkey(issuer)) != 1) {
      ClearOpenSslErrors();
      return absl::FailedPreconditionError(absl::StrCat(
          "certificate ", i, " (", SubjectName(cert), ") is not issued by ",
          "certificate ", i + 1, " (", SubjectName(issuer),
          "): the chain is out of order or incomplete"));
    }
  }
  X509* last = chain->back();
  const bool root = X509_check_issued(last, last) == X509_V_OK;
  return absl::StrCat(
      chain->size(), " certificate(s), each signed by the next; ",
      root ? "ends at the root " : "ends at ", root ? SubjectName(last) : "",
      root ? ""
           : absl::StrCat("an intermediate issued by ", IssuerName(last),
                          " (the server must trust it)"));
}

void NetworkChecks(CheckList& checks, const DoctorFlags& flags,
                   const Entry* entry, absl::Time deadline,
                   absl::Duration connect_timeout,
                   absl::Duration handshake_timeout) {
  const std::vector<const Step*> network = {&kConnect, &kIssuer, &kHandshake,
                                            &kToken};
  EndpointProbeOptions options;
  options.endpoint =
      flags.token_endpoint.empty() ? flags.endpoint : flags.token_endpoint;
  if (options.endpoint.empty() && entry != nullptr) {
    options.endpoint = entry->metadata().endpoint;
  }
  if (options.endpoint.empty()) {
    for (const Step* step : network) {
      checks.Skip(*step, entry == nullptr
                             ? "no endpoint: give --endpoint URL"
                             : "no endpoint: the entry records none; give "
                               "--endpoint URL");
    }
    return;
  }
  if (!flags.server_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadInputFile(
        flags.server_ca_file, "server CA file", kMaxCredentialFileBytes);
    if (!ca.ok()) {
      checks.Begin(kConnect);
      checks.Fail(kConnect, ca.status());
      for (const Step* step : {&kIssuer, &kHandshake, &kToken}) {
        checks.Skip(*step, "no server CA to verify the endpoint with");
      }
      return;
    }
    options.server_ca_pem = *std::move(ca);
  }
  options.client_entry = entry;
  options.connect_timeout = connect_timeout;
  options.handshake_timeout = handshake_timeout;
  options.deadline = deadline;
  options.generic = !flags.token_endpoint.empty();
  options.request_token = entry != nullptr &&
                          !entry->metadata().tenant_id.empty() &&
                          !entry->metadata().client_id.empty();
  if (options.generic) {
    // The token request the token client would send in generic mode.
    options.request_token = entry != nullptr && !flags.client_id.empty();
    options.client_id = flags.client_id;
    options.scope = flags.scope;
    for (const std::string& param : flags.params) {
      const size_t eq = param.find('=');
      if (eq != std::string::npos && eq > 0) {
        options.extra_parameters.emplace_back(param.substr(0, eq),
                                              param.substr(eq + 1));
      }
    }
  } else if (options.request_token) {
    options.tenant_id = entry->metadata().tenant_id;
    options.client_id = entry->metadata().client_id;
    options.scope = flags.scope;
  }
  checks.Begin(kConnect);
  const EndpointProbeReport report = ProbeEndpoint(options);

  // Resolving is part of reaching the endpoint.
  const ProbePhase& reach =
      report.resolve.ok() ? report.connect : report.resolve;
  if (!reach.ok()) {
    checks.Fail(kConnect, reach.status);
    for (const Step* step : {&kIssuer, &kHandshake, &kToken}) {
      checks.Skip(*step, "the endpoint could not be reached");
    }
    return;
  }
  checks.Pass(kConnect,
              absl::StrCat(report.address, " accepted a connection in ",
                           FormatElapsed(report.connect.elapsed)));
  if (!report.certificate_requested) {
    if (report.handshake.ok()) {
      checks.Fail(kIssuer,
                  absl::FailedPreconditionError(
                      "the server did not ask for a client certificate: not "
                      "an mTLS endpoint?"));
    } else {
      checks.Skip(kIssuer,
                  "the handshake ended before the server named the issuers "
                  "it accepts");
    }
  } else if (entry == nullptr) {
    checks.Skip(kIssuer,
                absl::StrCat("no entry to compare with; the server "
                             "accepts ",
                             report.acceptable_ca_names.size(), " issuer(s)"));
  } else {
    std::string matched;
    if (ChainIssuerAccepted(entry->chain_der(), report.acceptable_ca_names_der,
                            &matched)) {
      checks.Pass(kIssuer, matched.empty()
                               ? "the server names no issuers (accepts any)"
                               : absl::StrCat("the server accepts ", matched));
    } else {
      std::string names;
      for (const std::string& name : report.acceptable_ca_names) {
        absl::StrAppend(&names, names.empty() ? "" : "; ", name);
      }
      checks.Fail(kIssuer,
                  absl::FailedPreconditionError(absl::StrCat(
                      "no certificate of our chain is issued by or is one of "
                      "the server's accepted CAs: ",
                      names)));
    }
  }
  if (!report.handshake.ok()) {
    checks.Fail(kHandshake, report.handshake.status);
  } else {
    checks.Pass(
        kHandshake,
        absl::StrCat(report.tls_version, " in ",
                     FormatElapsed(report.handshake.elapsed),
                     entry == nullptr ? " (without a client certificate)"
                                      : ", presenting the entry's chain"));
  }
  if (!report.handshake.ok()) {
    checks.Skip(kToken, "no TLS session");
  } else if (!options.request_token) {
    checks.Skip(kToken, entry == nullptr
                            ? "no entry to authenticate with"
                            : "the entry records no tenant or client id");
  } else if (!report.token.ok()) {
    checks.Fail(kToken, report.token.status);
  } else {
    checks.Pass(kToken, absl::StrCat("HTTP ", report.http_status, ", ",
                                     report.token_type, " token valid ",
                                     report.expires_in, " s, in ",
                                     FormatElapsed(report.token.elapsed)));
  }
}

// The walk. `deadline` bounds the network phases; the watchdog bounds the
// rest.
void Walk(CommandContext& context, const DoctorFlags& flags, CheckList& checks,
          absl::Time deadline, absl::Duration connect_timeout,
          absl::Duration handshake_timeout) {
  const std::vector<const Step*> local = {&kEntry, &kKeyMatch, &kKeySigns,
                                          &kChain};
  checks.Begin(kStore);
  absl::StatusOr<LayeredStore*> opened = context.Store();
  if (!opened.ok()) {
    checks.Fail(kStore, opened.status());
    for (const Step* step : local) {
      checks.Skip(*step, "no store");
    }
    NetworkChecks(checks, flags, nullptr, deadline, connect_timeout,
                  handshake_timeout);
    return;
  }
  LayeredStore& store = **opened;
  checks.Pass(kStore,
              absl::StrCat(store.Name(), " (", store.layers().size(), " layer",
                           store.layers().size() == 1 ? "" : "s", ")"));
  if (flags.alias.empty()) {
    for (const Step* step : local) {
      checks.Skip(*step, "no alias given");
    }
    NetworkChecks(checks, flags, nullptr, deadline, connect_timeout,
                  handshake_timeout);
    return;
  }

  checks.Begin(kEntry);
  absl::StatusOr<std::shared_ptr<const Entry>> found =
      FindValidNow(store, flags.alias);
  std::shared_ptr<const Entry> entry;
  if (found.ok()) {
    entry = *found;
    const absl::Duration left = entry->not_after() - Clock::System()->Now();
    checks.Pass(kEntry,
                absl::StrCat(entry->thumbprint(), ", valid until ",
                             Rfc3339(entry->not_after()), " (",
                             FormatTimeLeft(left), " left",
                             left < FindOptions{}.min_remaining
                                 ? "; under 24h, so the token client mints a "
                                   "new one"
                                 : "",
                             ")"));
  } else {
    checks.Fail(kEntry, found.status());
  }

  if (entry == nullptr) {
    for (const Step* step : {&kKeyMatch, &kKeySigns, &kChain}) {
      checks.Skip(*step, "no entry valid now");
    }
  } else {
    checks.Begin(kKeyMatch);
    absl::Status match = CheckKeyMatchesLeaf(*entry);
    if (match.ok()) {
      checks.Pass(kKeyMatch, absl::StrCat(entry->key()->algorithm(), " key at ",
                                          entry->key()->location(),
                                          " is the certificate's"));
    } else {
      checks.Fail(kKeyMatch, match);
    }
    checks.Begin(kKeySigns);
    const absl::Time start = absl::Now();
    absl::Status probe = store.ProbeKey(*entry);
    if (probe.ok()) {
      checks.Pass(kKeySigns,
                  absl::StrCat("signed a fresh challenge that the certificate "
                               "verifies, in ",
                               FormatElapsed(absl::Now() - start)));
    } else {
      checks.Fail(kKeySigns, probe);
    }
    checks.Begin(kChain);
    absl::StatusOr<std::string> chain = CheckChainLinks(*entry);
    if (chain.ok()) {
      checks.Pass(kChain, *chain);
    } else {
      checks.Fail(kChain, chain.status());
    }
  }
  NetworkChecks(checks, flags, entry.get(), deadline, connect_timeout,
                handshake_timeout);
}

}  // namespace

absl::StatusOr<int> RunDoctor(CommandContext& context,
                              const DoctorFlags& flags) {
  CERTSTORE_ASSIGN_OR_RETURN(absl::Duration deadline,
                             ParseDurationFlag(flags.deadline, "--deadline"));
  CERTSTORE_ASSIGN_OR_RETURN(
      absl::Duration connect,
      ParseDurationFlag(flags.connect_timeout, "--connect-timeout"));
  CERTSTORE_ASSIGN_OR_RETURN(
      absl::Duration handshake,
      ParseDurationFlag(flags.handshake_timeout, "--handshake-timeout"));
  const absl::Time end = absl::Now() + deadline;
  // The walk runs on its own thread so that a step stuck where no timeout
  // reaches (a PKCS#11 module, a hung filesystem) cannot hold the command
  // past its deadline: the step is reported and the process exits.
  auto checks = std::make_shared<CheckList>(context.out());
  auto done = std::make_shared<absl::Notification>();
  std::thread walker([&context, flags, checks, done, end, connect, handshake] {
    Walk(context, flags, *checks, end, connect, handshake);
    done->Notify();
  });
  // The network phases stop at `end` themselves; the grace lets them report.
  if (!done->WaitForNotificationWithDeadline(end + absl::Milliseconds(500))) {
    checks->Abandon(deadline);
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(kExitUnavailable);
  }
  walker.join();
  return checks->Summary();
}

}  // namespace certstore::cli

#include "emulator/emulator.h"

#include <unistd.h>

#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "certstore/status_macros.h"
#include "emulator/internal/ca.h"
#include "emulator/internal/net.h"
#include "emulator/internal/services.h"
#include "emulator/internal/state.h"
#include "emulator/internal/tls.h"

namespace certstore::emulator {
namespace {

using internal::EmulatorCa;
using internal::EmulatorState;
using internal::Listener;
using internal::ServiceContext;
using internal::StopSignal;
using internal::UniqueFd;

absl::Status BadOption(absl::string_view option, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("emulator: option ", option, " ", what));
}

bool IsTenantChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '-' || c == '_';
}

absl::Status ValidateOptions(const EmulatorOptions& o) {
  if (o.client_id.empty() || o.client_id.size() > 256) {
    return BadOption("client_id", "must be 1..256 characters");
  }
  if (o.tenant_id.empty() || o.tenant_id.size() > 256 ||
      !std::all_of(o.tenant_id.begin(), o.tenant_id.end(), IsTenantChar)) {
    return BadOption("tenant_id",
                     "must be 1..256 letters, digits, '.', '-' or '_'");
  }
  if (o.cert_validity <= absl::ZeroDuration()) {
    return BadOption("cert_validity", "must be positive");
  }
  if (o.token_lifetime < absl::Seconds(1)) {
    return BadOption("token_lifetime", "must be at least 1s");
  }
  if (o.io_timeout <= absl::ZeroDuration() ||
      o.idle_timeout <= absl::ZeroDuration()) {
    return BadOption("io_timeout/idle_timeout", "must be positive");
  }
  if (o.max_connections < 1) {
    return BadOption("max_connections", "must be >= 1");
  }
  if (o.min_tls == TlsVersion::kTls13 && o.max_tls == TlsVersion::kTls12) {
    return BadOption("min_tls", "is above max_tls");
  }
  return absl::OkStatus();
}

}  // namespace

struct Emulator::Impl {
  EmulatorOptions options;
  pid_t owner_pid = getpid();
  std::unique_ptr<EmulatorCa> ca;
  EmulatorState state;
  std::unique_ptr<StopSignal> stop;
  UniqueSslCtx ssl_ctx;
  std::unique_ptr<Listener> issuing;
  std::unique_ptr<Listener> token;
  ServiceContext ctx;
  std::vector<std::string> ca_chain_der;

  std::mutex stop_mu;
  bool stopped = false;  // guarded by stop_mu

  absl::Status Init();
  void Run();
};

absl::Status Emulator::Impl::Init() {
  CERTSTORE_RETURN_IF_ERROR(ValidateOptions(options));
  CERTSTORE_ASSIGN_OR_RETURN(ca, EmulatorCa::Create());
  CERTSTORE_ASSIGN_OR_RETURN(stop, StopSignal::Create());
  CERTSTORE_ASSIGN_OR_RETURN(ssl_ctx,
                             internal::NewTokenServerContext(*ca, options));
  CERTSTORE_ASSIGN_OR_RETURN(issuing,
                             Listener::Bind(options.issuing_port, "issuing"));
  CERTSTORE_ASSIGN_OR_RETURN(token,
                             Listener::Bind(options.token_port, "token"));
  ca_chain_der = {ca->root_der(), ca->intermediate_der()};
  ctx.options = &options;
  ctx.clock = options.clock != nullptr ? options.clock : Clock::System();
  ctx.state = &state;
  ctx.ca = ca.get();
  ctx.stop = stop.get();
  ctx.ssl_ctx = ssl_ctx.get();
  ctx.issuing_url = absl::StrCat("http://127.0.0.1:", issuing->port());
  ctx.token_url = absl::StrCat("https://127.0.0.1:", token->port());
  return absl::OkStatus();
}

void Emulator::Impl::Run() {
  issuing->Run(stop.get(), options.max_connections, [this](UniqueFd fd) {
    internal::ServeIssuing(ctx, std::move(fd));
  });
  token->Run(stop.get(), options.max_connections,
             [this](UniqueFd fd) { internal::ServeToken(ctx, std::move(fd)); });
  ctx.Log(LogLevel::kInfo, absl::StrCat("serving issuing=", ctx.issuing_url,
                                        " token=", ctx.token_url));
}

absl::StatusOr<std::unique_ptr<Emulator>> Emulator::Start(
    const EmulatorOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  CERTSTORE_RETURN_IF_ERROR(impl->Init());
  impl->Run();
  return std::unique_ptr<Emulator>(new Emulator(std::move(impl)));
}

Emulator::Emulator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Emulator::~Emulator() {
  if (getpid() != impl_->owner_pid) {
    // A forked child: the threads are the parent's. Leave everything alone
    // (the parent's pipe and sockets included); the process is exiting.
    (void)impl_.release();
    return;
  }
  Stop();
}

void Emulator::Stop() {
  if (getpid() != impl_->owner_pid) {
    return;
  }
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) {
    return;
  }
  impl_->stopped = true;
  impl_->stop->Raise();
  impl_->issuing->Join();
  impl_->token->Join();
  impl_->ctx.Log(LogLevel::kInfo, "stopped");
}

const std::string& Emulator::issuing_url() const {
  return impl_->ctx.issuing_url;
}
const std::string& Emulator::token_url() const { return impl_->ctx.token_url; }

std::string Emulator::token_endpoint() const {
  return absl::StrCat(impl_->ctx.token_url, "/", impl_->options.tenant_id,
                      "/oauth2/v2.0/token");
}

uint16_t Emulator::issuing_port() const { return impl_->issuing->port(); }
uint16_t Emulator::token_port() const { return impl_->token->port(); }
const std::string& Emulator::client_id() const {
  return impl_->options.client_id;
}
const std::string& Emulator::tenant_id() const {
  return impl_->options.tenant_id;
}
const std::string& Emulator::ca_root_pem() const {
  return impl_->ca->root_pem();
}
const std::vector<std::string>& Emulator::ca_chain_der() const {
  return impl_->ca_chain_der;
}

absl::Status Emulator::InjectFault(const FaultSpec& fault) {
  return impl_->state.Inject(fault);
}
void Emulator::ClearFaults() { impl_->state.ClearFaults(); }
int Emulator::PendingFaults() const { return impl_->state.PendingFaults(); }
void Emulator::DropKeptAliveConnections() { impl_->state.NextGeneration(); }
void Emulator::Revoke(absl::string_view thumbprint) {
  impl_->state.Revoke(thumbprint);
}
void Emulator::Reset() { impl_->state.Reset(); }
Counters Emulator::GetCounters() const { return impl_->state.Snapshot(); }

absl::StatusOr<TokenClaims> Emulator::DecodeToken(
    absl::string_view access_token) const {
  return impl_->state.DecodeToken(access_token);
}

absl::StatusOr<std::string> Emulator::TokenBinding(
    absl::string_view access_token) const {
  CERTSTORE_ASSIGN_OR_RETURN(TokenClaims claims, DecodeToken(access_token));
  return claims.thumbprint;
}

}  // namespace certstore::emulator

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "emulator/internal/state.h"
#include "nlohmann/json.hpp"

namespace certstore::emulator {
namespace {

struct FaultKindInfo {
  FaultKind value;
  absl::string_view name;
  internal::FaultLevel level;
};

using internal::FaultLevel;
constexpr std::array<FaultKindInfo, 13> kFaultKinds = {{
    {FaultKind::kResetDuringHandshake, "reset_during_handshake",
     FaultLevel::kConnection},
    {FaultKind::kTlsAlert, "tls_alert", FaultLevel::kConnection},
    {FaultKind::kCloseAfterHandshake, "close_after_handshake",
     FaultLevel::kConnection},
    {FaultKind::kHang, "hang", FaultLevel::kConnection},
    {FaultKind::kInvalidClient, "invalid_client", FaultLevel::kRequest},
    {FaultKind::kDelay, "delay", FaultLevel::kRequest},
    {FaultKind::kHangResponse, "hang_response", FaultLevel::kRequest},
    {FaultKind::kHttpStatus, "http_status", FaultLevel::kRequest},
    {FaultKind::kTooManyRequests, "too_many_requests", FaultLevel::kRequest},
    {FaultKind::kIssuerError, "issuer_error", FaultLevel::kIssueRequest},
    {FaultKind::kIssueExpired, "issue_expired", FaultLevel::kIssue},
    {FaultKind::kRawResponse, "raw_response", FaultLevel::kRequest},
    {FaultKind::kRawIssuing, "raw_issuing", FaultLevel::kIssuing},
}};

struct TlsAlertInfo {
  TlsAlert value;
  absl::string_view name;
  int number;
};

constexpr std::array<TlsAlertInfo, 6> kTlsAlerts = {{
    {TlsAlert::kBadCertificate, "bad_certificate", 42},
    {TlsAlert::kUnknownCa, "unknown_ca", 48},
    {TlsAlert::kCertificateExpired, "certificate_expired", 45},
    {TlsAlert::kDecryptError, "decrypt_error", 51},
    {TlsAlert::kCertificateRevoked, "certificate_revoked", 44},
    {TlsAlert::kInternalError, "internal_error", 80},
}};

// The row of a name table for `value` (tables cover every enumerator).
template <typename Info, size_t N, typename Enum>
const Info& Row(const std::array<Info, N>& table, Enum value) {
  for (const Info& info : table) {
    if (info.value == value) {
      return info;
    }
  }
  return table[0];
}

// The value named `name`; InvalidArgument listing the known names.
template <typename Info, size_t N>
auto ValueNamed(const std::array<Info, N>& table, absl::string_view name,
                absl::string_view what)
    -> absl::StatusOr<decltype(Info::value)> {
  std::string known;
  for (const Info& info : table) {
    if (info.name == name) {
      return info.value;
    }
    absl::StrAppend(&known, known.empty() ? "" : ", ", info.name);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown ", what, " \"", absl::CHexEscape(name), "\"; known: ", known));
}

}  // namespace

absl::string_view FaultKindName(FaultKind kind) {
  return Row(kFaultKinds, kind).name;
}

absl::StatusOr<FaultKind> ParseFaultKind(absl::string_view name) {
  return ValueNamed(kFaultKinds, name, "fault kind");
}

absl::string_view TlsAlertName(TlsAlert alert) {
  return Row(kTlsAlerts, alert).name;
}

absl::StatusOr<TlsAlert> ParseTlsAlert(absl::string_view name) {
  return ValueNamed(kTlsAlerts, name, "TLS alert");
}

int TlsAlertNumber(TlsAlert alert) { return Row(kTlsAlerts, alert).number; }

ThumbprintCounters Counters::For(const std::string& thumbprint) const {
  auto it = by_thumbprint.find(thumbprint);
  return it == by_thumbprint.end() ? ThumbprintCounters{} : it->second;
}

namespace internal {

FaultLevel LevelOf(FaultKind kind) { return Row(kFaultKinds, kind).level; }

absl::Status ValidateFault(const FaultSpec& f) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("fault ", FaultKindName(f.kind), ": ", what));
  };
  if (f.count < 1) {
    return bad(absl::StrCat("count is ", f.count, "; it must be >= 1"));
  }
  if (f.kind == FaultKind::kHttpStatus &&
      (f.http_status < 400 || f.http_status > 599)) {
    return bad(absl::StrCat("http_status ", f.http_status, " is not 400..599"));
  }
  if (f.kind == FaultKind::kIssuerError &&
      (f.http_status < 500 || f.http_status > 599)) {
    return bad(absl::StrCat("http_status ", f.http_status, " is not 500..599"));
  }
  if (f.delay < absl::ZeroDuration() || f.retry_after < absl::ZeroDuration()) {
    return bad("delay and retry_after must not be negative");
  }
  if (f.validity <= absl::ZeroDuration()) {
    return bad("validity must be positive");
  }
  const bool raw =
      f.kind == FaultKind::kRawResponse || f.kind == FaultKind::kRawIssuing;
  if (raw && f.raw.empty()) {
    return bad("raw must hold the bytes to send");
  }
  if (f.skip < 0) {
    return bad("skip must not be negative");
  }
  if (f.stream_bytes < 0) {
    return bad("stream_bytes must not be negative");
  }
  return absl::OkStatus();
}

std::string DescribeFault(const FaultSpec& f) {
  std::string detail;
  switch (f.kind) {
    case FaultKind::kTlsAlert:
      detail = std::string(TlsAlertName(f.alert));
      break;
    case FaultKind::kDelay:
      detail = absl::FormatDuration(f.delay);
      break;
    case FaultKind::kHttpStatus:
    case FaultKind::kIssuerError:
      detail = absl::StrCat(f.http_status);
      break;
    case FaultKind::kTooManyRequests:
      detail =
          absl::StrCat("Retry-After ", absl::FormatDuration(f.retry_after));
      break;
    case FaultKind::kRawResponse:
    case FaultKind::kRawIssuing:
      detail = absl::StrCat(f.raw.size(), " bytes + ", f.stream_bytes);
      break;
    case FaultKind::kIssueExpired:
      detail =
          absl::StrCat("not_before now",
                       f.not_before_offset < absl::ZeroDuration() ? "" : "+",
                       absl::FormatDuration(f.not_before_offset), ", validity ",
                       absl::FormatDuration(f.validity));
      break;
    default:
      return std::string(FaultKindName(f.kind));
  }
  return absl::StrCat(FaultKindName(f.kind), "(", detail, ")");
}

EmulatorState::EmulatorState() {
  unsigned char key[32];
  RAND_bytes(key, sizeof(key));
  mac_key_.assign(reinterpret_cast<char*>(key), sizeof(key));
}

absl::Status EmulatorState::Inject(const FaultSpec& fault) {
  if (absl::Status s = ValidateFault(fault); !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  QueueFor(LevelOf(fault.kind)).push_back(fault);
  return absl::OkStatus();
}

void EmulatorState::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  token_faults_.clear();
  issue_faults_.clear();
}

int EmulatorState::PendingFaults() const {
  std::lock_guard<std::mutex> lock(mu_);
  int pending = 0;
  for (const auto* queue : {&token_faults_, &issue_faults_}) {
    for (const FaultSpec& f : *queue) {
      pending += f.count;
    }
  }
  return pending;
}

std::deque<FaultSpec>& EmulatorState::QueueFor(FaultLevel level) {
  return level == FaultLevel::kConnection || level == FaultLevel::kRequest
             ? token_faults_
             : issue_faults_;
}

std::optional<FaultSpec> EmulatorState::Take(FaultLevel level) {
  std::lock_guard<std::mutex> lock(mu_);
  std::deque<FaultSpec>& queue = QueueFor(level);
  if (queue.empty() || LevelOf(queue.front().kind) != level) {
    return std::nullopt;
  }
  if (queue.front().skip > 0) {
    --queue.front().skip;
    return std::nullopt;
  }
  FaultSpec fault = queue.front();
  if (--queue.front().count == 0) {
    queue.pop_front();
  }
  ++counters_.faults_applied;
  return fault;
}

bool EmulatorState::HasPending(FaultLevel level) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::deque<FaultSpec>& queue =
      const_cast<EmulatorState*>(this)->QueueFor(level);
  return !queue.empty() && LevelOf(queue.front().kind) == level;
}

void EmulatorState::Revoke(absl::string_view thumbprint) {
  std::lock_guard<std::mutex> lock(mu_);
  revoked_.insert(std::string(thumbprint));
}

bool EmulatorState::IsRevoked(absl::string_view thumbprint) const {
  std::lock_guard<std::mutex> lock(mu_);
  return revoked_.contains(thumbprint);
}

void EmulatorState::RecordIssued(const std::string& thumbprint) {
  std::lock_guard<std::mutex> lock(mu_);
  issued_.insert(thumbprint);
  ++counters_.mints;
  ++counters_.by_thumbprint[thumbprint].mints;
}

bool EmulatorState::WasIssued(absl::string_view thumbprint) const {
  std::lock_guard<std::mutex> lock(mu_);
  return issued_.contains(thumbprint);
}

void EmulatorState::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  token_faults_.clear();
  issue_faults_.clear();
  revoked_.clear();
  counters_ = Counters{};
}

void EmulatorState::CountMetadataRequest() {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.metadata_requests;
}

void EmulatorState::CountMintRequest() {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.mint_requests;
}

void EmulatorState::CountConnection() {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.connections;
}

void EmulatorState::CountHandshake(bool ok, const std::string& thumbprint) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(ok ? counters_.handshakes_ok : counters_.handshakes_failed);
  if (!ok && !thumbprint.empty()) {
    ++counters_.by_thumbprint[thumbprint].handshakes_failed;
  }
}

void EmulatorState::CountRequest() {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.requests_total;
}

void EmulatorState::CountToken(const std::string& thumbprint) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.tokens_issued;
  ++counters_.by_thumbprint[thumbprint].tokens;
}

void EmulatorState::CountInvalidClient(const std::string& thumbprint) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.invalid_client_responses;
  if (!thumbprint.empty()) {
    ++counters_.by_thumbprint[thumbprint].invalid_client;
  }
}

void EmulatorState::BeginHandshake() {
  std::lock_guard<std::mutex> lock(mu_);
  ++handshakes_in_flight_;
}

void EmulatorState::EndHandshake() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--handshakes_in_flight_ == 0) {
    handshakes_done_.notify_all();
  }
}

Counters EmulatorState::Snapshot() const {
  std::unique_lock<std::mutex> lock(mu_);
  handshakes_done_.wait_for(lock, std::chrono::seconds(1),
                            [this] { return handshakes_in_flight_ == 0; });
  return counters_;
}

std::string EmulatorState::Mac(absl::string_view payload) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t len = 0;
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, mac_key_.data(),
            mac_key_.size(),
            reinterpret_cast<const unsigned char*>(payload.data()),
            payload.size(), mac, sizeof(mac), &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

std::string EmulatorState::MintToken(const TokenClaims& claims) const {
  unsigned char nonce[12];
  RAND_bytes(nonce, sizeof(nonce));
  const nlohmann::json body = {
      {"x5t#S256", claims.thumbprint},
      {"client_id", claims.client_id},
      {"scope", claims.scope},
      {"exp", absl::ToUnixSeconds(claims.expires_at)},
      {"nonce", absl::BytesToHexString(absl::string_view(
                    reinterpret_cast<char*>(nonce), sizeof(nonce)))}};
  const std::string payload = absl::WebSafeBase64Escape(
      body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return absl::StrCat(payload, ".", absl::WebSafeBase64Escape(Mac(payload)));
}

absl::StatusOr<TokenClaims> EmulatorState::DecodeToken(
    absl::string_view token) const {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(token, absl::MaxSplits('.', 1));
  std::string mac;
  std::string json;
  if (!absl::WebSafeBase64Unescape(parts.second, &mac) || mac.size() != 32 ||
      CRYPTO_memcmp(mac.data(), Mac(parts.first).data(), mac.size()) != 0 ||
      !absl::WebSafeBase64Unescape(parts.first, &json)) {
    return absl::InvalidArgumentError(
        "emulator: not an access token this emulator issued (MAC mismatch)");
  }
  const nlohmann::json body = nlohmann::json::parse(json, nullptr, false);
  TokenClaims claims;
  claims.thumbprint = body.value("x5t#S256", "");
  claims.client_id = body.value("client_id", "");
  claims.scope = body.value("scope", "");
  claims.expires_at = absl::FromUnixSeconds(body.value("exp", int64_t{0}));
  return claims;
}

}  // namespace internal
}  // namespace certstore::emulator

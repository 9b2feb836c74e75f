#include "certstore/token_client.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "api/internal/json.h"
#include "certstore/errors.h"
#include "certstore/mint_coordinator.h"
#include "certstore/openssl_types.h"
#include "certstore/status_macros.h"
#include "client/csr.h"
#include "client/endpoint_url.h"
#include "client/hot_tokens.h"
#include "client/https_transport.h"
#include "client/rejection_ledger.h"
#include "client/state_records.h"
#include "client/token_request.h"

namespace certstore {
namespace {

using client_internal::HttpRequest;
using client_internal::HttpResult;
using internal::Json;
using internal::JsonString;

constexpr absl::string_view kComponent = "client";

// A token lifetime beyond this (a year) is a server's mistake, not a token.
constexpr int64_t kMaxTokenLifetimeSeconds = 366 * 24 * 3600;

struct Platform {
  std::string client_id;
  std::string tenant_id;

  bool operator==(const Platform& other) const {
    return client_id == other.client_id && tenant_id == other.tenant_id;
  }
};

// The key of an alias's next binding, made ahead of need with its CSR (for
// the platform known then): a re-mint then signs nothing before it asks
// the issuer, and the key's first use (OpenSSL's per-key setup) is paid
// off the critical path.
struct SpareKey {
  std::shared_ptr<const Key> key;
  Platform platform;
  std::string csr;  // empty: build it at use
};

// What the issuer said, as kept for other processes, and when.
struct PlatformRecord {
  Platform platform;
  absl::Time fetched_at;
};

// State of one GetToken call.
struct Call {
  std::string scope;
  absl::Time deadline;
  bool healed = false;
  std::string evicted_thumbprint;
  // A mint happened: make the next spare key (for this platform) once this
  // call has its token (a token's keygen would hold the module while the
  // retry signs).
  absl::optional<Platform> spare_for;
};

// A token request in flight for one (alias, scope): the caller that
// started it sends it; callers arriving meanwhile wait for its result.
struct Flight {
  absl::Notification done;
  absl::StatusOr<AccessToken> result;  // written before done.Notify()
};

// A cached token is served until this long before it expires (or
// refresh_ahead, when smaller), however late its background refresh is.
constexpr absl::Duration kLastServedMargin = absl::Seconds(30);

// The token cache's key: a token is for one alias, scope and binding.
std::string TokenKey(absl::string_view alias, absl::string_view scope,
                     absl::string_view thumbprint) {
  return absl::StrCat(alias, std::string(1, '\0'), scope, std::string(1, '\0'),
                      thumbprint);
}

// Past this many cached tokens, an insert that finds one expired drops
// every expired one.
constexpr size_t kPruneTokensAbove = 256;

// Text a server chose, for a message: escaped (control bytes, invalid
// UTF-8) and shortened, so that a hostile server cannot forge log lines or
// flood them.
std::string QuoteServerText(absl::string_view text) {
  constexpr size_t kMaxQuoted = 256;
  std::string escaped = absl::CHexEscape(text.substr(0, kMaxQuoted));
  if (text.size() > kMaxQuoted) {
    absl::StrAppend(&escaped, "… (", text.size(), " bytes)");
  }
  return escaped;
}

// RFC 8705 §3.1: the certificate thumbprint the server bound the token
// to, from the response's cnf member or, when the token is a JWT, its cnf
// claim; empty when neither says.
std::string BoundThumbprintOf(const Json& body,
                              const std::string& access_token) {
  auto cnf_of = [](const Json& object) -> std::string {
    if (!object.is_object()) {
      return "";
    }
    auto it = object.find("cnf");
    return it == object.end()
               ? ""
               : internal::JsonString(*it, "x5t#S256").value_or("");
  };
  std::string bound = cnf_of(body);
  if (!bound.empty()) {
    return bound;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(access_token, '.');
  std::string payload;
  if (parts.size() != 3 || !absl::WebSafeBase64Unescape(parts[1], &payload)) {
    return "";
  }
  std::optional<Json> claims = internal::ParseJsonObject(payload);
  return claims.has_value() ? cnf_of(*claims) : "";
}

// What a failed exchange looked like, for messages: phase, host, and what
// the server (or the network) said.
std::string DescribeFailure(const HttpResult& r) {
  std::string said;
  if (r.outcome.http_status != 0) {
    said = absl::StrCat("HTTP ", r.outcome.http_status);
    std::optional<Json> body = internal::ParseJsonObject(r.body);
    std::optional<std::string> error =
        body.has_value() ? JsonString(*body, "error") : std::nullopt;
    if (error.has_value()) {
      absl::StrAppend(&said, " ", QuoteServerText(*error));
      if (auto description = JsonString(*body, "error_description")) {
        absl::StrAppend(&said, " (", QuoteServerText(*description), ")");
      }
    }
  } else {
    said = r.error;
  }
  if (r.outcome.tls_alert_received >= 0) {
    absl::StrAppend(&said, "; server sent TLS alert \"",
                    SSL_alert_desc_string_long(r.outcome.tls_alert_received),
                    "\"");
  }
  if (r.outcome.local_sign_failed) {
    absl::StrAppend(&said, "; our key failed to sign CertificateVerify");
  }
  return absl::StrCat("in ", RequestPhaseName(r.outcome.phase), " with ",
                      r.host, " after ", absl::FormatDuration(r.elapsed), ": ",
                      said);
}

// Client and tenant ids become an alias and a CSR subject: printable ASCII
// of a sane length, or the answer is refused.
constexpr size_t kMaxIdentifierBytes = 256;
bool ValidIdentifier(const std::optional<std::string>& id) {
  if (!id.has_value() || id->empty() || id->size() > kMaxIdentifierBytes) {
    return false;
  }
  for (unsigned char c : *id) {
    if (c < 0x21 || c > 0x7e) {
      return false;
    }
  }
  return true;
}

absl::Duration Jittered(absl::Duration d) {
  thread_local std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> factor(0.75, 1.25);
  return d * factor(rng);
}

class TokenClientImpl final : public TokenClient {
 public:
  TokenClientImpl(CertStore* store, std::unique_ptr<MintCoordinator> minter,
                  TokenClientOptions options)
      : store_(store),
        minter_(std::move(minter)),
        options_(std::move(options)),
        clock_(options_.clock != nullptr ? options_.clock : Clock::System()),
        rejections_(store->Name(), options_.state_dir,
                    options_.rejection_backoff, options_.max_rejection_backoff),
        platform_records_(store->Name(), options_.state_dir, "platform") {
    find_options_.min_remaining = options_.min_remaining;
  }

  // Waits for a background refresh under way (bounded by its deadline).
  ~TokenClientImpl() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (background_.joinable()) {
      background_.join();
    }
  }

  absl::StatusOr<AccessToken> GetToken(absl::string_view scope) override;

  absl::StatusOr<std::shared_ptr<const AccessToken>> GetSharedToken(
      absl::string_view scope) override {
    if (std::shared_ptr<const AccessToken> hot =
            hot_.Lookup(scope, clock_->NowUnixNanos())) {
      hot_.CountHit();
      return hot;
    }
    return TokenClient::GetSharedToken(scope);
  }

  TokenClientMetrics Metrics() const override {
    absl::MutexLock lock(&mu_);
    TokenClientMetrics metrics = metrics_;
    metrics.cache_hits += hot_.hits();
    metrics.mints = minter_->Metrics().mints;
    metrics.cached_tokens = static_cast<int64_t>(tokens_.size());
    return metrics;
  }

 private:
  void Log(LogLevel level, absl::string_view message) const {
    if (options_.log) {
      options_.log(level, kComponent, message);
    }
  }
  void Count(int64_t TokenClientMetrics::*counter) {
    absl::MutexLock lock(&mu_);
    ++(metrics_.*counter);
  }

  absl::StatusOr<Platform> GetPlatform(Call& call);
  std::optional<Platform> PlatformFromStore();
  std::optional<PlatformRecord> ReadPlatformRecord();
  void WritePlatformRecord(const Platform& platform);
  Platform RememberPlatform(const Platform& platform);
  absl::StatusOr<std::shared_ptr<const Entry>> Binding(const std::string& alias,
                                                       Call& call);
  absl::StatusOr<std::shared_ptr<const Entry>> Heal(const std::string& alias,
                                                    Call& call,
                                                    const std::string& why);
  absl::StatusOr<std::shared_ptr<const Entry>> Mint(absl::string_view alias,
                                                    Call& call);
  bool generic() const { return !options_.token_endpoint.url.empty(); }
  // Unauthenticated while `alias` is in its rejection backoff (another
  // process, or this one, had a fresh binding refused); OK otherwise.
  absl::Status CheckNotRejected(absl::string_view alias, bool* recorded);
  absl::StatusOr<std::string> Alias(Call& call);
  absl::StatusOr<HttpRequest> TokenRequest(const Entry& entry, Call& call);
  HttpResult PerformWithRetries(const HttpRequest& request, const Entry* entry,
                                Call& call, FailureClass* failure);
  absl::StatusOr<AccessToken> TokenFromResponse(const HttpResult& r,
                                                const Entry& entry,
                                                const Call& call);
  absl::Status FinalError(FailureClass failure, const HttpResult& r,
                          const std::string& alias, const Entry& entry,
                          const Call& call) const;
  // The cached token under `key` while it may be served; `refresh_due`
  // says it is in its refresh-ahead window.
  absl::optional<AccessToken> CachedToken(const std::string& key,
                                          bool* refresh_due) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One token request per (alias, scope) at a time, however many callers
  // ask; `refresh` sends it even while a cached token may be served.
  absl::StatusOr<AccessToken> SingleFlight(const std::string& alias,
                                           std::shared_ptr<const Entry> entry,
                                           Call& call, bool refresh);
  // The request, with eviction and one retry on a credential failure.
  absl::StatusOr<AccessToken> FetchToken(const std::string& alias,
                                         std::shared_ptr<const Entry> entry,
                                         Call& call);
  void RefreshInBackground(const std::string& scope)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Refresh(const std::string& scope);
  // Prepares the key of the next binding for `alias` (a store that makes
  // keys in process only), so that a re-mint need not wait for keygen.
  void PrepareSpareKey(const std::string& alias, const Platform& platform)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::optional<SpareKey> TakeSpareKey(const std::string& alias);
  // One background thread runs the jobs, in order; started at the first.
  void RunInBackground(std::function<void()> job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BackgroundLoop();
  bool BackgroundWorkReady() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || !jobs_.empty();
  }

  CertStore* const store_;
  const std::unique_ptr<MintCoordinator> minter_;
  const TokenClientOptions options_;
  const Clock* const clock_;
  FindOptions find_options_;
  client_internal::RejectionLedger rejections_;
  client_internal::StateRecords platform_records_;  // keyed by issuing URL
  client_internal::ConnectionPool connections_;
  client_internal::HotTokens hot_;  // the cached path, without mu_

  mutable absl::Mutex mu_;
  absl::optional<Platform> platform_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> probed_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, AccessToken> tokens_ ABSL_GUARDED_BY(mu_);
  // No cached token expires before this (an earlier bound is harmless).
  absl::Time earliest_expiry_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Keyed by alias NUL scope.
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_
      ABSL_GUARDED_BY(mu_);
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  // Scopes queued or being refreshed ahead of expiry (each once).
  absl::flat_hash_set<std::string> refreshing_ ABSL_GUARDED_BY(mu_);
  // Spare keys, ready or being made, per alias.
  absl::flat_hash_map<std::string, SpareKey> spares_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> spares_pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Started (under mu_) at the first job; joined by the destructor once
  // stopping_ is set, after which it is never started.
  std::thread background_;
  TokenClientMetrics metrics_ ABSL_GUARDED_BY(mu_);
};

// The platform a servable binding in the store was minted for (the issuer
// recorded client and tenant id on it), when the store holds such bindings
// of one platform only for this client's attestation mode. A process with
// a cached binding then needs no issuer: it is needed only to mint.
std::optional<Platform> TokenClientImpl::PlatformFromStore() {
  absl::StatusOr<std::vector<EntryInfo>> listed = store_->List(ListOptions{});
  if (!listed.ok()) {
    return std::nullopt;
  }
  const absl::string_view suffix = options_.attestation ? "#att=1" : "#att=0";
  // A few bindings are what a token client's store holds; past that, one
  // question to the issuer is cheaper than a Find for each.
  constexpr size_t kMaxBindingsConsidered = 16;
  std::optional<Platform> found;
  absl::flat_hash_set<std::string> seen;
  for (const EntryInfo& info : *listed) {
    if (!info.problem.empty() || !absl::EndsWith(info.alias, suffix) ||
        !seen.insert(info.alias).second) {
      continue;
    }
    if (seen.size() > kMaxBindingsConsidered) {
      return std::nullopt;
    }
    absl::StatusOr<std::shared_ptr<const Entry>> entry =
        store_->Find(info.alias, find_options_);
    if (!entry.ok()) {
      continue;
    }
    const EntryMetadata& m = (*entry)->metadata();
    if (!ValidIdentifier(m.client_id) || !ValidIdentifier(m.tenant_id) ||
        info.alias != absl::StrCat(m.client_id, suffix)) {
      continue;  // imported without platform metadata
    }
    if (found.has_value() &&
        (found->client_id != m.client_id || found->tenant_id != m.tenant_id)) {
      return std::nullopt;  // several platforms: the issuer says which
    }
    found = Platform{m.client_id, m.tenant_id};
  }
  return found;
}

std::optional<PlatformRecord> TokenClientImpl::ReadPlatformRecord() {
  std::optional<internal::Json> json =
      platform_records_.Read(options_.issuing_url);
  if (!json.has_value()) {
    return std::nullopt;
  }
  PlatformRecord record;
  std::optional<std::string> client_id = JsonString(*json, "client_id");
  std::optional<std::string> tenant_id = JsonString(*json, "tenant_id");
  std::optional<int64_t> fetched_at =
      internal::JsonInteger(*json, "fetched_at", 0, INT64_MAX);
  if (JsonString(*json, "issuing_url") != options_.issuing_url ||
      !ValidIdentifier(client_id) || !ValidIdentifier(tenant_id) ||
      !fetched_at.has_value()) {
    return std::nullopt;  // damaged, or another endpoint's (a hash clash)
  }
  record.platform = Platform{*client_id, *tenant_id};
  record.fetched_at = absl::FromUnixSeconds(*fetched_at);
  return record;
}

void TokenClientImpl::WritePlatformRecord(const Platform& platform) {
  absl::Status kept = platform_records_.Write(
      options_.issuing_url,
      internal::Json{{"issuing_url", options_.issuing_url},
                     {"client_id", platform.client_id},
                     {"tenant_id", platform.tenant_id},
                     {"fetched_at", absl::ToUnixSeconds(clock_->Now())}});
  if (!kept.ok()) {
    Log(LogLevel::kWarning,
        absl::StrCat("platform metadata not kept for other processes: ",
                     kept.message()));
  }
}

Platform TokenClientImpl::RememberPlatform(const Platform& platform) {
  absl::MutexLock lock(&mu_);
  platform_ = platform;
  return platform;
}

// Client and tenant id, from (in this order) this process, a recent record
// of the store, a servable binding, the issuer — or, when the issuer
// cannot be reached, a record of any age.
absl::StatusOr<Platform> TokenClientImpl::GetPlatform(Call& call) {
  {
    absl::MutexLock lock(&mu_);
    if (platform_.has_value()) {
      return *platform_;
    }
  }
  const std::optional<PlatformRecord> record = ReadPlatformRecord();
  const absl::Duration age = record.has_value()
                                 ? clock_->Now() - record->fetched_at
                                 : absl::InfiniteDuration();
  if (record.has_value() && age < options_.platform_refresh) {
    return RememberPlatform(record->platform);
  }
  // (In generic mode the alias is not the platform's: ask the issuer.)
  std::optional<Platform> cached =
      generic() ? std::nullopt : PlatformFromStore();
  if (cached.has_value()) {
    Log(LogLevel::kInfo,
        absl::StrCat("platform of the cached binding ",
                     QuoteAlias(cached->client_id),
                     " used without asking the issuing endpoint"));
    return RememberPlatform(*cached);
  }
  HttpRequest request;
  request.url = absl::StrCat(options_.issuing_url,
                             "/metadata/identity/getplatformmetadata"
                             "?cred-api-version=2.0");
  request.headers = {"Metadata: true"};
  FailureClass failure;
  HttpResult r = PerformWithRetries(request, nullptr, call, &failure);
  std::optional<Json> body = internal::ParseJsonObject(r.body);
  std::optional<std::string> client_id, tenant_id;
  if (body.has_value()) {
    client_id = JsonString(*body, "clientId");
    tenant_id = JsonString(*body, "tenantId");
  }
  if (failure == FailureClass::kNetwork && record.has_value()) {
    Log(LogLevel::kWarning,
        absl::StrCat("issuing endpoint unreachable (", DescribeFailure(r),
                     "): using the platform metadata fetched ",
                     absl::FormatDuration(absl::Trunc(age, absl::Seconds(1))),
                     " ago"));
    return RememberPlatform(record->platform);
  }
  if (failure != FailureClass::kNone) {
    return absl::UnavailableError(
        absl::StrCat("platform metadata ", DescribeFailure(r)));
  }
  if (!ValidIdentifier(client_id) || !ValidIdentifier(tenant_id)) {
    return absl::DataLossError(
        absl::StrCat("platform metadata from ", r.host,
                     ": the answer has no clientId and tenantId strings (1..",
                     kMaxIdentifierBytes, " printable characters; ",
                     r.body.size(), " bytes received)"));
  }
  Platform platform{*client_id, *tenant_id};
  WritePlatformRecord(platform);
  return RememberPlatform(platform);
}

absl::Status TokenClientImpl::CheckNotRejected(absl::string_view alias,
                                               bool* recorded) {
  std::optional<client_internal::Rejection> r =
      rejections_.Active(alias, clock_->Now(), recorded);
  if (!r.has_value()) {
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError(absl::StrCat(
      "binding ", QuoteAlias(alias), " rejected since ",
      absl::FormatTime(absl::RFC3339_sec, r->since, absl::UTCTimeZone()), " (",
      r->count, " time", r->count == 1 ? "" : "s", ", last ", r->thumbprint,
      ": ", r->reason, "); not minting again before ",
      absl::FormatTime(absl::RFC3339_sec, r->until, absl::UTCTimeZone()),
      " (`certstore evict` clears this)"));
}

absl::StatusOr<std::shared_ptr<const Entry>> TokenClientImpl::Mint(
    absl::string_view alias, Call& call) {
  const std::string context = absl::StrCat("mint for ", QuoteAlias(alias));
  // No process mints for an alias whose fresh binding was just refused.
  CERTSTORE_RETURN_IF_ERROR(CheckNotRejected(alias, nullptr));
  if (options_.issuing_url.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no credential under alias ", QuoteAlias(alias), " in ", store_->Name(),
        " and no issuing endpoint to mint one (import one, e.g. `certstore "
        "import`)"));
  }
  CERTSTORE_ASSIGN_OR_RETURN(Platform platform, GetPlatform(call));
  absl::optional<SpareKey> spare = TakeSpareKey(std::string(alias));
  absl::StatusOr<std::shared_ptr<const Key>> key =
      spare.has_value() ? spare->key
                        : store_->CreateKey(alias, options_.key_spec);
  CERTSTORE_RETURN_IF_ERROR(WithContext(key.status(), context));
  // The next key is made once this call has its token (FetchToken), off
  // the critical path of the next re-mint: in process for software stores,
  // on the token (labelled as a spare, adopted by the Put that uses it,
  // gc'd if never used) for PKCS#11.
  if (options_.spare_keys) {
    call.spare_for = platform;
  }
  std::string csr;
  if (spare.has_value() && !spare->csr.empty() && spare->platform == platform) {
    csr = std::move(spare->csr);
  } else {
    CERTSTORE_ASSIGN_OR_RETURN(
        csr, client_internal::MakeCsr(**key, platform.client_id,
                                      platform.tenant_id));
  }
  HttpRequest request;
  request.method = "POST";
  request.url = absl::StrCat(options_.issuing_url,
                             "/metadata/identity/issuecredential"
                             "?cred-api-version=2.0");
  request.headers = {"Metadata: true", "Content-Type: application/json"};
  request.body = Json{{"csr", absl::Base64Escape(csr)}}.dump();
  FailureClass failure;
  HttpResult r = PerformWithRetries(request, nullptr, call, &failure);
  if (failure != FailureClass::kNone) {
    return absl::UnavailableError(
        absl::StrCat(context, ": issuing endpoint ", DescribeFailure(r)));
  }
  CERTSTORE_ASSIGN_OR_RETURN(
      EntryParts parts,
      client_internal::ParseIssuedCredential(r.body, context));
  parts.alias = std::string(alias);
  parts.key = *key;
  parts.created_at = clock_->Now();
  absl::StatusOr<std::shared_ptr<const Entry>> entry =
      Entry::Create(std::move(parts));
  if (!entry.ok()) {
    return WithContext(entry.status(), context);
  }
  return entry;
}

HttpResult TokenClientImpl::PerformWithRetries(const HttpRequest& request,
                                               const Entry* entry, Call& call,
                                               FailureClass* failure) {
  absl::Duration backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    client_internal::Deadlines deadlines = options_.deadlines;
    deadlines.total =
        std::max(call.deadline - absl::Now(), absl::Milliseconds(1));
    HttpResult r = client_internal::Perform(
        request, deadlines, entry, options_.server_ca_pem,
        options_.reuse_connections ? &connections_ : nullptr);
    if (r.reused_connection) {
      Count(&TokenClientMetrics::connections_reused);
    }
    *failure = ClassifyFailure(r.outcome);
    if (*failure == FailureClass::kCredentialIfProbeFails) {
      // Ambiguous abort: the key decides. A healthy key means the network.
      Count(&TokenClientMetrics::probes);
      *failure = entry != nullptr && !store_->ProbeKey(*entry).ok()
                     ? FailureClass::kCredential
                     : FailureClass::kNetwork;
    }
    if (*failure != FailureClass::kNetwork ||
        attempt >= options_.max_attempts) {
      return r;
    }
    absl::Duration wait = Jittered(backoff);
    if (r.outcome.retry_after.has_value()) {
      wait = std::max(wait, *r.outcome.retry_after);
    }
    if (absl::Now() + wait >= call.deadline) {
      return r;  // no time left for another attempt
    }
    Count(&TokenClientMetrics::network_retries);
    Log(LogLevel::kInfo,
        absl::StrCat("retrying in ", absl::FormatDuration(wait), ": ",
                     DescribeFailure(r)));
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(wait));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::StatusOr<std::shared_ptr<const Entry>> TokenClientImpl::Heal(
    const std::string& alias, Call& call, const std::string& why) {
  call.healed = true;
  Count(&TokenClientMetrics::evictions);
  Log(LogLevel::kWarning,
      absl::StrCat("binding ", QuoteAlias(alias), " (thumbprint ",
                   call.evicted_thumbprint, ") unusable: ", why,
                   "; evicting from every layer and minting a new one"));
  // Evict is sticky: until a mint succeeds, GetOrCreate mints without
  // looking at the store, so a layer that could not be cleared never serves
  // this binding again. Exactly one retry follows (GetToken's loop).
  CERTSTORE_RETURN_IF_ERROR(minter_->Evict(alias).status());
  hot_.Invalidate();  // no thread serves a token of the evicted binding
  connections_.Drop(call.evicted_thumbprint);  // it presented that key
  absl::StatusOr<std::shared_ptr<const Entry>> entry = minter_->GetOrCreate(
      alias, find_options_, [&](absl::string_view a) { return Mint(a, call); });
  if (entry.ok()) {
    absl::MutexLock lock(&mu_);
    probed_.insert((*entry)->thumbprint());  // a key minted just now
  }
  return entry;
}

absl::StatusOr<std::shared_ptr<const Entry>> TokenClientImpl::Binding(
    const std::string& alias, Call& call) {
  CERTSTORE_ASSIGN_OR_RETURN(
      std::shared_ptr<const Entry> entry,
      minter_->GetOrCreate(alias, find_options_,
                           [&](absl::string_view a) { return Mint(a, call); }));
  {
    absl::MutexLock lock(&mu_);
    if (probed_.contains(entry->thumbprint())) {
      return entry;
    }
  }
  // First use in this process: a persisted key may have died since (token
  // re-initialised, file damaged), so prove it before any network call.
  Count(&TokenClientMetrics::probes);
  absl::Status probe = store_->ProbeKey(*entry);
  if (probe.ok()) {
    absl::MutexLock lock(&mu_);
    probed_.insert(entry->thumbprint());
    return entry;
  }
  if (probe.code() != absl::StatusCode::kFailedPrecondition) {
    return probe;  // the key's home is unreachable: not the key's fault
  }
  call.evicted_thumbprint = entry->thumbprint();
  return Heal(alias, call, std::string(probe.message()));
}

absl::optional<AccessToken> TokenClientImpl::CachedToken(
    const std::string& key, bool* refresh_due) const {
  auto it = tokens_.find(key);
  if (it == tokens_.end()) {
    return absl::nullopt;
  }
  const absl::Time now = clock_->Now();
  const absl::Time expires_at = it->second.expires_at;
  if (now >= expires_at - std::min(options_.refresh_ahead, kLastServedMargin)) {
    return absl::nullopt;
  }
  *refresh_due = now >= expires_at - options_.refresh_ahead;
  AccessToken token = it->second;
  token.from_cache = true;
  return token;
}

absl::StatusOr<AccessToken> TokenClientImpl::SingleFlight(
    const std::string& alias, std::shared_ptr<const Entry> entry, Call& call,
    bool refresh) {
  const std::string flight_key =
      absl::StrCat(alias, std::string(1, '\0'), call.scope);
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&mu_);
    // Checked again under the lock that guards flights: a flight that has
    // just landed left its token here.
    bool refresh_due = false;
    absl::optional<AccessToken> cached = CachedToken(
        TokenKey(alias, call.scope, entry->thumbprint()), &refresh_due);
    if (cached.has_value() && !(refresh && refresh_due)) {
      ++metrics_.cache_hits;
      return *cached;
    }
    std::shared_ptr<Flight>& slot = flights_[flight_key];
    if (slot == nullptr) {
      slot = std::make_shared<Flight>();
      leader = true;
    }
    flight = slot;
  }
  if (!leader) {
    if (!flight->done.WaitForNotificationWithDeadline(call.deadline)) {
      return absl::DeadlineExceededError(absl::StrCat(
          "GetToken(\"", call.scope, "\") with binding ", QuoteAlias(alias),
          ": the token request another caller sent is still in flight "
          "(deadline ",
          absl::FormatDuration(options_.deadlines.total), ")"));
    }
    return flight->result;
  }
  flight->result = FetchToken(alias, std::move(entry), call);
  {
    absl::MutexLock lock(&mu_);
    flights_.erase(flight_key);
  }
  flight->done.Notify();
  return flight->result;
}

void TokenClientImpl::RunInBackground(std::function<void()> job) {
  if (stopping_) {
    return;
  }
  jobs_.push_back(std::move(job));
  if (!background_.joinable()) {
    background_ = std::thread([this] { BackgroundLoop(); });
  }
}

void TokenClientImpl::BackgroundLoop() {
  for (;;) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &TokenClientImpl::BackgroundWorkReady));
      if (stopping_) {
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

void TokenClientImpl::RefreshInBackground(const std::string& scope) {
  if (!refreshing_.insert(scope).second) {
    return;  // queued or under way already
  }
  RunInBackground([this, scope] { Refresh(scope); });
}

void TokenClientImpl::Refresh(const std::string& scope) {
  Call call;
  call.scope = scope;
  call.deadline = absl::Now() + options_.deadlines.total;
  absl::StatusOr<AccessToken> token = [&]() -> absl::StatusOr<AccessToken> {
    CERTSTORE_ASSIGN_OR_RETURN(const std::string alias, Alias(call));
    CERTSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const Entry> entry,
                               Binding(alias, call));
    return SingleFlight(alias, std::move(entry), call, /*refresh=*/true);
  }();
  if (!token.ok()) {
    // The cached token is served until its last margin; after that
    // callers ask themselves and see the error.
    Log(LogLevel::kWarning, absl::StrCat("refresh ahead of expiry failed: ",
                                         token.status().ToString()));
  }
  absl::MutexLock lock(&mu_);
  if (token.ok() && !token->from_cache) {
    ++metrics_.refreshes_ahead;
  }
  refreshing_.erase(scope);
}

void TokenClientImpl::PrepareSpareKey(const std::string& alias,
                                      const Platform& platform) {
  if (spares_.contains(alias) || !spares_pending_.insert(alias).second) {
    return;
  }
  RunInBackground([this, alias, platform] {
    KeySpec spec = options_.key_spec;
    spec.spare = true;
    absl::StatusOr<std::shared_ptr<const Key>> key =
        store_->CreateKey(alias, spec);
    SpareKey spare;
    if (key.ok()) {
      spare.key = *std::move(key);
      spare.platform = platform;
      // A CSR that cannot be made now is made (and its failure reported)
      // by the mint that takes the key.
      spare.csr = client_internal::MakeCsr(*spare.key, platform.client_id,
                                           platform.tenant_id)
                      .value_or("");
    }
    absl::MutexLock lock(&mu_);
    spares_pending_.erase(alias);
    if (spare.key != nullptr) {
      spares_[alias] = std::move(spare);
      ++metrics_.spare_keys_made;
    }
  });
}

absl::optional<SpareKey> TokenClientImpl::TakeSpareKey(
    const std::string& alias) {
  absl::MutexLock lock(&mu_);
  auto it = spares_.find(alias);
  if (it == spares_.end()) {
    return absl::nullopt;
  }
  SpareKey spare = std::move(it->second);
  spares_.erase(it);
  ++metrics_.spare_keys_used;
  return spare;
}

absl::StatusOr<AccessToken> TokenClientImpl::TokenFromResponse(
    const HttpResult& r, const Entry& entry, const Call& call) {
  std::optional<Json> body = internal::ParseJsonObject(r.body);
  std::optional<std::string> access_token;
  std::optional<int64_t> expires_in;
  if (body.has_value()) {
    access_token = JsonString(*body, "access_token");
    expires_in =
        internal::JsonInteger(*body, "expires_in", 1, kMaxTokenLifetimeSeconds);
  }
  if (!access_token.has_value() || access_token->empty() ||
      !expires_in.has_value()) {
    return absl::DataLossError(absl::StrCat(
        "token endpoint ", r.host,
        " answered 200 without an access_token string and an expires_in of "
        "1..",
        kMaxTokenLifetimeSeconds, " seconds (", r.body.size(),
        " bytes received)"));
  }
  const std::string bound = BoundThumbprintOf(*body, *access_token);
  if (!bound.empty() && bound != entry.thumbprint()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "token endpoint ", r.host, " bound the token to certificate ",
        QuoteServerText(bound), ", not to the one presented (",
        entry.thumbprint(), "); the token is not used"));
  }
  AccessToken token;
  token.access_token = *std::move(access_token);
  token.token_type = JsonString(*body, "token_type").value_or("");
  token.expires_at = clock_->Now() + absl::Seconds(*expires_in);
  token.alias = entry.alias();
  token.scope = call.scope;
  token.thumbprint = entry.thumbprint();
  token.healed = call.healed;
  return token;
}

absl::Status TokenClientImpl::FinalError(FailureClass failure,
                                         const HttpResult& r,
                                         const std::string& alias,
                                         const Entry& entry,
                                         const Call& call) const {
  std::string message =
      absl::StrCat("GetToken(\"", call.scope, "\") with binding ",
                   QuoteAlias(alias), " (thumbprint ", entry.thumbprint(),
                   "): token request failed ", DescribeFailure(r));
  if (call.healed) {
    absl::StrAppend(&message, "; already evicted ", call.evicted_thumbprint,
                    " and re-minted once in this call: not retrying again");
  }
  if (r.outcome.curl_code == 28 /* CURLE_OPERATION_TIMEDOUT */) {
    // A phase limit names itself; otherwise the call's total ran out.
    if (!r.phase_limit.has_value()) {
      absl::StrAppend(&message, " (deadline ",
                      absl::FormatDuration(options_.deadlines.total), ")");
    }
    return absl::DeadlineExceededError(message);
  }
  if (failure == FailureClass::kNetwork) {
    absl::StrAppend(&message, "; no eviction (network failure)");
  } else if (ServerNotTrusted(r.outcome)) {
    absl::StrAppend(&message,
                    "; the token endpoint's certificate does not verify "
                    "against the configured trust anchors (server_ca_pem): "
                    "no eviction, the key is not at fault");
  }
  // One table for the client and `certstore doctor` (FailureStatusCode);
  // the probe has settled what the outcome alone left open.
  absl::StatusCode code = FailureStatusCode(r.outcome);
  if (failure == FailureClass::kNetwork) {
    code = absl::StatusCode::kUnavailable;
  } else if (ClassifyFailure(r.outcome) ==
             FailureClass::kCredentialIfProbeFails) {
    code = absl::StatusCode::kFailedPrecondition;  // ProbeKey failed
  }
  return absl::Status(code, message);
}

absl::StatusOr<std::string> TokenClientImpl::Alias(Call& call) {
  if (generic()) {
    return options_.token_endpoint.alias.empty()
               ? options_.token_endpoint.client_id
               : options_.token_endpoint.alias;
  }
  CERTSTORE_ASSIGN_OR_RETURN(Platform platform, GetPlatform(call));
  return absl::StrCat(platform.client_id,
                      options_.attestation ? "#att=1" : "#att=0");
}

absl::StatusOr<HttpRequest> TokenClientImpl::TokenRequest(const Entry& entry,
                                                          Call& call) {
  HttpRequest request;
  request.method = "POST";
  request.headers = {"Content-Type: application/x-www-form-urlencoded"};
  if (generic()) {
    const TokenEndpointOptions& endpoint = options_.token_endpoint;
    request.url = endpoint.url;
    request.body = client_internal::TokenRequestBody(
        {endpoint.client_id, call.scope, endpoint.extra_parameters});
    return request;
  }
  // The endpoint an entry recorded may come from an import or an older
  // issuer: it is checked before every use, and nothing goes in clear.
  CERTSTORE_RETURN_IF_ERROR(
      WithContext(client_internal::CheckEndpointUrl(
                      entry.metadata().endpoint,
                      client_internal::EndpointUse::kTokenEndpoint),
                  absl::StrCat("GetToken(\"", call.scope, "\") with binding ",
                               QuoteAlias(entry.alias()))));
  CERTSTORE_ASSIGN_OR_RETURN(Platform platform, GetPlatform(call));
  request.url =
      absl::StrCat(entry.metadata().endpoint,
                   client_internal::ImdsTokenPath(platform.tenant_id));
  client_internal::TokenRequestForm form;
  form.client_id = platform.client_id;
  form.scope = client_internal::ImdsScope(call.scope);
  form.mtls_pop = true;
  request.body = client_internal::TokenRequestBody(form);
  return request;
}

absl::StatusOr<AccessToken> TokenClientImpl::GetToken(absl::string_view scope) {
  // A scope found here was checked when it was remembered.
  if (std::shared_ptr<const AccessToken> hot =
          hot_.Lookup(scope, clock_->NowUnixNanos())) {
    hot_.CountHit();
    return *hot;
  }
  const uint64_t generation = hot_.generation();
  const bool bad_scope =
      generic()
          ? absl::c_any_of(scope,
                           [](char c) {
                             return static_cast<unsigned char>(c) < 0x20 ||
                                    c == 0x7f;
                           })
          : scope.find_first_of(" \t\r\n&=") != scope.npos;
  if (scope.empty() || bad_scope) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GetToken: scope \"", absl::CHexEscape(scope),
        generic() ? "\" must be a non-empty OAuth scope without control "
                    "characters"
                  : "\" must be a non-empty resource URI without spaces, "
                    "'&' or '='"));
  }
  Call call;
  call.scope = std::string(scope);
  call.deadline = absl::Now() + options_.deadlines.total;
  CERTSTORE_ASSIGN_OR_RETURN(const std::string alias, Alias(call));
  CERTSTORE_ASSIGN_OR_RETURN(std::shared_ptr<const Entry> entry,
                             Binding(alias, call));
  {
    absl::MutexLock lock(&mu_);
    bool refresh_due = false;
    absl::optional<AccessToken> cached =
        CachedToken(TokenKey(alias, scope, entry->thumbprint()), &refresh_due);
    if (cached.has_value()) {
      ++metrics_.cache_hits;
      if (refresh_due) {
        RefreshInBackground(call.scope);  // this caller does not wait
      } else {
        // Until its refresh-ahead window (and kRecheck).
        hot_.Remember(
            scope, std::make_shared<const AccessToken>(*cached),
            absl::ToUnixNanos(cached->expires_at - options_.refresh_ahead),
            generation);
      }
      return *cached;
    }
  }
  return SingleFlight(alias, std::move(entry), call, /*refresh=*/false);
}

absl::StatusOr<AccessToken> TokenClientImpl::FetchToken(
    const std::string& alias, std::shared_ptr<const Entry> entry, Call& call) {
  for (;;) {
    bool recorded = false;
    CERTSTORE_RETURN_IF_ERROR(CheckNotRejected(alias, &recorded));
    CERTSTORE_ASSIGN_OR_RETURN(HttpRequest request, TokenRequest(*entry, call));
    Count(&TokenClientMetrics::token_requests);
    FailureClass failure;
    HttpResult r = PerformWithRetries(request, entry.get(), call, &failure);
    if (failure == FailureClass::kNone) {
      CERTSTORE_ASSIGN_OR_RETURN(AccessToken token,
                                 TokenFromResponse(r, *entry, call));
      if (recorded || call.healed) {
        rejections_.Clear(alias);  // served: the budget starts afresh
      }
      absl::MutexLock lock(&mu_);
      if (tokens_.size() >= kPruneTokensAbove &&
          clock_->Now() >= earliest_expiry_) {
        // Callers with ever new scopes (or bindings) would otherwise grow
        // the cache without end: expired tokens go. Scanned only once one
        // has expired, not at every insert (that made each new scope cost
        // a walk over all the others).
        const absl::Time now = clock_->Now();
        earliest_expiry_ = absl::InfiniteFuture();
        absl::erase_if(tokens_, [&](const auto& kv) {
          if (kv.second.expires_at <= now) {
            return true;
          }
          earliest_expiry_ = std::min(earliest_expiry_, kv.second.expires_at);
          return false;
        });
      }
      tokens_[TokenKey(alias, call.scope, entry->thumbprint())] = token;
      earliest_expiry_ = std::min(earliest_expiry_, token.expires_at);
      hot_.Invalidate();
      if (call.spare_for.has_value()) {
        PrepareSpareKey(alias, *call.spare_for);
      }
      return token;
    }
    if (failure == FailureClass::kCredential && call.healed) {
      // A fresh binding refused too: re-minting cannot help for a while,
      // here or in any process using this store.
      absl::Status kept = rejections_.Record(alias, entry->thumbprint(),
                                             DescribeFailure(r), clock_->Now());
      if (!kept.ok()) {
        Log(LogLevel::kWarning,
            absl::StrCat("cannot record the rejection of ", QuoteAlias(alias),
                         ": ", kept.ToString()));
      }
    }
    if (failure != FailureClass::kCredential || call.healed) {
      return FinalError(failure, r, alias, *entry, call);
    }
    call.evicted_thumbprint = entry->thumbprint();
    CERTSTORE_ASSIGN_OR_RETURN(entry, Heal(alias, call, DescribeFailure(r)));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenClient>> TokenClient::Create(
    CertStore* store, const TokenClientOptions& options) {
  if (store == nullptr) {
    return absl::InvalidArgumentError("TokenClient: null store");
  }
  const bool generic = !options.token_endpoint.url.empty();
  if (generic) {
    if (absl::Status url = client_internal::CheckEndpointUrl(
            options.token_endpoint.url,
            client_internal::EndpointUse::kTokenEndpoint);
        !url.ok()) {
      return WithContext(url, "TokenClient: token_endpoint.url");
    }
    if (!ValidIdentifier(options.token_endpoint.client_id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("TokenClient: token_endpoint.client_id \"",
                       absl::CHexEscape(options.token_endpoint.client_id),
                       "\" must be 1..", kMaxIdentifierBytes,
                       " printable characters (generic mode needs it)"));
    }
    if (absl::Status alias =
            ValidateAlias(options.token_endpoint.alias.empty()
                              ? options.token_endpoint.client_id
                              : options.token_endpoint.alias);
        !alias.ok()) {
      return WithContext(alias, "TokenClient: token_endpoint.alias");
    }
  }
  if (!generic || !options.issuing_url.empty()) {
    if (absl::Status url = client_internal::CheckEndpointUrl(
            options.issuing_url,
            client_internal::EndpointUse::kIssuingEndpoint);
        !url.ok()) {
      return WithContext(url, "TokenClient: issuing_url");
    }
  }
  if (options.max_attempts < 1 ||
      options.deadlines.total <= absl::ZeroDuration() ||
      options.deadlines.connect <= absl::ZeroDuration() ||
      options.deadlines.handshake <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TokenClient: max_attempts must be >= 1 and every deadline positive");
  }
  if (options.platform_refresh < absl::ZeroDuration() ||
      options.refresh_ahead < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TokenClient: platform_refresh and refresh_ahead must not be negative");
  }
  if (!options.state_dir.empty() && options.state_dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "TokenClient: state_dir \"", absl::CHexEscape(options.state_dir),
        "\" must be an absolute path"));
  }
  MintCoordinatorOptions mint_options;
  mint_options.clock = options.clock;
  mint_options.log = options.log;
  mint_options.lock_timeout = options.mint_lock_timeout;
  absl::StatusOr<std::unique_ptr<MintCoordinator>> minter =
      MintCoordinator::Create(store, mint_options);
  if (!minter.ok()) {
    return WithContext(minter.status(), "TokenClient");
  }
  return std::unique_ptr<TokenClient>(
      new TokenClientImpl(store, *std::move(minter), options));
}

}  // namespace certstore

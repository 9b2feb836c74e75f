// The emulator's shared mutable state: fault queues, counters, issued and
// revoked certificates, and the token MAC key. One mutex; every method is
// thread-safe. (std::mutex, not absl::Mutex: Debian's Abseil is not built
// for ThreadSanitizer, which then reports every access it guards as a race,
// here and in the tests of every component that embeds the emulator.)
// Emulator-internal.
#ifndef CERTSTORE_EMULATOR_INTERNAL_STATE_H_
#define CERTSTORE_EMULATOR_INTERNAL_STATE_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "emulator/emulator.h"

namespace certstore::emulator::internal {

// When a fault is consumed.
// kIssuing: any issuing request (metadata, issuecredential);
// kIssueRequest: an issuecredential request; kIssue: a certificate issued.
enum class FaultLevel {
  kConnection,
  kRequest,
  kIssuing,
  kIssueRequest,
  kIssue
};

FaultLevel LevelOf(FaultKind kind);

// InvalidArgument naming the field when a spec is out of range.
absl::Status ValidateFault(const FaultSpec& fault);

// "tls_alert(unknown_ca)", "http_status(503)", "delay(250ms)"…
std::string DescribeFault(const FaultSpec& fault);

class EmulatorState {
 public:
  EmulatorState();

  // Queues a validated fault.
  absl::Status Inject(const FaultSpec& fault);
  void ClearFaults();
  int PendingFaults() const;
  // Uses one count of the head fault of `level`'s queue when the head is of
  // that level; nullopt otherwise. Counts it as applied.
  std::optional<FaultSpec> Take(FaultLevel level);
  // True when the head of `level`'s queue is a fault of that level (it
  // waits for a new connection).
  bool HasPending(FaultLevel level) const;
  // Connections opened before the generation changed are closed at their
  // next request (Emulator::DropKeptAliveConnections).
  int64_t Generation() const { return generation_.load(); }
  void NextGeneration() { generation_.fetch_add(1); }

  void Revoke(absl::string_view thumbprint);
  bool IsRevoked(absl::string_view thumbprint) const;
  void RecordIssued(const std::string& thumbprint);
  bool WasIssued(absl::string_view thumbprint) const;
  // Clears faults, revocations and counters (not the issued set).
  void Reset();

  // A TLS handshake is under way from accept until EndHandshake; Snapshot
  // waits for those, so a client that saw its handshake end (however it
  // ended) sees it counted.
  void BeginHandshake();
  void EndHandshake();

  // Counting. An empty thumbprint counts only the totals.
  void CountMetadataRequest();
  void CountMintRequest();
  void CountConnection();
  void CountHandshake(bool ok, const std::string& thumbprint);
  void CountRequest();
  void CountToken(const std::string& thumbprint);
  void CountInvalidClient(const std::string& thumbprint);
  // Waits up to a second for handshakes under way, then copies.
  Counters Snapshot() const;

  // An HMAC-protected token: base64url(JSON claims) "." base64url(MAC).
  std::string MintToken(const TokenClaims& claims) const;
  absl::StatusOr<TokenClaims> DecodeToken(absl::string_view token) const;

 private:
  std::atomic<int64_t> generation_{0};
  std::deque<FaultSpec>& QueueFor(FaultLevel level);  // mu_ held
  std::string Mac(absl::string_view payload) const;

  mutable std::mutex mu_;  // guards everything below but mac_key_
  mutable std::condition_variable handshakes_done_;
  int handshakes_in_flight_ = 0;
  std::deque<FaultSpec> token_faults_;
  std::deque<FaultSpec> issue_faults_;
  absl::flat_hash_set<std::string> issued_;
  absl::flat_hash_set<std::string> revoked_;
  Counters counters_;
  std::string mac_key_;  // random, set once
};

}  // namespace certstore::emulator::internal

#endif  // CERTSTORE_EMULATOR_INTERNAL_STATE_H_

// HealingCall: the token client's evict-and-retry, for any mTLS request.
#include "absl/strings/str_cat.h"
#include "certstore/tls.h"

namespace certstore {

HealingCall::HealingCall(std::shared_ptr<TlsIdentity> identity, Mint mint)
    : identity_(std::move(identity)), mint_(std::move(mint)) {}

absl::Status HealingCall::Run(const std::function<CallAttempt()>& request,
                              HealingReport* report) {
  HealingReport local;
  HealingReport& r = report != nullptr ? *report : local;
  r = HealingReport{};
  r.attempts = 1;
  CallAttempt attempt = request();
  if (attempt.status.ok()) {
    return attempt.status;
  }
  r.first_failure = ClassifyHandshakeFailure(attempt.outcome);
  bool evict = r.first_failure == FailureClass::kCredential;
  CertStore& store = identity_->store();
  const std::string& alias = identity_->alias();
  if (r.first_failure == FailureClass::kCredentialIfProbeFails) {
    // A reset or an unexplained abort: only a key that no longer signs
    // makes it the credential's fault (an unreachable token does not).
    const absl::Status probe = store.ProbeKey(*identity_->Current());
    evict = !probe.ok() && probe.code() != absl::StatusCode::kUnavailable;
  }
  if (!evict) {
    return attempt.status;
  }
  absl::StatusOr<int> evicted = store.DeleteAllForAlias(alias);
  if (!evicted.ok()) {
    return absl::Status(
        evicted.status().code(),
        absl::StrCat("alias \"", alias, "\": evicting the failed credential (",
                     attempt.status.message(),
                     "): ", evicted.status().message()));
  }
  r.evictions = 1;
  if (!mint_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "alias \"", alias, "\": credential failed (", attempt.status.message(),
        ") and evicted; no mint function to replace it"));
  }
  if (absl::Status minted = mint_(store, alias); !minted.ok()) {
    return absl::Status(
        minted.code(),
        absl::StrCat("alias \"", alias, "\": minting a new credential after (",
                     attempt.status.message(), "): ", minted.message()));
  }
  if (absl::Status refreshed = identity_->Refresh(); !refreshed.ok()) {
    return refreshed;
  }
  TlsIdentity::NotifyChanged(alias);  // other identities of the alias
  r.attempts = 2;
  return request().status;
}

}  // namespace certstore

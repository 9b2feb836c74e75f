#include "pkcs11/token_lease.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"

namespace certstore::pkcs11_internal {
namespace {

constexpr absl::string_view kLeaseMagic = "certstore-lease v1";

std::string RandomOwner() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // Unique enough within the pid and time when the RNG fails.
    return absl::StrCat(getpid(), "-", absl::ToUnixNanos(absl::Now()));
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

std::string Holder() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) {
    host[0] = '?';
  }
  return absl::StrCat(host, " pid ", getpid());
}

// The leases of `alias` on the token: handle and parsed value (an
// unreadable value parses as expired long ago).
struct SeenLease {
  CK_OBJECT_HANDLE handle;
  LeaseRecord record;
};

absl::StatusOr<std::vector<SeenLease>> FindLeases(RawToken& token,
                                                  absl::string_view alias)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(token.module().mu()) {
  Template match;
  match.AddUlong(CKA_CLASS, CKO_DATA)
      .Add(CKA_LABEL, alias)
      .Add(CKA_APPLICATION, kLeaseApplication);
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> handles,
                             token.Find(match));
  std::vector<SeenLease> leases;
  for (CK_OBJECT_HANDLE h : handles) {
    absl::StatusOr<std::string> value = token.Attribute(h, CKA_VALUE);
    if (!value.ok() && absl::IsNotFound(value.status())) {
      continue;  // released in between
    }
    absl::StatusOr<LeaseRecord> record =
        value.ok() ? DecodeLease(*value) : value.status();
    // A lease we cannot read counts as held: better wait than overlap. One
    // that stays unreadable must be removed by hand (its label is the
    // alias, its application certstore-lease).
    leases.push_back({h, record.ok()
                             ? *std::move(record)
                             : LeaseRecord{"", "an unreadable lease object",
                                           absl::InfiniteFuture()}});
  }
  return leases;
}

// Removes the leases of `alias` that `owner` holds, and — when
// `expired_too` — any that expired, through `writer`. Found again by
// owner, not by handle: the session may have been re-established since
// (handles of another epoch mean nothing). What cannot be removed now
// expires on its own.
void RemoveLeases(RawToken& writer, absl::string_view alias,
                  absl::string_view owner, bool expired_too)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer.module().mu()) {
  absl::StatusOr<std::vector<SeenLease>> leases = FindLeases(writer, alias);
  if (!leases.ok()) {
    return;
  }
  const absl::Time now = absl::Now();
  for (const SeenLease& lease : *leases) {
    if (lease.record.owner == owner ||
        (expired_too && lease.record.expires <= now)) {
      (void)writer.Destroy(lease.handle);
    }
  }
}

class TokenLeaseLock : public AliasLock {
 public:
  TokenLeaseLock(std::shared_ptr<RawToken> writer, std::string alias,
                 std::string owner)
      : writer_(std::move(writer)),
        alias_(std::move(alias)),
        owner_(std::move(owner)) {}

  ~TokenLeaseLock() override {
    absl::MutexLock lock(&writer_->module().mu());
    writer_->module().Prepare();
    RemoveLeases(*writer_, alias_, owner_, /*expired_too=*/false);
  }

 private:
  const std::shared_ptr<RawToken> writer_;
  const std::string alias_;
  const std::string owner_;
};

}  // namespace

std::string EncodeLease(const LeaseRecord& record) {
  return absl::StrCat(
      kLeaseMagic, "\nowner=", record.owner, "\nholder=", record.holder,
      "\nexpires_unix_ms=", absl::ToUnixMillis(record.expires), "\n");
}

absl::StatusOr<LeaseRecord> DecodeLease(absl::string_view value) {
  std::vector<absl::string_view> lines =
      absl::StrSplit(value, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != kLeaseMagic) {
    return absl::InvalidArgumentError("not a certstore lease");
  }
  LeaseRecord record;
  bool has_expiry = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> field =
        absl::StrSplit(lines[i], absl::MaxSplits('=', 1));
    if (field.first == "owner") {
      record.owner = std::string(field.second);
    } else if (field.first == "holder") {
      record.holder = std::string(field.second);
    } else if (field.first == "expires_unix_ms") {
      int64_t ms = 0;
      if (!absl::SimpleAtoi(field.second, &ms)) {
        return absl::InvalidArgumentError("lease expiry is not a number");
      }
      record.expires = absl::FromUnixMillis(ms);
      has_expiry = true;
    }
  }
  if (record.owner.empty() || !has_expiry) {
    return absl::InvalidArgumentError("lease without owner or expiry");
  }
  return record;
}

absl::StatusOr<std::unique_ptr<AliasLock>> AcquireTokenLease(
    std::shared_ptr<RawToken> reader, std::shared_ptr<RawToken> writer,
    absl::string_view alias, absl::Duration lease, absl::Time deadline) {
  const std::string owner = RandomOwner();
  const std::string holder = Holder();
  absl::Duration pause = absl::Milliseconds(5);
  std::string blocking_holder;
  absl::Time blocking_until;
  // The live leases of others that `reader` sees now.
  auto others_live = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                         reader->module().mu()) -> absl::StatusOr<bool> {
    CERTSTORE_ASSIGN_OR_RETURN(std::vector<SeenLease> leases,
                               FindLeases(*reader, alias));
    const absl::Time now = absl::Now();
    bool blocked = false;
    for (const SeenLease& seen : leases) {
      if (seen.record.owner != owner && seen.record.expires > now) {
        blocked = true;
        blocking_holder = seen.record.holder;
        blocking_until = seen.record.expires;
      }
    }
    return blocked;
  };
  for (;;) {
    {
      absl::MutexLock lock(&reader->module().mu());
      writer->module().mu().AssertHeld();  // one module, one mutex
      reader->module().Prepare();
      CERTSTORE_RETURN_IF_ERROR(reader->CheckToken());
      CERTSTORE_ASSIGN_OR_RETURN(bool blocked, others_live());
      if (!blocked) {
        // Leases whose holders died or overran are taken over.
        RemoveLeases(*writer, alias, owner, /*expired_too=*/true);
        Template object;
        object.AddUlong(CKA_CLASS, CKO_DATA)
            .AddBool(CKA_TOKEN, true)
            .AddBool(CKA_PRIVATE, true)
            .Add(CKA_LABEL, alias)
            .Add(CKA_APPLICATION, kLeaseApplication)
            .Add(CKA_VALUE, EncodeLease({owner, holder, absl::Now() + lease}));
        CERTSTORE_RETURN_IF_ERROR(writer->Create(object).status());
        // Looked at through the other instance, which this write does not
        // blind (see the header).
        CERTSTORE_ASSIGN_OR_RETURN(blocked, others_live());
        if (!blocked) {
          return std::unique_ptr<AliasLock>(std::make_unique<TokenLeaseLock>(
              std::move(writer), std::string(alias), owner));
        }
        RemoveLeases(*writer, alias, owner, /*expired_too=*/false);
      }
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          "the mint lease on the token is held by ", blocking_holder,
          blocking_until == absl::InfiniteFuture()
              ? ""
              : absl::StrCat(" until ",
                             absl::FormatTime(absl::RFC3339_sec, blocking_until,
                                              absl::UTCTimeZone())),
          " (gave up waiting)"));
    }
    // A random share of a growing pause, so that two takers that withdrew
    // together do not meet again.
    unsigned char r = 0;
    RAND_bytes(&r, 1);
    const absl::Duration wait =
        std::min(pause * (0.5 + r / 255.0), deadline - now);
    absl::SleepFor(wait);
    pause = std::min(pause * 2, absl::Milliseconds(200));
  }
}

}  // namespace certstore::pkcs11_internal

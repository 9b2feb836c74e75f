// A mint lock that spans hosts: a lease object on the token itself.
//
// The flock-based LockAlias excludes the processes of one host. Hosts that
// share a token through a network module (p11-kit-client.so, a network HSM)
// see none of each other's lock files, so the lease lives where they all
// look: a CKO_DATA object labelled with the alias, CKA_APPLICATION
// "certstore-lease", whose value names its owner and when it expires.
//
// PKCS#11 has no compare-and-swap, so taking it is create-then-look:
// remove expired leases; if another live lease exists, wait; otherwise
// create ours and look again — if any other live lease is there now, ours
// is withdrawn and we wait a random while. Two takers cannot both hold it:
// the one that looked second saw the first one's lease (created before the
// first looked). Both may withdraw, hence the random wait. A holder that
// dies leaves its lease until it expires; a later taker then removes it.
// Expiry is the holder's wall clock plus the lease time, so hosts' clocks
// must agree to well within it (NTP). Project-internal (Pkcs11Store).
#ifndef CERTSTORE_PKCS11_TOKEN_LEASE_H_
#define CERTSTORE_PKCS11_TOKEN_LEASE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "pkcs11/raw_token.h"

namespace certstore::pkcs11_internal {

inline constexpr absl::string_view kLeaseApplication = "certstore-lease";

// Takes the lease of `alias` on the token for `lease` (its expiry), waiting
// until `deadline` for a live one held by someone else. Leases are written
// through `writer` and looked for through `reader` (the store's own
// instance), two instances of the module where it gives one per caller:
// SoftHSM (behind p11-kit server, a process per connection) does not show
// an instance objects other processes created just before that instance's
// own last write, until someone else writes again — so the instance that
// looks must not be the one that just wrote. The returned lock removes the
// lease when destroyed. Unavailable at the deadline, naming the holder
// (host and pid) and when its lease expires.
absl::StatusOr<std::unique_ptr<AliasLock>> AcquireTokenLease(
    std::shared_ptr<RawToken> reader, std::shared_ptr<RawToken> writer,
    absl::string_view alias, absl::Duration lease, absl::Time deadline);

// What a lease object's value says.
struct LeaseRecord {
  std::string owner;   // random, hex
  std::string holder;  // "host pid", for messages
  absl::Time expires;
};
// The value written into a lease object, and its parse (InvalidArgument
// for anything else: such an object is treated as expired).
std::string EncodeLease(const LeaseRecord& record);
absl::StatusOr<LeaseRecord> DecodeLease(absl::string_view value);

}  // namespace certstore::pkcs11_internal

#endif  // CERTSTORE_PKCS11_TOKEN_LEASE_H_

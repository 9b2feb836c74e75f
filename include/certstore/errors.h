/// \file
/// Status conventions, written once for the whole project.
///
/// Every certstore call reports failure as an absl::Status whose code means
/// one thing everywhere:
///
///   NotFound            no usable entry for the alias (a miss; not a fault).
///   InvalidArgument     the caller's input is wrong (alias, PEM/DER, URI).
///   FailedPrecondition  the key is unusable or does not match its
///                       certificate: evict the binding and mint a new one.
///   Unavailable         transient (busy past the retry budget, token absent):
///                       retry later, do not evict.
///   DataLoss            stored data is corrupt (a row, a file).
///   PermissionDenied    file modes, owner, PIN.
///   DeadlineExceeded    a deadline passed; the message names the phase.
///
/// Messages read `STORE: OP("ALIAS"): CAUSE`, e.g.
/// `sqlite:/tmp/s.db: Put("app#att=0"): key does not match certificate`.
/// They never contain key bytes, PINs or tokens; certificates are named by
/// their x5t#S256 thumbprint.
#ifndef CERTSTORE_ERRORS_H_
#define CERTSTORE_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "certstore/export.h"

namespace certstore {

/// Quotes an alias for a message: C-escaped (NUL and control bytes visible),
/// and shortened with its length when long, so a 1 KiB alias stays readable.
CERTSTORE_EXPORT std::string QuoteAlias(absl::string_view alias);

/// `STORE: OP("ALIAS")`, or `STORE: OP` when the alias is empty.
CERTSTORE_EXPORT std::string OpContext(absl::string_view store,
                                       absl::string_view op,
                                       absl::string_view alias);

/// Returns `status` with `context: ` put in front of its message; OK stays OK.
CERTSTORE_EXPORT absl::Status WithContext(const absl::Status& status,
                                          absl::string_view context);

/// Drains this thread's OpenSSL error queue into a status:
/// `<what>: <reason>; <reason>…`. The one converter for OpenSSL errors.
CERTSTORE_EXPORT absl::Status OpenSslError(absl::StatusCode code,
                                           absl::string_view what);

/// Discards this thread's OpenSSL error queue (after an expected failure).
CERTSTORE_EXPORT void ClearOpenSslErrors();

}  // namespace certstore

#endif  // CERTSTORE_ERRORS_H_

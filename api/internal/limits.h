// Caps on work that bytes from outside can ask for, shared by the
// components that meet them. Sizes have their own constants where they are
// read (client/https_transport.h, api/internal/json.h, open_store.h, the
// CLI's credential files); docs/design.md ("Limits") lists them all.
// Project-internal.
#ifndef CERTSTORE_API_INTERNAL_LIMITS_H_
#define CERTSTORE_API_INTERNAL_LIMITS_H_

#include <cstdint>

namespace certstore::internal {

// The most iterations of a password-based KDF or MAC certstore runs for a
// file it reads (a PKCS#12 MAC or PBE, PBKDF2 of a store's passphrase):
// about a second of work here, and above what any tool writes by default
// (OpenSSL 2,048; Windows 2,000; the SQLite store 600,000).
inline constexpr int64_t kMaxKdfIterations = 1'000'000;

// scrypt's cost parameter N, likewise (2^20: about a GiB of memory).
inline constexpr int64_t kMaxScryptCost = int64_t{1} << 20;

}  // namespace certstore::internal

#endif  // CERTSTORE_API_INTERNAL_LIMITS_H_

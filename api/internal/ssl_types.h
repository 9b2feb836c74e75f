// RAII owners for libssl handles (openssl_types.h holds libcrypto's; this
// header is apart so that only code linking libssl includes ssl.h).
// Project-internal.
#ifndef CERTSTORE_API_INTERNAL_SSL_TYPES_H_
#define CERTSTORE_API_INTERNAL_SSL_TYPES_H_

#include <openssl/ssl.h>

#include <memory>

#include "certstore/openssl_types.h"

namespace certstore {

using UniqueSslCtx = std::unique_ptr<SSL_CTX, OpenSslDeleter<SSL_CTX_free>>;
using UniqueSsl = std::unique_ptr<SSL, OpenSslDeleter<SSL_free>>;

}  // namespace certstore

#endif  // CERTSTORE_API_INTERNAL_SSL_TYPES_H_

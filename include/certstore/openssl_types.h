/// \file
/// RAII owners for the OpenSSL handles the project passes around. Every C
/// handle is held by one of these; nothing calls a *_free by hand.
#ifndef CERTSTORE_OPENSSL_TYPES_H_
#define CERTSTORE_OPENSSL_TYPES_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace certstore {

template <auto kFree>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    kFree(p);
  }
};

using UniqueX509 = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using UniqueEvpPkey = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using UniqueEvpMdCtx =
    std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX_free>>;
using UniqueEvpPkeyCtx =
    std::unique_ptr<EVP_PKEY_CTX, OpenSslDeleter<EVP_PKEY_CTX_free>>;
using UniqueBio = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using UniqueX509Req = std::unique_ptr<X509_REQ, OpenSslDeleter<X509_REQ_free>>;
using UniqueX509Name =
    std::unique_ptr<X509_NAME, OpenSslDeleter<X509_NAME_free>>;
using UniqueX509Store =
    std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using UniqueX509StoreCtx =
    std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;

}  // namespace certstore

#endif  // CERTSTORE_OPENSSL_TYPES_H_

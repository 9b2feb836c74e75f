// TlsIdentity: the credential new handshakes present, followed as the
// store renews it. See certstore/tls.h and docs/tls.md.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "certstore/tls.h"
#include "tls/shared_snapshot.h"

namespace certstore {
namespace {

// An entry ready for SSL_use_cert_and_key: leaf, key and the rest of the
// chain, taken from the entry once (its certificates are decoded by then).
struct Credential {
  std::shared_ptr<const Entry> entry;
  X509* leaf = nullptr;
  EVP_PKEY* key = nullptr;
  STACK_OF(X509) * intermediates = nullptr;  // owned (references)

  Credential() = default;
  Credential(const Credential&) = delete;
  Credential& operator=(const Credential&) = delete;
  ~Credential() { sk_X509_pop_free(intermediates, X509_free); }
};

absl::StatusOr<std::shared_ptr<const Credential>> MakeCredential(
    std::shared_ptr<const Entry> entry) {
  absl::StatusOr<absl::Span<X509* const>> chain = entry->Chain();
  if (!chain.ok()) {
    return chain.status();
  }
  if (entry->key() == nullptr || entry->key()->evp_pkey() == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("alias \"", entry->alias(), "\": the entry has no key"));
  }
  auto credential = std::make_shared<Credential>();
  credential->leaf = (*chain)[0];
  credential->key = entry->key()->evp_pkey();
  credential->intermediates = sk_X509_new_null();
  if (credential->intermediates == nullptr) {
    return absl::ResourceExhaustedError("sk_X509_new_null");
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    X509_up_ref((*chain)[i]);
    if (sk_X509_push(credential->intermediates, (*chain)[i]) <= 0) {
      X509_free((*chain)[i]);
      return absl::ResourceExhaustedError("sk_X509_push");
    }
  }
  credential->entry = std::move(entry);
  return std::shared_ptr<const Credential>(std::move(credential));
}

// SSL slot: the credential a connection presented, kept alive with it (a
// token key's EVP_PKEY needs its entry). SSL_CTX slot: the identity, kept
// alive with the context.
void FreeCredentialRef(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<const Credential>*>(ptr);
}

void FreeIdentityRef(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<TlsIdentity>*>(ptr);
}

int CredentialIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeCredentialRef);
  return index;
}

int IdentityIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeIdentityRef);
  return index;
}

}  // namespace

struct TlsIdentity::Impl {
  Impl(std::string alias_in, TlsIdentityOptions options_in,
       std::shared_ptr<const Credential> initial)
      : alias(std::move(alias_in)),
        options(options_in),
        credential(std::move(initial)) {}

  const std::string alias;
  const TlsIdentityOptions options;
  tls_internal::SharedSnapshot<Credential> credential;
  absl::Mutex refresh_mu;  // one Refresh at a time: no older entry wins

  absl::Mutex poll_mu;
  bool notified ABSL_GUARDED_BY(poll_mu) = false;
  bool stopping ABSL_GUARDED_BY(poll_mu) = false;
  std::thread poller;
};

// Live identities, for the static NotifyChanged.
namespace {

absl::Mutex registry_mu(absl::kConstInit);
std::vector<TlsIdentity*>& Registry()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry_mu) {
  static auto* identities = new std::vector<TlsIdentity*>();
  return *identities;
}

}  // namespace

TlsIdentity::TlsIdentity(std::shared_ptr<CertStore> store, std::string alias)
    : store_(std::move(store)), alias_(std::move(alias)) {}

absl::StatusOr<std::shared_ptr<TlsIdentity>> TlsIdentity::Create(
    std::shared_ptr<CertStore> store, std::string alias,
    TlsIdentityOptions options) {
  if (store == nullptr) {
    return absl::InvalidArgumentError("TlsIdentity: no store");
  }
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return s;
  }
  const bool polls = options.poll_interval != absl::InfiniteDuration();
  if (polls && (options.poll_interval < absl::Milliseconds(10) ||
                options.poll_interval > absl::Hours(1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("TlsIdentity for alias \"", alias, "\": poll_interval ",
                     absl::FormatDuration(options.poll_interval),
                     " is outside 10ms..1h (or infinite: no polling)"));
  }
  FindOptions find;
  find.min_remaining = absl::ZeroDuration();
  absl::StatusOr<std::shared_ptr<const Entry>> entry = store->Find(alias, find);
  if (!entry.ok()) {
    return absl::Status(
        entry.status().code(),
        absl::StrCat("TlsIdentity for alias \"", alias, "\" in ", store->Name(),
                     ": ", entry.status().message()));
  }
  absl::StatusOr<std::shared_ptr<const Credential>> credential =
      MakeCredential(*std::move(entry));
  if (!credential.ok()) {
    return credential.status();
  }
  std::shared_ptr<TlsIdentity> identity(
      new TlsIdentity(std::move(store), alias));
  identity->impl_ =
      std::make_unique<Impl>(std::move(alias), options, *std::move(credential));
  Impl* impl = identity->impl_.get();
  TlsIdentity* self = identity.get();
  {
    absl::MutexLock lock(&registry_mu);
    Registry().push_back(self);
  }
  if (!polls) {
    return identity;
  }
  impl->poller = std::thread([impl, self] {
    for (;;) {
      {
        absl::MutexLock lock(&impl->poll_mu);
        impl->poll_mu.AwaitWithTimeout(
            absl::Condition(
                +[](Impl* i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                  return i->notified || i->stopping;
                },
                impl),
            impl->options.poll_interval);
        if (impl->stopping) {
          return;
        }
        impl->notified = false;
      }
      // Errors keep the credential in force; the next poll tries again.
      (void)self->Refresh();
    }
  });
  return identity;
}

TlsIdentity::~TlsIdentity() {
  if (impl_ == nullptr) {
    return;
  }
  {
    absl::MutexLock lock(&registry_mu);
    auto& all = Registry();
    all.erase(std::remove(all.begin(), all.end(), this), all.end());
  }
  {
    absl::MutexLock lock(&impl_->poll_mu);
    impl_->stopping = true;
  }
  if (impl_->poller.joinable()) {
    impl_->poller.join();
  }
}

std::shared_ptr<const Entry> TlsIdentity::Current() const {
  return impl_->credential.Load()->entry;
}

uint64_t TlsIdentity::generation() const { return impl_->credential.version(); }

absl::Status TlsIdentity::Refresh() {
  absl::MutexLock refresh(&impl_->refresh_mu);
  FindOptions find;
  find.min_remaining = absl::ZeroDuration();
  absl::StatusOr<std::shared_ptr<const Entry>> entry =
      store_->Find(alias_, find);
  if (!entry.ok()) {
    return absl::Status(entry.status().code(),
                        absl::StrCat("TlsIdentity for alias \"", alias_,
                                     "\": ", entry.status().message()));
  }
  if ((*entry)->thumbprint() == impl_->credential.Load()->entry->thumbprint()) {
    return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<const Credential>> credential =
      MakeCredential(*std::move(entry));
  if (!credential.ok()) {
    return credential.status();
  }
  impl_->credential.Store(*std::move(credential));
  return absl::OkStatus();
}

void TlsIdentity::NotifyChanged() {
  if (impl_->options.poll_interval == absl::InfiniteDuration()) {
    // No poller to wake: the caller refreshes (errors keep the credential).
    (void)Refresh();
    return;
  }
  absl::MutexLock lock(&impl_->poll_mu);
  impl_->notified = true;
}

void TlsIdentity::NotifyChanged(absl::string_view alias) {
  absl::MutexLock lock(&registry_mu);
  for (TlsIdentity* identity : Registry()) {
    if (identity->alias_ == alias) {
      identity->NotifyChanged();
    }
  }
}

// The handshake path: the thread's copy of the current credential, handed
// to OpenSSL (which takes references), and kept alive with the connection.
struct TlsIdentityAccess {
  static int CertCallback(SSL* ssl, void* arg) {
    auto* identity = static_cast<TlsIdentity*>(arg);
    // One reference per connection (a counter shared by the threads, but
    // no lock); the lookup itself touches only this thread's copy.
    std::shared_ptr<const Credential> credential =
        identity->impl_->credential.Read();
    if (SSL_use_cert_and_key(ssl, credential->leaf, credential->key,
                             credential->intermediates, 1) != 1) {
      return 0;  // the handshake fails with internal_error
    }
    delete static_cast<std::shared_ptr<const Credential>*>(
        SSL_get_ex_data(ssl, CredentialIndex()));
    SSL_set_ex_data(
        ssl, CredentialIndex(),
        new std::shared_ptr<const Credential>(std::move(credential)));
    return 1;
  }
};

absl::Status TlsIdentity::Install(SSL_CTX* ctx) {
  if (ctx == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TlsIdentity for alias \"", alias_, "\": Install on a null SSL_CTX"));
  }
  CredentialIndex();  // allocate the slot before any connection runs
  delete static_cast<std::shared_ptr<TlsIdentity>*>(
      SSL_CTX_get_ex_data(ctx, IdentityIndex()));
  SSL_CTX_set_ex_data(ctx, IdentityIndex(),
                      new std::shared_ptr<TlsIdentity>(shared_from_this()));
  SSL_CTX_set_cert_cb(ctx, TlsIdentityAccess::CertCallback, this);
  TraceHandshakes(ctx);
  return absl::OkStatus();
}

}  // namespace certstore

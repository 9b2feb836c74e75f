#include "certstore/entry.h"

#include <openssl/rand.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "api/internal/der_walk.h"
#include "certstore/backend_author.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"

namespace certstore {
namespace {

// Domain separation: a probe signature can never be replayed as a signature
// over anything else this key signs (CSRs, TLS transcripts).
// The NUL is part of the prefix, so no suffix can extend the domain string.
constexpr char kProbeDomainBytes[] = "certstore ProbeKey v1";
constexpr absl::string_view kProbeDomain(kProbeDomainBytes,
                                         sizeof(kProbeDomainBytes));
constexpr size_t kProbeNonceBytes = 32;

absl::Status VerifyWithLeaf(X509* leaf, absl::string_view data,
                            absl::string_view signature) {
  EVP_PKEY* pub = X509_get0_pubkey(leaf);
  UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
  if (pub == nullptr || ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pub) !=
          1) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition,
                        "cannot verify with the certificate's public key");
  }
  int ok = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
      signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
      data.size());
  if (ok != 1) {
    ClearOpenSslErrors();
    return absl::FailedPreconditionError(
        "signature does not verify with the certificate's public key (the key "
        "is not the certificate's key)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateAlias(absl::string_view alias) {
  if (alias.empty()) {
    return absl::InvalidArgumentError("alias is empty");
  }
  if (alias.size() > kMaxAliasBytes) {
    return absl::InvalidArgumentError(absl::StrCat("alias ", QuoteAlias(alias),
                                                   " is longer than ",
                                                   kMaxAliasBytes, " bytes"));
  }
  return absl::OkStatus();
}

Entry::Entry(EntryParts parts, absl::Time not_before, absl::Time not_after,
             std::string thumbprint)
    : alias_(std::move(parts.alias)),
      chain_der_(std::move(parts.chain_der)),
      key_(std::move(parts.key)),
      metadata_(std::move(parts.metadata)),
      created_at_(parts.created_at),
      not_before_(not_before),
      not_after_(not_after),
      thumbprint_(std::move(thumbprint)) {}

absl::StatusOr<std::shared_ptr<const Entry>> Entry::Create(EntryParts parts) {
  CERTSTORE_RETURN_IF_ERROR(ValidateAlias(parts.alias));
  const std::string context = absl::StrCat("entry ", QuoteAlias(parts.alias));
  if (parts.chain_der.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": certificate chain is empty"));
  }
  if (parts.key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": no key"));
  }
  std::string thumbprint = Thumbprint(parts.chain_der[0]);
  std::shared_ptr<Entry> entry(new Entry(std::move(parts), absl::Time(),
                                         absl::Time(), std::move(thumbprint)));
  CERTSTORE_RETURN_IF_ERROR(WithContext(entry->DecodeChain(), context));
  entry->not_before_ = NotBefore(entry->cert_ptrs_[0]);
  entry->not_after_ = NotAfter(entry->cert_ptrs_[0]);
  return std::shared_ptr<const Entry>(std::move(entry));
}

absl::StatusOr<std::shared_ptr<const Entry>> RestoreEntry(EntryParts parts,
                                                          LeafFacts facts) {
  CERTSTORE_RETURN_IF_ERROR(ValidateAlias(parts.alias));
  if (parts.chain_der.empty() || parts.key == nullptr) {
    return absl::DataLossError(
        absl::StrCat("entry ", QuoteAlias(parts.alias),
                     ": stored entry has no certificate or no key"));
  }
  if (Thumbprint(parts.chain_der[0]) != facts.thumbprint) {
    return absl::DataLossError(absl::StrCat(
        "entry ", QuoteAlias(parts.alias),
        ": stored certificate does not match its recorded thumbprint ",
        facts.thumbprint));
  }
  return std::shared_ptr<const Entry>(
      new Entry(std::move(parts), facts.not_before, facts.not_after,
                std::move(facts.thumbprint)));
}

absl::Status Entry::DecodeChain() const {
  absl::call_once(decode_once_, [this] {
    for (size_t i = 0; i < chain_der_.size(); ++i) {
      auto cert = DecodeCertificate(
          chain_der_[i], i == 0 ? std::string("leaf certificate")
                                : absl::StrCat("chain certificate ", i));
      if (!cert.ok()) {
        decode_status_ = cert.status();
        certs_.clear();
        cert_ptrs_.clear();
        return;
      }
      cert_ptrs_.push_back(cert->get());
      certs_.push_back(*std::move(cert));
    }
  });
  return decode_status_;
}

absl::StatusOr<absl::Span<X509* const>> Entry::Chain() const {
  absl::Status status = DecodeChain();
  if (!status.ok()) {
    // Entries from Create never get here; a restored one holds stored bytes.
    return absl::DataLossError(std::string(status.message()));
  }
  return absl::Span<X509* const>(cert_ptrs_);
}

absl::StatusOr<std::string> Entry::LeafPublicKeyDer() const {
  absl::call_once(leaf_spki_once_, [this] {
    absl::StatusOr<internal::LeafDer> leaf =
        internal::ReadLeafDer(chain_der_[0]);
    leaf_public_key_der_ =
        leaf.ok() ? absl::StatusOr<std::string>(std::move(leaf->public_key_der))
                  : absl::DataLossError(std::string(leaf.status().message()));
  });
  return leaf_public_key_der_;
}

absl::Status Entry::CheckWellFormed() const {
  for (size_t i = 0; i < chain_der_.size(); ++i) {
    absl::Status shape = internal::CheckCertificateShape(chain_der_[i]);
    if (!shape.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(i == 0 ? std::string("leaf certificate")
                              : absl::StrCat("chain certificate ", i),
                       " is not a DER certificate: ", shape.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Entry::KeyMatchesLeaf() const {
  absl::call_once(key_match_once_, [this] {
    absl::StatusOr<std::string> leaf_spki = LeafPublicKeyDer();
    if (!leaf_spki.ok()) {
      key_match_ = leaf_spki.status();
    } else if (*leaf_spki != key_->public_key_der()) {
      key_match_ = absl::FailedPreconditionError(absl::StrCat(
          "key does not match certificate (thumbprint ", thumbprint_, ")"));
    }
  });
  return key_match_;
}

absl::Status CheckKeyMatchesLeaf(const Entry& entry) {
  return entry.KeyMatchesLeaf();
}

absl::Status CheckEntryForPut(const Entry* entry, absl::string_view store,
                              ChainCheck chain_check) {
  if (entry == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(OpContext(store, "Put", ""), ": null entry"));
  }
  const absl::Status chain = chain_check == ChainCheck::kShape
                                 ? entry->CheckWellFormed()
                                 : entry->Chain().status();
  if (!chain.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        OpContext(store, "Put", entry->alias()), ": ", chain.message()));
  }
  const absl::Status match = CheckKeyMatchesLeaf(*entry);
  return match.ok()
             ? match
             : WithContext(match, OpContext(store, "Put", entry->alias()));
}

absl::Status ProbeEntryKey(const Entry& entry) {
  CERTSTORE_ASSIGN_OR_RETURN(absl::Span<X509* const> chain, entry.Chain());
  std::string challenge(kProbeDomain);
  challenge.resize(kProbeDomain.size() + kProbeNonceBytes);
  if (RAND_bytes(
          reinterpret_cast<unsigned char*>(&challenge[kProbeDomain.size()]),
          kProbeNonceBytes) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "RAND_bytes");
  }
  absl::StatusOr<std::string> signature = entry.key()->Sign(challenge);
  if (!signature.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("key (", entry.key()->location(),
                     ") cannot sign: ", signature.status().message(),
                     " (thumbprint ", entry.thumbprint(), ")"));
  }
  return WithContext(VerifyWithLeaf(chain[0], challenge, *signature),
                     absl::StrCat("thumbprint ", entry.thumbprint()));
}

bool IsServable(absl::Time not_before, absl::Time not_after, absl::Time now,
                const FindOptions& options) {
  return not_before <= now && not_after - now >= options.min_remaining;
}

absl::StatusOr<int> CertStore::RemoveBroken(
    absl::string_view alias, const RemoveBrokenOptions& /*options*/) {
  if (absl::Status s = ValidateAlias(alias); !s.ok()) {
    return WithContext(s, OpContext(Name(), "RemoveBroken", ""));
  }
  return 0;
}

void SortListing(std::vector<EntryInfo>& infos) {
  std::stable_sort(infos.begin(), infos.end(),
                   [](const EntryInfo& a, const EntryInfo& b) {
                     if (a.alias != b.alias) {
                       return a.alias < b.alias;
                     }
                     return a.not_after > b.not_after;
                   });
}

EntryInfo InfoOf(const Entry& entry, absl::string_view store) {
  EntryInfo info;
  info.alias = entry.alias();
  info.thumbprint = entry.thumbprint();
  info.not_before = entry.not_before();
  info.not_after = entry.not_after();
  info.created_at = entry.created_at();
  info.chain_length = entry.chain_der().size();
  info.key_algorithm = entry.key()->algorithm();
  info.key_location = entry.key()->location();
  info.store = std::string(store);
  return info;
}

}  // namespace certstore

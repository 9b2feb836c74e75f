// PeerPolicy: who may connect, checked on every handshake with one
// consistent snapshot of anchors, CRLs and allowlist. See certstore/tls.h.
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "certstore/chain.h"
#include "certstore/openssl_types.h"
#include "certstore/tls.h"
#include "tls/shared_snapshot.h"

namespace certstore {
namespace {

// The most bytes read from one trust bundle or CRL file (Debian's whole
// ca-certificates bundle is about 0.2 MiB).
constexpr size_t kMaxTrustFileBytes = 8 << 20;

using UniqueCrl = std::unique_ptr<X509_CRL, OpenSslDeleter<X509_CRL_free>>;

struct Snapshot {
  STACK_OF(X509) * anchors = nullptr;   // owned
  STACK_OF(X509_CRL) * crls = nullptr;  // owned; null: no CRL checks
  RequiredUsage usage = RequiredUsage::kAny;
  absl::flat_hash_set<std::string> thumbprints;
  absl::flat_hash_set<std::string> dns_names;  // lower case
  absl::flat_hash_set<std::string> uris;
  std::vector<std::string> uri_prefixes;  // "spiffe://td/" from ".../*"
  absl::flat_hash_set<std::string> common_names;
  int max_chain_length = 5;
  std::function<absl::Status(const PeerIdentity&)> custom_check;

  Snapshot() = default;
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  ~Snapshot() {
    sk_X509_pop_free(anchors, X509_free);
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
  }

  bool HasAllowlist() const {
    return !thumbprints.empty() || !dns_names.empty() || !uris.empty() ||
           !uri_prefixes.empty() || !common_names.empty();
  }
};

absl::StatusOr<std::string> ReadCapped(const std::string& path,
                                       absl::string_view what) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", path, "\": cannot open: ", strerror(errno)));
  }
  std::string data;
  char buf[65536];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
    if (data.size() + n > kMaxTrustFileBytes) {
      fclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat(what, " \"", path, "\": larger than ",
                       kMaxTrustFileBytes, " bytes (refused)"));
    }
    data.append(buf, n);
  }
  const bool failed = ferror(f) != 0;
  fclose(f);
  if (failed) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", path, "\": read error"));
  }
  return data;
}

// Every certificate of PEM text, or the one certificate of DER bytes;
// `what` names the source in errors.
absl::Status AddCertificateBytes(std::string data, const std::string& what,
                                 STACK_OF(X509) * out) {
  std::vector<std::string> ders;
  if (absl::StrContains(data, "-----BEGIN")) {
    absl::StatusOr<std::vector<std::string>> pem = PemToDerChain(data);
    if (!pem.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": ", pem.status().message()));
    }
    ders = *std::move(pem);
  } else {
    ders.push_back(std::move(data));
  }
  for (size_t i = 0; i < ders.size(); ++i) {
    absl::StatusOr<UniqueX509> cert =
        DecodeCertificate(ders[i], absl::StrCat(what, " certificate ", i));
    if (!cert.ok()) {
      return cert.status();
    }
    if (sk_X509_push(out, cert->get()) <= 0) {
      return absl::ResourceExhaustedError("sk_X509_push");
    }
    cert->release();
  }
  return absl::OkStatus();
}

absl::Status AddCertificates(const std::string& path, STACK_OF(X509) * out) {
  absl::StatusOr<std::string> data = ReadCapped(path, "trust bundle");
  if (!data.ok()) {
    return data.status();
  }
  return AddCertificateBytes(*std::move(data),
                             absl::StrCat("trust bundle \"", path, "\""), out);
}

absl::Status AddDirectory(const std::string& dir, STACK_OF(X509) * out) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trust directory \"", dir, "\": cannot open: ", strerror(errno)));
  }
  std::vector<std::string> names;
  while (const dirent* e = readdir(d)) {
    const absl::string_view name = e->d_name;
    if (absl::EndsWith(name, ".pem") || absl::EndsWith(name, ".crt") ||
        absl::EndsWith(name, ".cer")) {
      names.emplace_back(name);
    }
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      continue;
    }
    if (absl::Status s = AddCertificates(path, out); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status AddCrls(const std::string& path, STACK_OF(X509_CRL) * out) {
  absl::StatusOr<std::string> data = ReadCapped(path, "CRL file");
  if (!data.ok()) {
    return data.status();
  }
  UniqueBio bio(BIO_new_mem_buf(data->data(), static_cast<int>(data->size())));
  int added = 0;
  if (absl::StrContains(*data, "-----BEGIN")) {
    while (X509_CRL* crl =
               PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
      sk_X509_CRL_push(out, crl);
      ++added;
    }
  } else if (X509_CRL* crl = d2i_X509_CRL_bio(bio.get(), nullptr)) {
    sk_X509_CRL_push(out, crl);
    ++added;
  }
  ERR_clear_error();
  if (added == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CRL file \"", path, "\": no CRL could be read"));
  }
  return absl::OkStatus();
}

bool IsThumbprint(absl::string_view t) {
  return t.size() == 43 && std::all_of(t.begin(), t.end(), [](char c) {
           return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                  c == '-' || c == '_';
         });
}

absl::StatusOr<std::shared_ptr<const Snapshot>> Load(
    const PeerPolicyConfig& config) {
  auto snap = std::make_shared<Snapshot>();
  snap->anchors = sk_X509_new_null();
  if (snap->anchors == nullptr) {
    return absl::ResourceExhaustedError("sk_X509_new_null");
  }
  for (const std::string& file : config.trust_bundle_files) {
    if (absl::Status s = AddCertificates(file, snap->anchors); !s.ok()) {
      return s;
    }
  }
  for (const std::string& dir : config.trust_directories) {
    if (absl::Status s = AddDirectory(dir, snap->anchors); !s.ok()) {
      return s;
    }
  }
  if (!config.trust_anchors_pem.empty()) {
    if (absl::Status s = AddCertificateBytes(
            config.trust_anchors_pem, "trust_anchors_pem", snap->anchors);
        !s.ok()) {
      return s;
    }
  }
  if (!config.trust_aliases.empty() && config.trust_store == nullptr) {
    return absl::InvalidArgumentError(
        "PeerPolicy: trust_aliases given without a trust_store");
  }
  for (const std::string& alias : config.trust_aliases) {
    FindOptions find;
    find.min_remaining = absl::ZeroDuration();
    absl::StatusOr<std::shared_ptr<const Entry>> entry =
        config.trust_store->Find(alias, find);
    absl::StatusOr<absl::Span<X509* const>> chain =
        entry.ok() ? (*entry)->Chain() : entry.status();
    if (!chain.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trust anchor alias \"", alias, "\" in ", config.trust_store->Name(),
          ": ", chain.status().message()));
    }
    X509* top = chain->back();
    X509_up_ref(top);
    sk_X509_push(snap->anchors, top);
  }
  if (sk_X509_num(snap->anchors) == 0) {
    return absl::InvalidArgumentError(
        "PeerPolicy: no trust anchor (give trust_bundle_files, "
        "trust_directories, trust_anchors_pem or trust_aliases)");
  }
  if (!config.crl_files.empty()) {
    snap->crls = sk_X509_CRL_new_null();
    for (const std::string& file : config.crl_files) {
      if (absl::Status s = AddCrls(file, snap->crls); !s.ok()) {
        return s;
      }
    }
  }
  for (const std::string& t : config.allowed_thumbprints) {
    if (!IsThumbprint(t)) {
      return absl::InvalidArgumentError(
          absl::StrCat("PeerPolicy: allowed thumbprint \"", t,
                       "\" is not an x5t#S256 (43 base64url characters)"));
    }
    snap->thumbprints.insert(t);
  }
  for (const std::string& name : config.allowed_dns_names) {
    if (name.empty()) {
      return absl::InvalidArgumentError("PeerPolicy: empty allowed DNS name");
    }
    snap->dns_names.insert(absl::AsciiStrToLower(name));
  }
  for (const std::string& uri : config.allowed_uris) {
    if (uri.empty() || uri.find(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("PeerPolicy: allowed URI \"", uri, "\" is not a URI"));
    }
    if (absl::EndsWith(uri, "/*")) {
      snap->uri_prefixes.push_back(uri.substr(0, uri.size() - 1));
    } else {
      snap->uris.insert(uri);
    }
  }
  for (const std::string& cn : config.allowed_common_names) {
    snap->common_names.insert(cn);
  }
  if (config.max_chain_length < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("PeerPolicy: max_chain_length ", config.max_chain_length,
                     " is below 1"));
  }
  snap->usage = config.required_usage;
  snap->max_chain_length = config.max_chain_length;
  snap->custom_check = config.custom_check;
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

PeerIdentity IdentityOf(X509* leaf) {
  PeerIdentity id;
  unsigned char* der = nullptr;
  const int len = i2d_X509(leaf, &der);
  if (len > 0) {
    id.thumbprint = Thumbprint(absl::string_view(reinterpret_cast<char*>(der),
                                                 static_cast<size_t>(len)));
    OPENSSL_free(der);
  }
  id.subject = SubjectName(leaf);
  const X509_NAME* subject = X509_get_subject_name(leaf);
  const int cn_at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (cn_at >= 0) {
    const ASN1_STRING* cn =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, cn_at));
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, cn);
    if (n >= 0) {
      id.common_name.assign(reinterpret_cast<char*>(utf8),
                            static_cast<size_t>(n));
      OPENSSL_free(utf8);
    }
  }
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_DNS && name->type != GEN_URI) {
      continue;
    }
    const ASN1_IA5STRING* s = name->d.ia5;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<size_t>(ASN1_STRING_length(s)));
    if (name->type == GEN_DNS) {
      id.dns_names.push_back(std::move(value));
    } else {
      if (id.spiffe_id.empty() && absl::StartsWith(value, "spiffe://")) {
        id.spiffe_id = value;
      }
      id.uris.push_back(std::move(value));
    }
  }
  GENERAL_NAMES_free(names);
  id.not_before = NotBefore(leaf);
  id.not_after = NotAfter(leaf);
  return id;
}

bool Allowed(const Snapshot& snap, const PeerIdentity& peer) {
  if (!snap.HasAllowlist()) {
    return true;
  }
  if (snap.thumbprints.contains(peer.thumbprint) ||
      snap.common_names.contains(peer.common_name)) {
    return true;
  }
  for (const std::string& dns : peer.dns_names) {
    if (snap.dns_names.contains(absl::AsciiStrToLower(dns))) {
      return true;
    }
  }
  for (const std::string& uri : peer.uris) {
    if (snap.uris.contains(uri)) {
      return true;
    }
    for (const std::string& prefix : snap.uri_prefixes) {
      if (absl::StartsWith(uri, prefix) && uri.size() > prefix.size()) {
        return true;
      }
    }
  }
  return false;
}

// What a verification error means, and the alert OpenSSL 3.0 sends for it
// (its ssl_x509err2alert table).
void Explain(int error, PeerVerdict* verdict) {
  switch (error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      verdict->refusal = PeerRefusal::kExpired;
      verdict->alert = tls_alert::kCertificateExpired;
      return;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      verdict->refusal = PeerRefusal::kNotYetValid;
      verdict->alert = tls_alert::kBadCertificate;
      return;
    case X509_V_ERR_CERT_REVOKED:
      verdict->refusal = PeerRefusal::kRevoked;
      verdict->alert = tls_alert::kCertificateRevoked;
      return;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
      verdict->refusal = PeerRefusal::kNoCrl;
      verdict->alert = tls_alert::kUnknownCa;
      return;
    case X509_V_ERR_INVALID_PURPOSE:
      verdict->refusal = PeerRefusal::kWrongUsage;
      verdict->alert = tls_alert::kUnsupportedCertificate;
      return;
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
      verdict->refusal = PeerRefusal::kChainTooLong;
      verdict->alert = tls_alert::kUnknownCa;
      return;
    case X509_V_ERR_CERT_REJECTED:
      verdict->alert = tls_alert::kBadCertificate;  // refusal set by caller
      return;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
      verdict->refusal = PeerRefusal::kUntrusted;
      verdict->alert = tls_alert::kUnknownCa;
      return;
    case X509_V_ERR_CERT_UNTRUSTED:
      verdict->refusal = PeerRefusal::kUntrusted;
      verdict->alert = tls_alert::kBadCertificate;
      return;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      verdict->refusal = PeerRefusal::kUntrusted;
      verdict->alert = tls_alert::kDecryptError;
      return;
    case X509_V_ERR_CRL_HAS_EXPIRED:
      verdict->refusal = PeerRefusal::kNoCrl;
      verdict->alert = tls_alert::kCertificateExpired;
      return;
    default:
      verdict->refusal = PeerRefusal::kOther;
      verdict->alert = tls_alert::kCertificateUnknown;
      return;
  }
}

// Verifies the chain in `ctx` (set up by OpenSSL for a handshake, or by
// Check) against `snap`; leaves the error in `ctx` for the alert.
PeerVerdict Verify(X509_STORE_CTX* ctx, const Snapshot& snap) {
  PeerVerdict verdict;
  X509_STORE_CTX_set0_trusted_stack(ctx, snap.anchors);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN;
  if (snap.crls != nullptr) {
    X509_STORE_CTX_set0_crls(ctx, snap.crls);
    flags |= X509_V_FLAG_CRL_CHECK;
  }
  X509_VERIFY_PARAM_set_flags(param, flags);
  X509* leaf = X509_STORE_CTX_get0_cert(ctx);
  if (leaf == nullptr) {
    verdict.refusal = PeerRefusal::kNoCertificate;
    verdict.reason = "the peer sent no certificate";
    X509_STORE_CTX_set_error(ctx, X509_V_ERR_UNSPECIFIED);
    verdict.alert = tls_alert::kCertificateUnknown;
    return verdict;
  }
  verdict.peer = IdentityOf(leaf);
  auto refuse = [&](int error, PeerRefusal refusal, std::string reason) {
    X509_STORE_CTX_set_error(ctx, error);
    Explain(error, &verdict);
    if (refusal != PeerRefusal::kNone) {
      verdict.refusal = refusal;
    }
    verdict.reason = std::move(reason);
    return verdict;
  };
  ERR_clear_error();
  if (X509_verify_cert(ctx) <= 0) {
    const int error = X509_STORE_CTX_get_error(ctx);
    std::string reason = X509_verify_cert_error_string(error);
    if (X509* at = X509_STORE_CTX_get_current_cert(ctx); at != nullptr) {
      absl::StrAppend(&reason, " (at ", SubjectName(at), ", depth ",
                      X509_STORE_CTX_get_error_depth(ctx), ")");
    }
    ERR_clear_error();
    return refuse(error, PeerRefusal::kNone, std::move(reason));
  }
  const int length = sk_X509_num(X509_STORE_CTX_get0_chain(ctx));
  if (length > snap.max_chain_length) {
    return refuse(
        X509_V_ERR_CERT_CHAIN_TOO_LONG, PeerRefusal::kNone,
        absl::StrCat("the chain has ", length, " certificates; at most ",
                     snap.max_chain_length, " are allowed"));
  }
  if (snap.usage != RequiredUsage::kAny) {
    const bool client = snap.usage == RequiredUsage::kClientAuth;
    const bool has_eku = (X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) != 0;
    const uint32_t eku = X509_get_extended_key_usage(leaf);
    if (!has_eku || (eku & (client ? XKU_SSL_CLIENT : XKU_SSL_SERVER)) == 0) {
      return refuse(X509_V_ERR_INVALID_PURPOSE, PeerRefusal::kNone,
                    absl::StrCat("the certificate's extended key usage lacks ",
                                 client ? "clientAuth" : "serverAuth"));
    }
  }
  if (!Allowed(snap, verdict.peer)) {
    return refuse(
        X509_V_ERR_CERT_REJECTED, PeerRefusal::kNotAllowed,
        absl::StrCat("peer ", verdict.peer.thumbprint, " (",
                     verdict.peer.subject, ") is not an allowed identity"));
  }
  if (snap.custom_check) {
    if (absl::Status s = snap.custom_check(verdict.peer); !s.ok()) {
      return refuse(X509_V_ERR_CERT_REJECTED, PeerRefusal::kCustomCheck,
                    std::string(s.message()));
    }
  }
  verdict.allowed = true;
  return verdict;
}

void FreeVerdict(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<PeerVerdict*>(ptr);
}

void FreePolicyRef(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<PeerPolicy>*>(ptr);
}

int VerdictIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeVerdict);
  return index;
}

int PolicyIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreePolicyRef);
  return index;
}

}  // namespace

absl::string_view PeerRefusalName(PeerRefusal refusal) {
  switch (refusal) {
    case PeerRefusal::kNone:
      return "none";
    case PeerRefusal::kNoCertificate:
      return "no certificate";
    case PeerRefusal::kUntrusted:
      return "untrusted";
    case PeerRefusal::kExpired:
      return "expired";
    case PeerRefusal::kNotYetValid:
      return "not yet valid";
    case PeerRefusal::kRevoked:
      return "revoked";
    case PeerRefusal::kNoCrl:
      return "no CRL";
    case PeerRefusal::kWrongUsage:
      return "wrong key usage";
    case PeerRefusal::kChainTooLong:
      return "chain too long";
    case PeerRefusal::kNotAllowed:
      return "not allowed";
    case PeerRefusal::kCustomCheck:
      return "custom check";
    case PeerRefusal::kOther:
      return "other";
  }
  return "unknown";
}

struct PeerPolicy::Impl {
  Impl(PeerPolicyConfig config_in, std::shared_ptr<const Snapshot> snap)
      : config(std::move(config_in)), snapshot(std::move(snap)) {}
  absl::Mutex config_mu;
  PeerPolicyConfig config ABSL_GUARDED_BY(config_mu);
  tls_internal::SharedSnapshot<Snapshot> snapshot;
};

struct PeerPolicyAccess {
  static int VerifyCallback(X509_STORE_CTX* ctx, void* arg) {
    auto* impl = static_cast<PeerPolicy::Impl*>(arg);
    auto* ssl = static_cast<SSL*>(
        X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
    const std::shared_ptr<const Snapshot>& snap = impl->snapshot.Read();
    auto* verdict = new PeerVerdict(Verify(ctx, *snap));
    const bool allowed = verdict->allowed;
    if (ssl != nullptr) {
      delete static_cast<PeerVerdict*>(SSL_get_ex_data(ssl, VerdictIndex()));
      SSL_set_ex_data(ssl, VerdictIndex(), verdict);
    } else {
      delete verdict;
    }
    return allowed ? 1 : 0;
  }
};

PeerPolicy::PeerPolicy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerPolicy::~PeerPolicy() = default;

absl::StatusOr<std::shared_ptr<PeerPolicy>> PeerPolicy::Create(
    PeerPolicyConfig config) {
  absl::StatusOr<std::shared_ptr<const Snapshot>> snap = Load(config);
  if (!snap.ok()) {
    return snap.status();
  }
  return std::shared_ptr<PeerPolicy>(new PeerPolicy(
      std::make_unique<Impl>(std::move(config), *std::move(snap))));
}

absl::Status PeerPolicy::Reload() {
  absl::MutexLock lock(&impl_->config_mu);
  absl::StatusOr<std::shared_ptr<const Snapshot>> snap = Load(impl_->config);
  if (!snap.ok()) {
    return snap.status();
  }
  impl_->snapshot.Store(*std::move(snap));
  return absl::OkStatus();
}

absl::Status PeerPolicy::Reload(PeerPolicyConfig config) {
  absl::MutexLock lock(&impl_->config_mu);
  absl::StatusOr<std::shared_ptr<const Snapshot>> snap = Load(config);
  if (!snap.ok()) {
    return snap.status();
  }
  impl_->config = std::move(config);
  impl_->snapshot.Store(*std::move(snap));
  return absl::OkStatus();
}

absl::Status PeerPolicy::Install(SSL_CTX* ctx) {
  if (ctx == nullptr) {
    return absl::InvalidArgumentError("PeerPolicy: Install on a null SSL_CTX");
  }
  VerdictIndex();  // allocate the slot before any connection runs
  delete static_cast<std::shared_ptr<PeerPolicy>*>(
      SSL_CTX_get_ex_data(ctx, PolicyIndex()));
  SSL_CTX_set_ex_data(ctx, PolicyIndex(),
                      new std::shared_ptr<PeerPolicy>(shared_from_this()));
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     SSL_CTX_get_verify_callback(ctx));
  SSL_CTX_set_cert_verify_callback(ctx, PeerPolicyAccess::VerifyCallback,
                                   impl_.get());
  return absl::OkStatus();
}

PeerVerdict PeerPolicy::Check(const std::vector<X509*>& chain,
                              bool peer_is_client, absl::Time now) const {
  PeerVerdict verdict;
  if (chain.empty() || chain[0] == nullptr) {
    verdict.refusal = PeerRefusal::kNoCertificate;
    verdict.reason = "no certificate";
    verdict.alert = tls_alert::kCertificateUnknown;
    return verdict;
  }
  UniqueX509Store store(X509_STORE_new());
  UniqueX509StoreCtx ctx(X509_STORE_CTX_new());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) {
    sk_X509_push(untrusted, chain[i]);
  }
  if (store == nullptr || ctx == nullptr || untrusted == nullptr ||
      X509_STORE_CTX_init(ctx.get(), store.get(), chain[0], untrusted) != 1) {
    sk_X509_free(untrusted);
    verdict.refusal = PeerRefusal::kOther;
    verdict.reason = "could not set up the verification";
    return verdict;
  }
  X509_STORE_CTX_set_default(ctx.get(),
                             peer_is_client ? "ssl_client" : "ssl_server");
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()),
                             absl::ToTimeT(now));
  verdict = Verify(ctx.get(), *impl_->snapshot.Read());
  sk_X509_free(untrusted);
  return verdict;
}

absl::optional<PeerVerdict> PeerPolicy::VerdictOf(const SSL* ssl) {
  const auto* verdict =
      static_cast<const PeerVerdict*>(SSL_get_ex_data(ssl, VerdictIndex()));
  if (verdict == nullptr) {
    return absl::nullopt;
  }
  return *verdict;
}

}  // namespace certstore

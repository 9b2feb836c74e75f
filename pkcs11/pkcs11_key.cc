#include "pkcs11/pkcs11_key.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "pkcs11/pkcs11_options.h"
#include "pkcs11/token_objects.h"

namespace certstore::pkcs11_internal {
namespace {

constexpr size_t kIdBytes = 16;
// DER of the prime256v1 OID, CKA_EC_PARAMS for P-256.
constexpr char kP256Params[] = "\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";
constexpr char kRsaExponent[] = "\x01\x00\x01";

absl::StatusOr<std::string> RandomId() {
  std::string id(kIdBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(id.data()), kIdBytes) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "RAND_bytes");
  }
  return id;
}

void AddCommon(Template& t, absl::string_view id, absl::string_view alias) {
  t.AddBool(CKA_TOKEN, true).Add(CKA_ID, id).Add(CKA_LABEL, alias);
}

bool SameId(const PKCS11_KEY& key, absl::string_view id) {
  return key.isPrivate && key.id != nullptr && key.id_len == id.size() &&
         std::memcmp(key.id, id.data(), id.size()) == 0;
}

absl::StatusOr<std::string> EncodePublic(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition,
                        "libp11 key has no usable public part");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

Pkcs11Key::Pkcs11Key(std::shared_ptr<RawToken> token, std::string alias,
                     TokenKeyRef ref, uint64_t epoch)
    : token_(std::move(token)),
      alias_(std::move(alias)),
      ref_(std::move(ref)),
      location_(KeyUri(token_->label(), ref_.id)),
      private_handle_(ref_.private_handle),
      epoch_(epoch) {}

Pkcs11Key::~Pkcs11Key() = default;

absl::StatusOr<std::string> Pkcs11Key::ExportPkcs8Der() const {
  return absl::FailedPreconditionError(
      absl::StrCat("key ", location_, " cannot leave its token"));
}

absl::Status Pkcs11Key::Refind() const {
  if (epoch_ == token_->module().epoch()) {
    return absl::OkStatus();
  }
  // An unreachable token (a network module whose server is down) says
  // nothing about the key: Unavailable, retry, do not evict.
  CERTSTORE_RETURN_IF_ERROR(token_->CheckToken());
  CERTSTORE_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle,
                             FindById(*token_, CKO_PRIVATE_KEY, ref_.id));
  if (handle == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("key ", location_, " is no longer on the token"));
  }
  pkey_.reset();
  generation_.reset();
  private_handle_ = handle;
  epoch_ = token_->module().epoch();
  return absl::OkStatus();
}

absl::Status Pkcs11Key::CheckOnToken() const {
  CERTSTORE_RETURN_IF_ERROR(Refind());
  absl::StatusOr<std::string> id = token_->Attribute(private_handle_, CKA_ID);
  if (id.ok() && *id == ref_.id) {
    return absl::OkStatus();
  }
  if (!id.ok() && id.status().code() == absl::StatusCode::kNotFound) {
    // A handle can die while its object lives: SoftHSM forgets every
    // handle of a slot once all its sessions are closed. A key held for a
    // while (a spare, an identity's credential) is found again by CKA_ID.
    CERTSTORE_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE handle,
                               FindById(*token_, CKO_PRIVATE_KEY, ref_.id));
    if (handle != 0) {
      private_handle_ = handle;
      return absl::OkStatus();
    }
  }
  if (!id.ok() && id.status().code() == absl::StatusCode::kUnavailable) {
    return id.status();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("key ", location_, " is no longer on the token"));
}

absl::Status Pkcs11Key::CheckOnTokenLocking() const {
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  return CheckOnToken();
}

absl::StatusOr<EVP_PKEY*> Pkcs11Key::PickLibp11Key(
    Generation& generation) const {
  PKCS11_SLOT* slot = generation.SlotFor(token_->label());
  if (slot == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("libp11 does not list token \"", token_->label(), "\""));
  }
  // The raw session already logged the application in; this gives libp11
  // the state it needs to log in again after a fork.
  PKCS11_login(slot, 0, token_->pin().c_str());
  PKCS11_KEY* keys = nullptr;
  unsigned int count = 0;
  if (PKCS11_enumerate_keys(slot->token, &keys, &count) != 0) {
    return OpenSslError(absl::StatusCode::kUnavailable,
                        "PKCS11_enumerate_keys");
  }
  std::vector<PKCS11_KEY*> matches;
  for (unsigned int i = 0; i < count; ++i) {
    if (SameId(keys[i], ref_.id)) {
      matches.push_back(&keys[i]);
    }
  }
  // libp11 never forgets a key: several matches may include dead objects.
  if (matches.size() != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("libp11 lists ", matches.size(), " private keys with id ",
                     HexId(ref_.id)));
  }
  EVP_PKEY* pkey = PKCS11_get_private_key(matches[0]);
  if (pkey == nullptr) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition,
                        "PKCS11_get_private_key");
  }
  return pkey;
}

absl::Status Pkcs11Key::LoadLocked() const {
  CERTSTORE_RETURN_IF_ERROR(Refind());
  if (pkey_ != nullptr) {
    return absl::OkStatus();
  }
  CERTSTORE_RETURN_IF_ERROR(CheckOnToken());
  CERTSTORE_ASSIGN_OR_RETURN(std::shared_ptr<Generation> generation,
                             token_->module().CurrentGeneration());
  absl::Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt > 0) {
      // A fresh slot list holds only live objects.
      CERTSTORE_ASSIGN_OR_RETURN(generation, token_->module().Refresh());
    }
    absl::StatusOr<EVP_PKEY*> picked = PickLibp11Key(*generation);
    if (!picked.ok()) {
      last = picked.status();
      continue;
    }
    UniqueEvpPkey pkey(*picked);
    absl::StatusOr<std::string> spki = EncodePublic(pkey.get());
    if (spki.ok() && *spki == ref_.public_key_der) {
      generation_ = std::move(generation);
      pkey_ = std::move(pkey);
      return absl::OkStatus();
    }
    last = absl::FailedPreconditionError(absl::StrCat(
        "libp11's key for id ", HexId(ref_.id),
        " does not carry the token key's public key (stale public-key "
        "object with the same CKA_ID?)"));
  }
  return WithContext(last, absl::StrCat("key ", location_));
}

EVP_PKEY* Pkcs11Key::evp_pkey() const {
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  if (!LoadLocked().ok()) {
    ClearOpenSslErrors();
    return nullptr;
  }
  return pkey_.get();
}

void Pkcs11Key::ReopenLibp11Session() const {
  PKCS11_SLOT* slot = generation_->SlotFor(token_->label());
  if (slot != nullptr) {
    PKCS11_open_session(slot, 0);
  }
}

absl::StatusOr<std::string> Pkcs11Key::SignLocked(
    absl::string_view data) const {
  UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
  size_t sig_len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                         pkey_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len, in, data.size()) != 1) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("token key ", location_, " cannot sign"));
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &sig_len, in, data.size()) != 1) {
    return OpenSslError(absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("token key ", location_, " cannot sign"));
  }
  sig.resize(sig_len);
  return sig;
}

absl::StatusOr<std::string> Pkcs11Key::Sign(absl::string_view data) const {
  absl::MutexLock lock(&token_->module().mu());
  token_->module().Prepare();
  CERTSTORE_RETURN_IF_ERROR(LoadLocked());
  absl::StatusOr<std::string> sig = SignLocked(data);
  if (sig.ok()) {
    return sig;
  }
  // Tell a dead key from a dead session: only the latter is retried, once,
  // on a fresh libp11 session (the raw check re-logs the application in).
  CERTSTORE_RETURN_IF_ERROR(CheckOnToken());
  ClearOpenSslErrors();
  ReopenLibp11Session();
  return SignLocked(data);
}

absl::StatusOr<TokenKeyRef> GenerateKeyOnToken(RawToken& token,
                                               absl::string_view label,
                                               KeyType type) {
  CERTSTORE_ASSIGN_OR_RETURN(std::string id, RandomId());
  Template pub;
  Template priv;
  AddCommon(pub, id, label);
  AddCommon(priv, id, label);
  pub.AddBool(CKA_VERIFY, true);
  priv.AddBool(CKA_PRIVATE, true)
      .AddBool(CKA_SENSITIVE, true)
      .AddBool(CKA_EXTRACTABLE, false)
      .AddBool(CKA_SIGN, true);
  CK_MECHANISM_TYPE mechanism = CKM_EC_KEY_PAIR_GEN;
  if (type == KeyType::kEcP256) {
    pub.Add(CKA_EC_PARAMS,
            absl::string_view(kP256Params, sizeof(kP256Params) - 1));
  } else {
    mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
    pub.AddUlong(CKA_MODULUS_BITS, 2048)
        .Add(CKA_PUBLIC_EXPONENT,
             absl::string_view(kRsaExponent, sizeof(kRsaExponent) - 1));
  }
  CERTSTORE_ASSIGN_OR_RETURN(auto handles,
                             token.GenerateKeyPair(mechanism, pub, priv));
  TokenKeyRef ref;
  ref.id = std::move(id);
  ref.private_handle = handles.second;
  absl::StatusOr<std::string> spki =
      ReadPublicKeyDer(token, handles.second, handles.first);
  if (!spki.ok()) {
    token.Destroy(handles.second).IgnoreError();
    token.Destroy(handles.first).IgnoreError();
    return spki.status();
  }
  ref.public_key_der = *std::move(spki);
  ref.algorithm = AlgorithmOfPublicKey(ref.public_key_der);
  return ref;
}

}  // namespace certstore::pkcs11_internal

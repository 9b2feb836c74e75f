#include "pkcs11/token_objects.h"

#include <openssl/x509.h>

#include <cstdint>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"

namespace certstore::pkcs11_internal {
namespace {

constexpr absl::string_view kMagic = "CSE1";
// Far above any chain; a corrupt length must not allocate gigabytes.
constexpr uint32_t kMaxIntermediates = 16;

void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void PutI64(std::string& out, int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v);
  PutU32(out, static_cast<uint32_t>(u >> 32));
  PutU32(out, static_cast<uint32_t>(u & 0xffffffffu));
}

void PutBytes(std::string& out, absl::string_view bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  out.append(bytes.data(), bytes.size());
}

// Reads the record front to back; every read fails once anything is short.
class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}

  bool U32(uint32_t* v) {
    if (in_.size() < 4) {
      return false;
    }
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      *v = (*v << 8) | static_cast<uint8_t>(in_[i]);
    }
    in_.remove_prefix(4);
    return true;
  }
  bool I64(int64_t* v) {
    uint32_t hi = 0;
    uint32_t lo = 0;
    if (!U32(&hi) || !U32(&lo)) {
      return false;
    }
    *v = static_cast<int64_t>((uint64_t{hi} << 32) | lo);
    return true;
  }
  bool Bytes(std::string* v) {
    uint32_t len = 0;
    if (!U32(&len) || in_.size() < len) {
      return false;
    }
    v->assign(in_.data(), len);
    in_.remove_prefix(len);
    return true;
  }
  bool Time(absl::Time* t) {
    int64_t nanos = 0;
    if (!I64(&nanos)) {
      return false;
    }
    *t = absl::FromUnixNanos(nanos);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  absl::string_view in_;
};

// The DER encoding by `i2d` of `object`, empty on failure.
template <typename T>
std::string Der(int (*i2d)(const T*, unsigned char**), const T* object) {
  unsigned char* der = nullptr;
  const int len = i2d(object, &der);
  std::string out =
      len > 0 ? std::string(reinterpret_cast<char*>(der), len) : std::string();
  OPENSSL_free(der);
  return out;
}

}  // namespace

EntryRecord RecordOf(const Entry& entry, absl::string_view key_id) {
  EntryRecord record;
  record.key_id = std::string(key_id);
  record.thumbprint = entry.thumbprint();
  record.key_algorithm = entry.key()->algorithm();
  record.not_before = entry.not_before();
  record.not_after = entry.not_after();
  record.created_at = entry.created_at();
  record.metadata = entry.metadata();
  record.intermediates.assign(entry.chain_der().begin() + 1,
                              entry.chain_der().end());
  return record;
}

std::string EncodeRecord(const EntryRecord& record) {
  std::string out(kMagic);
  PutBytes(out, record.key_id);
  PutBytes(out, record.thumbprint);
  PutBytes(out, record.key_algorithm);
  PutI64(out, absl::ToUnixNanos(record.not_before));
  PutI64(out, absl::ToUnixNanos(record.not_after));
  PutI64(out, absl::ToUnixNanos(record.created_at));
  PutBytes(out, record.metadata.endpoint);
  PutBytes(out, record.metadata.client_id);
  PutBytes(out, record.metadata.tenant_id);
  PutU32(out, static_cast<uint32_t>(record.intermediates.size()));
  for (const std::string& der : record.intermediates) {
    PutBytes(out, der);
  }
  return out;
}

absl::StatusOr<EntryRecord> DecodeRecord(absl::string_view bytes) {
  if (bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError(absl::StrCat("certstore data object has no \"",
                                            kMagic, "\" header (", bytes.size(),
                                            " bytes)"));
  }
  Reader in(bytes.substr(kMagic.size()));
  EntryRecord r;
  uint32_t count = 0;
  bool ok = in.Bytes(&r.key_id) && in.Bytes(&r.thumbprint) &&
            in.Bytes(&r.key_algorithm) && in.Time(&r.not_before) &&
            in.Time(&r.not_after) && in.Time(&r.created_at) &&
            in.Bytes(&r.metadata.endpoint) && in.Bytes(&r.metadata.client_id) &&
            in.Bytes(&r.metadata.tenant_id) && in.U32(&count) &&
            count <= kMaxIntermediates;
  for (uint32_t i = 0; ok && i < count; ++i) {
    r.intermediates.emplace_back();
    ok = in.Bytes(&r.intermediates.back());
  }
  if (!ok || !in.done()) {
    return absl::DataLossError(
        absl::StrCat("certstore data object is truncated or malformed (",
                     bytes.size(), " bytes)"));
  }
  return r;
}

absl::StatusOr<CK_OBJECT_HANDLE> FindById(RawToken& token,
                                          CK_OBJECT_CLASS object_class,
                                          absl::string_view id) {
  Template match;
  match.AddUlong(CKA_CLASS, object_class).Add(CKA_ID, id);
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                             token.Find(match));
  return found.empty() ? 0 : found[0];
}

absl::StatusOr<CK_OBJECT_HANDLE> WriteRecordObject(RawToken& token,
                                                   absl::string_view alias,
                                                   const EntryRecord& record) {
  Template t;
  t.AddUlong(CKA_CLASS, CKO_DATA)
      .AddBool(CKA_TOKEN, true)
      .AddBool(CKA_PRIVATE, true)
      .Add(CKA_LABEL, alias)
      .Add(CKA_APPLICATION, kApplication)
      .Add(CKA_VALUE, EncodeRecord(record));
  return token.Create(t);
}

absl::StatusOr<CK_OBJECT_HANDLE> WriteCertificateObject(
    RawToken& token, absl::string_view alias, absl::string_view key_id,
    X509* leaf, absl::string_view leaf_der) {
  const std::string subject = Der(&i2d_X509_NAME, X509_get_subject_name(leaf));
  const std::string issuer = Der(&i2d_X509_NAME, X509_get_issuer_name(leaf));
  const std::string serial =
      Der(&i2d_ASN1_INTEGER, X509_get0_serialNumber(leaf));
  Template t;
  t.AddUlong(CKA_CLASS, CKO_CERTIFICATE)
      .AddUlong(CKA_CERTIFICATE_TYPE, CKC_X_509)
      .AddBool(CKA_TOKEN, true)
      .AddBool(CKA_PRIVATE, false)
      .Add(CKA_LABEL, alias)
      .Add(CKA_ID, key_id)
      .Add(CKA_SUBJECT, subject)
      .Add(CKA_ISSUER, issuer)
      .Add(CKA_SERIAL_NUMBER, serial)
      .Add(CKA_VALUE, leaf_der);
  return token.Create(t);
}

std::string SpareLabel(absl::string_view alias, absl::Time created) {
  return absl::StrCat(kSparePrefix, absl::ToUnixSeconds(created), ":", alias);
}

absl::StatusOr<std::vector<SpareKey>> SparesMadeBefore(RawToken& token,
                                                       absl::Time made_before) {
  Template match;
  match.AddUlong(CKA_CLASS, CKO_PRIVATE_KEY);
  CERTSTORE_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> keys,
                             token.Find(match));
  std::vector<SpareKey> spares;
  for (CK_OBJECT_HANDLE key : keys) {
    absl::StatusOr<std::string> label = token.Attribute(key, CKA_LABEL);
    if (!label.ok() || !absl::StartsWith(*label, kSparePrefix)) {
      continue;
    }
    const absl::string_view rest =
        absl::string_view(*label).substr(kSparePrefix.size());
    const size_t colon = rest.find(':');
    int64_t seconds = 0;
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(rest.substr(0, colon), &seconds)) {
      continue;  // not one of ours
    }
    SpareKey spare;
    spare.alias = std::string(rest.substr(colon + 1));
    spare.created = absl::FromUnixSeconds(seconds);
    if (spare.created >= made_before) {
      continue;
    }
    spare.private_key = key;
    absl::StatusOr<std::string> id = token.Attribute(key, CKA_ID);
    if (id.ok()) {
      spare.id = *id;
      absl::StatusOr<CK_OBJECT_HANDLE> pub =
          FindById(token, CKO_PUBLIC_KEY, *id);
      spare.public_key = pub.ok() ? *pub : 0;
    }
    spares.push_back(std::move(spare));
  }
  return spares;
}

absl::Status AdoptSpare(RawToken& token, absl::string_view id,
                        CK_OBJECT_HANDLE private_key, absl::string_view alias) {
  Template label;
  label.Add(CKA_LABEL, alias);
  CERTSTORE_RETURN_IF_ERROR(token.SetAttributes(private_key, label));
  CERTSTORE_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE pub,
                             FindById(token, CKO_PUBLIC_KEY, id));
  if (pub != 0) {
    Template public_label;
    public_label.Add(CKA_LABEL, alias);
    CERTSTORE_RETURN_IF_ERROR(token.SetAttributes(pub, public_label));
  }
  return absl::OkStatus();
}

}  // namespace certstore::pkcs11_internal

#include "api/internal/leaf_der.h"

#include <openssl/asn1.h>
#include <time.h>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"

namespace certstore::internal {
namespace {

// One DER element: its tag, class, whole encoding and contents.
struct Element {
  int tag = 0;
  int cls = 0;
  absl::string_view whole;
  absl::string_view contents;
};

// Takes the next element off the front of `in`; false when there is none
// or it is not definite-length DER.
bool Next(absl::string_view* in, Element* out) {
  const auto* start = reinterpret_cast<const unsigned char*>(in->data());
  const unsigned char* p = start;
  long length = 0;
  const int info = ASN1_get_object(&p, &length, &out->tag, &out->cls,
                                   static_cast<long>(in->size()));
  if ((info & 0x80) != 0 || info == (V_ASN1_CONSTRUCTED | 1)) {
    ClearOpenSslErrors();
    return false;
  }
  const size_t header = static_cast<size_t>(p - start);
  out->whole = in->substr(0, header + static_cast<size_t>(length));
  out->contents = out->whole.substr(header);
  in->remove_prefix(out->whole.size());
  return true;
}

bool NextSequence(absl::string_view* in, Element* out) {
  return Next(in, out) && out->tag == V_ASN1_SEQUENCE &&
         out->cls == V_ASN1_UNIVERSAL;
}

bool ParseTime(absl::string_view der, absl::Time* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ASN1_TIME* time = d2i_ASN1_TIME(nullptr, &p, static_cast<long>(der.size()));
  struct tm tm_value = {};
  const bool ok = time != nullptr && ASN1_TIME_to_tm(time, &tm_value) == 1;
  ASN1_TIME_free(time);
  if (!ok) {
    ClearOpenSslErrors();
    return false;
  }
  *out = absl::FromTM(tm_value, absl::UTCTimeZone());
  return true;
}

bool ParseValidity(absl::string_view validity, LeafFacts* facts) {
  Element not_before;
  Element not_after;
  return Next(&validity, &not_before) && Next(&validity, &not_after) &&
         ParseTime(not_before.whole, &facts->not_before) &&
         ParseTime(not_after.whole, &facts->not_after);
}

}  // namespace

namespace {

// Walks the certificate's outer structure, reading the validity into
// `facts` and pointing `spki` at the subjectPublicKeyInfo. InvalidArgument
// when `cert_der` does not have a certificate's shape.
absl::Status Walk(absl::string_view cert_der, LeafFacts* facts,
                  absl::string_view* spki_der) {
  absl::string_view rest = cert_der;
  Element cert;
  Element tbs;
  Element field;
  bool ok = NextSequence(&rest, &cert) && rest.empty();
  absl::string_view in = cert.contents;
  ok = ok && NextSequence(&in, &tbs);
  absl::string_view fields = tbs.contents;
  // [0] version (optional), serialNumber, signature, issuer: skipped.
  ok = ok && Next(&fields, &field);
  for (int skip = field.cls == V_ASN1_CONTEXT_SPECIFIC ? 3 : 2; ok && skip > 0;
       --skip) {
    ok = Next(&fields, &field);
  }
  Element validity;
  Element subject;
  Element spki;
  ok = ok && NextSequence(&fields, &validity) &&
       ParseValidity(validity.contents, facts) &&
       NextSequence(&fields, &subject) && NextSequence(&fields, &spki);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf certificate (", cert_der.size(),
                     " bytes) does not have a certificate's DER structure"));
  }
  *spki_der = spki.whole;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LeafDer> ReadLeafDer(absl::string_view cert_der) {
  LeafDer leaf;
  absl::string_view spki;
  CERTSTORE_RETURN_IF_ERROR(Walk(cert_der, &leaf.facts, &spki));
  leaf.facts.thumbprint = Thumbprint(cert_der);
  leaf.public_key_der = std::string(spki);
  return leaf;
}

absl::Status CheckCertificateShape(absl::string_view cert_der) {
  LeafFacts facts;
  absl::string_view spki;
  return Walk(cert_der, &facts, &spki);
}

}  // namespace certstore::internal

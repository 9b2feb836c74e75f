#include "api/internal/der_walk.h"

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

namespace {

// DER length octets for `n` bytes of contents.
std::string DerLength(size_t n) {
  if (n < 0x80) {
    return std::string(1, static_cast<char>(n));
  }
  std::string bytes;
  for (; n > 0; n >>= 8) {
    bytes.insert(bytes.begin(), static_cast<char>(n & 0xff));
  }
  return std::string(1, static_cast<char>(0x80 | bytes.size())) + bytes;
}

std::string DerElement(unsigned char tag, absl::string_view contents) {
  return absl::StrCat(std::string(1, static_cast<char>(tag)),
                      DerLength(contents.size()), contents);
}

bool NextOfType(absl::string_view* in, int tag, Element* out) {
  return Next(in, out) && out->tag == tag && out->cls == V_ASN1_UNIVERSAL;
}

// The public key, as a BIT STRING element, of the key `private_key` (the
// PrivateKeyInfo's privateKey contents) whose algorithm is `algorithm`.
bool PublicKeyBits(const Element& algorithm, absl::string_view private_key,
                   std::string* bits) {
  absl::string_view alg = algorithm.contents;
  Element oid;
  if (!NextOfType(&alg, V_ASN1_OBJECT, &oid)) {
    return false;
  }
  // 1.2.840.113549.1.1.1 and 1.2.840.10045.2.1, as DER contents.
  constexpr absl::string_view kRsaEncryption(
      "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01", 9);
  constexpr absl::string_view kEcPublicKey("\x2a\x86\x48\xce\x3d\x02\x01", 7);
  Element key;
  if (!NextSequence(&private_key, &key) || !private_key.empty()) {
    return false;
  }
  absl::string_view fields = key.contents;
  Element version, first, second;
  if (oid.contents == kRsaEncryption) {
    // RSAPrivateKey: version, modulus, publicExponent, …
    if (!NextOfType(&fields, V_ASN1_INTEGER, &version) ||
        !NextOfType(&fields, V_ASN1_INTEGER, &first) ||
        !NextOfType(&fields, V_ASN1_INTEGER, &second)) {
      return false;
    }
    const std::string rsa_public_key =
        DerElement(V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED,
                   absl::StrCat(first.whole, second.whole));
    *bits = DerElement(V_ASN1_BIT_STRING,
                       absl::StrCat(std::string(1, '\0'), rsa_public_key));
    return true;
  }
  if (oid.contents == kEcPublicKey) {
    // ECPrivateKey: version, privateKey, [0] parameters, [1] publicKey.
    if (!NextOfType(&fields, V_ASN1_INTEGER, &version) ||
        !NextOfType(&fields, V_ASN1_OCTET_STRING, &first)) {
      return false;
    }
    while (Next(&fields, &second)) {
      if (second.cls == V_ASN1_CONTEXT_SPECIFIC && second.tag == 1) {
        absl::string_view inner = second.contents;
        Element bit_string;
        // A point is whole bytes: anything but 0 unused bits is not the
        // encoding OpenSSL writes back, and neither is X9.62's hybrid form
        // (06/07), so let it encode the key instead. Uncompressed (04) and
        // compressed (02/03) points are written back as they came.
        if (!NextOfType(&inner, V_ASN1_BIT_STRING, &bit_string) ||
            !inner.empty() || bit_string.contents.size() < 2 ||
            bit_string.contents[0] != '\0') {
          return false;
        }
        const char form = bit_string.contents[1];
        if (form != '\x04' && form != '\x02' && form != '\x03') {
          return false;
        }
        *bits = std::string(bit_string.whole);
        return true;
      }
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> PublicKeyInfoFromPkcs8(
    absl::string_view pkcs8_der) {
  absl::string_view rest = pkcs8_der;
  Element info, version, algorithm, private_key;
  std::string bits;
  absl::string_view fields;
  const bool ok =
      NextSequence(&rest, &info) && rest.empty() &&
      (fields = info.contents, NextOfType(&fields, V_ASN1_INTEGER, &version)) &&
      NextSequence(&fields, &algorithm) &&
      NextOfType(&fields, V_ASN1_OCTET_STRING, &private_key) &&
      PublicKeyBits(algorithm, private_key.contents, &bits);
  if (!ok) {
    return absl::InvalidArgumentError(
        "no public key readable from the PKCS#8 structure");
  }
  return DerElement(V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED,
                    absl::StrCat(algorithm.whole, bits));
}

}  // namespace certstore::internal

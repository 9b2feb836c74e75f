#include "certstore/testing/test_pki.h"

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "certstore/chain.h"
#include "certstore/openssl_types.h"

namespace certstore::testing {
namespace {

// Test setup failures are programming errors: fail loudly.
void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "test_pki: %s failed\n", what);
    abort();
  }
}

template <typename T>
T Unwrap(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    fprintf(stderr, "test_pki: %s: %s\n", what, v.status().ToString().c_str());
    abort();
  }
  return *std::move(v);
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  Check(ext != nullptr && X509_add_ext(cert, ext, -1) == 1, "add extension");
  X509_EXTENSION_free(ext);
}

struct CertSpec {
  std::string cn;
  std::string dc;  // empty: none
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
  std::string extended_key_usage = "clientAuth";  // leaves only
  std::string subject_alt_name;                   // leaves only
};

UniqueX509 MakeCert(const CertSpec& spec, EVP_PKEY* subject_key, X509* issuer,
                    EVP_PKEY* issuer_key) {
  UniqueX509 cert(X509_new());
  Check(X509_set_version(cert.get(), 2) == 1, "set version");
  unsigned char serial[16];
  Check(RAND_bytes(serial, sizeof(serial)) == 1, "serial");
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);

  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!spec.dc.empty()) {
    X509_NAME_add_entry_by_txt(
        name, "DC", MBSTRING_UTF8,
        reinterpret_cast<const unsigned char*>(spec.dc.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_UTF8,
      reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer : cert.get();
  Check(
      X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)) == 1,
      "issuer name");
  Check(ASN1_TIME_set(X509_getm_notBefore(cert.get()),
                      absl::ToTimeT(spec.not_before)) != nullptr,
        "notBefore");
  Check(ASN1_TIME_set(X509_getm_notAfter(cert.get()),
                      absl::ToTimeT(spec.not_after)) != nullptr,
        "notAfter");
  Check(X509_set_pubkey(cert.get(), subject_key) == 1, "pubkey");
  AddExtension(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
  if (spec.is_ca) {
    AddExtension(cert.get(), issuer_cert, NID_basic_constraints,
                 "critical,CA:TRUE");
    AddExtension(cert.get(), issuer_cert, NID_key_usage,
                 "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), issuer_cert, NID_basic_constraints,
                 "critical,CA:FALSE");
    AddExtension(cert.get(), issuer_cert, NID_key_usage,
                 "critical,digitalSignature");
    if (!spec.extended_key_usage.empty()) {
      AddExtension(cert.get(), issuer_cert, NID_ext_key_usage,
                   spec.extended_key_usage.c_str());
    }
    if (!spec.subject_alt_name.empty()) {
      AddExtension(cert.get(), issuer_cert, NID_subject_alt_name,
                   spec.subject_alt_name.c_str());
    }
  }
  if (issuer != nullptr) {
    AddExtension(cert.get(), issuer_cert, NID_authority_key_identifier,
                 "keyid:always");
  }
  Check(X509_sign(cert.get(), issuer_key, EVP_sha256()) > 0, "X509_sign");
  return cert;
}

std::string ToDer(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  Check(len > 0, "i2d_X509");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

std::shared_ptr<const Key> PoolKey(KeyType type, int index) {
  static std::mutex mu;
  static auto* pool =
      new std::map<std::pair<KeyType, int>, std::shared_ptr<const Key>>();
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = (*pool)[{type, index}];
  if (slot == nullptr) {
    slot = Unwrap(GenerateSoftwareKey(KeySpec{type}), "generate pool key");
  }
  return slot;
}

absl::Time TestNow() {
  return absl::FromCivil(absl::CivilSecond(2030, 6, 1, 0, 0, 0),
                         absl::UTCTimeZone());
}

struct TestPki::Impl {
  std::shared_ptr<const Key> root_key;
  std::shared_ptr<const Key> intermediate_key;
  UniqueX509 root;
  UniqueX509 intermediate;
  std::string root_der;
  std::string intermediate_der;
};

TestPki::TestPki(KeyType ca_type, int ca_key_slot)
    : impl_(std::make_unique<Impl>()) {
  // CA keys use pool slots tests do not hand out for leaves.
  impl_->root_key = PoolKey(ca_type, ca_key_slot);
  impl_->intermediate_key = PoolKey(ca_type, ca_key_slot + 1);
  const absl::Time from = absl::FromUnixSeconds(946684800);    // 2000-01-01
  const absl::Time until = absl::FromUnixSeconds(4102444800);  // 2100-01-01
  const std::string suffix =
      ca_key_slot == 1000 ? "" : absl::StrCat(" ", ca_key_slot);
  impl_->root = MakeCert({absl::StrCat("certstore test root", suffix), "", from,
                          until, true, "", ""},
                         impl_->root_key->evp_pkey(), nullptr,
                         impl_->root_key->evp_pkey());
  impl_->intermediate =
      MakeCert({absl::StrCat("certstore test intermediate", suffix), "", from,
                until, true, "", ""},
               impl_->intermediate_key->evp_pkey(), impl_->root.get(),
               impl_->root_key->evp_pkey());
  impl_->root_der = ToDer(impl_->root.get());
  impl_->intermediate_der = ToDer(impl_->intermediate.get());
}

TestPki::~TestPki() = default;

std::vector<std::string> TestPki::IssueChain(const Key& key,
                                             const LeafOptions& options) const {
  UniqueX509 leaf =
      MakeCert({options.common_name, options.tenant, options.not_before,
                options.not_after, false, options.extended_key_usage,
                options.subject_alt_name},
               key.evp_pkey(), impl_->intermediate.get(),
               impl_->intermediate_key->evp_pkey());
  std::vector<std::string> chain = {ToDer(leaf.get())};
  if (options.include_intermediate) {
    chain.push_back(impl_->intermediate_der);
  }
  return chain;
}

std::shared_ptr<const Entry> TestPki::MakeEntry(const std::string& alias,
                                                std::shared_ptr<const Key> key,
                                                absl::Time not_before,
                                                absl::Time not_after) const {
  LeafOptions options;
  options.not_before = not_before;
  options.not_after = not_after;
  EntryParts parts;
  parts.alias = alias;
  parts.chain_der = IssueChain(*key, options);
  parts.key = std::move(key);
  parts.metadata = {"https://127.0.0.1/token", "test-client", "test-tenant"};
  parts.created_at = not_before;
  return Unwrap(Entry::Create(std::move(parts)), "Entry::Create");
}

namespace {

std::string ToPem(X509* cert) {
  UniqueBio bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

std::string TestPki::IssueCrl(
    const std::vector<std::vector<std::string>>& revoked_chains) const {
  std::unique_ptr<X509_CRL, OpenSslDeleter<X509_CRL_free>> crl(X509_CRL_new());
  Check(crl != nullptr && X509_CRL_set_version(crl.get(), 1) == 1, "CRL");
  Check(X509_CRL_set_issuer_name(
            crl.get(), X509_get_subject_name(impl_->intermediate.get())) == 1,
        "CRL issuer");
  const time_t now = time(nullptr);
  std::unique_ptr<ASN1_TIME, OpenSslDeleter<ASN1_TIME_free>> last(
      ASN1_TIME_set(nullptr, now - 3600));
  std::unique_ptr<ASN1_TIME, OpenSslDeleter<ASN1_TIME_free>> next(
      ASN1_TIME_set(nullptr, now + 86400));
  Check(X509_CRL_set1_lastUpdate(crl.get(), last.get()) == 1 &&
            X509_CRL_set1_nextUpdate(crl.get(), next.get()) == 1,
        "CRL times");
  for (const std::vector<std::string>& chain : revoked_chains) {
    const auto* der = reinterpret_cast<const unsigned char*>(chain[0].data());
    UniqueX509 leaf(
        d2i_X509(nullptr, &der, static_cast<long>(chain[0].size())));
    Check(leaf != nullptr, "decode revoked leaf");
    X509_REVOKED* revoked = X509_REVOKED_new();
    Check(revoked != nullptr &&
              X509_REVOKED_set_serialNumber(
                  revoked, X509_get_serialNumber(leaf.get())) == 1 &&
              X509_REVOKED_set_revocationDate(revoked, last.get()) == 1 &&
              X509_CRL_add0_revoked(crl.get(), revoked) == 1,
          "CRL entry");
  }
  Check(X509_CRL_sort(crl.get()) == 1 &&
            X509_CRL_sign(crl.get(), impl_->intermediate_key->evp_pkey(),
                          EVP_sha256()) > 0,
        "X509_CRL_sign");
  UniqueBio bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509_CRL(bio.get(), crl.get()) == 1, "PEM CRL");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string TestPki::root_pem() const { return ToPem(impl_->root.get()); }
std::string TestPki::intermediate_pem() const {
  return ToPem(impl_->intermediate.get());
}

const std::string& TestPki::root_der() const { return impl_->root_der; }
const std::string& TestPki::intermediate_der() const {
  return impl_->intermediate_der;
}

}  // namespace certstore::testing

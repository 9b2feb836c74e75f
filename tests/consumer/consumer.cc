// What an outside project does with certstore: Put and Find on an SQLite
// file, Find on a PKCS#11 token (SoftHSM) an entry that another tool put
// there, and a token client on the plain SQLite store. Prints one line per
// step and the thumbprint found on the token; exits 0 only if every step
// behaved.
//
//   consumer <sqlite file> <pkcs11 URI> <alias on the token>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <cstdio>
#include <string>

#include "certstore/certstore.h"  // the umbrella header

namespace {

int failures = 0;

void Check(const char* what, bool ok, const std::string& detail) {
  std::printf("%s %s: %s\n", ok ? "ok" : "FAILED", what, detail.c_str());
  failures += ok ? 0 : 1;
}

// A self-signed leaf for `key`, valid for a week.
std::string SelfSigned(const certstore::Key& key) {
  certstore::UniqueX509 cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_UTF8,
      reinterpret_cast<const unsigned char*>("consumer"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.evp_pkey());
  X509_sign(cert.get(), key.evp_pkey(), EVP_sha256());
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  std::string out(reinterpret_cast<char*>(der), len > 0 ? len : 0);
  OPENSSL_free(der);
  return out;
}

void OnSqlite(const std::string& path) {
  auto store = certstore::OpenSqliteStore(path);
  Check("OpenSqliteStore", store.ok(),
        store.ok() ? (*store)->Name() : store.status().ToString());
  if (!store.ok()) {
    return;
  }
  auto key = (*store)->CreateKey("consumer#att=0", certstore::KeySpec{});
  certstore::EntryParts parts;
  parts.alias = "consumer#att=0";
  parts.chain_der = {SelfSigned(**key)};
  parts.key = *key;
  auto entry = certstore::Entry::Create(std::move(parts));
  absl::Status put = entry.ok() ? (*store)->Put(*entry) : entry.status();
  Check("sqlite Put", put.ok(), put.ToString());
  auto found = (*store)->Find("consumer#att=0");
  Check("sqlite Find", found.ok() && (*found)->thumbprint() == (*entry)->thumbprint(),
        found.ok() ? (*found)->thumbprint() : found.status().ToString());

  // The token client on a plain store, no LayeredStore around it.
  certstore::TokenClientOptions options;
  options.issuing_url = "http://127.0.0.1:9";
  auto client = certstore::TokenClient::Create(store->get(), options);
  Check("TokenClient on a plain sqlite store", client.ok(),
        client.ok() ? "created" : client.status().ToString());
}

void OnToken(const std::string& uri, const std::string& alias) {
  auto options = certstore::ParsePkcs11Uri(uri);
  auto store = options.ok() ? certstore::OpenPkcs11Store(*options)
                            : absl::StatusOr<std::unique_ptr<certstore::CertStore>>(
                                  options.status());
  Check("OpenPkcs11Store", store.ok(),
        store.ok() ? (*store)->Name() : store.status().ToString());
  if (!store.ok()) {
    return;
  }
  auto found = (*store)->Find(alias);
  Check("pkcs11 Find", found.ok(),
        found.ok() ? (*found)->key()->location() : found.status().ToString());
  if (found.ok()) {
    absl::Status probe = (*store)->ProbeKey(**found);
    Check("pkcs11 ProbeKey", probe.ok(), probe.ToString());
    std::printf("token thumbprint %s\n", (*found)->thumbprint().c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: consumer SQLITE_FILE PKCS11_URI ALIAS\n");
    return 2;
  }
  std::printf("certstore %s, schemes:", CERTSTORE_VERSION_STRING);
  for (const std::string& scheme : certstore::StoreSchemes()) {
    std::printf(" %s", scheme.c_str());
  }
  std::printf("\n");
  OnSqlite(argv[1]);
  OnToken(argv[2], argv[3]);
  std::printf("%s\n", failures == 0 ? "consumer: ok" : "consumer: FAILED");
  return failures == 0 ? 0 : 1;
}

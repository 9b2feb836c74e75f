// certstore quickstart: the life of one binding credential, on the memory
// store and on an SQLite file. Creates a key, certifies it (self-signed
// here; the token client gets its certificates from an issuing endpoint),
// stores, finds, probes, shows a mismatched key being refused, reopens the
// SQLite file to find the credential again, and evicts. Exits non-zero if
// any step does not behave as documented.
//
//   certstore-quickstart [DIR]   (the SQLite file goes to DIR, default a
//                                 new directory under $TMPDIR or /tmp)
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/cert_store.h"
#include "certstore/memory_store.h"
#include "certstore/openssl_types.h"
#include "certstore/sqlite_store.h"

namespace {

using certstore::Key;

// A self-signed certificate for `key`, valid from now for `lifetime`.
std::string SelfSignedDer(const Key& key, const std::string& cn,
                          absl::Duration lifetime) {
  certstore::UniqueX509 cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[8];
  RAND_bytes(serial, sizeof(serial));
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()),
                          *reinterpret_cast<uint64_t*>(serial) >> 1);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                  absl::ToInt64Seconds(lifetime));
  X509_set_pubkey(cert.get(), key.evp_pkey());
  X509_sign(cert.get(), key.evp_pkey(), EVP_sha256());
  unsigned char* der = nullptr;
  int len = i2d_X509(cert.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

int failures = 0;

void Step(const std::string& what, bool ok, const std::string& detail) {
  std::printf("%s %-44s %s\n", ok ? "✓" : "✗", what.c_str(), detail.c_str());
  failures += ok ? 0 : 1;
}

// Create, Put, Find, ProbeKey and a refused Put on `store`; returns the
// entry stored, or null when a step failed before it was stored.
std::shared_ptr<const certstore::Entry> StoreOne(certstore::CertStore& store,
                                                 const std::string& alias) {
  std::printf("\n%s\n", store.Name().c_str());
  auto key = store.CreateKey(alias, certstore::KeySpec{});
  Step("CreateKey", key.ok(),
       key.ok() ? (*key)->algorithm() + ", " + (*key)->location()
                : key.status().ToString());
  if (!key.ok()) {
    return nullptr;
  }

  certstore::EntryParts parts;
  parts.alias = alias;
  parts.chain_der = {
      SelfSignedDer(**key, "quickstart-client", absl::Hours(24 * 7))};
  parts.key = *key;
  parts.created_at = absl::Now();
  auto entry = certstore::Entry::Create(std::move(parts));
  Step("Entry::Create (self-signed, 7 days)", entry.ok(),
       entry.ok() ? "x5t#S256 " + (*entry)->thumbprint()
                  : entry.status().ToString());
  if (!entry.ok()) {
    return nullptr;
  }

  absl::Status put = store.Put(*entry);
  Step("Put", put.ok(), put.ok() ? "stored" : put.ToString());

  auto found = store.Find(alias);
  Step("Find", found.ok() && (*found)->thumbprint() == (*entry)->thumbprint(),
       found.ok() ? absl::StrCat("x5t#S256 ", (*found)->thumbprint(), ", ",
                                 absl::FormatDuration(absl::Trunc(
                                     (*found)->not_after() - absl::Now(),
                                     absl::Minutes(1))),
                                 " left")
                  : found.status().ToString());

  absl::Time start = absl::Now();
  absl::Status probe = store.ProbeKey(**entry);
  Step("ProbeKey (sign + verify a fresh challenge)", probe.ok(),
       probe.ok() ? absl::StrCat("usable (",
                                 absl::FormatDuration(absl::Now() - start), ")")
                  : probe.ToString());

  // A certificate paired with the wrong key is refused, and the stored
  // binding stays as it was.
  auto other_key = store.CreateKey(alias, certstore::KeySpec{});
  certstore::EntryParts wrong;
  wrong.alias = alias;
  wrong.chain_der = (*entry)->chain_der();
  wrong.key = other_key.ok() ? *other_key : nullptr;
  auto wrong_entry = certstore::Entry::Create(std::move(wrong));
  absl::Status refused =
      wrong_entry.ok() ? store.Put(*wrong_entry) : wrong_entry.status();
  Step("Put with a key of another certificate",
       refused.code() == absl::StatusCode::kFailedPrecondition,
       "refused: " + std::string(refused.message()));
  return put.ok() ? *entry : nullptr;
}

void Evict(certstore::CertStore& store, const std::string& alias) {
  auto removed = store.DeleteAllForAlias(alias);
  Step("DeleteAllForAlias", removed.ok() && *removed == 1,
       removed.ok() ? absl::StrCat(*removed, " entry removed")
                    : removed.status().ToString());
  auto after = store.Find(alias);
  Step("Find after eviction",
       after.status().code() == absl::StatusCode::kNotFound,
       std::string(absl::StatusCodeToString(after.status().code())));
}

std::string ScratchDirectory(int argc, char** argv) {
  if (argc > 1) {
    return argv[1];
  }
  const char* tmp = getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp",
                                     "/certstore-quickstart-XXXXXX");
  return mkdtemp(&pattern[0]) != nullptr ? pattern : "";
}

}  // namespace

int main(int argc, char** argv) {
  const std::string alias = "quickstart-client#att=0";
  std::printf("certstore quickstart, alias \"%s\"\n", alias.c_str());

  std::unique_ptr<certstore::CertStore> memory = certstore::NewMemoryStore();
  if (StoreOne(*memory, alias) != nullptr) {
    Evict(*memory, alias);
  }

  const std::string path = ScratchDirectory(argc, argv) + "/quickstart.db";
  auto sqlite = certstore::OpenSqliteStore(path);
  Step("OpenSqliteStore", sqlite.ok(),
       sqlite.ok() ? path : sqlite.status().ToString());
  if (sqlite.ok() && StoreOne(**sqlite, alias) != nullptr) {
    // A new process would do this: open the file again and find it there.
    sqlite->reset();
    auto reopened = certstore::OpenSqliteStore(path);
    auto found = reopened.ok() ? (*reopened)->Find(alias) : reopened.status();
    Step("Find after reopening the file", found.ok(),
         found.ok() ? "x5t#S256 " + (*found)->thumbprint()
                    : found.status().ToString());
    if (reopened.ok()) {
      Evict(**reopened, alias);
    }
  }

  std::printf("\n%s\n", failures == 0 ? "quickstart: all steps behaved"
                                      : "quickstart: FAILED");
  return failures == 0 ? 0 : 1;
}

// The conformance suite instantiated for Pkcs11Store on a private SoftHSM2
// token, alone and under a memory layer (LayeredStore). One token per binary:
// each case gets a fresh store on it after every object is destroyed, so the
// store is empty. Software keys from the test PKI are imported (allow_import),
// token keys come from CreateKey.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "certstore/layered_store.h"
#include "certstore/memory_store.h"
#include "certstore/pkcs11_store.h"
#include "certstore/testing/cert_store_conformance.h"
#include "tests/pkcs11/softhsm_token.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace certstore::testing {
namespace {

// The token, and a store kept open for the whole binary so that the
// module stays loaded between cases.
const SoftHsmToken& ConformanceToken() {
  static const SoftHsmToken* const token = [] {
    auto created = SoftHsmToken::Create("conformance");
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
      std::abort();
    }
    return created->release();
  }();
  static CertStore* const keeper = [] {
    auto store = OpenPkcs11Store(token->Options());
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      std::abort();
    }
    CertStore* kept = store->release();
#if defined(__SANITIZE_ADDRESS__)
    __lsan_ignore_object(kept);  // open until exit on purpose
#endif
    return kept;
  }();
  (void)keeper;
  return *token;
}

absl::StatusOr<std::unique_ptr<CertStore>> OpenEmpty(const Clock* clock) {
  const SoftHsmToken& token = ConformanceToken();
  absl::Status wiped = token.DestroyAllObjects();
  if (!wiped.ok()) {
    return wiped;
  }
  Pkcs11StoreOptions options = token.Options();
  options.clock = clock;
  options.allow_import = true;
  return OpenPkcs11Store(options);
}

// Memory over the token, as "memory:,pkcs11:..." opens it.
absl::StatusOr<std::unique_ptr<CertStore>> OpenMemoryOverEmpty(
    const Clock* clock) {
  absl::StatusOr<std::unique_ptr<CertStore>> token_store = OpenEmpty(clock);
  if (!token_store.ok()) {
    return token_store.status();
  }
  MemoryStoreOptions memory_options;
  memory_options.clock = clock;
  std::vector<std::unique_ptr<CertStore>> layers;
  layers.push_back(NewMemoryStore(memory_options));
  layers.push_back(*std::move(token_store));
  absl::StatusOr<std::unique_ptr<LayeredStore>> layered =
      LayeredStore::Open(std::move(layers));
  if (!layered.ok()) {
    return layered.status();
  }
  return std::unique_ptr<CertStore>(*std::move(layered));
}

INSTANTIATE_TEST_SUITE_P(
    Pkcs11, CertStoreConformanceTest,
    ::testing::Values(ConformanceBackend{"pkcs11", &OpenEmpty},
                      ConformanceBackend{"memory_over_pkcs11",
                                         &OpenMemoryOverEmpty}),
    ConformanceBackendName);

}  // namespace
}  // namespace certstore::testing

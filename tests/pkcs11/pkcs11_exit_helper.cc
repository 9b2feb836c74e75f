// A process that opens a Pkcs11Store on a SoftHSM token, signs on the token
// and ends with the store (and a found entry) still open: by returning from
// main ("return") or by calling exit() ("exit"). pkcs11_process_test runs
// it and requires exit status 0 — SoftHSM + OpenSSL teardown ordering at
// exit is a known crash.
//   pkcs11_exit_helper <return|exit> <pkcs11 URI>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "certstore/pkcs11_store.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

int main(int argc, char** argv) {
#if defined(__SANITIZE_ADDRESS__)
  __lsan_disable();  // everything here stays allocated until exit on purpose
#endif
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <return|exit> <pkcs11 URI>\n", argv[0]);
    return 2;
  }
  auto options = certstore::ParsePkcs11Uri(argv[2]);
  if (!options.ok()) {
    std::fprintf(stderr, "%s\n", options.status().ToString().c_str());
    return 3;
  }
  auto store = certstore::OpenPkcs11Store(*options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 4;
  }
  auto key = (*store)->CreateKey("exit-helper", certstore::KeySpec{});
  if (!key.ok() || !(*key)->Sign("before exit").ok() ||
      (*key)->evp_pkey() == nullptr) {
    std::fprintf(stderr, "cannot sign on the token\n");
    return 5;
  }
  (*store)->DeleteAllForAlias("exit-helper").IgnoreError();
  // Leak both on purpose: teardown happens in the atexit handler.
  new std::shared_ptr<const certstore::Key>(*key);
  store->release();
  if (std::strcmp(argv[1], "exit") == 0) {
    std::exit(0);
  }
  return 0;
}

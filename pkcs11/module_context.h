// One loaded PKCS#11 module per process, shared by every Pkcs11Store on it,
// and the libp11 slot lists ("generations") its keys come from.
// Project-internal to pkcs11/.
//
// Why a registry: two libp11 contexts on one module share the module's
// C_Initialize/C_Finalize and invalidate each other's sessions, so a module
// is loaded once per process, keyed by its realpath, and refcounted.
//
// Why generations: libp11 0.4.12 keeps every key it ever saw in a slot's key
// list (a key deleted by another process stays listed, a re-created one is
// appended), and the only refresh is a new PKCS11_enumerate_slots. Releasing
// a slot list frees the objects behind every EVP_PKEY taken from it, so each
// token key holds a shared_ptr to the Generation it came from, and a
// generation's slots are released only after its last key is gone — in
// fact only when the module is torn down: releasing also closes every
// session on the slot (C_CloseAllSessions), which invalidates the object
// handles of every live key in the process. A retired generation costs its
// key list's memory until then; refreshes are rare (a key re-created by
// another process under an id this process has seen, a fork, a
// re-initialisation).
#ifndef CERTSTORE_PKCS11_MODULE_CONTEXT_H_
#define CERTSTORE_PKCS11_MODULE_CONTEXT_H_

#include <libp11.h>
#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace certstore::pkcs11_internal {

class ModuleContext;

// One PKCS11_enumerate_slots result. Created and used with the module's
// mutex held; may be destroyed anywhere (its slots are then handed back to
// the module, which releases them under its mutex).
class Generation {
 public:
  Generation(ModuleContext* module, PKCS11_SLOT* slots, unsigned int count,
             uint64_t epoch);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // The module epoch this list was enumerated in.
  uint64_t epoch() const { return epoch_; }

  // The slot whose token carries `label` (blank-padded label compared
  // trimmed), or null.
  PKCS11_SLOT* SlotFor(absl::string_view label) const;

 private:
  ModuleContext* const module_;
  PKCS11_SLOT* const slots_;
  const unsigned int count_;
  const uint64_t epoch_;
};

class ModuleContext {
 public:
  // Returns the process's context for the module at `module_path`, loading
  // it (PKCS11_CTX_load, which calls C_Initialize) on first use.
  // InvalidArgument naming the path when it does not exist or does not
  // load as a PKCS#11 module. With `initialize_module` false the
  // application must have called C_Initialize already (FailedPrecondition
  // otherwise), and certstore never calls C_Finalize.
  static absl::StatusOr<std::shared_ptr<ModuleContext>> Acquire(
      absl::string_view module_path, bool initialize_module);

  ~ModuleContext();
  ModuleContext(const ModuleContext&) = delete;
  ModuleContext& operator=(const ModuleContext&) = delete;

  // Serialises every call certstore makes into the module (PKCS#11
  // sessions are not safe for concurrent operations, nor is libp11's
  // key enumeration).
  absl::Mutex& mu() ABSL_LOCK_RETURNED(mu_) { return mu_; }

  const std::string& path() const { return path_; }
  CK_FUNCTION_LIST* functions() const { return functions_; }
  // The list libp11 loaded and initialised, read from its context (null if
  // unreadable); functions() is this one whenever it can be read.
  CK_FUNCTION_LIST* libp11_functions() const;
  bool owns_initialization() const { return initialize_module_; }

  // Call first, with mu() held: in a forked child, re-initialises the
  // module (C_Initialize; ALREADY_INITIALIZED is fine) and starts a new
  // epoch; closes the sessions of destroyed stores.
  void Prepare() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Changes after a fork or a re-initialisation: sessions, object handles
  // and generations of an older epoch must not be used.
  uint64_t epoch() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return epoch_; }

  // C_Finalize + C_Initialize, so that the module sees tokens created by
  // other processes since it was loaded (SoftHSM scans its token directory
  // only at C_Initialize). Every session of every store on the module is
  // invalidated; they reconnect on next use. FailedPrecondition when the
  // application owns initialisation.
  absl::Status Reinitialize() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The newest generation of this epoch, enumerating one if there is none.
  absl::StatusOr<std::shared_ptr<Generation>> CurrentGeneration()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Enumerates a new generation and makes it current; the previous one lives
  // on while keys hold it.
  absl::StatusOr<std::shared_ptr<Generation>> Refresh()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The PIN that last logged the application in to token `label` (a PIN
  // the token accepted), or null. C_Login answers
  // CKR_USER_ALREADY_LOGGED_IN without looking at the PIN once any session
  // is logged in, so a second store's PIN is checked against this one.
  const std::string* VerifiedPin(absl::string_view label) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetVerifiedPin(absl::string_view label, absl::string_view pin)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Another instance of the module where it gives one per caller
  // (p11-kit-client.so: another server connection), initialised on first
  // use; functions() otherwise. For writes that must not hide other
  // processes' writes from this instance's view (token_lease.h).
  CK_FUNCTION_LIST* SecondInstance() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Hands a session of a destroyed RawToken back, to be closed (on the
  // instance it was opened on) at the next Prepare (callable from any
  // thread, with or without mu()).
  void RetireSession(CK_FUNCTION_LIST* instance, CK_SESSION_HANDLE session,
                     uint64_t epoch);

  // Called once from the process's atexit handler: finalizes the module
  // before OpenSSL's own atexit cleanup runs (SoftHSM uses OpenSSL; the
  // reverse order crashes at exit), and makes every later teardown step a
  // no-op.
  void FinalizeAtExit();

 private:
  friend class Generation;
  struct Retired {
    PKCS11_SLOT* slots;
    unsigned int count;
  };
  struct RetiredSession {
    CK_FUNCTION_LIST* instance;
    CK_SESSION_HANDLE session;
    uint64_t epoch;
  };

  ModuleContext(std::string path, bool initialize_module);
  absl::Status Load();
  void Retire(PKCS11_SLOT* slots, unsigned int count);
  // Closes the sessions of destroyed RawTokens.
  void DrainRetired() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases the slot lists no key holds any more: only when the module is
  // torn down. libp11 0.4.12 releases a slot with C_CloseAllSessions, which
  // on SoftHSM invalidates every object handle of the process (those of the
  // live generations' keys too) and logs the application out.
  void ReleaseRetiredSlotLists() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Destroy(ModuleContext* module);

  const std::string path_;
  const bool initialize_module_;
  PKCS11_CTX* ctx_ = nullptr;
  void* dl_handle_ = nullptr;
  CK_FUNCTION_LIST* functions_ = nullptr;
  // What our own C_GetFunctionList gave: functions_ too, unless the module
  // hands each caller a new instance (then SecondInstance).
  CK_FUNCTION_LIST* own_functions_ = nullptr;
  // certstore called C_Initialize on own_functions_ (not libp11's
  // instance): it re-initialises and finalises it too.
  bool finalize_own_ = false;

  absl::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t fork_seen_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<Generation> current_ ABSL_GUARDED_BY(mu_);
  bool finalized_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<std::string, std::string>> verified_pins_
      ABSL_GUARDED_BY(mu_);

  absl::Mutex retired_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::vector<Retired> retired_ ABSL_GUARDED_BY(retired_mu_);
  std::vector<RetiredSession> retired_sessions_ ABSL_GUARDED_BY(retired_mu_);
};

}  // namespace certstore::pkcs11_internal

#endif  // CERTSTORE_PKCS11_MODULE_CONTEXT_H_

#include "pkcs11/module_context.h"

#include <dlfcn.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "api/internal/posix_status.h"
#include "certstore/errors.h"
#include "pkcs11/ckr_status.h"

namespace certstore::pkcs11_internal {
namespace {

// Incremented in every forked child (pthread_atfork), compared by Prepare.
std::atomic<uint64_t> g_fork_count{0};

void OnForkChild() { g_fork_count.fetch_add(1, std::memory_order_relaxed); }

struct Registry {
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::weak_ptr<ModuleContext>> modules
      ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  static Registry* const registry = new Registry();
  return *registry;
}

void FinalizeAllAtExit() {
  std::vector<std::shared_ptr<ModuleContext>> live;
  {
    Registry& registry = GetRegistry();
    absl::MutexLock lock(&registry.mu);
    for (auto& [path, weak] : registry.modules) {
      if (std::shared_ptr<ModuleContext> module = weak.lock()) {
        live.push_back(std::move(module));
      }
    }
  }
  for (const auto& module : live) {
    module->FinalizeAtExit();
  }
}

void RegisterForkHandlerOnce() {
  static absl::once_flag once;
  absl::call_once(once, [] { pthread_atfork(nullptr, nullptr, &OnForkChild); });
}

// Exit handlers run in reverse order of registration. OpenSSL registers its
// cleanup when first initialised, a C++ module (SoftHSM) its static
// destructors when dlopen'ed: registering after both makes C_Finalize run
// while the module and OpenSSL are still whole. Once per module file (it is
// never unmapped, so its destructors are registered once).
void RegisterExitHandlerAfterLoading(const std::string& path) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* registered = new std::vector<std::string>();
  absl::MutexLock lock(&mu);
  for (const std::string& done : *registered) {
    if (done == path) {
      return;
    }
  }
  registered->push_back(path);
  OPENSSL_init_crypto(0, nullptr);
  std::atexit(&FinalizeAllAtExit);
}

CK_C_INITIALIZE_ARGS InitArgs() {
  CK_C_INITIALIZE_ARGS args;
  std::memset(&args, 0, sizeof(args));
  args.flags = CKF_OS_LOCKING_OK;
  return args;
}

absl::StatusOr<std::string> RealModulePath(absl::string_view module_path) {
  const std::string context = absl::StrCat("module-path \"", module_path, "\"");
  if (module_path.empty() || module_path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": must be an absolute path to a .so"));
  }
  char resolved[PATH_MAX];
  if (realpath(std::string(module_path).c_str(), resolved) == nullptr) {
    absl::Status status = internal::ErrnoStatus(errno, context);
    return absl::InvalidArgumentError(status.message());
  }
  return std::string(resolved);
}

// The function list libp11 0.4.12 loaded and initialised: the first member
// of its context's private part (libp11's internal struct
// pkcs11_ctx_private begins with CK_FUNCTION_LIST_PTR method); libp11 has
// no accessor. Null unless it
// looks like an initialised PKCS#11 2.x list. The pkcs11 tests check that
// on SoftHSM it is the very list C_GetFunctionList gives.
CK_FUNCTION_LIST* LibP11FunctionList(PKCS11_CTX* ctx) {
  if (ctx == nullptr || ctx->_private == nullptr) {
    return nullptr;
  }
  CK_FUNCTION_LIST* list = *static_cast<CK_FUNCTION_LIST**>(ctx->_private);
  if (list == nullptr || list->version.major != 2 ||
      list->C_GetInfo == nullptr) {
    return nullptr;
  }
  CK_INFO info;
  return list->C_GetInfo(&info) == CKR_OK ? list : nullptr;
}

absl::string_view TrimLabel(absl::string_view label) {
  return absl::StripTrailingAsciiWhitespace(label);
}

}  // namespace

Generation::Generation(ModuleContext* module, PKCS11_SLOT* slots,
                       unsigned int count, uint64_t epoch)
    : module_(module), slots_(slots), count_(count), epoch_(epoch) {}

Generation::~Generation() { module_->Retire(slots_, count_); }

PKCS11_SLOT* Generation::SlotFor(absl::string_view label) const {
  for (unsigned int i = 0; i < count_; ++i) {
    PKCS11_TOKEN* token = slots_[i].token;
    if (token != nullptr && token->label != nullptr &&
        TrimLabel(token->label) == TrimLabel(label)) {
      return &slots_[i];
    }
  }
  return nullptr;
}

ModuleContext::ModuleContext(std::string path, bool initialize_module)
    : path_(std::move(path)), initialize_module_(initialize_module) {}

absl::StatusOr<std::shared_ptr<ModuleContext>> ModuleContext::Acquire(
    absl::string_view module_path, bool initialize_module) {
  absl::StatusOr<std::string> real = RealModulePath(module_path);
  if (!real.ok()) {
    return real.status();
  }
  RegisterForkHandlerOnce();
  Registry& registry = GetRegistry();
  // A module whose last user is finalizing it must be gone before it is
  // loaded again: its C_Finalize would break the new context.
  auto settled = [&registry, &real]() {
    registry.mu.AssertHeld();
    auto it = registry.modules.find(*real);
    return it == registry.modules.end() || !it->second.expired();
  };
  registry.mu.LockWhen(absl::Condition(&settled));
  std::shared_ptr<ModuleContext> module;
  auto it = registry.modules.find(*real);
  if (it != registry.modules.end()) {
    module = it->second.lock();
  }
  absl::Status status;
  if (module == nullptr) {
    std::unique_ptr<ModuleContext> loaded(
        new ModuleContext(*real, initialize_module));
    status = loaded->Load();
    if (status.ok()) {
      module.reset(loaded.release(), &ModuleContext::Destroy);
      registry.modules[*real] = module;
    }
  }
  registry.mu.Unlock();
  if (!status.ok()) {
    return status;
  }
  return module;
}

absl::Status ModuleContext::Load() {
  const std::string context = absl::StrCat("module-path \"", path_, "\"");
  // Our own reference keeps the module mapped for the life of the process:
  // unmapping a module whose destructors use OpenSSL is a crash at exit.
  dl_handle_ = dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (dl_handle_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": cannot load: ", dlerror()));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(
      dlsym(dl_handle_, "C_GetFunctionList"));
  if (get_list == nullptr || get_list(&functions_) != CKR_OK ||
      functions_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": not a PKCS#11 module (no C_GetFunctionList)"));
  }
  if (!initialize_module_) {
    CK_INFO info;
    if (functions_->C_GetInfo(&info) == CKR_CRYPTOKI_NOT_INITIALIZED) {
      return absl::FailedPreconditionError(absl::StrCat(
          context,
          ": initialize_module is false but the application has not called "
          "C_Initialize on this module (or the module gives every loader "
          "its own instance, as p11-kit-client.so does: then certstore must "
          "initialise it)"));
    }
  }
  ctx_ = PKCS11_CTX_new();
  if (ctx_ == nullptr || PKCS11_CTX_load(ctx_, path_.c_str()) != 0) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(context, ": PKCS11_CTX_load failed"));
  }
  // libp11 loads the module itself and initialises the function list it
  // gets. Most modules hand every caller one list, so ours is that one;
  // p11-kit's client module hands out a new instance (a new server
  // connection, its own sessions and login) per C_GetFunctionList. Then
  // certstore uses libp11's instance, so that there is one connection,
  // one login, and re-initialising it (a restarted server) revives the
  // keys' side too.
  own_functions_ = functions_;
  if (CK_FUNCTION_LIST* shared = LibP11FunctionList(ctx_);
      shared != nullptr && shared != functions_) {
    functions_ = shared;  // ours stays for SecondInstance
  }
  if (initialize_module_ && functions_ == own_functions_) {
    CK_INFO info;
    if (functions_->C_GetInfo(&info) == CKR_CRYPTOKI_NOT_INITIALIZED) {
      // libp11's list could not be read and ours is another instance:
      // initialise it, and finalise it with the module.
      CK_C_INITIALIZE_ARGS args = InitArgs();
      const CK_RV rv = functions_->C_Initialize(&args);
      if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        return CkrStatus(rv, "C_Initialize", path_);
      }
      finalize_own_ = true;
    }
  }
  RegisterExitHandlerAfterLoading(path_);
  absl::MutexLock lock(&mu_);
  fork_seen_ = g_fork_count.load(std::memory_order_relaxed);
  return absl::OkStatus();
}

CK_FUNCTION_LIST* ModuleContext::libp11_functions() const {
  return LibP11FunctionList(ctx_);
}

void ModuleContext::Destroy(ModuleContext* module) {
  Registry& registry = GetRegistry();
  absl::MutexLock lock(&registry.mu);
  const std::string path = module->path_;
  delete module;
  auto it = registry.modules.find(path);
  if (it != registry.modules.end() && it->second.expired()) {
    registry.modules.erase(it);
  }
}

ModuleContext::~ModuleContext() {
  absl::MutexLock lock(&mu_);
  for (auto& [token, pin] : verified_pins_) {
    OPENSSL_cleanse(pin.data(), pin.size());
  }
  if (ctx_ == nullptr || finalized_) {
    return;  // never loaded, or torn down at exit: leave everything as is
  }
  current_.reset();
  DrainRetired();
  ReleaseRetiredSlotLists();
  // PKCS11_CTX_unload calls C_Finalize (unless forked) and drops libp11's
  // mapping; the embedding application keeps C_Finalize when it owns it.
  if (initialize_module_) {
    if (finalize_own_) {
      own_functions_->C_Finalize(nullptr);
    }
    PKCS11_CTX_unload(ctx_);
  }
  PKCS11_CTX_free(ctx_);
}

const std::string* ModuleContext::VerifiedPin(absl::string_view label) const {
  for (const auto& [token, pin] : verified_pins_) {
    if (token == label) {
      return &pin;
    }
  }
  return nullptr;
}

void ModuleContext::SetVerifiedPin(absl::string_view label,
                                   absl::string_view pin) {
  for (auto& [token, known] : verified_pins_) {
    if (token == label) {
      OPENSSL_cleanse(known.data(), known.size());
      known = std::string(pin);
      return;
    }
  }
  verified_pins_.emplace_back(std::string(label), std::string(pin));
}

void ModuleContext::FinalizeAtExit() {
  if (!mu_.TryLock()) {
    return;  // another thread is inside the module: better leak than hang
  }
  if (!finalized_ && ctx_ != nullptr && initialize_module_) {
    functions_->C_Finalize(nullptr);
    if (finalize_own_ && own_functions_ != functions_) {
      own_functions_->C_Finalize(nullptr);
    }
  }
  finalized_ = true;
  mu_.Unlock();
}

void ModuleContext::Prepare() {
  const uint64_t forks = g_fork_count.load(std::memory_order_relaxed);
  if (forks != fork_seen_) {
    // A forked child: PKCS#11 requires C_Initialize again before use, and
    // nothing from the parent's sessions may be used.
    fork_seen_ = forks;
    ++epoch_;
    current_.reset();
    if (initialize_module_) {
      CK_C_INITIALIZE_ARGS args = InitArgs();
      functions_->C_Initialize(&args);
      if (finalize_own_ && own_functions_ != functions_) {
        own_functions_->C_Initialize(&args);
      }
    }
  }
  DrainRetired();
}

CK_FUNCTION_LIST* ModuleContext::SecondInstance() {
  if (own_functions_ == functions_ || !initialize_module_) {
    return functions_;
  }
  if (!finalize_own_) {
    CK_C_INITIALIZE_ARGS args = InitArgs();
    const CK_RV rv = own_functions_->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      return functions_;  // the shared instance still works, if less well
    }
    finalize_own_ = true;
  }
  return own_functions_;
}

absl::Status ModuleContext::Reinitialize() {
  if (!initialize_module_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "module-path \"", path_,
        "\": cannot re-initialise: the application owns C_Initialize "
        "(initialize_module is false)"));
  }
  current_.reset();
  DrainRetired();
  functions_->C_Finalize(nullptr);
  CK_C_INITIALIZE_ARGS args = InitArgs();
  const CK_RV rv = functions_->C_Initialize(&args);
  if (finalize_own_ && own_functions_ != functions_) {
    own_functions_->C_Finalize(nullptr);
    own_functions_->C_Initialize(&args);
  }
  ++epoch_;
  return CkrStatus(rv, "C_Initialize", path_);
}

absl::StatusOr<std::shared_ptr<Generation>> ModuleContext::CurrentGeneration() {
  if (current_ != nullptr && current_->epoch() == epoch_) {
    return current_;
  }
  return Refresh();
}

absl::StatusOr<std::shared_ptr<Generation>> ModuleContext::Refresh() {
  PKCS11_SLOT* slots = nullptr;
  unsigned int count = 0;
  if (PKCS11_enumerate_slots(ctx_, &slots, &count) != 0) {
    return OpenSslError(absl::StatusCode::kUnavailable,
                        absl::StrCat("module-path \"", path_,
                                     "\": PKCS11_enumerate_slots failed"));
  }
  current_ = std::make_shared<Generation>(this, slots, count, epoch_);
  return current_;
}

void ModuleContext::Retire(PKCS11_SLOT* slots, unsigned int count) {
  absl::MutexLock lock(&retired_mu_);
  retired_.push_back({slots, count});
}

void ModuleContext::RetireSession(CK_FUNCTION_LIST* instance,
                                  CK_SESSION_HANDLE session, uint64_t epoch) {
  absl::MutexLock lock(&retired_mu_);
  retired_sessions_.push_back({instance, session, epoch});
}

void ModuleContext::DrainRetired() {
  std::vector<RetiredSession> sessions;
  {
    absl::MutexLock lock(&retired_mu_);
    sessions.swap(retired_sessions_);
  }
  for (const RetiredSession& retired : sessions) {
    if (retired.epoch == epoch_) {
      retired.instance->C_CloseSession(retired.session);
    }
  }
}

void ModuleContext::ReleaseRetiredSlotLists() {
  std::vector<Retired> lists;
  {
    absl::MutexLock lock(&retired_mu_);
    lists.swap(retired_);
  }
  for (const Retired& retired : lists) {
    PKCS11_release_all_slots(ctx_, retired.slots, retired.count);
  }
}

}  // namespace certstore::pkcs11_internal

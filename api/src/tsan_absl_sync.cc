// ThreadSanitizer builds only (CERTSTORE_TSAN; api/CMakeLists.txt).
//
// Debian's Abseil is not built with ThreadSanitizer: absl::Mutex,
// CondVar, Notification and call_once's waiter synchronise in code TSan
// cannot see, so every access they guard would be reported as a race. The
// linker sends each call certstore's code makes to those entry points
// through a wrapper here (`ld --wrap`), which tells TSan the happens-before
// edge the call makes: a release on the object before unlocking, waiting
// (which unlocks) or notifying, an acquire on it after locking, waking or
// being notified. TSan then checks certstore's own accesses as it would
// with an instrumented Abseil. What it cannot do for these locks: report
// lock-order inversions (its deadlock detector does not see them).
//
// Abseil's own deadlock detector (on in Debian's build) keeps its lock
// graph under a spin lock TSan cannot see either, and copies it with
// memmove, which TSan intercepts: it is turned off when the program starts
// (TSan's detector does not see Abseil's locks; certstore's tests and
// -Wthread-safety check lock order).
//
// The same for GCC 12's TSan runtime, which has no interceptor for
// glibc's pthread_mutex_clocklock (std::timed_mutex::try_lock_until on
// steady_clock, as the SQLite store uses): the lock it takes is announced
// to TSan with its mutex annotations, or its unlock reads as the unlock of
// a mutex nobody holds.
#include <pthread.h>
#include <sanitizer/tsan_interface.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <string_view>

#include "absl/base/internal/spinlock_wait.h"
#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

// The mangled names below are those of Debian's Abseil 20220623, whose
// inline namespace is "debian3"; another Abseil needs them renamed (or, if
// built with TSan, none of this).
#define CERTSTORE_TSAN_STR(x) #x
#define CERTSTORE_TSAN_XSTR(x) CERTSTORE_TSAN_STR(x)
static_assert(std::string_view(CERTSTORE_TSAN_XSTR(
                  ABSL_OPTION_INLINE_NAMESPACE_NAME)) == "debian3",
              "tsan_absl_sync.cc names Debian's Abseil (inline namespace "
              "debian3): rename its symbols for this Abseil");

// One wrapper per Abseil symbol: __wrap_<mangled> is what certstore's
// calls reach, __real_<mangled> the Abseil function. Exported, so that a
// shared build resolves them too.
#define CERTSTORE_TSAN_WRAP(mangled, ret, params, args, before, after) \
  extern "C" ret __real_##mangled params;                              \
  extern "C" __attribute__((visibility("default")))                    \
  ret __wrap_##mangled params {                                        \
    before;                                                            \
    ret result = __real_##mangled args;                                \
    after;                                                             \
    return result;                                                     \
  }
#define CERTSTORE_TSAN_WRAP_VOID(mangled, params, args, before, after)      \
  extern "C" void __real_##mangled params;                                  \
  extern "C"                                                                \
      __attribute__((visibility("default"))) void __wrap_##mangled params { \
    before;                                                                 \
    __real_##mangled args;                                                  \
    after;                                                                  \
  }

namespace {
using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Notification;
using absl::Time;
using absl::base_internal::SchedulingMode;
using absl::base_internal::SpinLockWaitTransition;

[[maybe_unused]] const bool kDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

void Release(const void* object) { __tsan_release(const_cast<void*>(object)); }
void Acquire(const void* object) { __tsan_acquire(const_cast<void*>(object)); }

// A condition is evaluated by whichever thread holds the lock, often the
// one unlocking it (inside Unlock, after its release), on the waiter's
// behalf: its reads happen after that release and before the waiter
// wakes. Evaluating it between an acquire and a release of the mutex
// orders them like any other section the lock guards.
struct AnnotatedCondition {
  const Mutex* mu;
  const Condition* condition;
};

bool EvalAnnotated(AnnotatedCondition* c) {
  Acquire(c->mu);
  const bool result = c->condition->Eval();
  Release(c->mu);
  return result;
}

AnnotatedCondition Annotate(const Mutex* mu, const Condition* condition) {
  return AnnotatedCondition{mu, condition};
}
}  // namespace

// The condition `c` of a wrapper, annotated (`a` lives on its stack).
#define CERTSTORE_TSAN_ANNOTATED(mu, c) AnnotatedCondition a = Annotate(mu, &c)
#define CERTSTORE_TSAN_CONDITION Condition(&EvalAnnotated, &a)

// absl::Mutex: locking.
CERTSTORE_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex4LockEv, (Mutex * mu), (mu), ,
                         Acquire(mu))
CERTSTORE_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex10ReaderLockEv, (Mutex * mu),
                         (mu), , Acquire(mu))
CERTSTORE_TSAN_WRAP(_ZN4absl7debian35Mutex7TryLockEv, bool, (Mutex * mu), (mu),
                    , if (result) Acquire(mu))
CERTSTORE_TSAN_WRAP(_ZN4absl7debian35Mutex13ReaderTryLockEv, bool, (Mutex * mu),
                    (mu), , if (result) Acquire(mu))
CERTSTORE_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE,
                         (Mutex * mu, const Condition& c),
                         (mu, CERTSTORE_TSAN_CONDITION),
                         CERTSTORE_TSAN_ANNOTATED(mu, c), Acquire(mu))
CERTSTORE_TSAN_WRAP_VOID(
    _ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE,
    (Mutex * mu, const Condition& c), (mu, CERTSTORE_TSAN_CONDITION),
    CERTSTORE_TSAN_ANNOTATED(mu, c), Acquire(mu))
// The timed forms hold the lock on return whether or not the condition
// became true.
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE,
    bool, (Mutex * mu, const Condition& c, Duration d),
    (mu, CERTSTORE_TSAN_CONDITION, d), CERTSTORE_TSAN_ANNOTATED(mu, c),
    Acquire(mu))
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE,
    bool, (Mutex * mu, const Condition& c, Time t),
    (mu, CERTSTORE_TSAN_CONDITION, t), CERTSTORE_TSAN_ANNOTATED(mu, c),
    Acquire(mu))
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE,
    bool, (Mutex * mu, const Condition& c, Duration d),
    (mu, CERTSTORE_TSAN_CONDITION, d), CERTSTORE_TSAN_ANNOTATED(mu, c),
    Acquire(mu))
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE,
    bool, (Mutex * mu, const Condition& c, Time t),
    (mu, CERTSTORE_TSAN_CONDITION, t), CERTSTORE_TSAN_ANNOTATED(mu, c),
    Acquire(mu))

// absl::Mutex: unlocking.
CERTSTORE_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex6UnlockEv, (Mutex * mu), (mu),
                         Release(mu), )
CERTSTORE_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex12ReaderUnlockEv, (Mutex * mu),
                         (mu), Release(mu), )

// absl::Mutex: waiting for a condition, which unlocks and locks again.
CERTSTORE_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE,
                         (Mutex * mu, const Condition& c),
                         (mu, CERTSTORE_TSAN_CONDITION), Release(mu);
                         CERTSTORE_TSAN_ANNOTATED(mu, c), Acquire(mu))
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE,
    bool, (Mutex * mu, const Condition& c, Duration d),
    (mu, CERTSTORE_TSAN_CONDITION, d), Release(mu);
    CERTSTORE_TSAN_ANNOTATED(mu, c), Acquire(mu))
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE, bool,
    (Mutex * mu, const Condition& c, Time t), (mu, CERTSTORE_TSAN_CONDITION, t),
    Release(mu);
    CERTSTORE_TSAN_ANNOTATED(mu, c), Acquire(mu))

// absl::CondVar: waiting unlocks `mu` and locks it again.
CERTSTORE_TSAN_WRAP_VOID(_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE,
                         (CondVar * cv, Mutex* mu), (cv, mu), Release(mu),
                         Acquire(mu))
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE, bool,
    (CondVar * cv, Mutex* mu, Duration d), (cv, mu, d), Release(mu),
    Acquire(mu))
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE, bool,
    (CondVar * cv, Mutex* mu, Time t), (cv, mu, t), Release(mu), Acquire(mu))

// absl::Notification: what happened before Notify() happens before the
// return of a wait that saw it.
CERTSTORE_TSAN_WRAP_VOID(_ZN4absl7debian312Notification6NotifyEv,
                         (Notification * n), (n), Release(n), )
CERTSTORE_TSAN_WRAP_VOID(_ZNK4absl7debian312Notification19WaitForNotificationEv,
                         (const Notification* n), (n), , Acquire(n))
CERTSTORE_TSAN_WRAP(
    _ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE,
    bool, (const Notification* n, Duration d), (n, d), , if (result) Acquire(n))
CERTSTORE_TSAN_WRAP(
    _ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE,
    bool, (const Notification* n, Time t), (n, t), , if (result) Acquire(n))

// absl::call_once: a caller that finds another thread running the
// function waits here; the runner's release is an (instrumented) atomic
// exchange on the same word.
CERTSTORE_TSAN_WRAP(
    _ZN4absl7debian313base_internal12SpinLockWaitEPSt6atomicIjEiPKNS1_22SpinLockWaitTransitionENS1_14SchedulingModeE,
    uint32_t,
    (std::atomic<uint32_t> * w, int n, const SpinLockWaitTransition trans[],
     SchedulingMode mode),
    (w, n, trans, mode), , Acquire(w))

// pthread_mutex_clocklock (std::timed_mutex with a steady_clock deadline).
extern "C" int __real_pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t c,
                                              const struct timespec* t);
extern "C" __attribute__((visibility("default"))) int
__wrap_pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t c,
                               const struct timespec* t) {
  __tsan_mutex_pre_lock(m, __tsan_mutex_try_lock);
  const int result = __real_pthread_mutex_clocklock(m, c, t);
  __tsan_mutex_post_lock(
      m,
      result == 0 ? __tsan_mutex_try_lock
                  : __tsan_mutex_try_lock | __tsan_mutex_try_lock_failed,
      0);
  return result;
}

/// \file
/// Status propagation helpers. Abseil 20220623 ships none, so the project owns
/// exactly one pair, here.
#ifndef CERTSTORE_STATUS_MACROS_H_
#define CERTSTORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CERTSTORE_CONCAT_INNER_(a, b) a##b
#define CERTSTORE_CONCAT_(a, b) CERTSTORE_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function if it is not OK.
#define CERTSTORE_RETURN_IF_ERROR(expr)              \
  do {                                               \
    const ::absl::Status certstore_status_ = (expr); \
    if (!certstore_status_.ok()) {                   \
      return certstore_status_;                      \
    }                                                \
  } while (false)

// Evaluates `expr` (an absl::StatusOr<T>); returns its status if not OK,
// otherwise moves the value into `lhs` (which may be a declaration).
#define CERTSTORE_ASSIGN_OR_RETURN(lhs, expr) \
  CERTSTORE_ASSIGN_OR_RETURN_IMPL_(           \
      CERTSTORE_CONCAT_(certstore_statusor_, __LINE__), lhs, expr)

#define CERTSTORE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                     \
  if (!statusor.ok()) {                                       \
    return std::move(statusor).status();                      \
  }                                                           \
  lhs = std::move(statusor).value()

#endif  // CERTSTORE_STATUS_MACROS_H_

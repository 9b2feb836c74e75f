/// \file
/// Logging and metrics hooks. Silent by default: a store or client logs only
/// through the callback its options give it, and counts into a Metrics
/// object the application can read. Messages never hold secrets.
#ifndef CERTSTORE_OBSERVABILITY_H_
#define CERTSTORE_OBSERVABILITY_H_

#include <functional>

#include "absl/strings/string_view.h"
#include "certstore/export.h"

namespace certstore {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

CERTSTORE_EXPORT absl::string_view LogLevelName(LogLevel level);

/// component: "cache", "mint", "client"… ; message: one line, never a
/// secret. Called on the thread doing the work, possibly several at once:
/// the callback must be thread-safe and should not block.
using LogCallback = std::function<void(
    LogLevel level, absl::string_view component, absl::string_view message)>;

}  // namespace certstore

#endif  // CERTSTORE_OBSERVABILITY_H_

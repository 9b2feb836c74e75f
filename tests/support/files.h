// Small file helpers for tests: write with a mode, read whole.
#ifndef CERTSTORE_TESTS_SUPPORT_FILES_H_
#define CERTSTORE_TESTS_SUPPORT_FILES_H_

#include <sys/types.h>

#include <string>

#include "absl/strings/string_view.h"

namespace certstore::testing {

// Writes `content` to `path` with `mode` (the file is replaced); fails the
// test on error.
void WriteFile(const std::string& path, absl::string_view content,
               mode_t mode = 0600);

// The whole file; empty if it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_SUPPORT_FILES_H_

/// \file
/// GoogleTest matchers for absl::Status / absl::StatusOr (Abseil 20220623
/// ships none): EXPECT_THAT(s, IsOk()); EXPECT_THAT(s, StatusIs(code)).
#ifndef CERTSTORE_TESTING_STATUS_MATCHERS_H_
#define CERTSTORE_TESTING_STATUS_MATCHERS_H_

#include <gmock/gmock.h>

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace certstore::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s.ToString();
  return s.ok();
}

MATCHER_P(StatusIs, code, "has status code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s.ToString();
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has status code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(
             message_matcher, std::string(s.message()), result_listener);
}

/// A StatusOr that is OK and whose value matches `value_matcher`.
MATCHER_P(IsOkAndHolds, value_matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status: " << arg.status().ToString();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace certstore::testing

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::certstore::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::certstore::testing::IsOk())

#endif  // CERTSTORE_TESTING_STATUS_MATCHERS_H_

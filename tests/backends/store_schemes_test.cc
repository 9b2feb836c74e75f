// The store registry of this build: the schemes it opens are the
// backends compiled in (CERTSTORE_WITH_*), and a URI naming another one is
// refused with the list of those it has.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "certstore/open_store.h"
#include "certstore/testing/status_matchers.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> ExpectedSchemes() {
  std::vector<std::string> schemes = {"memory:"};
  if (CERTSTORE_WITH_SQLITE) {
    schemes.push_back("sqlite:");
  }
  schemes.push_back("file:");
  if (CERTSTORE_WITH_PKCS11) {
    schemes.push_back("pkcs11:");
  }
  return schemes;
}

TEST(StoreSchemesTest, ListsExactlyTheBackendsOfThisBuild) {
  EXPECT_EQ(StoreSchemes(), ExpectedSchemes());
}

TEST(StoreSchemesTest, UnknownSchemeNamesTheSchemesThisBuildHas) {
  auto split = SplitStoreUri("redis://127.0.0.1");
  EXPECT_THAT(split,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("redis"), HasSubstr("unknown scheme"),
                             HasSubstr("memory:"), HasSubstr("file:"))));
}

TEST(StoreSchemesTest, SchemeNotBuiltNamesItsOptionAndWhatThisBuildHas) {
  for (const std::string& uri :
       {std::string("memory:,sqlite:/var/lib/app/certstore.db"),
        std::string("memory:,pkcs11:token=app?module-path=/m.so")}) {
    const bool built = uri.find("sqlite:") != std::string::npos
                           ? CERTSTORE_WITH_SQLITE
                           : CERTSTORE_WITH_PKCS11;
    auto split = SplitStoreUri(uri);
    if (built) {
      EXPECT_OK(split) << uri;
      continue;
    }
    // The layer boundary is still found, and the message says why the
    // layer cannot be opened rather than blaming memory:.
    EXPECT_THAT(split, StatusIs(absl::StatusCode::kInvalidArgument,
                                AllOf(HasSubstr("not in this build"),
                                      HasSubstr("=OFF"), HasSubstr("file:"),
                                      Not(HasSubstr("memory: takes")))))
        << uri;
  }
}

}  // namespace
}  // namespace certstore::testing

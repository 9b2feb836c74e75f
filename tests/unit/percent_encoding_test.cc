// The one percent-encoding pair: property tests over random bytes, and the
// refusals every URI and form parser inherits.
#include "api/internal/percent_encoding.h"

#include <random>
#include <string>

#include "certstore/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/replay_seed.h"

namespace certstore::internal {
namespace {

using ::certstore::testing::IsOkAndHolds;
using ::certstore::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kRounds = 2000;

std::string RandomBytes(std::mt19937_64& rng, size_t max_size) {
  std::uniform_int_distribution<size_t> size(0, max_size);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(size(rng), '\0');
  for (char& c : out) c = static_cast<char>(byte(rng));
  return out;
}

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

TEST(PercentEncodingTest, DecodeOfEncodeIsIdentityForRandomBytes) {
  std::mt19937_64 rng(ReplaySeed());
  PercentDecodeOptions with_nul;
  with_nul.allow_nul = true;
  for (int i = 0; i < kRounds; ++i) {
    const std::string value = RandomBytes(rng, 64);
    const std::string encoded = PercentEncode(value);
    for (char c : encoded) {
      ASSERT_TRUE(IsUnreserved(c) || c == '%' || (c >= '0' && c <= '9') ||
                  (c >= 'A' && c <= 'F'))
          << "seed " << ReplaySeed() << " round " << i;
    }
    ASSERT_THAT(PercentDecode(encoded, with_nul), IsOkAndHolds(value))
        << "seed " << ReplaySeed() << " round " << i;
    ASSERT_THAT(PercentDecode(PercentEncodeAll(value), with_nul),
                IsOkAndHolds(value));
    // Form decoding reads the same text the same way: no '+' is emitted.
    PercentDecodeOptions form = with_nul;
    form.plus_is_space = true;
    ASSERT_THAT(PercentDecode(encoded, form), IsOkAndHolds(value));
    ASSERT_EQ(PercentDecodeLenient(encoded), value);
  }
}

TEST(PercentEncodingTest, KeptCharactersStayAndStillRoundTrip) {
  std::mt19937_64 rng(ReplaySeed() + 1);
  PercentDecodeOptions with_nul;
  with_nul.allow_nul = true;
  for (int i = 0; i < kRounds; ++i) {
    const std::string value = RandomBytes(rng, 64);
    const std::string encoded = PercentEncode(value, "/:%");
    ASSERT_THAT(PercentDecode(encoded, with_nul), IsOkAndHolds(value))
        << "seed " << ReplaySeed() << " round " << i;
  }
  EXPECT_EQ(PercentEncode("/a b/%", "/%"), "/a%20b/%25");  // '%' never kept
}

TEST(PercentEncodingTest, EveryByteOfAnIdIsEscaped) {
  EXPECT_EQ(PercentEncodeAll(std::string("\x00\x17zA", 4)), "%00%17%7A%41");
  EXPECT_EQ(PercentEncode(std::string("a\x00", 2)), "a%00");
}

TEST(PercentEncodingTest, MalformedEscapesAreRefusedByOffsetWithoutQuoting) {
  for (const char* bad : {"%", "%4", "ab%G1", "x%zz", "secret%2"}) {
    auto decoded = PercentDecode(bad);
    EXPECT_THAT(decoded, StatusIs(absl::StatusCode::kInvalidArgument,
                                  HasSubstr("at offset")))
        << bad;
    if (!decoded.ok() && std::string(bad).size() > 3) {
      EXPECT_THAT(std::string(decoded.status().message()), Not(HasSubstr(bad)));
    }
  }
  EXPECT_THAT(
      PercentDecode("ab%G1"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("offset 2")));
}

TEST(PercentEncodingTest, NulIsRefusedUnlessAllowed) {
  EXPECT_THAT(PercentDecode("a%00b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("%00")));
  PercentDecodeOptions with_nul;
  with_nul.allow_nul = true;
  EXPECT_THAT(PercentDecode("a%00b", with_nul),
              IsOkAndHolds(std::string("a\0b", 3)));
  // Written plainly, the same byte is refused the same way (a fuzzer found
  // a module path with a raw NUL accepted while its re-encoding was not).
  EXPECT_THAT(PercentDecode(std::string("a\0b", 3)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
  EXPECT_THAT(PercentDecode(std::string("a\0b", 3), with_nul),
              IsOkAndHolds(std::string("a\0b", 3)));
}

TEST(PercentEncodingTest, PlusIsASpaceOnlyInForms) {
  PercentDecodeOptions form;
  form.plus_is_space = true;
  EXPECT_THAT(PercentDecode("a+b%2B", form), IsOkAndHolds("a b+"));
  EXPECT_THAT(PercentDecode("a+b%2B"), IsOkAndHolds("a+b+"));
}

TEST(PercentEncodingTest, LenientDecodingKeepsWhatItCannotRead) {
  EXPECT_EQ(PercentDecodeLenient("pin%2Dvalue=%4x%"), "pin-value=%4x%");
}

}  // namespace
}  // namespace certstore::internal

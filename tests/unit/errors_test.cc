// Unit tests for certstore/errors.h: message building and the OpenSSL error
// converter.
#include "certstore/errors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/asn1err.h>
#include <openssl/err.h>
#include <openssl/pemerr.h>
#include <openssl/x509.h>

#include <string>

#include "certstore/testing/status_matchers.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Lt;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

// True when every byte of `s` is printable ASCII.
bool AllPrintable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) {
      return false;
    }
  }
  return true;
}

// True when `s` holds no ASCII control byte (UTF-8 text is allowed).
bool NoControlBytes(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

TEST(QuoteAliasTest, QuotesAPlainAlias) {
  EXPECT_EQ(QuoteAlias("app#att=0"), "\"app#att=0\"");
}

TEST(QuoteAliasTest, EscapesNulBytes) {
  const std::string quoted = QuoteAlias(std::string("x\0y", 3));
  EXPECT_EQ(quoted, "\"x\\x00y\"");
}

TEST(QuoteAliasTest, EscapesControlBytesAndQuotes) {
  const std::string quoted = QuoteAlias(std::string("a\nb\tc\x01\x1f\x7f\"d"));
  EXPECT_TRUE(AllPrintable(quoted)) << quoted;
  EXPECT_THAT(quoted, HasSubstr("\\n"));
  EXPECT_THAT(quoted, HasSubstr("\\t"));
  EXPECT_THAT(quoted, HasSubstr("\\x01"));
  EXPECT_THAT(quoted, HasSubstr("\\x1f"));
  EXPECT_THAT(quoted, HasSubstr("\\x7f"));
  EXPECT_THAT(quoted, HasSubstr("\\\"d"));
  EXPECT_THAT(quoted, StartsWith("\""));
  EXPECT_THAT(quoted, EndsWith("\""));
}

TEST(QuoteAliasTest, DistinguishesAliasesThatDifferOnlyInControlBytes) {
  EXPECT_NE(QuoteAlias(std::string("a\0", 2)), QuoteAlias("a"));
  EXPECT_NE(QuoteAlias(std::string("a\0b", 3)), QuoteAlias("a\x0b"));
}

TEST(QuoteAliasTest, ShortensALongAliasAndStatesItsLength) {
  const std::string alias =
      std::string(1000, 'a') + "tail-marker" + std::string(13, 'b');
  ASSERT_EQ(alias.size(), 1024u);

  const std::string quoted = QuoteAlias(alias);
  EXPECT_THAT(quoted, HasSubstr("1024 bytes"));
  EXPECT_THAT(quoted, SizeIs(Lt(200u)));
  EXPECT_THAT(quoted, StartsWith("\"aaaa"));
  EXPECT_THAT(quoted, Not(HasSubstr("tail-marker")));
}

TEST(QuoteAliasTest, ShortensALongAliasOfControlBytes) {
  const std::string quoted = QuoteAlias(std::string(1024, '\0'));
  EXPECT_TRUE(NoControlBytes(quoted)) << quoted;
  EXPECT_THAT(quoted, HasSubstr("1024 bytes"));
  EXPECT_THAT(quoted, SizeIs(Lt(400u)));
}

TEST(QuoteAliasTest, KeepsAShortAliasWhole) {
  const std::string alias(64, 'z');
  EXPECT_EQ(QuoteAlias(alias), "\"" + alias + "\"");
}

TEST(OpContextTest, StoreEndingInColon) {
  EXPECT_EQ(OpContext("memory:", "Put", "a"), "memory: Put(\"a\")");
}

TEST(OpContextTest, StoreWithPath) {
  EXPECT_EQ(OpContext("sqlite:/x.db", "Put", "a"), "sqlite:/x.db: Put(\"a\")");
}

TEST(OpContextTest, NoParenthesesWithoutAlias) {
  EXPECT_EQ(OpContext("memory:", "List", ""), "memory: List");
  EXPECT_EQ(OpContext("sqlite:/x.db", "List", ""), "sqlite:/x.db: List");
}

TEST(OpContextTest, QuotesTheAlias) {
  EXPECT_EQ(OpContext("memory:", "Find", std::string("a\0", 2)),
            "memory: Find(\"a\\x00\")");
  EXPECT_THAT(OpContext("memory:", "Find", std::string(2000, 'q')),
              AllOf(StartsWith("memory: Find(\"qqq"), HasSubstr("2000 bytes"),
                    EndsWith(")")));
}

TEST(WithContextTest, KeepsTheCodeAndPrefixesTheMessage) {
  const absl::Status status =
      WithContext(absl::DataLossError("row 7 is corrupt"), "sqlite:/x.db");
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), "sqlite:/x.db: row 7 is corrupt");
}

TEST(WithContextTest, NestsOutermostFirst) {
  const absl::Status status = WithContext(
      WithContext(absl::UnavailableError("busy"), "inner"), "outer");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "outer: inner: busy");
}

TEST(WithContextTest, OkStaysOk) {
  const absl::Status status = WithContext(absl::OkStatus(), "context");
  EXPECT_OK(status);
  EXPECT_EQ(status.message(), "");
}

TEST(OpenSslErrorTest, DrainsTheQueueAfterAFailedDecode) {
  ERR_clear_error();
  static constexpr unsigned char kGarbage[] = {0x30, 0x82, 0x01, 0x00, 0x02};
  const unsigned char* p = kGarbage;
  X509* cert = d2i_X509(nullptr, &p, sizeof(kGarbage));
  ASSERT_EQ(cert, nullptr);
  const unsigned long first = ERR_peek_error();
  ASSERT_NE(first, 0u);
  const char* reason = ERR_reason_error_string(first);
  ASSERT_NE(reason, nullptr);

  const absl::Status status =
      OpenSslError(absl::StatusCode::kInvalidArgument, "decoding the leaf");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              AllOf(StartsWith("decoding the leaf: "), HasSubstr(reason)));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(OpenSslErrorTest, JoinsSeveralErrorsInOrder) {
  ERR_clear_error();
  ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
  ERR_raise(ERR_LIB_ASN1, ASN1_R_HEADER_TOO_LONG);
  const std::string first =
      ERR_reason_error_string(ERR_PACK(ERR_LIB_PEM, 0, PEM_R_NO_START_LINE));
  const std::string second = ERR_reason_error_string(
      ERR_PACK(ERR_LIB_ASN1, 0, ASN1_R_HEADER_TOO_LONG));

  const absl::Status status =
      OpenSslError(absl::StatusCode::kDataLoss, "reading");
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  const std::string message(status.message());
  const size_t at_first = message.find(first);
  const size_t at_second = message.find(second);
  ASSERT_NE(at_first, std::string::npos) << message;
  ASSERT_NE(at_second, std::string::npos) << message;
  EXPECT_LT(at_first, at_second) << message;
  EXPECT_THAT(message, HasSubstr("; "));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(OpenSslErrorTest, EmptyQueueGivesJustWhat) {
  ERR_clear_error();
  const absl::Status status =
      OpenSslError(absl::StatusCode::kInternal, "RAND_bytes");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "RAND_bytes");
}

TEST(ClearOpenSslErrorsTest, EmptiesTheQueue) {
  ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
  ASSERT_NE(ERR_peek_error(), 0u);
  ClearOpenSslErrors();
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace certstore::testing

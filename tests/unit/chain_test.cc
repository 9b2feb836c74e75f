// Unit tests for certstore/chain.h: thumbprints, PEM <-> DER, decoding and
// the accessors over a decoded certificate.
#include "certstore/chain.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/key.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// RFC 4648 section 5 base64url without padding, written independently of the
// code under test.
std::string Base64UrlNoPadding(const unsigned char* data, size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size - i == 1) {
    const unsigned v = data[i] << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (size - i == 2) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::string ExpectedThumbprint(absl::string_view der) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(der.data()), der.size(),
         digest);
  return Base64UrlNoPadding(digest, sizeof(digest));
}

// The base64 body of the first PEM block in `pem` (between the BEGIN and END
// lines), with line breaks.
std::string PemBody(const std::string& pem) {
  const size_t begin = pem.find('\n') + 1;
  const size_t end = pem.find("-----END");
  return pem.substr(begin, end - begin);
}

class ChainTest : public ::testing::Test {
 protected:
  ChainTest() : key_(GenerateSoftwareKey(KeySpec{KeyType::kEcP256})) {
    ERR_clear_error();
  }

  void SetUp() override { ASSERT_OK(key_); }

  std::vector<std::string> IssueChain(
      absl::Time not_before, absl::Time not_after,
      const std::string& common_name = "test-client") const {
    LeafOptions options;
    options.common_name = common_name;
    options.not_before = not_before;
    options.not_after = not_after;
    return pki_.IssueChain(**key_, options);
  }

  std::vector<std::string> DefaultChain() const {
    return IssueChain(TestNow() - absl::Hours(1), TestNow() + absl::Hours(48));
  }

  TestPki pki_;
  absl::StatusOr<std::shared_ptr<const Key>> key_;
};

TEST(ThumbprintTest, IsUnpaddedBase64UrlOfSha256) {
  const std::string thumbprint = Thumbprint("hello");
  EXPECT_EQ(thumbprint, "LPJNul-wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ");
  EXPECT_EQ(thumbprint.size(), 43u);
}

TEST(ThumbprintTest, EmptyInputHasTheDigestOfNothing) {
  EXPECT_EQ(Thumbprint(""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
}

TEST_F(ChainTest, ThumbprintMatchesIndependentSha256Base64Url) {
  const std::vector<std::string> chain = DefaultChain();
  for (const std::string& der : chain) {
    const std::string thumbprint = Thumbprint(der);
    EXPECT_EQ(thumbprint.size(), 43u);
    EXPECT_EQ(thumbprint.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789-_"),
              std::string::npos)
        << thumbprint;
    EXPECT_EQ(thumbprint, ExpectedThumbprint(der));
  }
  EXPECT_NE(Thumbprint(chain[0]), Thumbprint(chain[1]));
}

TEST_F(ChainTest, PemRoundTripsATwoCertificateChain) {
  const std::vector<std::string> chain = DefaultChain();
  ASSERT_EQ(chain.size(), 2u);
  const std::string pem = DerChainToPem(chain);
  EXPECT_THAT(pem, HasSubstr("-----BEGIN CERTIFICATE-----"));

  absl::StatusOr<std::vector<std::string>> decoded = PemToDerChain(pem);
  ASSERT_OK(decoded);
  EXPECT_EQ(*decoded, chain);
}

TEST_F(ChainTest, PemToDerChainSkipsPrivateKeyBlocks) {
  const std::vector<std::string> chain = DefaultChain();
  absl::StatusOr<std::string> key_pem = KeyToPem(**key_);
  ASSERT_OK(key_pem);
  // Key first, between the certificates, and last.
  const std::string pem = *key_pem + DerChainToPem({chain[0]}) + *key_pem +
                          DerChainToPem({chain[1]}) + *key_pem;

  absl::StatusOr<std::vector<std::string>> decoded = PemToDerChain(pem);
  ASSERT_OK(decoded);
  EXPECT_EQ(*decoded, chain);
}

TEST_F(ChainTest, PemToDerChainWithoutCertificateIsInvalidArgument) {
  absl::StatusOr<std::string> key_pem = KeyToPem(**key_);
  ASSERT_OK(key_pem);

  absl::StatusOr<std::vector<std::string>> decoded = PemToDerChain(*key_pem);
  EXPECT_THAT(decoded, StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("CERTIFICATE")));
  // Never key material in a message.
  EXPECT_THAT(std::string(decoded.status().message()),
              Not(HasSubstr(PemBody(*key_pem).substr(0, 40))));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(ChainTest, PemToDerChainWithPlainTextIsInvalidArgument) {
  EXPECT_THAT(PemToDerChain("not a PEM file at all\n"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(ChainTest, PemToDerChainWithDamagedBase64IsInvalidArgument) {
  std::string pem = DerChainToPem(DefaultChain());
  const size_t body = pem.find('\n') + 1;
  pem[body + 10] = '*';
  pem[body + 11] = '!';

  EXPECT_THAT(PemToDerChain(pem), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("PEM block 0")));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(ChainTest, PemToDerChainWithDamagedSecondBlockIsInvalidArgument) {
  const std::vector<std::string> chain = DefaultChain();
  std::string second = DerChainToPem({chain[1]});
  second[second.find('\n') + 5] = '#';
  const std::string pem = DerChainToPem({chain[0]}) + second;

  EXPECT_THAT(PemToDerChain(pem), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("PEM block 1")));
}

TEST_F(ChainTest, PemToDerChainWithMissingEndLineIsInvalidArgument) {
  std::string pem = DerChainToPem({DefaultChain()[0]});
  pem.resize(pem.find("-----END"));

  EXPECT_THAT(PemToDerChain(pem), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PemToDerChainTest, EmptyInputIsInvalidArgument) {
  EXPECT_THAT(PemToDerChain(std::string()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PemToDerChain(absl::string_view()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(DerChainToPemTest, EmptyChainIsEmptyString) {
  EXPECT_EQ(DerChainToPem({}), "");
}

TEST_F(ChainTest, DecodeCertificateAcceptsGoodDer) {
  const std::vector<std::string> chain = DefaultChain();
  absl::StatusOr<UniqueX509> cert = DecodeCertificate(chain[0], "leaf");
  ASSERT_OK(cert);
  ASSERT_NE(cert->get(), nullptr);

  unsigned char* der = nullptr;
  const int len = i2d_X509(cert->get(), &der);
  ASSERT_GT(len, 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(der), len), chain[0]);
  OPENSSL_free(der);
}

TEST(DecodeCertificateTest, GarbageIsInvalidArgumentNamingWhat) {
  ERR_clear_error();
  absl::StatusOr<UniqueX509> cert =
      DecodeCertificate("definitely not DER", "my test certificate");
  EXPECT_THAT(cert, StatusIs(absl::StatusCode::kInvalidArgument,
                             HasSubstr("my test certificate")));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(DecodeCertificateTest, EmptyInputIsInvalidArgument) {
  EXPECT_THAT(DecodeCertificate("", "empty certificate"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("empty certificate")));
  EXPECT_THAT(DecodeCertificate(absl::string_view(), "null certificate"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("null certificate")));
  ERR_clear_error();
}

TEST_F(ChainTest, DecodeCertificateRefusesTrailingBytes) {
  const std::string der = DefaultChain()[0] + std::string("\x00\x01\x02", 3);
  EXPECT_THAT(
      DecodeCertificate(der, "padded leaf"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("padded leaf"), HasSubstr("3 trailing"))));
}

TEST_F(ChainTest, DecodeCertificateRefusesTruncatedDer) {
  const std::string der = DefaultChain()[0];
  EXPECT_THAT(
      DecodeCertificate(der.substr(0, der.size() - 1), "short leaf"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("short leaf")));
}

TEST_F(ChainTest, NotBeforeAndNotAfterAreTheRequestedValidity) {
  // Both ASN.1 time forms: UTCTime (before 2050) and GeneralizedTime.
  const absl::Time not_before = absl::FromUnixSeconds(1900000001);
  const absl::Time not_after = absl::FromUnixSeconds(2600000007);
  const std::vector<std::string> chain = IssueChain(not_before, not_after);
  absl::StatusOr<UniqueX509> cert = DecodeCertificate(chain[0], "leaf");
  ASSERT_OK(cert);

  EXPECT_EQ(NotBefore(cert->get()), not_before);
  EXPECT_EQ(NotAfter(cert->get()), not_after);
}

TEST_F(ChainTest, ValidityKeepsSecondPrecision) {
  const absl::Time not_before = TestNow() - absl::Seconds(1);
  const absl::Time not_after = TestNow() + absl::Hours(24) + absl::Seconds(59);
  absl::StatusOr<UniqueX509> cert =
      DecodeCertificate(IssueChain(not_before, not_after)[0], "leaf");
  ASSERT_OK(cert);

  EXPECT_EQ(NotBefore(cert->get()), not_before);
  EXPECT_EQ(NotAfter(cert->get()), not_after);
}

TEST_F(ChainTest, PublicKeyDerIsTheKeysPublicKey) {
  absl::StatusOr<UniqueX509> cert = DecodeCertificate(DefaultChain()[0], "l");
  ASSERT_OK(cert);

  absl::StatusOr<std::string> spki = PublicKeyDer(cert->get());
  ASSERT_OK(spki);
  EXPECT_EQ(*spki, (*key_)->public_key_der());
}

TEST_F(ChainTest, PublicKeyDerOfAnRsaLeafIsTheRsaKey) {
  std::shared_ptr<const Key> rsa = PoolKey(KeyType::kRsa2048);
  LeafOptions options;
  options.not_before = TestNow();
  options.not_after = TestNow() + absl::Hours(1);
  absl::StatusOr<UniqueX509> cert =
      DecodeCertificate(pki_.IssueChain(*rsa, options)[0], "rsa leaf");
  ASSERT_OK(cert);

  absl::StatusOr<std::string> spki = PublicKeyDer(cert->get());
  ASSERT_OK(spki);
  EXPECT_EQ(*spki, rsa->public_key_der());
  EXPECT_NE(*spki, (*key_)->public_key_der());
}

TEST_F(ChainTest, SubjectNameContainsTheCommonName) {
  const std::vector<std::string> chain =
      IssueChain(TestNow(), TestNow() + absl::Hours(1), "my-client-id");
  absl::StatusOr<UniqueX509> leaf = DecodeCertificate(chain[0], "leaf");
  ASSERT_OK(leaf);
  absl::StatusOr<UniqueX509> intermediate =
      DecodeCertificate(chain[1], "intermediate");
  ASSERT_OK(intermediate);

  EXPECT_THAT(SubjectName(leaf->get()), HasSubstr("my-client-id"));
  EXPECT_THAT(SubjectName(leaf->get()), HasSubstr("test-tenant"));
  EXPECT_THAT(SubjectName(leaf->get()), HasSubstr("CN"));
  EXPECT_THAT(IssuerName(leaf->get()),
              HasSubstr("certstore test intermediate"));
  EXPECT_EQ(IssuerName(leaf->get()), SubjectName(intermediate->get()));
}

}  // namespace
}  // namespace certstore::testing

// Unit tests for api/internal/leaf_der.h: what the DER walk reads must be
// what decoding the certificate says.
#include "api/internal/leaf_der.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "certstore/chain.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"

namespace certstore::internal {
namespace {

using ::certstore::testing::PoolKey;
using ::certstore::testing::StatusIs;
using ::certstore::testing::TestNow;
using ::certstore::testing::TestPki;

TEST(LeafDerTest, AgreesWithTheDecodedCertificate) {
  TestPki pki;
  for (KeyType type : {KeyType::kEcP256, KeyType::kRsa2048}) {
    auto entry =
        pki.MakeEntry("leaf", PoolKey(type), TestNow() - absl::Hours(3),
                      TestNow() + absl::Seconds(86400 * 9 + 7));
    for (const std::string& der :
         {entry->chain_der()[0], pki.intermediate_der(), pki.root_der()}) {
      auto cert = DecodeCertificate(der, "certificate");
      ASSERT_OK(cert);
      auto leaf = ReadLeafDer(der);
      ASSERT_OK(leaf);
      EXPECT_EQ(leaf->facts.not_before, NotBefore(cert->get()));
      EXPECT_EQ(leaf->facts.not_after, NotAfter(cert->get()));
      EXPECT_EQ(leaf->facts.thumbprint, Thumbprint(der));
      EXPECT_EQ(leaf->public_key_der, *PublicKeyDer(cert->get()));
    }
    EXPECT_EQ(ReadLeafDer(entry->chain_der()[0])->public_key_der,
              PoolKey(type)->public_key_der());
  }
}

TEST(LeafDerTest, RefusesWhatIsNotACertificate) {
  TestPki pki;
  const std::string der = pki.root_der();
  for (const std::string& bad :
       {std::string(), std::string("not DER"), der.substr(0, der.size() - 1),
        der + "x", std::string("\x30\x80\x00\x00", 4),
        std::string("\x30\x03\x02\x01\x01", 5)}) {
    EXPECT_THAT(ReadLeafDer(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

}  // namespace
}  // namespace certstore::internal

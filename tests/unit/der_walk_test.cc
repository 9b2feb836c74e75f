// Unit tests for api/internal/der_walk.h: what the DER walks read must be
// what OpenSSL's decoders and encoders say.
#include "api/internal/der_walk.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

#include "certstore/chain.h"
#include "certstore/key.h"
#include "certstore/openssl_types.h"
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

std::string OpenSslPublicKeyInfo(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey, &der);
  std::string out(reinterpret_cast<char*>(der), len > 0 ? len : 0);
  OPENSSL_free(der);
  return out;
}

// The public key read from a key's PKCS#8 is byte for byte what OpenSSL
// encodes for that key, for every pool key of both types.
TEST(PublicKeyInfoFromPkcs8Test, IsWhatOpenSslEncodes) {
  for (KeyType type : {KeyType::kEcP256, KeyType::kRsa2048}) {
    for (int i = 0; i < 4; ++i) {
      std::shared_ptr<const Key> key = PoolKey(type, i);
      auto pkcs8 = key->ExportPkcs8Der();
      ASSERT_OK(pkcs8);
      auto read = PublicKeyInfoFromPkcs8(*pkcs8);
      ASSERT_OK(read);
      EXPECT_EQ(*read, OpenSslPublicKeyInfo(key->evp_pkey()))
          << KeyTypeName(type) << " " << i;
      auto decoded = SoftwareKeyFromPkcs8Der(*pkcs8);
      ASSERT_OK(decoded);
      EXPECT_EQ((*decoded)->public_key_der(), key->public_key_der());
    }
  }
}

// An EC key written without its optional publicKey field has nothing to
// read: the walk says so, and a key decoded from it still knows its public
// key (OpenSSL derives it).
TEST(PublicKeyInfoFromPkcs8Test, EcKeyWithoutItsPublicKeyFallsBackToOpenSsl) {
  std::shared_ptr<const Key> key = PoolKey(KeyType::kEcP256, 0);
  UniqueEvpPkey copy(EVP_PKEY_dup(key->evp_pkey()));
  ASSERT_NE(copy, nullptr);
  ASSERT_EQ(
      EVP_PKEY_set_int_param(copy.get(), OSSL_PKEY_PARAM_EC_INCLUDE_PUBLIC, 0),
      1);
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(copy.get());
  ASSERT_NE(p8, nullptr);
  unsigned char* der = nullptr;
  const int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
  PKCS8_PRIV_KEY_INFO_free(p8);
  const std::string pkcs8(reinterpret_cast<char*>(der), len > 0 ? len : 0);
  OPENSSL_free(der);

  EXPECT_THAT(PublicKeyInfoFromPkcs8(pkcs8),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto decoded = SoftwareKeyFromPkcs8Der(pkcs8);
  ASSERT_OK(decoded);
  EXPECT_EQ((*decoded)->public_key_der(), key->public_key_der());
}

TEST(PublicKeyInfoFromPkcs8Test, RefusesWhatIsNotPkcs8) {
  std::shared_ptr<const Key> key = PoolKey(KeyType::kEcP256, 0);
  auto pkcs8 = key->ExportPkcs8Der();
  ASSERT_OK(pkcs8);
  for (const std::string& bad :
       {std::string(), std::string("not DER"), pkcs8->substr(0, 40),
        *pkcs8 + "trailing", key->public_key_der()}) {
    EXPECT_THAT(PublicKeyInfoFromPkcs8(bad),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad.size();
  }
}

}  // namespace
}  // namespace certstore::internal

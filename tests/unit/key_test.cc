// Unit tests for certstore/key.h: software keys, their encodings and signing.
#include "certstore/key.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "certstore/openssl_types.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"

namespace certstore::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Verifies a SHA-256 signature with the public key in `spki_der`,
// independently of the Key under test.
bool VerifySha256(absl::string_view spki_der, absl::string_view data,
                  absl::string_view signature) {
  auto* p = reinterpret_cast<const unsigned char*>(spki_der.data());
  UniqueEvpPkey pub(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(spki_der.size())));
  UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
  const bool ok =
      pub != nullptr && ctx != nullptr &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                           pub.get()) == 1 &&
      EVP_DigestVerify(
          ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
          signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
          data.size()) == 1;
  ERR_clear_error();
  return ok;
}

// The base64 lines of a PEM body, without BEGIN/END lines.
std::vector<std::string> PemBodyLines(absl::string_view pem) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(pem, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "-----")) {
      lines.emplace_back(line);
    }
  }
  return lines;
}

// Asserts that `message` holds none of the key's encodings.
void ExpectNoKeyMaterial(absl::string_view message, const Key& key) {
  absl::StatusOr<std::string> pem = KeyToPem(key);
  ASSERT_OK(pem);
  for (const std::string& line : PemBodyLines(*pem)) {
    // A short final line could appear by chance; long lines cannot.
    if (line.size() >= 16) {
      EXPECT_THAT(std::string(message), Not(HasSubstr(line)));
    }
  }
  absl::StatusOr<std::string> der = key.ExportPkcs8Der();
  ASSERT_OK(der);
  EXPECT_THAT(std::string(message), Not(HasSubstr(der->substr(0, 48))));
}

std::shared_ptr<const Key> FreshEcKey() {
  absl::StatusOr<std::shared_ptr<const Key>> key =
      GenerateSoftwareKey(KeySpec{KeyType::kEcP256});
  EXPECT_OK(key);
  return key.ok() ? *key : nullptr;
}

UniqueEvpPkey PublicOnly(const Key& key) {
  auto* p = reinterpret_cast<const unsigned char*>(key.public_key_der().data());
  return UniqueEvpPkey(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(key.public_key_der().size())));
}

TEST(KeyTypeNameTest, NamesBothTypes) {
  EXPECT_EQ(KeyTypeName(KeyType::kEcP256), "EC-P256");
  EXPECT_EQ(KeyTypeName(KeyType::kRsa2048), "RSA-2048");
}

TEST(GenerateSoftwareKeyTest, EcP256) {
  std::shared_ptr<const Key> key = FreshEcKey();
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->algorithm(), "EC-P256");
  EXPECT_EQ(key->location(), "software");
  ASSERT_NE(key->evp_pkey(), nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(key->evp_pkey(), "EC"));
  EXPECT_FALSE(key->public_key_der().empty());

  std::shared_ptr<const Key> other = FreshEcKey();
  ASSERT_NE(other, nullptr);
  EXPECT_NE(key->public_key_der(), other->public_key_der());
}

TEST(GenerateSoftwareKeyTest, Rsa2048) {
  std::shared_ptr<const Key> key = PoolKey(KeyType::kRsa2048);
  EXPECT_EQ(key->algorithm(), "RSA-2048");
  EXPECT_EQ(key->location(), "software");
  ASSERT_NE(key->evp_pkey(), nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(key->evp_pkey(), "RSA"));
  EXPECT_EQ(EVP_PKEY_get_bits(key->evp_pkey()), 2048);
}

TEST(GenerateSoftwareKeyTest, PublicKeyDerIsTheEvpPublicKey) {
  std::shared_ptr<const Key> key = FreshEcKey();
  ASSERT_NE(key, nullptr);
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key->evp_pkey(), &der);
  ASSERT_GT(len, 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(der), len),
            key->public_key_der());
  OPENSSL_free(der);
}

class SignTest : public ::testing::TestWithParam<KeyType> {
 protected:
  std::shared_ptr<const Key> MakeKey() const {
    return GetParam() == KeyType::kRsa2048 ? PoolKey(KeyType::kRsa2048)
                                           : FreshEcKey();
  }
};

TEST_P(SignTest, SignatureVerifiesWithThePublicKey) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  static constexpr char kData[] = "challenge \0 with a NUL";
  const std::string data(kData, sizeof(kData) - 1);

  absl::StatusOr<std::string> signature = key->Sign(data);
  ASSERT_OK(signature);
  EXPECT_TRUE(VerifySha256(key->public_key_der(), data, *signature));
  EXPECT_FALSE(VerifySha256(key->public_key_der(), "other data", *signature));
}

TEST_P(SignTest, SignsEmptyData) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> signature = key->Sign("");
  ASSERT_OK(signature);
  EXPECT_TRUE(VerifySha256(key->public_key_der(), "", *signature));
}

TEST_P(SignTest, SignatureDoesNotVerifyWithAnotherKey) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  std::shared_ptr<const Key> other = GetParam() == KeyType::kRsa2048
                                         ? PoolKey(KeyType::kRsa2048, 1)
                                         : FreshEcKey();
  ASSERT_NE(other, nullptr);
  absl::StatusOr<std::string> signature = key->Sign("data");
  ASSERT_OK(signature);
  EXPECT_FALSE(VerifySha256(other->public_key_der(), "data", *signature));
}

TEST_P(SignTest, ConcurrentSignaturesAllVerify) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  constexpr int kThreads = 4;
  constexpr int kSignaturesPerThread = 25;
  std::vector<std::vector<std::string>> signatures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&key, &signatures, t] {
      for (int i = 0; i < kSignaturesPerThread; ++i) {
        absl::StatusOr<std::string> sig = key->Sign(absl::StrCat(t, "/", i));
        signatures[t].push_back(sig.ok() ? *sig : std::string());
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }

  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(signatures[t].size(), size_t{kSignaturesPerThread});
    for (int i = 0; i < kSignaturesPerThread; ++i) {
      EXPECT_TRUE(VerifySha256(key->public_key_der(), absl::StrCat(t, "/", i),
                               signatures[t][i]))
          << "thread " << t << " signature " << i;
    }
  }
}

TEST_P(SignTest, Pkcs8DerIsPrivateKeyInfo) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);

  auto* p = reinterpret_cast<const unsigned char*>(der->data());
  PKCS8_PRIV_KEY_INFO* info =
      d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der->size()));
  EXPECT_NE(info, nullptr) << "ExportPkcs8Der did not return PKCS#8";
  PKCS8_PRIV_KEY_INFO_free(info);
  ERR_clear_error();
}

TEST_P(SignTest, Pkcs8RoundTripWithAutoDetection) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);

  absl::StatusOr<std::shared_ptr<const Key>> decoded =
      SoftwareKeyFromPkcs8Der(*der, KeyTypeHint::kAuto);
  ASSERT_OK(decoded);
  EXPECT_EQ((*decoded)->public_key_der(), key->public_key_der());
  EXPECT_EQ((*decoded)->algorithm(), key->algorithm());
  EXPECT_EQ((*decoded)->location(), "software");
  absl::StatusOr<std::string> signature = (*decoded)->Sign("data");
  ASSERT_OK(signature);
  EXPECT_TRUE(VerifySha256(key->public_key_der(), "data", *signature));
}

TEST_P(SignTest, Pkcs8RoundTripWithMatchingHint) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);
  const KeyTypeHint hint =
      GetParam() == KeyType::kRsa2048 ? KeyTypeHint::kRsa : KeyTypeHint::kEc;

  // Twice: the per-thread decoder is reused.
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::shared_ptr<const Key>> decoded =
        SoftwareKeyFromPkcs8Der(*der, hint);
    ASSERT_OK(decoded);
    EXPECT_EQ((*decoded)->public_key_der(), key->public_key_der());
    EXPECT_EQ((*decoded)->algorithm(), key->algorithm());
  }
}

TEST_P(SignTest, Pkcs8WithWrongHintIsInvalidArgument) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);
  const KeyTypeHint wrong =
      GetParam() == KeyType::kRsa2048 ? KeyTypeHint::kEc : KeyTypeHint::kRsa;

  absl::StatusOr<std::shared_ptr<const Key>> decoded =
      SoftwareKeyFromPkcs8Der(*der, wrong);
  EXPECT_THAT(decoded, StatusIs(absl::StatusCode::kInvalidArgument));
  ExpectNoKeyMaterial(decoded.status().message(), *key);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_P(SignTest, HintedDecoderIsReusableAfterFailuresAndOtherKeys) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  std::shared_ptr<const Key> other = GetParam() == KeyType::kRsa2048
                                         ? PoolKey(KeyType::kRsa2048, 1)
                                         : FreshEcKey();
  ASSERT_NE(other, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);
  absl::StatusOr<std::string> other_der = other->ExportPkcs8Der();
  ASSERT_OK(other_der);
  const KeyTypeHint hint =
      GetParam() == KeyType::kRsa2048 ? KeyTypeHint::kRsa : KeyTypeHint::kEc;

  // Each decode yields its own key, also right after a failed decode.
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(SoftwareKeyFromPkcs8Der("junk", hint),
                StatusIs(absl::StatusCode::kInvalidArgument));
    absl::StatusOr<std::shared_ptr<const Key>> first =
        SoftwareKeyFromPkcs8Der(*der, hint);
    ASSERT_OK(first);
    EXPECT_EQ((*first)->public_key_der(), key->public_key_der());
    absl::StatusOr<std::shared_ptr<const Key>> second =
        SoftwareKeyFromPkcs8Der(*other_der, hint);
    ASSERT_OK(second);
    EXPECT_EQ((*second)->public_key_der(), other->public_key_der());
  }
  // Keys decoded earlier stay intact.
  absl::StatusOr<std::shared_ptr<const Key>> kept =
      SoftwareKeyFromPkcs8Der(*der, hint);
  ASSERT_OK(kept);
  absl::StatusOr<std::shared_ptr<const Key>> replaced =
      SoftwareKeyFromPkcs8Der(*other_der, hint);
  ASSERT_OK(replaced);
  EXPECT_EQ((*kept)->public_key_der(), key->public_key_der());
  absl::StatusOr<std::string> signature = (*kept)->Sign("data");
  ASSERT_OK(signature);
  EXPECT_TRUE(VerifySha256(key->public_key_der(), "data", *signature));
}

TEST_P(SignTest, ConcurrentHintedDecodesGiveTheKey) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);
  const KeyTypeHint hint =
      GetParam() == KeyType::kRsa2048 ? KeyTypeHint::kRsa : KeyTypeHint::kEc;
  constexpr int kThreads = 4;
  constexpr int kDecodesPerThread = 20;
  std::atomic<int> matching{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kDecodesPerThread; ++i) {
        absl::StatusOr<std::shared_ptr<const Key>> decoded =
            SoftwareKeyFromPkcs8Der(*der, hint);
        if (decoded.ok() &&
            (*decoded)->public_key_der() == key->public_key_der()) {
          matching.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(matching.load(), kThreads * kDecodesPerThread);
}

TEST_P(SignTest, Pkcs8WithTrailingBytesIsInvalidArgument) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);
  const std::string padded = *der + std::string("\0\0", 2);

  EXPECT_THAT(SoftwareKeyFromPkcs8Der(padded, KeyTypeHint::kAuto),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SoftwareKeyFromPkcs8Der(padded, GetParam() == KeyType::kRsa2048
                                                  ? KeyTypeHint::kRsa
                                                  : KeyTypeHint::kEc),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ERR_clear_error();
}

TEST_P(SignTest, PemRoundTrip) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> pem = KeyToPem(*key);
  ASSERT_OK(pem);
  EXPECT_TRUE(absl::StartsWith(*pem, "-----BEGIN PRIVATE KEY-----\n")) << *pem;

  absl::StatusOr<std::shared_ptr<const Key>> decoded = SoftwareKeyFromPem(*pem);
  ASSERT_OK(decoded);
  EXPECT_EQ((*decoded)->public_key_der(), key->public_key_der());
  EXPECT_EQ((*decoded)->algorithm(), key->algorithm());
}

TEST_P(SignTest, TraditionalPemIsAccepted) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  UniqueBio bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(
      PEM_write_bio_PrivateKey_traditional(bio.get(), key->evp_pkey(), nullptr,
                                           nullptr, 0, nullptr, nullptr),
      1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  const std::string pem(data, static_cast<size_t>(len));
  EXPECT_THAT(
      pem, HasSubstr(GetParam() == KeyType::kRsa2048 ? "BEGIN RSA PRIVATE KEY"
                                                     : "BEGIN EC PRIVATE KEY"));

  absl::StatusOr<std::shared_ptr<const Key>> decoded = SoftwareKeyFromPem(pem);
  ASSERT_OK(decoded);
  EXPECT_EQ((*decoded)->public_key_der(), key->public_key_der());
}

TEST_P(SignTest, EncryptedPemIsInvalidArgumentWithoutPrompting) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  static constexpr char kPassphrase[] = "correct horse battery staple";
  UniqueBio bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PrivateKey(
                bio.get(), key->evp_pkey(), EVP_aes_256_cbc(),
                reinterpret_cast<const unsigned char*>(kPassphrase),
                static_cast<int>(sizeof(kPassphrase) - 1), nullptr, nullptr),
            1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  const std::string pem(data, static_cast<size_t>(len));
  ASSERT_THAT(pem, HasSubstr("ENCRYPTED PRIVATE KEY"));

  absl::StatusOr<std::shared_ptr<const Key>> decoded = SoftwareKeyFromPem(pem);
  EXPECT_THAT(decoded, StatusIs(absl::StatusCode::kInvalidArgument));
  const std::string message(decoded.status().message());
  EXPECT_THAT(message, Not(HasSubstr(kPassphrase)));
  for (const std::string& line : PemBodyLines(pem)) {
    if (line.size() >= 16) {
      EXPECT_THAT(message, Not(HasSubstr(line)));
    }
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_P(SignTest, DamagedPemIsInvalidArgumentWithoutKeyMaterial) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> pem = KeyToPem(*key);
  ASSERT_OK(pem);
  std::string damaged = *pem;
  damaged[damaged.find('\n') + 30] = '*';

  absl::StatusOr<std::shared_ptr<const Key>> decoded =
      SoftwareKeyFromPem(damaged);
  EXPECT_THAT(decoded, StatusIs(absl::StatusCode::kInvalidArgument));
  ExpectNoKeyMaterial(decoded.status().message(), *key);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_P(SignTest, TruncatedPkcs8IsInvalidArgumentWithoutKeyMaterial) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);
  const std::string truncated = der->substr(0, der->size() - 10);

  for (KeyTypeHint hint :
       {KeyTypeHint::kAuto, KeyTypeHint::kRsa, KeyTypeHint::kEc}) {
    absl::StatusOr<std::shared_ptr<const Key>> decoded =
        SoftwareKeyFromPkcs8Der(truncated, hint);
    EXPECT_THAT(decoded, StatusIs(absl::StatusCode::kInvalidArgument));
    ExpectNoKeyMaterial(decoded.status().message(), *key);
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_P(SignTest, SoftwareKeyFromEvpSharesTheKey) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::shared_ptr<const Key>> wrapped =
      SoftwareKeyFromEvp(key->evp_pkey());
  ASSERT_OK(wrapped);
  EXPECT_EQ((*wrapped)->public_key_der(), key->public_key_der());
  EXPECT_EQ((*wrapped)->algorithm(), key->algorithm());

  // The wrapper took its own reference: it outlives the original.
  key.reset();
  absl::StatusOr<std::string> signature = (*wrapped)->Sign("data");
  ASSERT_OK(signature);
  EXPECT_TRUE(VerifySha256((*wrapped)->public_key_der(), "data", *signature));
}

TEST_P(SignTest, SoftwareKeyFromEvpWithoutPrivatePartIsInvalidArgument) {
  std::shared_ptr<const Key> key = MakeKey();
  ASSERT_NE(key, nullptr);
  UniqueEvpPkey public_only = PublicOnly(*key);
  ASSERT_NE(public_only, nullptr);

  EXPECT_THAT(SoftwareKeyFromEvp(public_only.get()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ERR_clear_error();
}

INSTANTIATE_TEST_SUITE_P(
    KeyTypes, SignTest, ::testing::Values(KeyType::kEcP256, KeyType::kRsa2048),
    [](const ::testing::TestParamInfo<KeyType>& param_info) -> std::string {
      return param_info.param == KeyType::kRsa2048 ? "Rsa2048" : "EcP256";
    });

TEST(SoftwareKeyFromPkcs8DerTest, GarbageIsInvalidArgument) {
  for (KeyTypeHint hint :
       {KeyTypeHint::kAuto, KeyTypeHint::kRsa, KeyTypeHint::kEc}) {
    EXPECT_THAT(SoftwareKeyFromPkcs8Der("garbage, not DER", hint),
                StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(SoftwareKeyFromPkcs8Der("", hint),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// An EC PKCS#8 key carries its public point beside the scalar; a point
// that is not the scalar's (here another key's) is refused, not taken as
// the key's public key.
TEST(SoftwareKeyFromPkcs8DerTest, EcKeyWithAnotherKeysPointIsInvalidArgument) {
  std::shared_ptr<const Key> key = FreshEcKey();
  std::shared_ptr<const Key> other = FreshEcKey();
  ASSERT_NE(key, nullptr);
  ASSERT_NE(other, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  absl::StatusOr<std::string> other_der = other->ExportPkcs8Der();
  ASSERT_OK(der);
  ASSERT_OK(other_der);
  // OpenSSL writes the uncompressed point (65 bytes) last.
  constexpr size_t kPoint = 65;
  ASSERT_GT(der->size(), kPoint);
  ASSERT_EQ((*der)[der->size() - kPoint], '\x04');
  std::string forged = *der;
  forged.replace(forged.size() - kPoint, kPoint,
                 other_der->substr(other_der->size() - kPoint));
  for (KeyTypeHint hint : {KeyTypeHint::kAuto, KeyTypeHint::kEc}) {
    absl::StatusOr<std::shared_ptr<const Key>> imported =
        SoftwareKeyFromPkcs8Der(forged, hint);
    EXPECT_THAT(imported, StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr("public point")));
    ExpectNoKeyMaterial(imported.status().message(), *key);
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// Found by entry_der_fuzz: an EC key whose public point is a BIT STRING
// that says 1 unused bit. When the bit it drops is 0 the point is intact
// and OpenSSL accepts the key; its public key must then be the canonical
// one, so that it re-imports unchanged.
// A point in X9.62's hybrid form (first byte 06/07: both coordinates and
// y's parity) decodes, but OpenSSL writes it back in another form: the key's
// public key must be the one it exports (found by entry_der_fuzz; the
// reproducer is in its corpus).
TEST(SoftwareKeyFromPkcs8DerTest, EcPointInHybridFormRoundTrips) {
  std::shared_ptr<const Key> key = FreshEcKey();
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> der = key->ExportPkcs8Der();
  ASSERT_OK(der);
  const size_t point = der->size() - 65;
  ASSERT_EQ((*der)[point], '\x04');
  std::string hybrid = *der;
  hybrid[point] = static_cast<char>(0x06 | (der->back() & 1));
  absl::StatusOr<std::shared_ptr<const Key>> imported =
      SoftwareKeyFromPkcs8Der(hybrid);
  ASSERT_OK(imported);
  absl::StatusOr<std::string> exported = (*imported)->ExportPkcs8Der();
  ASSERT_OK(exported);
  absl::StatusOr<std::shared_ptr<const Key>> again =
      SoftwareKeyFromPkcs8Der(*exported);
  ASSERT_OK(again);
  EXPECT_EQ((*again)->public_key_der(), (*imported)->public_key_der());
}

TEST(SoftwareKeyFromPkcs8DerTest, EcPointWithUnusedBitsRoundTrips) {
  std::shared_ptr<const Key> key;
  absl::StatusOr<std::string> der;
  for (int attempt = 0; attempt < 64; ++attempt) {
    key = FreshEcKey();
    ASSERT_NE(key, nullptr);
    der = key->ExportPkcs8Der();
    ASSERT_OK(der);
    if ((der->back() & 1) == 0) {
      break;  // the point's last bit is 0: dropping it keeps the point
    }
  }
  ASSERT_EQ(der->back() & 1, 0);
  // BIT STRING header before the point: 03 42 00; mark 1 unused bit.
  const size_t header = der->size() - 65 - 1;
  ASSERT_EQ((*der)[header], '\0');
  std::string odd = *der;
  odd[header] = '\x01';
  absl::StatusOr<std::shared_ptr<const Key>> imported =
      SoftwareKeyFromPkcs8Der(odd);
  ASSERT_OK(imported);
  {
    absl::StatusOr<std::string> exported = (*imported)->ExportPkcs8Der();
    ASSERT_OK(exported);
    absl::StatusOr<std::shared_ptr<const Key>> again =
        SoftwareKeyFromPkcs8Der(*exported);
    ASSERT_OK(again);
    EXPECT_EQ((*again)->public_key_der(), (*imported)->public_key_der());
    EXPECT_EQ((*imported)->public_key_der(), key->public_key_der());
  }
}

TEST(SoftwareKeyFromPemTest, EmptyOrNonKeyInputIsInvalidArgument) {
  EXPECT_THAT(SoftwareKeyFromPem(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SoftwareKeyFromPem(absl::string_view()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SoftwareKeyFromPem("no PEM here\n"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(SoftwareKeyFromEvpTest, NullIsInvalidArgument) {
  EXPECT_THAT(SoftwareKeyFromEvp(nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SoftwareKeyFromEvpTest, Ed25519IsInvalidArgumentNamingTheType) {
  UniqueEvpPkey ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(ed25519, nullptr);

  EXPECT_THAT(
      SoftwareKeyFromEvp(ed25519.get()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ED25519")));
  // The caller's reference is untouched.
  EXPECT_TRUE(EVP_PKEY_is_a(ed25519.get(), "ED25519"));
}

TEST(SoftwareKeyFromPkcs8DerTest, Ed25519IsInvalidArgument) {
  UniqueEvpPkey ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(ed25519, nullptr);
  unsigned char* der = nullptr;
  const int len = i2d_PrivateKey(ed25519.get(), &der);
  ASSERT_GT(len, 0);
  const std::string pkcs8(reinterpret_cast<char*>(der), len);
  OPENSSL_free(der);

  EXPECT_THAT(
      SoftwareKeyFromPkcs8Der(pkcs8, KeyTypeHint::kAuto),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ED25519")));
  ERR_clear_error();
}

}  // namespace
}  // namespace certstore::testing

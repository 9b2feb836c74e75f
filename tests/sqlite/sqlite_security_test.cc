// Keys at rest: plain PKCS#8 without a passphrase, standard encrypted
// PKCS#8 (PBES2, PBKDF2-HMAC-SHA-256, AES-256-CBC) with one; passphrase
// sources and their failures.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "certstore/openssl_types.h"
#include "certstore/sqlite_store.h"
#include "certstore/testing/status_matchers.h"
#include "sqlite/key_cipher_internal.h"
#include "tests/sqlite/sqlite_test_util.h"

namespace certstore::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPassphrase[] = "correct horse battery staple";

class SqliteSecurityTest : public SqliteFixture {
 protected:
  SqliteStoreOptions WithPassphrase(std::string passphrase) const {
    SqliteStoreOptions options = Options();
    options.passphrase_callback = [passphrase] {
      return absl::StatusOr<std::string>(passphrase);
    };
    return options;
  }

  std::string WritePassphraseFile(const std::string& content, mode_t mode) {
    const std::string path = FileIn(dir_, "passphrase");
    std::ofstream(path) << content;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }
};

// The PKCS#8 inside an EncryptedPrivateKeyInfo, decrypted by OpenSSL's own
// PKCS#8 code with the passphrase (as `openssl pkcs8` would).
UniqueEvpPkey DecryptWithOpenSsl(const std::string& der,
                                 const std::string& passphrase) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509_SIG* sig = d2i_X509_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (sig == nullptr) {
    return nullptr;
  }
  PKCS8_PRIV_KEY_INFO* info = PKCS8_decrypt(
      sig, passphrase.data(), static_cast<int>(passphrase.size()));
  X509_SIG_free(sig);
  if (info == nullptr) {
    return nullptr;
  }
  UniqueEvpPkey pkey(EVP_PKCS82PKEY(info));
  PKCS8_PRIV_KEY_INFO_free(info);
  return pkey;
}

TEST_F(SqliteSecurityTest, WithoutAPassphraseKeysArePlainPkcs8) {
  auto entry = Fresh("plain#att=0");
  ASSERT_OK(Open()->Put(entry));
  auto rows = ReadAllRows(path_);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_FALSE(rows[0].key_encrypted);
  auto exported = entry->key()->ExportPkcs8Der();
  ASSERT_OK(exported);
  EXPECT_EQ(rows[0].key_der, *exported);
}

TEST_F(SqliteSecurityTest, WithAPassphraseKeysAreStandardEncryptedPkcs8) {
  auto entry = Fresh("sealed#att=0", 0, KeyType::kRsa2048);
  auto store = OpenOrDie(WithPassphrase(kPassphrase));
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Put(entry));
  auto rows = ReadAllRows(path_);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].key_encrypted);
  auto exported = entry->key()->ExportPkcs8Der();
  ASSERT_OK(exported);
  EXPECT_FALSE(absl::StrContains(rows[0].key_der, exported->substr(40, 64)));

  UniqueEvpPkey decrypted = DecryptWithOpenSsl(rows[0].key_der, kPassphrase);
  ASSERT_NE(decrypted, nullptr);
  EXPECT_EQ(EVP_PKEY_eq(decrypted.get(), entry->key()->evp_pkey()), 1);
  EXPECT_EQ(DecryptWithOpenSsl(rows[0].key_der, "wrong"), nullptr);

  // PBES2 / PBKDF2-HMAC-SHA-256 / AES-256-CBC, >= 100,000 iterations.
  const unsigned char* p =
      reinterpret_cast<const unsigned char*>(rows[0].key_der.data());
  std::unique_ptr<X509_SIG, OpenSslDeleter<X509_SIG_free>> sig(
      d2i_X509_SIG(nullptr, &p, static_cast<long>(rows[0].key_der.size())));
  ASSERT_NE(sig, nullptr);
  const X509_ALGOR* algor = nullptr;
  X509_SIG_get0(sig.get(), &algor, nullptr);
  ASSERT_EQ(OBJ_obj2nid(algor->algorithm), NID_pbes2);
  std::unique_ptr<PBE2PARAM, OpenSslDeleter<PBE2PARAM_free>> pbe2(
      static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(
          ASN1_ITEM_rptr(PBE2PARAM), algor->parameter)));
  ASSERT_NE(pbe2, nullptr);
  EXPECT_EQ(OBJ_obj2nid(pbe2->encryption->algorithm), NID_aes_256_cbc);
  ASSERT_EQ(OBJ_obj2nid(pbe2->keyfunc->algorithm), NID_id_pbkdf2);
  std::unique_ptr<PBKDF2PARAM, OpenSslDeleter<PBKDF2PARAM_free>> kdf(
      static_cast<PBKDF2PARAM*>(ASN1_TYPE_unpack_sequence(
          ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter)));
  ASSERT_NE(kdf, nullptr);
  ASSERT_NE(kdf->prf, nullptr);
  EXPECT_EQ(OBJ_obj2nid(kdf->prf->algorithm), NID_hmacWithSHA256);
  EXPECT_GE(ASN1_INTEGER_get(kdf->iter), 100000);
}

TEST_F(SqliteSecurityTest, EncryptedKeysAreFoundAfterReopenWithThePassphrase) {
  auto entry = Fresh("reopen#att=0", 1);
  ASSERT_OK(OpenOrDie(WithPassphrase(kPassphrase))->Put(entry));
  SqliteStoreOptions options = Options();
  options.passphrase_file =
      WritePassphraseFile(std::string(kPassphrase) + "\n", 0600);
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  auto found = store->Find("reopen#att=0");
  ASSERT_OK(found);
  EXPECT_EQ((*found)->thumbprint(), entry->thumbprint());
  EXPECT_OK(store->ProbeKey(**found));
}

TEST_F(SqliteSecurityTest, WrongPassphraseIsPermissionDeniedNamingTheFile) {
  ASSERT_OK(OpenOrDie(WithPassphrase(kPassphrase))->Put(Fresh("w#att=0")));
  auto store = OpenSqliteStore(WithPassphrase("Tr0ub4dor&3"));
  EXPECT_THAT(store,
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr(path_), HasSubstr("wrong passphrase"),
                             Not(HasSubstr("Tr0ub4dor")))));
}

TEST_F(SqliteSecurityTest, MissingPassphraseIsPermissionDeniedOnceRecorded) {
  ASSERT_NE(OpenOrDie(WithPassphrase(kPassphrase)), nullptr);
  EXPECT_THAT(OpenSqliteStore(Options()),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr(path_), HasSubstr("passphrase_file"))));
}

TEST_F(SqliteSecurityTest, KeysStoredBeforeAPassphraseStayReadable) {
  auto plain = Fresh("before#att=0", 0);
  auto sealed = Fresh("after#att=0", 1);
  ASSERT_OK(Open()->Put(plain));
  {
    auto store = OpenOrDie(WithPassphrase(kPassphrase));
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Put(sealed));
  }
  auto store = OpenOrDie(WithPassphrase(kPassphrase));
  ASSERT_NE(store, nullptr);
  EXPECT_OK(store->Find("before#att=0"));
  EXPECT_OK(store->Find("after#att=0"));
}

TEST_F(SqliteSecurityTest, PassphraseFileMustBePrivate) {
  SqliteStoreOptions options = Options();
  options.passphrase_file = WritePassphraseFile(kPassphrase, 0640);
  EXPECT_THAT(OpenSqliteStore(options),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr(options.passphrase_file),
                             HasSubstr("passphrase_file"))));
  EXPECT_NE(access(path_.c_str(), F_OK), 0);  // nothing created
}

TEST_F(SqliteSecurityTest, BadPassphraseSourcesAreClearErrors) {
  SqliteStoreOptions missing = Options();
  missing.passphrase_file = FileIn(dir_, "absent");
  EXPECT_THAT(OpenSqliteStore(missing), StatusIs(absl::StatusCode::kNotFound,
                                                 HasSubstr("passphrase_file")));

  SqliteStoreOptions empty = Options();
  empty.passphrase_file = WritePassphraseFile("\n", 0600);
  EXPECT_THAT(OpenSqliteStore(empty),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));

  SqliteStoreOptions failing = Options();
  failing.passphrase_callback = [] {
    return absl::StatusOr<std::string>(
        absl::UnavailableError("secret service is down"));
  };
  EXPECT_THAT(OpenSqliteStore(failing),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr(path_), HasSubstr("passphrase_callback"),
                             HasSubstr("secret service is down"))));
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
}

TEST_F(SqliteSecurityTest, EncryptedKeyWithForeignParametersIsDataLoss) {
  auto store = OpenOrDie(WithPassphrase(kPassphrase));
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Put(Fresh("foreign#att=0")));
  store.reset();
  // Re-encrypt the key under another salt: standard, but not this file's.
  auto other = sqlite_internal::KeyCipher::Derive(
      kPassphrase,
      {std::string(16, 's'), sqlite_internal::kMinPbkdf2Iterations});
  ASSERT_OK(other);
  auto plain = Fresh("foreign#att=0")->key()->ExportPkcs8Der();
  ASSERT_OK(plain);
  auto reencrypted = (*other)->Encrypt(*plain);
  ASSERT_OK(reencrypted);
  EditRow(
      path_, ReadAllRows(path_)[0].id,
      [&](sqlite_internal::StoredRow& row) { row.key_der = *reencrypted; },
      /*fix_digest=*/true);
  EXPECT_THAT(OpenOrDie(WithPassphrase(kPassphrase))->Find("foreign#att=0"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("salt or iteration count")));
}

}  // namespace
}  // namespace certstore::testing

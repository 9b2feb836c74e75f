// The backend-specific rows of the recovery matrix: a key that dies where
// the store keeps it. PKCS#11 on a private SoftHSM token (the key object
// deleted under a live process, and across a restart) and the PEM
// directory (the key in the file replaced by another key).
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "certstore/open_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "certstore/token_client.h"
#include "emulator/emulator.h"
#include "tests/pkcs11/softhsm_token.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {
namespace {

using emulator::Emulator;

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto emu = Emulator::Start();
    ASSERT_OK(emu);
    emulator_ = *std::move(emu);
  }

  void Open(const std::string& uri) {
    client_.reset();
    store_.reset();
    auto store = OpenStore(uri);
    ASSERT_OK(store);
    store_ = *std::move(store);
    TokenClientOptions options;
    options.issuing_url = emulator_->issuing_url();
    options.server_ca_pem = emulator_->ca_root_pem();
    options.initial_backoff = absl::Milliseconds(20);
    auto client = TokenClient::Create(store_.get(), options);
    ASSERT_OK(client);
    client_ = *std::move(client);
  }

  std::string Alias() const {
    return absl::StrCat(emulator_->client_id(), "#att=0");
  }

  // After the key died: the next token heals with exactly one new mint.
  void ExpectHealedOnce(const std::string& old_thumbprint,
                        absl::string_view scope) {
    auto token = client_->GetToken(scope);
    ASSERT_OK(token);
    EXPECT_NE(token->thumbprint, old_thumbprint);
    EXPECT_EQ(emulator_->TokenBinding(token->access_token).value_or(""),
              token->thumbprint);
    EXPECT_EQ(emulator_->GetCounters().mints, 2);
  }

  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<LayeredStore> store_;
  std::unique_ptr<TokenClient> client_;
};

const SoftHsmToken& Token() {
  static SoftHsmToken* const token = [] {
    auto created = SoftHsmToken::Create("client-recovery");
    if (!created.ok()) {
      fprintf(stderr, "%s\n", created.status().ToString().c_str());
      abort();
    }
    return created->release();
  }();
  return *token;
}

TEST_F(RecoveryTest, Pkcs11KeyDeletedUnderALiveProcessHeals) {
  ASSERT_NO_FATAL_FAILURE(Open(absl::StrCat("memory:,", Token().Uri())));
  auto first = client_->GetToken("https://p11.example");
  ASSERT_OK(first);
  auto held = store_->Find(first->alias);
  ASSERT_OK(held);
  EXPECT_THAT((*held)->key()->location(), ::testing::HasSubstr("pkcs11:"));
  // Another process deletes the private key object from the token.
  ASSERT_OK(Token().Pkcs11Tool(
      absl::StrCat("--delete-object --type privkey --label '", Alias(), "'")));
  // The next handshake fails to sign on the token: evict, mint, retry.
  ASSERT_NO_FATAL_FAILURE(
      ExpectHealedOnce(first->thumbprint, "https://p11-after.example"));
  EXPECT_EQ(client_->Metrics().evictions, 1);
  ASSERT_OK(store_->DeleteAllForAlias(Alias()));
}

TEST_F(RecoveryTest, Pkcs11KeyDeletedBeforeARestartHeals) {
  const std::string uri = absl::StrCat("memory:,", Token().Uri());
  ASSERT_NO_FATAL_FAILURE(Open(uri));
  auto first = client_->GetToken("https://p11-restart.example");
  ASSERT_OK(first);
  client_.reset();
  store_.reset();
  ASSERT_OK(Token().Pkcs11Tool(
      absl::StrCat("--delete-object --type privkey --label '", Alias(), "'")));
  ASSERT_NO_FATAL_FAILURE(Open(uri));
  ASSERT_NO_FATAL_FAILURE(
      ExpectHealedOnce(first->thumbprint, "https://p11-restart.example"));
  ASSERT_OK(store_->DeleteAllForAlias(Alias()));
}

TEST_F(RecoveryTest, PemKeyReplacedByAnotherKeyHeals) {
  TempDir dir;
  const std::string uri = absl::StrCat("memory:,file:", dir.path(), "/certs");
  ASSERT_NO_FATAL_FAILURE(Open(uri));
  auto first = client_->GetToken("https://pem.example");
  ASSERT_OK(first);
  client_.reset();
  store_.reset();
  // Replace the PRIVATE KEY block of the entry file with another valid key.
  auto other = KeyToPem(*PoolKey(KeyType::kEcP256, 7));
  ASSERT_OK(other);
  const std::string alias_dir =
      absl::StrCat(dir.path(), "/certs/a-", absl::WebSafeBase64Escape(Alias()));
  const std::string file =
      absl::StrCat(alias_dir, "/x5t-", first->thumbprint, ".pem");
  std::stringstream text;
  text << std::ifstream(file).rdbuf();
  std::string pem = text.str();
  const size_t key = pem.find("-----BEGIN PRIVATE KEY-----");
  ASSERT_NE(key, std::string::npos) << file;
  pem = pem.substr(0, key) + *other;
  std::ofstream(file, std::ios::trunc) << pem;
  ASSERT_NO_FATAL_FAILURE(Open(uri));
  ASSERT_NO_FATAL_FAILURE(
      ExpectHealedOnce(first->thumbprint, "https://pem.example"));
}

}  // namespace
}  // namespace certstore::testing

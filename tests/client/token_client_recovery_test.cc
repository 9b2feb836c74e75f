// The backend-specific rows of the recovery matrix: a key that dies where
// the store keeps it. PKCS#11 on a private SoftHSM token (the key object
// deleted under a live process, and across a restart) and the PEM
// directory (the key in the file replaced by another key).
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "certstore/open_store.h"
#include "certstore/pkcs11_store.h"
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
    options.state_dir = rejections_.path();
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

  TempDir rejections_;  // this test's rejection records
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
  // The server reloads, so the next request needs a new handshake, which
  // fails to sign on the token: evict, mint, retry.
  emulator_->DropKeptAliveConnections();
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

// Hygiene: keys broken outside certstore, 20 times over, leave the token
// with the objects of exactly one pair for the alias (nothing orphaned),
// whether the break is met by a live process (eviction) or after a
// restart (the read refuses the pair, the new Put removes it).
TEST_F(RecoveryTest, TwentyExternallyDeletedTokenKeysLeaveOnePair) {
  const std::string uri = absl::StrCat("memory:,", Token().Uri());
  ASSERT_NO_FATAL_FAILURE(Open(uri));
  ASSERT_OK(client_->GetToken("https://hygiene.example/0"));
  // Objects labelled with the alias, and spare keys of it (the client
  // makes one ahead of each re-mint; a restarted process reuses the one
  // its predecessor left, so they never pile up).
  int spare_objects = 0;
  auto objects_of_alias = [&]() -> int {
    auto listing = Token().Pkcs11Tool("--list-objects");
    if (!listing.ok()) {
      ADD_FAILURE() << listing.status();
      return -1;
    }
    int n = 0;
    spare_objects = 0;
    for (absl::string_view line : absl::StrSplit(*listing, '\n')) {
      if (!absl::StrContains(line, "label:") ||
          !absl::EndsWith(absl::StripTrailingAsciiWhitespace(line), Alias())) {
        continue;
      }
      ++(absl::StrContains(line, "certstore-spare:") ? spare_objects : n);
    }
    return n;
  };
  const int one_pair = objects_of_alias();
  ASSERT_GE(one_pair, 3) << "certificate, record and key";
  for (int round = 1; round <= 20; ++round) {
    const bool restart = round % 2 == 1;
    if (restart) {
      client_.reset();
      store_.reset();
    }
    ASSERT_OK(Token().Pkcs11Tool(
        absl::StrCat("--delete-object --type privkey --label '", Alias(), "'")))
        << "round " << round;
    if (restart) {
      ASSERT_NO_FATAL_FAILURE(Open(uri));
    } else {
      emulator_->DropKeptAliveConnections();  // the next request handshakes
    }
    auto token =
        client_->GetToken(absl::StrCat("https://hygiene.example/", round));
    ASSERT_OK(token) << "round " << round;
    ASSERT_EQ(objects_of_alias(), one_pair) << "round " << round;
    ASSERT_LE(spare_objects, 2) << "round " << round << ": one spare pair";
  }
  EXPECT_EQ(emulator_->GetCounters().mints, 21);
  // The token's own view agrees: one servable entry, nothing broken.
  auto bare = OpenPkcs11Store(Token().Options());
  ASSERT_OK(bare);
  ListOptions all;
  all.include_broken = true;
  auto listed = (*bare)->List(all);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].problem, "");
  ASSERT_OK(store_->DeleteAllForAlias(Alias()));
}

// The same for entry files the store refuses to read (another owner, or a
// mode that lets others read a private key): the next token writes a
// fresh entry and the refused file goes.
TEST_F(RecoveryTest, TwentyRefusedEntryFilesLeaveOneFile) {
  TempDir dir;
  const std::string uri = absl::StrCat("memory:,file:", dir.path(), "/certs");
  ASSERT_NO_FATAL_FAILURE(Open(uri));
  auto first = client_->GetToken("https://files.example/0");
  ASSERT_OK(first);
  const std::string alias_dir =
      absl::StrCat(dir.path(), "/certs/a-", absl::WebSafeBase64Escape(Alias()));
  auto entry_files = [&] {
    std::vector<std::string> names;
    if (DIR* d = opendir(alias_dir.c_str())) {
      while (dirent* e = readdir(d)) {
        if (absl::EndsWith(e->d_name, ".pem")) names.push_back(e->d_name);
      }
      closedir(d);
    }
    return names;
  };
  std::string thumbprint = first->thumbprint;
  for (int round = 1; round <= 20; ++round) {
    client_.reset();
    store_.reset();
    const std::string file =
        absl::StrCat(alias_dir, "/x5t-", thumbprint, ".pem");
    // Unreadable to this process: a foreign owner when root can chown,
    // else no permissions at all; every other round, a group-readable
    // mode, which the store refuses for a private key.
    if (round % 2 == 0) {
      ASSERT_EQ(chmod(file.c_str(), 0640), 0) << file;
    } else if (geteuid() == 0) {
      ASSERT_EQ(chown(file.c_str(), 65534, 65534), 0) << file;
    } else {
      ASSERT_EQ(chmod(file.c_str(), 0), 0) << file;
    }
    ASSERT_NO_FATAL_FAILURE(Open(uri));
    ListOptions all;
    all.include_broken = true;
    auto listed = store_->List(all);
    ASSERT_OK(listed);
    ASSERT_EQ(listed->size(), 1u) << "round " << round;
    EXPECT_THAT((*listed)[0].problem, ::testing::StartsWith("unreadable: "))
        << "round " << round;
    auto token =
        client_->GetToken(absl::StrCat("https://files.example/", round));
    ASSERT_OK(token) << "round " << round;
    EXPECT_NE(token->thumbprint, thumbprint);
    thumbprint = token->thumbprint;
    ASSERT_THAT(entry_files(), ::testing::ElementsAre(
                                   absl::StrCat("x5t-", thumbprint, ".pem")))
        << "round " << round;
  }
  EXPECT_EQ(emulator_->GetCounters().mints, 21);
}

}  // namespace
}  // namespace certstore::testing

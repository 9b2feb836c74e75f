// Unit tests for filesystem/entry_file.h: the header lines and decoding a
// file's entry.
#include "filesystem/entry_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "certstore/chain.h"
#include "certstore/key.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "tests/filesystem/fs_test_util.h"

namespace certstore::filesystem_internal {
namespace {

using ::certstore::testing::PoolKey;
using ::certstore::testing::StatusIs;
using ::certstore::testing::TestNow;
using ::certstore::testing::TestPki;
using ::testing::HasSubstr;

std::shared_ptr<const Entry> MakeEntry(const std::string& alias) {
  static const TestPki* const pki = new TestPki();
  auto issued =
      pki->MakeEntry(alias, PoolKey(KeyType::kEcP256, 0),
                     TestNow() - absl::Hours(1), TestNow() + absl::Hours(100));
  EntryParts parts{alias, issued->chain_der(), issued->key(),
                   EntryMetadata{"https://e", "client", "tenant"}, TestNow()};
  auto entry = Entry::Create(std::move(parts));
  EXPECT_OK(entry);
  return *entry;
}

TEST(EntryFileTest, HeaderRecordsEveryField) {
  auto entry = MakeEntry("app#att=0");
  auto encoded = EncodeEntryFile(*entry);
  ASSERT_OK(encoded);
  auto header = ParseEntryFileHeader(*encoded);
  ASSERT_OK(header);
  EXPECT_EQ(header->alias, "app#att=0");
  EXPECT_EQ(header->thumbprint, entry->thumbprint());
  EXPECT_EQ(header->not_before, entry->not_before());
  EXPECT_EQ(header->not_after, entry->not_after());
  EXPECT_EQ(header->created_at, entry->created_at());
  EXPECT_EQ(header->key_algorithm, "EC-P256");
  EXPECT_EQ(header->endpoint, "https://e");
  EXPECT_EQ(header->client_id, "client");
  EXPECT_EQ(header->tenant_id, "tenant");
  auto decoded =
      DecodeEntryFile(*encoded, *header, "app#att=0", absl::UnixEpoch());
  ASSERT_OK(decoded);
  EXPECT_EQ((*decoded)->metadata(), entry->metadata());
  EXPECT_EQ((*decoded)->created_at(), entry->created_at());
}

TEST(EntryFileTest, HeaderParsingIsStrictAboutKnownFieldsOnly) {
  EXPECT_THAT(ParseEntryFileHeader("certstore-alias: a\ncertstore-alias: b\n"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("repeated")));
  EXPECT_THAT(ParseEntryFileHeader("certstore-not-after: soon\n"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("RFC 3339")));
  EXPECT_THAT(ParseEntryFileHeader("certstore-alias: 100%\n"),
              StatusIs(absl::StatusCode::kDataLoss));
  auto header = ParseEntryFileHeader(
      "# comment\r\nsome text\ncertstore-future-field: x\r\n"
      "certstore-client-id: a%20b\r\n-----BEGIN CERTIFICATE-----\n"
      "certstore-alias: after-the-first-block\n");
  ASSERT_OK(header);
  EXPECT_EQ(header->client_id, "a b");
  EXPECT_EQ(header->alias, std::nullopt);
}

TEST(EntryFileTest, MissingPartsAreDataLoss) {
  auto entry = MakeEntry("parts");
  auto key = KeyToPem(*entry->key());
  ASSERT_OK(key);
  EXPECT_THAT(DecodeEntryFile(DerChainToPem(entry->chain_der()), {}, "parts",
                              absl::UnixEpoch()),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("no usable PRIVATE KEY block")));
  EXPECT_THAT(
      DecodeEntryFile(*key, {}, "parts", absl::UnixEpoch()),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("no CERTIFICATE block")));
}

// With a full header, List's summary reads no key: a key block that is not
// a key still lists (and is DataLoss for Find).
TEST(EntryFileTest, SummaryWithAFullHeaderDecodesNoKey) {
  auto entry = MakeEntry("summary");
  auto encoded = EncodeEntryFile(*entry);
  ASSERT_OK(encoded);
  const size_t key = encoded->find("-----BEGIN PRIVATE KEY-----");
  ASSERT_NE(key, std::string::npos);
  const std::string not_a_key =
      certstore::testing::WithoutDigest(encoded->substr(0, key)) +
      "-----BEGIN PRIVATE KEY-----\n" +
      absl::Base64Escape("definitely not PKCS#8") +
      "\n-----END PRIVATE KEY-----\n";
  auto header = ParseEntryFileHeader(not_a_key);
  ASSERT_OK(header);
  auto info = SummarizeEntryFile(not_a_key, *header, "summary",
                                 absl::UnixEpoch(), "file:/x");
  ASSERT_OK(info);
  EXPECT_EQ(info->thumbprint, entry->thumbprint());
  EXPECT_EQ(info->chain_length, 2u);
  EXPECT_EQ(info->key_algorithm, "EC-P256");
  EXPECT_EQ(info->store, "file:/x");
  EXPECT_THAT(DecodeEntryFile(not_a_key, *header, "summary", absl::UnixEpoch()),
              StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace certstore::filesystem_internal

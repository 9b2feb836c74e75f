// The token client never sends a request in clear: a token endpoint that
// is not https (named by the issuer, or recorded on an imported entry) is
// refused before any connection, counted by a plain listening socket; the
// issuing endpoint may be http only on this machine (loopback, link-local).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "certstore/memory_store.h"
#include "certstore/testing/status_matchers.h"
#include "certstore/testing/test_pki.h"
#include "certstore/token_client.h"
#include "client/endpoint_url.h"
#include "emulator/emulator.h"
#include "tests/support/loopback.h"

namespace certstore::testing {
namespace {

using client_internal::CheckEndpointUrl;
using client_internal::EndpointUse;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(CheckEndpointUrlTest, TokenEndpointsMustBeHttpsWithAHostAndNoUserinfo) {
  for (const char* good :
       {"https://login.example", "https://127.0.0.1:8443/t", "HTTPS://x.y/"}) {
    EXPECT_OK(CheckEndpointUrl(good, EndpointUse::kTokenEndpoint)) << good;
  }
  const struct {
    std::string url;
    std::string why;
  } kBad[] = {
      {"http://login.example", "is not https://"},
      {"http://127.0.0.1:1", "is not https://"},
      {"file:///etc/passwd", "is not https://"},
      {"ftp://x", "is not https://"},
      {"https://", "not an absolute URL"},
      {"https:///path", "has no host"},
      {"https://user:secret@login.example", "user name or password"},
      {"https://user@login.example", "user name or password"},
      {"login.example/token", "not an absolute URL"},
      {"", "is empty"},
      {std::string("https://a\0b", 11), "NUL"},
  };
  for (const auto& c : kBad) {
    absl::Status status = CheckEndpointUrl(c.url, EndpointUse::kTokenEndpoint);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                                 AllOf(HasSubstr(c.why),
                                       HasSubstr("no request was sent"))))
        << c.url;
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret")));
  }
}

TEST(CheckEndpointUrlTest, IssuingEndpointMayBePlainHttpOnlyOnThisMachine) {
  for (const char* good : {"http://127.0.0.1:1", "http://169.254.169.254",
                           "http://[::1]:80", "http://localhost:8080",
                           "http://[fe80::1]", "https://issuer.example"}) {
    EXPECT_OK(CheckEndpointUrl(good, EndpointUse::kIssuingEndpoint)) << good;
  }
  for (const char* bad :
       {"http://10.0.0.1", "http://issuer.example", "http://[2001:db8::1]",
        "http://169.255.0.1", "file:///run/imds", "http://u:p@127.0.0.1"}) {
    EXPECT_THAT(CheckEndpointUrl(bad, EndpointUse::kIssuingEndpoint),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

TEST(TokenClientHttpsOnlyTest, RefusesAnIssuingUrlThatWouldLeaveTheMachine) {
  std::unique_ptr<CertStore> store = NewMemoryStore();
  TokenClientOptions options;
  options.issuing_url = "http://issuer.example";
  EXPECT_THAT(TokenClient::Create(store.get(), options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("http://issuer.example")));
}

class IssuerNamesAnEndpoint : public ::testing::TestWithParam<std::string> {};

// The issuer names a token endpoint that is not https: the mint is
// refused, nothing is stored, and nothing connects anywhere with it.
TEST_P(IssuerNamesAnEndpoint, NoRequestIsSentAndNothingIsStored) {
  CountingListener plain;
  emulator::EmulatorOptions options;
  options.advertised_token_endpoint =
      absl::StrReplaceAll(GetParam(), {{"{port}", absl::StrCat(plain.port())}});
  auto emulator = emulator::Emulator::Start(options);
  ASSERT_OK(emulator);
  std::unique_ptr<CertStore> store = NewMemoryStore();
  TokenClientOptions client_options;
  client_options.issuing_url = (*emulator)->issuing_url();
  client_options.server_ca_pem = (*emulator)->ca_root_pem();
  auto client = TokenClient::Create(store.get(), client_options);
  ASSERT_OK(client);
  EXPECT_THAT((*client)->GetToken("https://resource.example"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("token endpoint URL"),
                             HasSubstr("no request was sent"))));
  EXPECT_EQ(plain.Connections(), 0);
  auto listed = store->List();
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());
  EXPECT_EQ((*emulator)->GetCounters().requests_total, 0);
}

INSTANTIATE_TEST_SUITE_P(Endpoints, IssuerNamesAnEndpoint,
                         ::testing::Values("http://127.0.0.1:{port}",
                                           "HTTP://127.0.0.1:{port}",
                                           "file:///etc/passwd", "https://",
                                           "https://user:pw@127.0.0.1:{port}",
                                           "gopher://127.0.0.1:{port}"));

// An entry imported with an http token endpoint is not used for a token:
// refused before any connection, and not evicted (the key is fine).
TEST(TokenClientHttpsOnlyTest, ImportedEntryWithAnHttpEndpointSendsNothing) {
  CountingListener plain;
  auto emulator = emulator::Emulator::Start(emulator::EmulatorOptions{});
  ASSERT_OK(emulator);
  std::unique_ptr<CertStore> store = NewMemoryStore();
  TestPki pki;
  const std::string alias = absl::StrCat((*emulator)->client_id(), "#att=0");
  EntryParts parts;
  parts.alias = alias;
  parts.key = PoolKey(KeyType::kEcP256, 0);
  LeafOptions leaf;
  leaf.not_before = absl::Now() - absl::Hours(1);
  leaf.not_after = absl::Now() + absl::Hours(24 * 7);
  parts.chain_der = pki.IssueChain(*parts.key, leaf);
  parts.metadata.endpoint = absl::StrCat("http://127.0.0.1:", plain.port());
  auto entry = Entry::Create(std::move(parts));
  ASSERT_OK(entry);
  ASSERT_OK(store->Put(*entry));
  TokenClientOptions options;
  options.issuing_url = (*emulator)->issuing_url();
  options.server_ca_pem = (*emulator)->ca_root_pem();
  auto client = TokenClient::Create(store.get(), options);
  ASSERT_OK(client);
  EXPECT_THAT((*client)->GetToken("https://resource.example"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(alias), HasSubstr("is not https://"))));
  EXPECT_EQ(plain.Connections(), 0);
  EXPECT_OK(store->Find(alias));  // not evicted
  EXPECT_EQ((*emulator)->GetCounters().mints, 0);
}

}  // namespace
}  // namespace certstore::testing

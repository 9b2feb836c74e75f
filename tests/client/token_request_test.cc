// The token request form the client and doctor's probe both send.
#include "client/token_request.h"

#include <gtest/gtest.h>

namespace certstore::client_internal {
namespace {

TEST(TokenRequestBodyTest, GenericFormIsEncodedInOrder) {
  TokenRequestForm form;
  form.client_id = "svc a&b";
  form.scope = "api://x/read write";
  form.extra_parameters = {{"audience", "https://aud/?q=1"}, {"k=v", "é"}};
  EXPECT_EQ(TokenRequestBody(form),
            "grant_type=client_credentials&client_id=svc%20a%26b"
            "&scope=api%3A%2F%2Fx%2Fread%20write"
            "&audience=https%3A%2F%2Faud%2F%3Fq%3D1&k%3Dv=%C3%A9");
}

TEST(TokenRequestBodyTest, ImdsFormAsksForAProofOfPossessionToken) {
  TokenRequestForm form;
  form.client_id = "c1";
  form.scope = ImdsScope("https://vault.test");
  form.mtls_pop = true;
  EXPECT_EQ(TokenRequestBody(form),
            "grant_type=client_credentials&client_id=c1"
            "&scope=https%3A%2F%2Fvault.test%2F.default&token_type=mtls_pop");
}

TEST(TokenRequestBodyTest, ImdsScopeAndPath) {
  EXPECT_EQ(ImdsScope("https://r"), "https://r/.default");
  EXPECT_EQ(ImdsScope("https://r/.default"), "https://r/.default");
  EXPECT_EQ(ImdsTokenPath("t-1"), "/t-1/oauth2/v2.0/token");
  // A tenant id cannot add path segments or a query.
  EXPECT_EQ(ImdsTokenPath("a/b?c#d"), "/a%2Fb%3Fc%23d/oauth2/v2.0/token");
}

}  // namespace
}  // namespace certstore::client_internal

// certstore-token-client: what a service does to get an mTLS-bound access
// token with certstore. It opens the store its configuration names, makes a
// TokenClient on it and asks for a token twice (the second comes from the
// token cache). The binding credential is minted on first use, probed once
// per process, and replaced by itself if its key stops working.
//
//   certstore-token-client --issuing-url URL [--server-ca FILE]
//                          [--store URI] [SCOPE]
//
// The store comes from --store, $CERTSTORE_URI, $CERTSTORE_CONFIG, else the
// embedded default (memory over an SQLite file in the state directory).
// Prints what a log may hold: the token's type and expiry and the x5t#S256
// of the binding it is bound to; never the token itself.
#include "certstore/token_client.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "certstore/open_store.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: certstore-token-client --issuing-url URL "
               "[--server-ca FILE] [--store URI] [SCOPE]\n");
  return 2;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "certstore-token-client: %s\n",
               status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string issuing_url, server_ca_file, store_flag;
  std::string scope = "https://vault.example";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 < argc && arg == "--issuing-url") {
      issuing_url = argv[++i];
    } else if (i + 1 < argc && arg == "--server-ca") {
      server_ca_file = argv[++i];
    } else if (i + 1 < argc && arg == "--store") {
      store_flag = argv[++i];
    } else if (!absl::StartsWith(arg, "-")) {
      scope = arg;
    } else {
      return Usage();
    }
  }
  if (issuing_url.empty()) {
    return Usage();
  }

  absl::StatusOr<std::string> uri = certstore::ResolveStoreUri(store_flag, "");
  if (!uri.ok()) {
    return Fail(uri.status());
  }
  auto store = certstore::OpenStore(*uri);
  if (!store.ok()) {
    return Fail(store.status());
  }

  certstore::TokenClientOptions options;
  options.issuing_url = issuing_url;
  if (!server_ca_file.empty()) {
    std::stringstream pem;
    pem << std::ifstream(server_ca_file).rdbuf();
    options.server_ca_pem = pem.str();
  }
  options.log = [](certstore::LogLevel level, absl::string_view component,
                   absl::string_view message) {
    if (level >= certstore::LogLevel::kWarning) {
      std::fprintf(stderr, "%s: %.*s\n", std::string(component).c_str(),
                   static_cast<int>(message.size()), message.data());
    }
  };
  auto client = certstore::TokenClient::Create(store->get(), options);
  if (!client.ok()) {
    return Fail(client.status());
  }

  std::printf("store %s\n", (*store)->Name().c_str());
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<certstore::AccessToken> token = (*client)->GetToken(scope);
    if (!token.ok()) {
      return Fail(token.status());
    }
    std::printf(
        "token %s for %s, bound to x5t#S256 %s, expires in %s%s\n",
        token->token_type.c_str(), token->scope.c_str(),
        token->thumbprint.c_str(),
        absl::FormatDuration(
            absl::Trunc(token->expires_at - absl::Now(), absl::Seconds(1)))
            .c_str(),
        token->from_cache ? " (from the token cache)" : "");
  }
  certstore::TokenClientMetrics metrics = (*client)->Metrics();
  std::printf("token requests %lld, bindings minted %lld\n",
              static_cast<long long>(metrics.token_requests),
              static_cast<long long>(metrics.mints));
  return 0;
}

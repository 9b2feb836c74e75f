#include "tests/emulator/emulator_test_util.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "certstore/chain.h"
#include "certstore/openssl_types.h"

namespace certstore::emulator::testing {
namespace {

struct StackFree {
  void operator()(STACK_OF(X509) * stack) const {
    sk_X509_pop_free(stack, X509_free);
  }
};
using UniqueStack = std::unique_ptr<STACK_OF(X509), StackFree>;

// The result the TLS callbacks of the request on this thread write into.
thread_local HttpResult* current_result = nullptr;

void EnsureCurlInitialised() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

void AddEntry(X509_NAME* name, const char* field, const std::string& value) {
  X509_NAME_add_entry_by_txt(
      name, field, MBSTRING_UTF8,
      reinterpret_cast<const unsigned char*>(value.data()),
      static_cast<int>(value.size()), -1, 0);
}

void InfoCallback(const SSL* ssl, int where, int ret) {
  if (current_result == nullptr) {
    return;
  }
  if ((where & SSL_CB_HANDSHAKE_START) != 0) {
    current_result->tls_started = true;
  }
  if ((where & SSL_CB_READ_ALERT) != 0) {
    current_result->alerts_received.push_back(ret & 0xff);
  }
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    current_result->tls_version = SSL_get_version(ssl);
    STACK_OF(X509_NAME)* names = SSL_get_client_CA_list(ssl);
    current_result->acceptable_cas.clear();
    for (int i = 0; names != nullptr && i < sk_X509_NAME_num(names); ++i) {
      char buf[256];
      X509_NAME_oneline(sk_X509_NAME_value(names, i), buf, sizeof(buf));
      current_result->acceptable_cas.push_back(buf);
    }
  }
}

CURLcode SslContextCallback(CURL*, void* ssl_ctx, void* user) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  const auto* options = static_cast<const ClientOptions*>(user);
  SSL_CTX_set_info_callback(ctx, InfoCallback);
  if (options->tls_max != 0) {
    SSL_CTX_set_max_proto_version(ctx, options->tls_max);
  }
  for (size_t i = 0; i < options->chain_der.size(); ++i) {
    auto cert = DecodeCertificate(options->chain_der[i], "chain");
    if (!cert.ok()) {
      return CURLE_SSL_CERTPROBLEM;
    }
    const int ok = i == 0 ? SSL_CTX_use_certificate(ctx, cert->get())
                          : SSL_CTX_add1_chain_cert(ctx, cert->get());
    if (ok != 1) {
      return CURLE_SSL_CERTPROBLEM;
    }
  }
  if (options->key != nullptr &&
      SSL_CTX_use_PrivateKey(ctx, options->key->evp_pkey()) != 1) {
    return CURLE_SSL_CERTPROBLEM;
  }
  return CURLE_OK;
}

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  absl::string_view line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    (*headers)[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

}  // namespace

CsrOptions SubjectOf(const Emulator& emulator) {
  CsrOptions options;
  options.cn = emulator.client_id();
  options.dc = emulator.tenant_id();
  return options;
}

std::string MakeCsrDer(const Key& key, const CsrOptions& options) {
  UniqueX509Req req(X509_REQ_new());
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (options.dc_first) {
    AddEntry(name, "DC", options.dc);
    AddEntry(name, "CN", options.cn);
  } else {
    AddEntry(name, "CN", options.cn);
    AddEntry(name, "DC", options.dc);
  }
  if (!options.extra_ou.empty()) {
    AddEntry(name, "OU", options.extra_ou);
  }
  const Key& signer = options.sign_with != nullptr ? *options.sign_with : key;
  EXPECT_EQ(X509_REQ_set_pubkey(req.get(), key.evp_pkey()), 1);
  EXPECT_GT(X509_REQ_sign(req.get(), signer.evp_pkey(), EVP_sha256()), 0);
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(req.get(), &der);
  std::string out(reinterpret_cast<char*>(der), len > 0 ? len : 0);
  OPENSSL_free(der);
  return out;
}

nlohmann::json HttpResult::Json() const {
  return nlohmann::json::parse(body, nullptr, false);
}

std::string HttpResult::Describe() const {
  return absl::StrCat("curl=", curl, " (", curl_error, ") status=", status,
                      " alerts=[", absl::StrJoin(alerts_received, ","),
                      "] body=", body.substr(0, 300));
}

Client::Client(ClientOptions options) : options_(std::move(options)) {
  EnsureCurlInitialised();
  curl_ = curl_easy_init();
}

Client::~Client() { curl_easy_cleanup(curl_); }

HttpResult Client::Get(const std::string& url,
                       const std::vector<std::string>& headers) {
  return Perform(url, nullptr, headers);
}

HttpResult Client::Post(const std::string& url, const std::string& body,
                        const std::vector<std::string>& headers) {
  return Perform(url, &body, headers);
}

HttpResult Client::Token(const Emulator& emulator, const std::string& scope) {
  return Post(emulator.token_endpoint(),
              TokenForm(emulator.client_id(), scope));
}

HttpResult Client::Perform(const std::string& url, const std::string* body,
                           const std::vector<std::string>& headers) {
  HttpResult result;
  char error[CURL_ERROR_SIZE] = {};
  curl_slist* list = nullptr;
  for (const std::string& header : headers) {
    list = curl_slist_append(list, header.c_str());
  }
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      curl_, CURLOPT_TIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &result.headers);
  if (body != nullptr) {
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body->c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE,
                     static_cast<long>(body->size()));
  } else {
    curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
  }
  if (!options_.ca_pem.empty()) {
    curl_blob ca{const_cast<char*>(options_.ca_pem.data()),
                 options_.ca_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(curl_, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(curl_, CURLOPT_SSL_CTX_FUNCTION, SslContextCallback);
    curl_easy_setopt(curl_, CURLOPT_SSL_CTX_DATA, &options_);
  }
  const absl::Time start = absl::Now();
  current_result = &result;
  result.curl = curl_easy_perform(curl_);
  current_result = nullptr;
  result.elapsed = absl::Now() - start;
  result.curl_error = error;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &result.status);
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(list);
  return result;
}

HttpResult Imds(const Emulator& emulator, const std::string& path_and_query,
                const std::string* post_body) {
  Client client;
  const std::string url = emulator.issuing_url() + path_and_query;
  return post_body == nullptr
             ? client.Get(url, {"Metadata: true"})
             : client.Post(url, *post_body, {"Metadata: true"});
}

HttpResult PostCsr(const Emulator& emulator, const std::string& csr_der) {
  const std::string body =
      nlohmann::json{{"csr", absl::Base64Escape(csr_der)}}.dump();
  return Imds(emulator,
              "/metadata/identity/issuecredential?cred-api-version=2.0", &body);
}

Binding MintBinding(const Emulator& emulator, KeyType type) {
  Binding binding;
  auto key = GenerateSoftwareKey(KeySpec{type});
  EXPECT_TRUE(key.ok()) << key.status();
  binding.key = *key;
  const HttpResult result =
      PostCsr(emulator, MakeCsrDer(*binding.key, SubjectOf(emulator)));
  EXPECT_EQ(result.status, 200) << result.Describe();
  const nlohmann::json json = result.Json();
  std::string leaf;
  std::string intermediate;
  if (result.status == 200) {
    absl::Base64Unescape(json["certificate"].get<std::string>(), &leaf);
    absl::Base64Unescape(json["certificate_chain"][0].get<std::string>(),
                         &intermediate);
  }
  binding.chain_der = {leaf, intermediate};
  binding.thumbprint = Thumbprint(leaf);
  return binding;
}

ClientOptions WithBinding(const Emulator& emulator, const Binding& binding,
                          int tls_max) {
  ClientOptions options;
  options.chain_der = binding.chain_der;
  options.key = binding.key;
  options.ca_pem = emulator.ca_root_pem();
  options.tls_max = tls_max;
  return options;
}

std::string VerifyClientChain(const std::vector<std::string>& chain_der,
                              const std::string& root_der) {
  auto root = DecodeCertificate(root_der, "root");
  auto leaf = DecodeCertificate(chain_der.at(0), "leaf");
  if (!root.ok() || !leaf.ok()) {
    return "does not decode";
  }
  UniqueX509Store store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root->get());
  UniqueStack untrusted(sk_X509_new_null());
  for (size_t i = 1; i < chain_der.size(); ++i) {
    auto cert = DecodeCertificate(chain_der[i], "chain");
    if (!cert.ok()) {
      return "does not decode";
    }
    sk_X509_push(untrusted.get(), cert->release());
  }
  UniqueX509StoreCtx ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf->get(), untrusted.get());
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) == 1) {
    return "";
  }
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

std::string RawExchange(uint16_t port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    char buf[4096];
    for (;;) {
      pollfd pfd = {fd, POLLIN, 0};
      const int left =
          static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (left <= 0 || poll(&pfd, 1, left) <= 0) {
        break;
      }
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        break;
      }
      reply.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return reply;
}

std::string TlsParamName(const ::testing::TestParamInfo<int>& param) {
  return param.param == TLS1_2_VERSION ? "Tls12" : "Tls13";
}

std::string TokenForm(const std::string& client_id, const std::string& scope) {
  char* id = curl_easy_escape(nullptr, client_id.c_str(),
                              static_cast<int>(client_id.size()));
  char* sc =
      curl_easy_escape(nullptr, scope.c_str(), static_cast<int>(scope.size()));
  std::string form =
      absl::StrCat("grant_type=client_credentials&client_id=", id,
                   "&scope=", sc, "&token_type=mtls_pop");
  curl_free(id);
  curl_free(sc);
  return form;
}

}  // namespace certstore::emulator::testing

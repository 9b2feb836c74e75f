// certstore mTLS service: a tiny HTTPS server and a client that call each
// other with mutual TLS, both presenting credentials kept in one SQLite
// store (certstore::tls), while a rotator renews both credentials every
// two seconds. The server admits clients of its CA whose SPIFFE ID is in
// its trust domain; the client admits a server of its CA with serverAuth.
// Nobody restarts: new connections present the new certificates.
// Exits non-zero if a request fails or a renewal never reached a
// connection.
//
//   certstore-mtls-service [DIR [SECONDS]]   (the store goes to DIR, default
//                                             a new directory in /tmp; runs
//                                             SECONDS, default 10)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certstore/chain.h"
#include "certstore/openssl_types.h"
#include "certstore/sqlite_store.h"
#include "certstore/tls.h"

namespace {

using certstore::Key;
using certstore::UniqueX509;
using SslCtx =
    std::unique_ptr<SSL_CTX, certstore::OpenSslDeleter<SSL_CTX_free>>;
using Ssl = std::unique_ptr<SSL, certstore::OpenSslDeleter<SSL_free>>;

// A certificate for `key` signed by `issuer_key` (self-signed when `issuer`
// is null), with the given extensions (OpenSSL config syntax).
UniqueX509 Certify(const Key& key, const std::string& cn, X509* issuer,
                   const Key& issuer_key,
                   const std::vector<std::pair<int, std::string>>& exts) {
  UniqueX509 cert(X509_new());
  X509_set_version(cert.get(), 2);
  uint64_t serial = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof(serial));
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial >> 1);
  X509_NAME_add_entry_by_txt(
      X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
      reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.evp_pkey());
  for (const auto& [nid, value] : exts) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext =
        X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(cert.get(), issuer_key.evp_pkey(), EVP_sha256());
  return cert;
}

std::string Der(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

// The example's CA: one self-signed EC root that certifies both sides.
struct Ca {
  std::shared_ptr<const Key> key;
  UniqueX509 root;

  // A fresh key and leaf for `alias`, put in `store` (newer than the last).
  absl::Status Renew(certstore::CertStore& store, const std::string& alias) {
    absl::StatusOr<std::shared_ptr<const Key>> leaf_key =
        certstore::GenerateSoftwareKey({certstore::KeyType::kEcP256});
    if (!leaf_key.ok()) {
      return leaf_key.status();
    }
    const bool server = alias == "server";
    UniqueX509 leaf = Certify(
        **leaf_key, server ? "127.0.0.1" : "client", root.get(), *key,
        {{NID_basic_constraints, "critical,CA:FALSE"},
         {NID_ext_key_usage, server ? "serverAuth" : "clientAuth"},
         {NID_subject_alt_name,
          server ? "IP:127.0.0.1" : "URI:spiffe://example.org/client"}});
    certstore::EntryParts parts;
    parts.alias = alias;
    parts.chain_der = {Der(leaf.get())};
    parts.key = *leaf_key;
    parts.created_at = absl::Now();
    absl::StatusOr<std::shared_ptr<const certstore::Entry>> entry =
        certstore::Entry::Create(std::move(parts));
    if (!entry.ok()) {
      return entry.status();
    }
    if (absl::Status s = store.Put(*entry); !s.ok()) {
      return s;
    }
    // Renewed in this process: switch new handshakes now, not at the poll.
    certstore::TlsIdentity::NotifyChanged(alias);
    return absl::OkStatus();
  }
};

int Fail(const std::string& what) {
  fprintf(stderr, "mtls-service: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "";
  const int seconds = argc > 2 ? atoi(argv[2]) : 10;
  if (dir.empty()) {
    char tmpl[] = "/tmp/certstore-mtls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return Fail("mkdtemp failed");
    }
    dir = tmpl;
  }
  mkdir(dir.c_str(), 0700);  // may exist
  auto opened = certstore::OpenSqliteStore(dir + "/mtls.db");
  if (!opened.ok()) {
    return Fail(opened.status().ToString());
  }
  std::shared_ptr<certstore::CertStore> store = *std::move(opened);

  Ca ca;
  ca.key = *certstore::GenerateSoftwareKey({certstore::KeyType::kEcP256});
  ca.root = Certify(*ca.key, "mtls example CA", nullptr, *ca.key,
                    {{NID_basic_constraints, "critical,CA:TRUE"},
                     {NID_key_usage, "critical,keyCertSign,cRLSign"}});
  const std::string root_pem = certstore::DerChainToPem({Der(ca.root.get())});
  for (const char* alias : {"server", "client"}) {
    (void)store->DeleteAllForAlias(alias);  // a previous run's CA
    if (absl::Status s = ca.Renew(*store, alias); !s.ok()) {
      return Fail(s.ToString());
    }
  }

  // The server: its credential from the store; clients of the CA with a
  // SPIFFE ID in example.org.
  auto server_identity = certstore::TlsIdentity::Create(store, "server");
  certstore::PeerPolicyConfig clients;
  clients.trust_anchors_pem = root_pem;
  clients.required_usage = certstore::RequiredUsage::kClientAuth;
  clients.allowed_uris = {"spiffe://example.org/*"};
  auto client_policy = certstore::PeerPolicy::Create(clients);
  if (!server_identity.ok() || !client_policy.ok()) {
    return Fail("server setup: " + (server_identity.ok()
                                        ? client_policy.status().ToString()
                                        : server_identity.status().ToString()));
  }
  SslCtx server_ctx(SSL_CTX_new(TLS_server_method()));
  if (!(*server_identity)->Install(server_ctx.get()).ok() ||
      !(*client_policy)->Install(server_ctx.get()).ok()) {
    return Fail("server SSL_CTX");
  }
  SSL_CTX_set_num_tickets(server_ctx.get(), 0);  // full handshakes only

  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t addr_len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 16) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &addr_len)) {
    return Fail("listen on 127.0.0.1");
  }
  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop) {
      pollfd p{listener, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) {
        continue;
      }
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) {
        continue;
      }
      timeval limit{5, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
      Ssl ssl(SSL_new(server_ctx.get()));
      SSL_set_fd(ssl.get(), fd);
      if (SSL_accept(ssl.get()) == 1) {
        char request[1024];
        SSL_read(ssl.get(), request, sizeof(request));
        const auto verdict = certstore::PeerPolicy::VerdictOf(ssl.get());
        const std::string body =
            absl::StrCat("hello ", verdict ? verdict->peer.spiffe_id : "?",
                         " (", verdict ? verdict->peer.thumbprint : "", ")\n");
        const std::string response =
            absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", body.size(),
                         "\r\nConnection: close\r\n\r\n", body);
        SSL_write(ssl.get(), response.data(),
                  static_cast<int>(response.size()));
        SSL_shutdown(ssl.get());
      }
      close(fd);
    }
  });

  // The client: its credential from the same store; a server of the CA.
  auto client_identity = certstore::TlsIdentity::Create(store, "client");
  certstore::PeerPolicyConfig servers;
  servers.trust_anchors_pem = root_pem;
  servers.required_usage = certstore::RequiredUsage::kServerAuth;
  auto server_policy = certstore::PeerPolicy::Create(servers);
  SslCtx client_ctx(SSL_CTX_new(TLS_client_method()));
  if (!client_identity.ok() || !server_policy.ok() ||
      !(*client_identity)->Install(client_ctx.get()).ok() ||
      !(*server_policy)->Install(client_ctx.get()).ok()) {
    stop = true;
    server.join();
    return Fail("client setup");
  }

  std::set<std::string> server_certs;
  std::set<std::string> client_certs;
  int requests = 0;
  int failures = 0;
  const absl::Time start = absl::Now();
  absl::Time next_renewal = start + absl::Seconds(2);
  while (absl::Now() < start + absl::Seconds(seconds)) {
    if (absl::Now() >= next_renewal) {
      next_renewal += absl::Seconds(2);
      for (const char* alias : {"server", "client"}) {
        if (absl::Status s = ca.Renew(*store, alias); !s.ok()) {
          ++failures;
          fprintf(stderr, "renewal of %s: %s\n", alias, s.ToString().c_str());
        }
      }
      printf("renewed both credentials\n");
    }
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    timeval limit{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    Ssl ssl(SSL_new(client_ctx.get()));
    SSL_set_fd(ssl.get(), fd);
    SSL_set1_host(ssl.get(), "127.0.0.1");
    std::string response;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        SSL_connect(ssl.get()) == 1) {
      const std::string request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
      SSL_write(ssl.get(), request.data(), static_cast<int>(request.size()));
      char buf[1024];
      int n = 0;
      while ((n = SSL_read(ssl.get(), buf, sizeof(buf))) > 0) {
        response.append(buf, static_cast<size_t>(n));
      }
    }
    ++requests;
    if (response.rfind("HTTP/1.1 200", 0) != 0) {
      ++failures;
      fprintf(stderr, "request %d failed\n", requests);
    } else {
      server_certs.insert(
          certstore::Thumbprint(Der(SSL_get0_peer_certificate(ssl.get()))));
      client_certs.insert(response.substr(response.rfind('(') + 1, 43));
      if (requests % 10 == 1) {
        printf("%s", response.substr(response.find("\r\n\r\n") + 4).c_str());
      }
    }
    close(fd);
    absl::SleepFor(absl::Milliseconds(100));
  }
  stop = true;
  server.join();
  close(listener);
  printf(
      "%d requests, %d failed; the server presented %zu certificates, the "
      "client %zu\n",
      requests, failures, server_certs.size(), client_certs.size());
  const bool rotated =
      seconds < 3 || (server_certs.size() >= 2 && client_certs.size() >= 2);
  return failures == 0 && rotated ? 0 : 1;
}

// certstore demo: the token client on a real store against the emulator,
// healing itself after its key breaks. Usage:
//   certstore-demo [--store URI]     (default: the embedded default store,
//                                     memory:,sqlite:<state dir>/certstore.db)
// Steps: first token (mint), second token (cache), the key damaged on disk,
// a restart that notices and heals (evict, mint), then the server revoking
// the certificate and the client healing with exactly one retry.
#include <dirent.h>
#include <sqlite3.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "certstore/open_store.h"
#include "certstore/token_client.h"
#include "emulator/emulator.h"

namespace {

using certstore::AccessToken;
using certstore::emulator::Emulator;

constexpr absl::string_view kScope = "https://vault.example";

std::string Short(const std::string& thumbprint) {
  return thumbprint.substr(0, 12) + "…";
}

void Say(const std::string& text) { std::printf("%s\n", text.c_str()); }

std::string Counts(const Emulator& emulator) {
  certstore::emulator::Counters c = emulator.GetCounters();
  return absl::StrCat("[emulator: mints=", c.mints, " tokens=", c.tokens_issued,
                      " handshakes_failed=", c.handshakes_failed, "]");
}

// The bottom layer's location: the part after "sqlite:" / "file:".
std::string BottomPath(const std::string& uri, absl::string_view scheme) {
  size_t at = uri.rfind(std::string(scheme));
  std::string path = uri.substr(at + scheme.size());
  return path.substr(0, path.find('?'));
}

// Damages the stored key bytes of `alias` in an SQLite store.
std::string BreakSqliteKey(const std::string& path, const std::string& alias) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db);
    return "could not open " + path;
  }
  sqlite3_stmt* stmt = nullptr;
  sqlite3_busy_timeout(db, 5000);
  sqlite3_prepare_v2(db,
                     "UPDATE entries SET key_der = randomblob(length(key_der))"
                     " WHERE alias = ?1",
                     -1, &stmt, nullptr);
  sqlite3_bind_blob(stmt, 1, alias.data(), static_cast<int>(alias.size()),
                    SQLITE_TRANSIENT);
  sqlite3_step(stmt);
  int changed = sqlite3_changes(db);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return absl::StrCat("overwrote the key bytes of ", changed, " row(s) in ",
                      path);
}

// Damages the PRIVATE KEY block of every entry file of `alias`.
std::string BreakPemKey(const std::string& dir, const std::string& alias) {
  std::string alias_dir =
      absl::StrCat(dir, "/a-", absl::WebSafeBase64Escape(alias));
  DIR* d = opendir(alias_dir.c_str());
  if (d == nullptr) {
    return "no entry directory " + alias_dir;
  }
  int damaged = 0;
  while (dirent* e = readdir(d)) {
    if (!absl::EndsWith(e->d_name, ".pem")) {
      continue;
    }
    std::string file = absl::StrCat(alias_dir, "/", e->d_name);
    std::stringstream text;
    text << std::ifstream(file).rdbuf();
    std::string pem = text.str();
    size_t key = pem.find("-----BEGIN PRIVATE KEY-----");
    if (key == std::string::npos) {
      continue;
    }
    // Rewrite the key's base64 body with other valid base64: still a
    // well-formed file, but no longer this certificate's key.
    for (size_t i = key + 40; i < pem.size() && pem[i] != '-'; ++i) {
      if (absl::ascii_isalnum(pem[i])) {
        pem[i] = pem[i] == 'A' ? 'B' : 'A';
      }
    }
    std::ofstream(file, std::ios::trunc) << pem;
    ++damaged;
  }
  closedir(d);
  return absl::StrCat("rewrote the private key of ", damaged, " file(s) in ",
                      alias_dir);
}

std::string BreakKeyOnDisk(const std::string& uri, const std::string& alias) {
  std::string bottom = uri.substr(uri.rfind(',') + 1);
  if (absl::StartsWith(bottom, "sqlite:")) {
    return BreakSqliteKey(BottomPath(uri, "sqlite:"), alias);
  }
  if (absl::StartsWith(bottom, "file:")) {
    return BreakPemKey(BottomPath(uri, "file:"), alias);
  }
  return "(" + bottom.substr(0, bottom.find(':') + 1) +
         " keys cannot be damaged from here; skipping to the revocation)";
}

struct Session {
  std::unique_ptr<certstore::LayeredStore> store;
  std::unique_ptr<certstore::TokenClient> client;
};

absl::StatusOr<Session> Open(const std::string& uri, const Emulator& emu) {
  certstore::OpenStoreOptions store_options;
  store_options.log = [](certstore::LogLevel level, absl::string_view component,
                         absl::string_view message) {
    if (level >= certstore::LogLevel::kWarning) {
      std::printf("      %s: %s\n", std::string(component).c_str(),
                  std::string(message).c_str());
    }
  };
  Session session;
  auto store = certstore::OpenStore(uri, store_options);
  if (!store.ok()) {
    return store.status();
  }
  session.store = *std::move(store);
  certstore::TokenClientOptions options;
  options.issuing_url = emu.issuing_url();
  options.server_ca_pem = emu.ca_root_pem();
  options.log = store_options.log;
  auto client = certstore::TokenClient::Create(session.store.get(), options);
  if (!client.ok()) {
    return client.status();
  }
  session.client = *std::move(client);
  return session;
}

std::string Describe(const absl::StatusOr<AccessToken>& token) {
  if (!token.ok()) {
    return "FAILED: " + token.status().ToString();
  }
  return absl::StrCat(token->from_cache ? "served from the token cache"
                      : token->healed   ? "healed: evicted, re-minted, retried"
                                        : "fetched over mTLS",
                      ", bound to x5t#S256 ", Short(token->thumbprint));
}

}  // namespace

int main(int argc, char** argv) {
  std::string flag_store;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--store" && i + 1 < argc) {
      flag_store = argv[++i];
    } else if (absl::StartsWith(arg, "--store=")) {
      flag_store = arg.substr(8);
    } else {
      std::fprintf(stderr, "usage: certstore-demo [--store URI]\n");
      return 2;
    }
  }
  auto uri = certstore::ResolveStoreUri(flag_store, "");
  auto emu = Emulator::Start();
  if (!uri.ok() || !emu.ok()) {
    std::fprintf(stderr, "certstore-demo: %s\n",
                 (!uri.ok() ? uri.status() : emu.status()).ToString().c_str());
    return 1;
  }
  Emulator& emulator = **emu;
  Say(absl::StrCat("certstore demo\n  store:    ", *uri,
                   "\n  emulator: ", emulator.issuing_url(), " (issuing), ",
                   emulator.token_url(), " (mTLS token endpoint)\n"));
  auto session = Open(*uri, emulator);
  if (!session.ok()) {
    std::fprintf(stderr, "certstore-demo: %s\n",
                 session.status().ToString().c_str());
    return 1;
  }
  const std::string alias = absl::StrCat(emulator.client_id(), "#att=0");
  auto cleared = session->store->DeleteAllForAlias(alias);
  Say(absl::StrCat("0. clean slate: removed ", cleared.ok() ? *cleared : 0,
                   " binding(s) of ", alias, " left by an earlier run"));

  auto first = session->client->GetToken(kScope);
  Say("1. first token:   " + Describe(first) + "  " + Counts(emulator));
  auto second = session->client->GetToken(kScope);
  Say("2. second token:  " + Describe(second) + "  " + Counts(emulator));
  if (!first.ok() || !second.ok()) {
    return 1;
  }

  const std::string broken = BreakKeyOnDisk(*uri, alias);
  const bool key_broken = !absl::StartsWith(broken, "(");
  Say("3. break the key on disk: " + broken);
  Say("4. restart: a new store and client on the same URI (the memory layer "
      "starts empty)");
  session = Open(*uri, emulator);
  if (!session.ok()) {
    return 1;
  }
  auto healed = session->client->GetToken(kScope);
  Say("5. next token:    " + Describe(healed) + "  " + Counts(emulator));

  Say("6. the server revokes x5t#S256 " +
      Short(healed.ok() ? healed->thumbprint : "?") +
      " (the client still holds it)");
  if (healed.ok()) {
    emulator.Revoke(healed->thumbprint);
  }
  auto after_revoke = session->client->GetToken("https://storage.example");
  Say("7. next token:    " + Describe(after_revoke) + "  " + Counts(emulator));

  const bool ok = healed.ok() && after_revoke.ok() && after_revoke->healed &&
                  (!key_broken || healed->thumbprint != first->thumbprint);
  Say(ok ? "\ndemo: every request succeeded; the client healed itself, no one "
           "deleted anything by hand"
         : "\ndemo: FAILED");
  return ok ? 0 : 1;
}

#include "tests/sqlite/sqlite_test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sqlite/key_cipher_internal.h"

namespace certstore::testing {

using sqlite_internal::Connection;
using sqlite_internal::Statement;
using sqlite_internal::StoredRow;

SqliteStoreOptions TestOptions(const std::string& path, const Clock* clock) {
  SqliteStoreOptions options;
  options.path = path;
  options.clock = clock;
  options.pbkdf2_iterations = sqlite_internal::kMinPbkdf2Iterations;
  return options;
}

std::unique_ptr<CertStore> OpenOrDie(const SqliteStoreOptions& options) {
  auto store = OpenSqliteStore(options);
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return nullptr;
  }
  return *std::move(store);
}

std::unique_ptr<Connection> RawConnection(const std::string& path) {
  auto connection = Connection::Open(
      path, sqlite_internal::Journal::kAsIs,
      std::chrono::steady_clock::now() + std::chrono::seconds(5));
  if (!connection.ok()) {
    ADD_FAILURE() << path << ": " << connection.status();
    return nullptr;
  }
  return *std::move(connection);
}

std::string IntegrityCheck(const std::string& path) {
  auto connection = RawConnection(path);
  if (connection == nullptr) {
    return "cannot open";
  }
  auto verdict = connection->QueryText("PRAGMA integrity_check");
  return verdict.ok() ? *verdict : verdict.status().ToString();
}

std::vector<StoredRow> ReadAllRows(const std::string& path) {
  static const std::string* const sql = new std::string(absl::StrCat(
      "SELECT ", sqlite_internal::kRowColumns, " FROM entries ORDER BY id"));
  std::vector<StoredRow> rows;
  auto connection = RawConnection(path);
  if (connection == nullptr) {
    return rows;
  }
  auto select = connection->Prepare(sql->c_str());
  if (!select.ok()) {
    ADD_FAILURE() << select.status();
    return rows;
  }
  while (true) {
    auto more = select->Step();
    if (!more.ok()) {
      ADD_FAILURE() << more.status();
      return rows;
    }
    if (!*more) {
      return rows;
    }
    rows.push_back(sqlite_internal::ReadRow(*select));
  }
}

void EditRow(const std::string& path, int64_t id,
             const std::function<void(StoredRow&)>& edit, bool fix_digest) {
  static constexpr char kUpdate[] =
      "UPDATE entries SET alias = ?1, thumbprint = ?2, not_before = ?3, "
      "not_after = ?4, created_at_ns = ?5, key_type = ?6, key_algorithm = ?7, "
      "key_encrypted = ?8, key_der = ?9, chain = ?10, endpoint = ?11, "
      "client_id = ?12, tenant_id = ?13, digest = ?14 WHERE id = ?15";
  for (StoredRow& row : ReadAllRows(path)) {
    if (row.id != id) {
      continue;
    }
    edit(row);
    if (fix_digest) {
      row.digest = sqlite_internal::RowDigest(row);
    }
    auto connection = RawConnection(path);
    ASSERT_NE(connection, nullptr);
    auto update = connection->Prepare(kUpdate);
    ASSERT_TRUE(update.ok()) << update.status();
    sqlite_internal::BindRow(row, *update);
    update->BindInt(15, id);
    ASSERT_TRUE(update->Run().ok());
    return;
  }
  ADD_FAILURE() << "no row " << id << " in " << path;
}

pid_t ForkChild(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) {
    _exit(body());
  }
  EXPECT_GT(pid, 0) << "fork failed";
  return pid;
}

int WaitChild(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    if (done < 0) {
      return -2000;
    }
    if (absl::Now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1000;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

const TestPki& SqliteFixture::Pki() {
  static const TestPki* const pki = new TestPki(KeyType::kEcP256);
  return *pki;
}

std::shared_ptr<const Entry> SqliteFixture::Fresh(
    const std::string& alias, int key_index, KeyType type,
    absl::Duration lifetime) const {
  const absl::Time from = clock_.Now() - absl::Hours(24);
  return Pki().MakeEntry(alias, PoolKey(type, key_index), from,
                         from + lifetime);
}

}  // namespace certstore::testing

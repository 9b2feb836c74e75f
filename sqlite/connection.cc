#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "certstore/status_macros.h"
#include "sqlite/connection_internal.h"
#include "sqlite/sqlite_status_internal.h"

namespace certstore::sqlite_internal {
namespace {

std::minstd_rand& JitterSource() {
  thread_local std::minstd_rand rng(std::random_device{}());
  return rng;
}

// Per-connection settings that make the file as robust as SQLite allows.
// mmap stays off so that a file truncated under us is an I/O error, not a
// SIGBUS.
constexpr const char* kPragmas[] = {
    "PRAGMA secure_delete=ON",   "PRAGMA synchronous=FULL",
    "PRAGMA cell_size_check=ON", "PRAGMA mmap_size=0",
    "PRAGMA foreign_keys=OFF",
};

}  // namespace

void SleepWithJitter(int attempt, Deadline deadline,
                     std::chrono::milliseconds cap) {
  const auto base = std::min<std::chrono::microseconds>(
      std::chrono::microseconds(int64_t{1000} << std::min(attempt, 16)), cap);
  std::uniform_int_distribution<int64_t> half(base.count() / 2, base.count());
  const auto pause = std::chrono::microseconds(half(JitterSource()));
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() > 0) {
    std::this_thread::sleep_for(std::min(pause, left));
  }
}

// ------------------------------------------------------------- Statement

Statement::Statement(Statement&& other) noexcept
    : connection_(other.connection_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      bind_rc_(other.bind_rc_) {}

Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void Statement::BindBlob(int index, absl::string_view value) {
  // A zero-length blob must still be a blob, not NULL: pass a non-null
  // pointer.
  static const char kEmpty = 0;
  int rc =
      sqlite3_bind_blob64(stmt_, index, value.empty() ? &kEmpty : value.data(),
                          value.size(), SQLITE_STATIC);
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
  }
}

void Statement::BindText(int index, absl::string_view value) {
  static const char kEmpty = 0;
  int rc =
      sqlite3_bind_text64(stmt_, index, value.empty() ? &kEmpty : value.data(),
                          value.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
  }
}

void Statement::BindInt(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
  }
}

absl::StatusOr<bool> Statement::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return SqliteStatus(bind_rc_, nullptr, "cannot bind a parameter");
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return connection_->Fail(rc);
}

absl::Status Statement::Run() {
  while (true) {
    CERTSTORE_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) {
      return absl::OkStatus();
    }
  }
}

int64_t Statement::Int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

absl::string_view Statement::Blob(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  return data == nullptr ? absl::string_view()
                         : absl::string_view(static_cast<const char*>(data),
                                             static_cast<size_t>(size));
}

absl::string_view Statement::Text(int column) const {
  const unsigned char* data = sqlite3_column_text(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  return data == nullptr
             ? absl::string_view()
             : absl::string_view(reinterpret_cast<const char*>(data),
                                 static_cast<size_t>(size));
}

// ------------------------------------------------------------ Connection

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const std::string& path, Journal journal, Deadline deadline) {
  sqlite3* raw = nullptr;
  // The caller created the file: never create it here (no SQLITE_OPEN_CREATE)
  // and never follow a symlink swapped in since.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                    SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  UniqueSqlite db(raw);
  if (rc != SQLITE_OK) {
    return SqliteStatus(rc, db.get(), "cannot open");
  }
  std::unique_ptr<Connection> connection(new Connection(std::move(db)));
  connection->set_deadline(deadline);
  CERTSTORE_RETURN_IF_ERROR(connection->Configure(journal));
  return connection;
}

absl::Status Connection::Configure(Journal journal) {
  struct Flag {
    int op;
    int value;
  };
  // Defensive: no writes to the schema or shadow tables through SQL; an
  // untrusted schema cannot run functions with side effects; a file cannot
  // bring triggers or views along.
  for (Flag flag :
       {Flag{SQLITE_DBCONFIG_DEFENSIVE, 1},
        Flag{SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0},
        Flag{SQLITE_DBCONFIG_ENABLE_TRIGGER, 0},
        Flag{SQLITE_DBCONFIG_ENABLE_VIEW, 0}, Flag{SQLITE_DBCONFIG_DQS_DML, 0},
        Flag{SQLITE_DBCONFIG_DQS_DDL, 0}}) {
    int rc = sqlite3_db_config(db_.get(), flag.op, flag.value, nullptr);
    if (rc != SQLITE_OK) {
      return SqliteStatus(rc, db_.get(), "cannot configure the connection");
    }
  }
  sqlite3_busy_handler(db_.get(), &Connection::OnBusy, this);
  for (const char* pragma : kPragmas) {
    CERTSTORE_RETURN_IF_ERROR(Exec(pragma));
  }
  return SetJournal(journal);
}

absl::Status Connection::SetJournal(Journal journal) {
  // Reading the mode is also the first read of the file: a file that is not
  // a database fails here.
  CERTSTORE_ASSIGN_OR_RETURN(journal_mode_, QueryText("PRAGMA journal_mode"));
  const bool want_wal = journal == Journal::kWal;
  if (journal == Journal::kAsIs ||
      journal_mode_ == (want_wal ? "wal" : "delete")) {
    return absl::OkStatus();
  }
  CERTSTORE_ASSIGN_OR_RETURN(
      journal_mode_, QueryText(want_wal ? "PRAGMA journal_mode=WAL"
                                        : "PRAGMA journal_mode=DELETE"));
  if (!want_wal && journal_mode_ != "delete") {
    return absl::UnavailableError(absl::StrCat(
        "cannot leave journal_mode ", journal_mode_,
        " for the rollback journal while other connections have the file "
        "open"));
  }
  // A filesystem that refuses WAL leaves the rollback journal: still safe.
  return absl::OkStatus();
}

int Connection::OnBusy(void* self, int count) {
  auto* connection = static_cast<Connection*>(self);
  if (std::chrono::steady_clock::now() >= connection->deadline_) {
    return 0;
  }
  SleepWithJitter(count, connection->deadline_, std::chrono::milliseconds(20));
  return 1;
}

absl::StatusOr<Statement> Connection::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &raw, nullptr);
    UniqueStatement stmt(raw);
    if (rc != SQLITE_OK) {
      return Fail(rc);
    }
    it = statements_.emplace(sql, std::move(stmt)).first;
  }
  return Statement(this, it->second.get());
}

absl::Status Connection::Exec(const char* sql) {
  int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : Fail(rc);
}

absl::StatusOr<std::string> Connection::QueryText(const char* sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_.get(), sql, -1, &raw, nullptr);
  UniqueStatement stmt(raw);
  if (rc != SQLITE_OK) {
    return Fail(rc);
  }
  rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) {
    return std::string();
  }
  if (rc != SQLITE_ROW) {
    return Fail(rc);
  }
  const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
  return text == nullptr ? std::string()
                         : std::string(reinterpret_cast<const char*>(text));
}

absl::Status Connection::Fail(int rc) {
  saw_busy_ = saw_busy_ || IsBusyCode(rc);
  return SqliteStatus(rc, db_.get(), "");
}

void Connection::Abandon() {
  for (auto& [sql, stmt] : statements_) {
    static_cast<void>(stmt.release());
  }
  static_cast<void>(db_.release());
}

}  // namespace certstore::sqlite_internal

// One SQLite connection, configured the way the store needs it, with its
// prepared statements and a deadline-bounded busy handler. Not thread-safe:
// Database (database_internal.h) serialises its use. Internal to sqlite/.
#ifndef CERTSTORE_SQLITE_CONNECTION_INTERNAL_H_
#define CERTSTORE_SQLITE_CONNECTION_INTERNAL_H_

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace certstore::sqlite_internal {

// Busy waits and lock polls run on the monotonic clock: they must not
// stretch or shrink when the wall clock (or an injected clock) moves.
using Deadline = std::chrono::steady_clock::time_point;

// Sleeps a jittered, exponentially growing pause (0.5..1 ms doubling per
// attempt, capped at `cap`), never past `deadline`.
void SleepWithJitter(int attempt, Deadline deadline,
                     std::chrono::milliseconds cap);

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using UniqueSqlite = std::unique_ptr<sqlite3, SqliteCloser>;
using UniqueStatement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

class Connection;

// A use of one cached prepared statement: bind, step, read columns. Reset
// and unbound when destroyed, so the statement is ready for the next user.
// Must not outlive its Connection. Column views are valid until the next
// Step.
class Statement {
 public:
  Statement(Connection* connection, sqlite3_stmt* stmt)
      : connection_(connection), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Bind parameter `index` (1-based). A bind failure is reported by Step.
  void BindBlob(int index, absl::string_view value);
  void BindText(int index, absl::string_view value);
  void BindInt(int index, int64_t value);

  // Advances: true with a row, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, ignoring rows.
  absl::Status Run();

  int64_t Int(int column) const;
  absl::string_view Blob(int column) const;
  absl::string_view Text(int column) const;

 private:
  Connection* connection_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// The journal Connection::Open asks for.
enum class Journal {
  kWal,       // WAL if the filesystem accepts it, else the rollback journal
  kRollback,  // journal_mode=DELETE
  kAsIs,      // whatever the file has (tools and tests)
};

class Connection {
 public:
  // Opens the existing file `path` (the caller created and checked it),
  // with defensive mode, trusted_schema=OFF, triggers and views disabled,
  // secure_delete=ON, synchronous=FULL, no mmap, and `journal`. Busy waits
  // end at `deadline`.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& path, Journal journal, Deadline deadline);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // Finalizes the statements and closes the connection, unless Abandon()ed.
  ~Connection() = default;

  // The cached statement for `sql`, prepared on first use. `sql` must be a
  // string with static storage: the cache is keyed by its address.
  absl::StatusOr<Statement> Prepare(const char* sql);

  // Runs one or more statements without results (BEGIN, COMMIT, DDL).
  absl::Status Exec(const char* sql);

  // The first column of the first row of `sql` (pragmas), as text.
  absl::StatusOr<std::string> QueryText(const char* sql);

  // Busy handlers give up at `deadline`.
  void set_deadline(Deadline deadline) { deadline_ = deadline; }
  // Whether a call since the last reset failed because of another
  // connection's lock (worth retrying while the deadline allows).
  bool saw_busy() const { return saw_busy_; }
  void reset_busy() { saw_busy_ = false; }

  // "wal" or "delete": the journal in effect.
  const std::string& journal_mode() const { return journal_mode_; }

  // Forgets the connection without touching it: for a child process that
  // inherited it through fork(), where closing could release or rewrite
  // state its parent still uses. Leaks its memory on purpose.
  void Abandon();

  sqlite3* raw() const { return db_.get(); }

  // Converts a failed result code of this connection, noting busy ones.
  absl::Status Fail(int rc);

 private:
  explicit Connection(UniqueSqlite db) : db_(std::move(db)) {}
  absl::Status Configure(Journal journal);
  absl::Status SetJournal(Journal journal);
  static int OnBusy(void* self, int count);

  UniqueSqlite db_;  // declared first: closed after the statements
  absl::flat_hash_map<const char*, UniqueStatement> statements_;
  Deadline deadline_;
  bool saw_busy_ = false;
  std::string journal_mode_;
};

}  // namespace certstore::sqlite_internal

#endif  // CERTSTORE_SQLITE_CONNECTION_INTERNAL_H_

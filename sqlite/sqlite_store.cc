#include "certstore/sqlite_store.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "certstore/backend_author.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "sqlite/database_internal.h"
#include "sqlite/key_cipher_internal.h"
#include "sqlite/lease_internal.h"
#include "sqlite/passphrase_internal.h"
#include "sqlite/row_codec_internal.h"

namespace certstore {
namespace {

using sqlite_internal::Connection;
using sqlite_internal::Database;
using sqlite_internal::KeyCipher;
using sqlite_internal::Statement;
using sqlite_internal::StoredRow;

constexpr absl::Duration kMinLeaseTtl = absl::Milliseconds(100);
// Eviction names rows by the index, checks each against the table, then
// deletes by id: a damaged index must never turn an eviction of one alias
// into the loss of another's intact credential.
constexpr char kIdsOfAliasSql[] = "SELECT id FROM entries WHERE alias = ?1";
constexpr char kDeleteRowSql[] = "DELETE FROM entries WHERE id = ?1";

// Stored times are whole seconds: not_before <= now holds iff
// not_before <= floor(now); not_after >= t iff not_after >= ceil(t).
int64_t FloorSeconds(absl::Time t) { return absl::ToUnixSeconds(t); }
int64_t CeilSeconds(absl::Time t) {
  if (t == absl::InfiniteFuture()) {
    return std::numeric_limits<int64_t>::max();
  }
  const int64_t floor = absl::ToUnixSeconds(t);
  return absl::FromUnixSeconds(floor) < t ? floor + 1 : floor;
}

// The smallest string greater than every string that starts with `prefix`,
// or "" when there is none (prefix empty or all 0xff).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) {
    prefix.pop_back();
  }
  if (!prefix.empty()) {
    prefix.back() = static_cast<char>(prefix.back() + 1);
  }
  return prefix;
}

// Entries this process holds, by row digest: a row whose entry is still
// alive here is served as that entry, without decoding it again (and with
// the very key object that was Put).
class LiveEntries {
 public:
  std::shared_ptr<const Entry> Get(const std::string& digest) {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(digest);
    return it == entries_.end() ? nullptr : it->second.lock();
  }

  void Remember(const std::string& digest,
                const std::shared_ptr<const Entry>& entry) {
    absl::MutexLock lock(&mu_);
    entries_[digest] = entry;
    if (entries_.size() < sweep_at_) {
      return;
    }
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.expired()) {
        entries_.erase(it++);
      } else {
        ++it;
      }
    }
    sweep_at_ = std::max<size_t>(64, 2 * entries_.size());
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<const Entry>> entries_
      ABSL_GUARDED_BY(mu_);
  size_t sweep_at_ ABSL_GUARDED_BY(mu_) = 64;
};

class SqliteStore final : public CertStore {
 public:
  SqliteStore(std::unique_ptr<Database> db, std::unique_ptr<KeyCipher> cipher,
              const SqliteStoreOptions& options)
      : db_(std::move(db)),
        cipher_(std::move(cipher)),
        clock_(options.clock != nullptr ? options.clock : Clock::System()),
        lease_ttl_(options.lease_ttl) {}

  std::string Name() const override { return db_->options().name; }

  absl::StatusOr<std::shared_ptr<const Entry>> Find(
      absl::string_view alias, const FindOptions& options) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "Find", ""));
    }
    const std::string context = OpContext(Name(), "Find", alias);
    CERTSTORE_ASSIGN_OR_RETURN(std::vector<StoredRow> rows,
                               ServableRows(alias, options, context));
    absl::Status damage;
    for (const StoredRow& row : rows) {
      std::shared_ptr<const Entry> live = live_.Get(row.digest);
      if (live != nullptr && live->alias() == alias) {
        return live;
      }
      absl::StatusOr<std::shared_ptr<const Entry>> entry =
          sqlite_internal::DecodeRow(row, cipher_.get());
      if (entry.ok() && (*entry)->alias() == alias) {
        live_.Remember(row.digest, *entry);
        return entry;
      }
      // Before blaming the row, ask the table whether the index sent us to
      // another alias's intact row.
      CERTSTORE_RETURN_IF_ERROR(CheckIndexHit(alias, row.id, context));
      // A damaged row hides nothing: try the next servable one.
      if (damage.ok()) {
        damage = entry.ok() ? absl::DataLossError(absl::StrCat(
                                  "stored entry (row ", row.id,
                                  ") is damaged: it holds another alias"))
                            : entry.status();
      }
    }
    if (!damage.ok()) {
      return WithContext(damage, context);
    }
    return absl::NotFoundError(absl::StrCat(context, ": no servable entry"));
  }

  absl::Status Put(std::shared_ptr<const Entry> entry) override {
    CERTSTORE_RETURN_IF_ERROR(
        CheckEntryForPut(entry.get(), Name(), ChainCheck::kDecode));
    const std::string context = OpContext(Name(), "Put", entry->alias());
    CERTSTORE_RETURN_IF_ERROR(RefuseWritesOnDamagedIndex(context));
    absl::StatusOr<StoredRow> row =
        sqlite_internal::EncodeEntry(*entry, cipher_.get());
    if (!row.ok()) {
      return WithContext(row.status(), context);
    }
    auto insert_row = [&row](Connection& connection) -> absl::Status {
      CERTSTORE_ASSIGN_OR_RETURN(
          Statement insert, connection.Prepare(sqlite_internal::kInsertRowSql));
      sqlite_internal::BindRow(*row, insert);
      return insert.Run();
    };
    CERTSTORE_RETURN_IF_ERROR(db_->Write(context, insert_row));
    live_.Remember(row->digest, entry);
    return absl::OkStatus();
  }

  absl::StatusOr<int> DeleteAllForAlias(absl::string_view alias) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "DeleteAllForAlias", ""));
    }
    const std::string context = OpContext(Name(), "DeleteAllForAlias", alias);
    CERTSTORE_RETURN_IF_ERROR(RefuseWritesOnDamagedIndex(context));
    int removed = 0;
    auto remove_rows = [&](Connection& connection) -> absl::Status {
      removed = 0;
      std::vector<int64_t> ids;
      {
        CERTSTORE_ASSIGN_OR_RETURN(Statement select,
                                   connection.Prepare(kIdsOfAliasSql));
        select.BindBlob(1, alias);
        while (true) {
          CERTSTORE_ASSIGN_OR_RETURN(bool more, select.Step());
          if (!more) {
            break;
          }
          ids.push_back(select.Int(0));
        }
      }
      for (int64_t id : ids) {
        CERTSTORE_ASSIGN_OR_RETURN(std::optional<StoredRow> row,
                                   ReadRowById(connection, id));
        if (!row.has_value()) {
          continue;
        }
        // Another alias's intact row: the index lies; delete nothing.
        // A row of this alias, or a damaged one the index files under it,
        // goes (a damaged row holds nothing servable).
        if (row->alias != alias && IsIntact(*row)) {
          return IndexDamage(alias, *row);
        }
        CERTSTORE_ASSIGN_OR_RETURN(Statement remove,
                                   connection.Prepare(kDeleteRowSql));
        remove.BindInt(1, id);
        CERTSTORE_RETURN_IF_ERROR(remove.Run());
        removed += sqlite3_changes(connection.raw());
      }
      return absl::OkStatus();
    };
    CERTSTORE_RETURN_IF_ERROR(db_->Write(context, remove_rows));
    return removed;
  }

  absl::Status ProbeKey(const Entry& entry) override {
    return WithContext(ProbeEntryKey(entry),
                       OpContext(Name(), "ProbeKey", entry.alias()));
  }

  absl::StatusOr<std::shared_ptr<const Key>> CreateKey(
      absl::string_view alias, const KeySpec& spec) override {
    return CreateSoftwareKeyFor(Name(), alias, spec);
  }

  absl::StatusOr<std::vector<EntryInfo>> List(
      const ListOptions& options) override {
    const std::string end = PrefixEnd(options.alias_prefix);
    std::vector<EntryInfo> infos;
    auto list_rows = [&](Connection& connection) -> absl::Status {
      infos.clear();
      CERTSTORE_ASSIGN_OR_RETURN(
          Statement select,
          connection.Prepare(sqlite_internal::ListRowsSql(!end.empty())));
      select.BindBlob(1, options.alias_prefix);
      if (!end.empty()) {
        select.BindBlob(2, end);
      }
      while (true) {
        CERTSTORE_ASSIGN_OR_RETURN(bool more, select.Step());
        if (!more) {
          return absl::OkStatus();
        }
        infos.push_back(sqlite_internal::InfoOfRow(
            sqlite_internal::ReadRow(select), Name()));
      }
    };
    CERTSTORE_RETURN_IF_ERROR(
        db_->Read(OpContext(Name(), "List", ""), list_rows));
    return infos;
  }

  absl::StatusOr<std::unique_ptr<AliasLock>> LockAlias(
      absl::string_view alias, absl::Duration timeout) override {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) {
      return WithContext(s, OpContext(Name(), "LockAlias", ""));
    }
    const std::string context = OpContext(Name(), "LockAlias", alias);
    const sqlite_internal::Deadline deadline =
        std::chrono::steady_clock::now() +
        absl::ToChronoNanoseconds(std::max(timeout, absl::ZeroDuration()));
    CERTSTORE_ASSIGN_OR_RETURN(std::unique_ptr<AliasLock> local,
                               alias_locks_.Acquire(alias, timeout, context));
    return sqlite_internal::AcquireLease(*db_, alias, lease_ttl_, deadline,
                                         std::move(local), context);
  }

 private:
  static bool IsIntact(const StoredRow& row) {
    return sqlite_internal::RowDigest(row) == row.digest;
  }

  // The row `id` as the table holds it; nullopt when there is none.
  static absl::StatusOr<std::optional<StoredRow>> ReadRowById(
      Connection& connection, int64_t id) {
    CERTSTORE_ASSIGN_OR_RETURN(
        Statement select, connection.Prepare(sqlite_internal::RowByIdSql()));
    select.BindInt(1, id);
    CERTSTORE_ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) {
      return std::optional<StoredRow>();
    }
    return std::optional<StoredRow>(sqlite_internal::ReadRow(select));
  }

  // The index sent `alias` to `row`, an intact row of another alias: the
  // index is damaged. From now on this store refuses writes (an INSERT or
  // DELETE through a damaged index can lose intact rows) until the file is
  // repaired with REINDEX and reopened.
  absl::Status IndexDamage(absl::string_view alias, const StoredRow& row) {
    index_damaged_.store(true, std::memory_order_relaxed);
    return absl::DataLossError(absl::StrCat(
        "the alias index is damaged: it files alias ", QuoteAlias(alias),
        " under row ", row.id, ", which holds the intact entry of alias ",
        QuoteAlias(row.alias), "; writes are refused until it is rebuilt: ",
        "stop the processes using the store, run sqlite3 ", db_->options().path,
        " REINDEX, and reopen (docs/sqlite-store.md)"));
  }

  // What Find does when a row the index gave for `alias` is not `alias`'s
  // entry: DataLoss for index damage, OK for a row that is itself damaged.
  absl::Status CheckIndexHit(absl::string_view alias, int64_t id,
                             absl::string_view context) {
    std::optional<StoredRow> row;
    CERTSTORE_RETURN_IF_ERROR(
        db_->Read(context, [&](Connection& connection) -> absl::Status {
          CERTSTORE_ASSIGN_OR_RETURN(row, ReadRowById(connection, id));
          return absl::OkStatus();
        }));
    if (row.has_value() && row->alias != alias && IsIntact(*row)) {
      return WithContext(IndexDamage(alias, *row), context);
    }
    return absl::OkStatus();
  }

  absl::Status RefuseWritesOnDamagedIndex(absl::string_view context) const {
    if (!index_damaged_.load(std::memory_order_relaxed)) {
      return absl::OkStatus();
    }
    return absl::DataLossError(
        absl::StrCat(context,
                     ": refused: this store found its alias index damaged; run "
                     "sqlite3 ",
                     db_->options().path, " REINDEX and reopen it"));
  }

  // Copies the servable rows of `alias`, newest first (usually one), so
  // that decoding runs without holding the connection.
  absl::StatusOr<std::vector<StoredRow>> ServableRows(
      absl::string_view alias, const FindOptions& options,
      absl::string_view context) {
    const absl::Time now = clock_->Now();
    std::vector<StoredRow> rows;
    auto select_rows = [&](Connection& connection) -> absl::Status {
      rows.clear();
      CERTSTORE_ASSIGN_OR_RETURN(
          Statement select, connection.Prepare(sqlite_internal::FindRowsSql()));
      select.BindBlob(1, alias);
      select.BindInt(2, FloorSeconds(now));
      select.BindInt(3, CeilSeconds(now + options.min_remaining));
      while (true) {
        CERTSTORE_ASSIGN_OR_RETURN(bool more, select.Step());
        if (!more) {
          return absl::OkStatus();
        }
        rows.push_back(sqlite_internal::ReadRow(select));
      }
    };
    CERTSTORE_RETURN_IF_ERROR(db_->Read(context, select_rows));
    return rows;
  }

  const std::unique_ptr<Database> db_;
  const std::unique_ptr<KeyCipher> cipher_;  // null: keys stored in clear
  const Clock* const clock_;
  const absl::Duration lease_ttl_;
  LiveEntries live_;
  InProcessAliasLocks alias_locks_;
  std::atomic<bool> index_damaged_{false};
};

absl::Status ValidateOptions(const SqliteStoreOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("SqliteStoreOptions::path is empty");
  }
  if (options.path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        "SqliteStoreOptions::path contains a NUL byte");
  }
  if (options.busy_budget <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("SqliteStoreOptions::busy_budget must be positive (got ",
                     absl::FormatDuration(options.busy_budget), ")"));
  }
  if (options.lease_ttl < kMinLeaseTtl) {
    return absl::InvalidArgumentError(
        absl::StrCat("SqliteStoreOptions::lease_ttl must be at least ",
                     absl::FormatDuration(kMinLeaseTtl), " (got ",
                     absl::FormatDuration(options.lease_ttl), ")"));
  }
  if (options.pbkdf2_iterations < sqlite_internal::kMinPbkdf2Iterations) {
    return absl::InvalidArgumentError(
        absl::StrCat("SqliteStoreOptions::pbkdf2_iterations must be at least ",
                     sqlite_internal::kMinPbkdf2Iterations, " (got ",
                     options.pbkdf2_iterations, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CertStore>> OpenSqliteStore(
    const SqliteStoreOptions& options) {
  const std::string given =
      OpContext(absl::StrCat("sqlite:", options.path), "Open", "");
  CERTSTORE_RETURN_IF_ERROR(WithContext(ValidateOptions(options), given));
  std::error_code error;
  const std::filesystem::path absolute =
      std::filesystem::absolute(options.path, error);
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat(
        given, ": cannot make the path absolute: ", error.message()));
  }
  sqlite_internal::DatabaseOptions db_options;
  db_options.path = absolute.lexically_normal().string();
  db_options.name = absl::StrCat("sqlite:", db_options.path);
  db_options.force_rollback_journal =
      options.journal == SqliteJournal::kRollback;
  db_options.busy_budget = options.busy_budget;
  const std::string context = OpContext(db_options.name, "Open", "");
  absl::StatusOr<std::optional<sqlite_internal::Secret>> passphrase =
      sqlite_internal::LoadPassphrase(options);
  if (!passphrase.ok()) {
    return WithContext(passphrase.status(), context);
  }
  CERTSTORE_ASSIGN_OR_RETURN(std::unique_ptr<Database> db,
                             Database::Open(std::move(db_options)));
  CERTSTORE_ASSIGN_OR_RETURN(std::unique_ptr<KeyCipher> cipher,
                             sqlite_internal::SetUpKeyCipher(
                                 *db, *passphrase, options.pbkdf2_iterations));
  return std::unique_ptr<CertStore>(
      new SqliteStore(std::move(db), std::move(cipher), options));
}

absl::StatusOr<std::unique_ptr<CertStore>> OpenSqliteStore(
    absl::string_view path) {
  SqliteStoreOptions options;
  options.path = std::string(path);
  return OpenSqliteStore(options);
}

}  // namespace certstore

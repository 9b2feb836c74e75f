#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/internal/posix_status.h"
#include "certstore/errors.h"
#include "certstore/status_macros.h"
#include "sqlite/database_internal.h"
#include "sqlite/schema_internal.h"

namespace certstore::sqlite_internal {
namespace {

// statfs f_type magic numbers (linux/magic.h and the filesystems' sources).
constexpr int64_t kNetworkFilesystems[] = {
    0x6969,      // NFS
    0x517B,      // SMB
    0xFF534D42,  // CIFS
    0xFE534D42,  // SMB2
    0x65735546,  // FUSE (sshfs, s3fs, gcsfuse, ...)
    0x73757245,  // Coda
    0x5346414F,  // AFS
    0x6B414653,  // kAFS
    0x00C36400,  // Ceph
    0x01021997,  // 9P (v9fs)
    0x564C,      // NCP
    0x7461636F,  // OCFS2
    0x01161970,  // GFS2
    0x0BD00BD0,  // Lustre
    0x47504653,  // GPFS
    0x20030528,  // OrangeFS / PVFS2
    0x786F4256,  // VirtualBox shared folders
};

constexpr const char* kCompanionSuffixes[] = {"-wal", "-shm", "-journal"};

constexpr std::chrono::milliseconds kMaxRetryPause(50);

absl::Status CheckCompanion(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? absl::OkStatus()
                           : internal::ErrnoStatus(errno, path);
  }
  return internal::CheckPrivateFile(st, path);
}

}  // namespace

// Closes every store's connection before fork() and lets both processes
// reconnect lazily. SQLite keeps per-process lock bookkeeping per file
// (its inode list): a connection still open across fork() would leave the
// child's new connection believing it holds locks it does not hold, so the
// only safe state at fork() is "no connection open". The pid check in
// Attempt covers children created without fork handlers.
class ForkGuard {
 public:
  static ForkGuard& Get() {
    static ForkGuard* const guard = new ForkGuard();
    return *guard;
  }

  void Add(Database* db) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.insert(db);
  }
  void Remove(Database* db) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(db);
  }

 private:
  ForkGuard() { pthread_atfork(&Prepare, &Resume, &Resume); }

  // Waits for each store's call in flight (bounded by its busy budget).
  static void Prepare() {
    ForkGuard& guard = Get();
    guard.mu_.lock();
    for (Database* db : guard.live_) {
      db->mu_.lock();
      db->DropConnection();
    }
  }
  static void Resume() {
    ForkGuard& guard = Get();
    for (Database* db : guard.live_) {
      db->mu_.unlock();
    }
    guard.mu_.unlock();
  }

  std::mutex mu_;
  absl::flat_hash_set<Database*> live_;
};

bool IsNetworkFilesystem(int64_t f_type) {
  for (int64_t magic : kNetworkFilesystems) {
    if (static_cast<uint32_t>(f_type) == static_cast<uint32_t>(magic)) {
      return true;
    }
  }
  return false;
}

// The directory holding the database and its -wal/-shm/-journal files:
// whoever can write there can plant a hot journal or swap the file, so it
// must be writable by this user (or root) alone. The sticky bit does not
// help: it stops renames of our files, not the creation of a journal.
absl::Status CheckHoldingDirectory(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    return internal::ErrnoStatus(errno, absl::StrCat(path, ": directory"));
  }
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: the store's directory is owned by uid %d, not by this user "
        "(uid %d) or root; refusing to trust it",
        dir, st.st_uid, geteuid()));
  }
  if ((st.st_mode & 022) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: the store's directory has mode %04o: group/others can write "
        "there (and plant a journal); keep the store in a directory with "
        "mode 700 or 755",
        dir, st.st_mode & 07777));
  }
  return absl::OkStatus();
}

// SQLite trusts a file whose pages were cut off (it reads the missing
// ones as absent and lists fewer rows), so a truncated store could look
// healthy. The header records the database's size in pages: a file
// shorter than that lost its tail. Skipped while a rollback journal exists
// (SQLite shrinks the file mid-commit and the journal puts it back) and
// when the recorded size is not valid (written by a very old library).
absl::Status CheckNotTruncated(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st;
  if (fd.get() < 0 || fstat(fd.get(), &st) != 0 || st.st_size < 100) {
    return absl::OkStatus();  // new, or cut inside the header: SQLite says
  }
  struct stat journal;
  if (stat(absl::StrCat(path, "-journal").c_str(), &journal) == 0 &&
      journal.st_size > 0) {
    return absl::OkStatus();
  }
  unsigned char header[100];
  if (pread(fd.get(), header, sizeof(header), 0) !=
      static_cast<ssize_t>(sizeof(header))) {
    return absl::OkStatus();
  }
  const auto be32 = [&](int at) {
    return uint32_t{header[at]} << 24 | uint32_t{header[at + 1]} << 16 |
           uint32_t{header[at + 2]} << 8 | uint32_t{header[at + 3]};
  };
  if (std::memcmp(header, "SQLite format 3", 16) != 0 ||
      be32(24) != be32(92)) {  // change counter vs "version valid for"
    return absl::OkStatus();
  }
  const uint32_t raw_page_size = uint32_t{header[16]} << 8 | header[17];
  const int64_t page_size = raw_page_size == 1 ? 65536 : raw_page_size;
  const int64_t expected = page_size * be32(28);
  if (st.st_size < expected) {
    return absl::DataLossError(absl::StrCat(
        path, ": the file is ", st.st_size, " bytes but its header records ",
        be32(28), " pages of ", page_size, " (", expected,
        " bytes): it was truncated and entries are lost; move it aside and "
        "restore a backup, or start a new store"));
  }
  return absl::OkStatus();
}

absl::Status PreparePrivateFile(const std::string& path) {
  CERTSTORE_RETURN_IF_ERROR(CheckHoldingDirectory(path));
  UniqueFd fd(open(path.c_str(),
                   O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
  if (fd.get() < 0) {
    const int err = errno;
    struct stat st;
    if ((err == EACCES || err == EPERM) && lstat(path.c_str(), &st) == 0 &&
        st.st_uid != geteuid()) {
      // The usual cause: created by another user (often root, by a setup
      // step run with sudo). CheckPrivateFile's words, not strerror's.
      return internal::CheckPrivateFile(st, path);
    }
    return internal::ErrnoStatus(
        err,
        err == ELOOP ? absl::StrCat(path, ": refusing a symbolic link") : path);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return internal::ErrnoStatus(errno, path);
  }
  CERTSTORE_RETURN_IF_ERROR(internal::CheckPrivateFile(st, path));
  for (const char* suffix : kCompanionSuffixes) {
    CERTSTORE_RETURN_IF_ERROR(CheckCompanion(absl::StrCat(path, suffix)));
  }
  return absl::OkStatus();
}

absl::Status RunTransaction(
    Connection& connection,
    const std::function<absl::Status(Connection&)>& work) {
  static constexpr char kBegin[] = "BEGIN IMMEDIATE";
  static constexpr char kCommit[] = "COMMIT";
  static constexpr char kRollback[] = "ROLLBACK";
  {
    CERTSTORE_ASSIGN_OR_RETURN(Statement begin, connection.Prepare(kBegin));
    CERTSTORE_RETURN_IF_ERROR(begin.Run());
  }
  absl::Status status = work(connection);
  if (status.ok()) {
    absl::StatusOr<Statement> commit = connection.Prepare(kCommit);
    status = commit.ok() ? commit->Run() : commit.status();
  }
  if (!status.ok() && sqlite3_get_autocommit(connection.raw()) == 0) {
    absl::StatusOr<Statement> rollback = connection.Prepare(kRollback);
    if (rollback.ok()) {
      rollback->Run().IgnoreError();  // the first error is the one to report
    }
  }
  return status;
}

Database::Database(DatabaseOptions options) : options_(std::move(options)) {
  ForkGuard::Get().Add(this);
}

Database::~Database() {
  ForkGuard::Get().Remove(this);
  std::lock_guard<std::timed_mutex> lock(mu_);
  DropConnection();
}

void Database::DropConnection() {
  if (connection_ != nullptr && connection_pid_ != getpid()) {
    // Inherited through a fork without our handlers: closing it could
    // release locks or rewrite files the parent still uses.
    connection_->Abandon();
  }
  connection_.reset();
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(
    DatabaseOptions options) {
  std::unique_ptr<Database> db(new Database(std::move(options)));
  CERTSTORE_RETURN_IF_ERROR(
      db->Read(OpContext(db->options_.name, "Open", ""),
               [](Connection&) { return absl::OkStatus(); }));
  return db;
}

absl::Status Database::Read(absl::string_view context, const Work& work,
                            std::optional<Deadline> deadline) {
  return Run(context, Mode::kRead, work, deadline);
}

absl::Status Database::Write(absl::string_view context, const Work& work,
                             std::optional<Deadline> deadline) {
  return Run(context, Mode::kWrite, work, deadline);
}

absl::Status Database::WriteUnsynced(absl::string_view context,
                                     const Work& work,
                                     std::optional<Deadline> deadline) {
  return Run(context, Mode::kUnsyncedWrite, work, deadline);
}

absl::Status Database::Run(absl::string_view context, Mode mode,
                           const Work& work, std::optional<Deadline> limit) {
  Deadline deadline = std::chrono::steady_clock::now() +
                      absl::ToChronoNanoseconds(options_.busy_budget);
  if (limit.has_value() && *limit < deadline) {
    deadline = *limit;
  }
  std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) {
    return BusyStatus(context, "another thread's call held the connection");
  }
  for (int attempt = 0;; ++attempt) {
    absl::Status status = Attempt(mode, work, deadline);
    // A failed connect leaves no connection to ask: Unavailable there is a
    // lock or a transient I/O error, both worth the retry.
    const bool busy = status.code() == absl::StatusCode::kUnavailable &&
                      (connection_ == nullptr || connection_->saw_busy());
    if (!busy) {
      return WithContext(status, context);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (connection_ != nullptr) {
        return BusyStatus(context, status.message());
      }
      // Not a lock: an open that kept failing (an I/O error).
      return absl::UnavailableError(absl::StrCat(
          context, ": still failing after retrying for ",
          absl::FormatDuration(options_.busy_budget), ": ", status.message()));
    }
    SleepWithJitter(attempt, deadline, kMaxRetryPause);
  }
}

absl::Status Database::Attempt(Mode mode, const Work& work, Deadline deadline) {
  if (connection_ != nullptr && connection_pid_ != getpid()) {
    DropConnection();
  }
  if (connection_ == nullptr) {
    CERTSTORE_RETURN_IF_ERROR(Connect(deadline));
  }
  connection_->set_deadline(deadline);
  connection_->reset_busy();
  if (mode == Mode::kRead) {
    return work(*connection_);
  }
  if (mode == Mode::kWrite || connection_->journal_mode() != "wal") {
    return RunTransaction(*connection_, work);
  }
  CERTSTORE_RETURN_IF_ERROR(connection_->Exec("PRAGMA synchronous=NORMAL"));
  absl::Status status = RunTransaction(*connection_, work);
  absl::Status restored = connection_->Exec("PRAGMA synchronous=FULL");
  if (!restored.ok()) {
    // Never leave the connection unsynced for the writes that follow.
    DropConnection();
    return status.ok() ? restored : status;
  }
  return status;
}

absl::Status Database::Connect(Deadline deadline) {
  const std::string& path = options_.path;
  CERTSTORE_RETURN_IF_ERROR(PreparePrivateFile(path));
  CERTSTORE_RETURN_IF_ERROR(CheckNotTruncated(path));
  struct statfs fs;
  const bool network =
      statfs(path.c_str(), &fs) == 0 && IsNetworkFilesystem(fs.f_type);
  const Journal journal = options_.force_rollback_journal || network
                              ? Journal::kRollback
                              : Journal::kWal;
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Open(path, journal, deadline);
  absl::Status status =
      connection.ok() ? EnsureSchema(**connection) : connection.status();
  if (status.code() == absl::StatusCode::kDataLoss) {
    return absl::DataLossError(
        absl::StrCat(status.message(),
                     "; the file is damaged or not a database: move it "
                     "aside to start a new store"));
  }
  CERTSTORE_RETURN_IF_ERROR(status);
  connection_ = *std::move(connection);
  connection_pid_ = getpid();
  return absl::OkStatus();
}

absl::Status Database::BusyStatus(absl::string_view context,
                                  absl::string_view cause) const {
  return absl::UnavailableError(absl::StrCat(
      context,
      ": gave up waiting for a lock held by another connection (busy "
      "budget ",
      absl::FormatDuration(options_.busy_budget),
      ", SqliteStoreOptions::busy_budget): ", cause));
}

}  // namespace certstore::sqlite_internal

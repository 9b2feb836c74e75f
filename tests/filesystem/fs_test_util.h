// Helpers for the PEM directory tests: small file utilities, forked
// children, running a command, and a store that owns its temp directory.
#ifndef CERTSTORE_TESTS_FILESYSTEM_FS_TEST_UTIL_H_
#define CERTSTORE_TESTS_FILESYSTEM_FS_TEST_UTIL_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certstore/cert_store.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace certstore::testing {

// `dir`'s path + "/" + `relative`.
std::string PathIn(const TempDir& dir, absl::string_view relative);

// The permission bits of `path` (not following a symlink).
mode_t ModeOf(const std::string& path);

// The names in a directory (no "." or ".."), sorted; empty if it is absent.
std::vector<std::string> ListNames(const std::string& dir);

// Names of the files (recursively, relative to `dir`) below `dir`.
std::vector<std::string> ListTree(const std::string& dir);

// The directory of `alias`'s entries in a store at `store_dir`, as the
// store names it.
std::string AliasDir(const std::string& store_dir, absl::string_view alias);

// An entry file edited by hand: `content` without its certstore-digest
// line (docs/filesystem-store.md: whoever edits a file drops its digest).
std::string WithoutDigest(absl::string_view content);

// `content` with its certstore-digest recomputed as certstore writes it:
// a change only the other checks can catch (another writer's file).
std::string Redigested(absl::string_view content);

struct CommandResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string output;  // stdout and stderr
};

// Runs `argv` (argv[0] looked up in PATH) with extra `env` entries
// ("NAME=value"), capturing its output; waits at most 60 s.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {});

// A forked child that runs `body` and _exits with what it returns. `body`
// gets a descriptor to write one byte to when it is ready. Killed (SIGKILL)
// and reaped when destroyed.
class ChildProcess {
 public:
  explicit ChildProcess(const std::function<int(int ready_fd)>& body);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Whether the child said it was ready within `timeout`.
  bool WaitReady(absl::Duration timeout);
  // The child's exit code if it has ended by itself (-1: killed or
  // crashed); nullopt while it runs.
  std::optional<int> Poll();
  // SIGKILLs the child (if still running) and reaps it.
  void Kill();
  // Waits for the child to end by itself (at most `timeout`, then kills it);
  // its exit code, or -1 if it was killed or crashed.
  int Wait(absl::Duration timeout);

 private:
  pid_t pid_ = -1;
  int ready_fd_ = -1;
};

// A store that owns a temp directory and removes it when destroyed.
class TempDirStore final : public CertStoreWrapper {
 public:
  TempDirStore(std::unique_ptr<TempDir> dir, std::unique_ptr<CertStore> store)
      : CertStoreWrapper(store.get()),
        dir_(std::move(dir)),
        store_(std::move(store)) {}

  const std::string& directory() const { return dir_->path(); }

 private:
  std::unique_ptr<TempDir> dir_;  // removed after the store closes
  std::unique_ptr<CertStore> store_;
};

}  // namespace certstore::testing

#endif  // CERTSTORE_TESTS_FILESYSTEM_FS_TEST_UTIL_H_

#include "tests/filesystem/fs_test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "filesystem/alias_names.h"
#include "tests/support/subprocess.h"

namespace certstore::testing {

std::string PathIn(const TempDir& dir, absl::string_view relative) {
  return absl::StrCat(dir.path(), "/", relative);
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::vector<std::string> ListNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return names;
  }
  while (const struct dirent* entry = readdir(d)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") {
      names.push_back(name);
    }
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> ListTree(const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string& name : ListNames(dir)) {
    const std::string path = absl::StrCat(dir, "/", name);
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      for (const std::string& sub : ListTree(path)) {
        out.push_back(absl::StrCat(name, "/", sub));
      }
    } else {
      out.push_back(name);
    }
  }
  return out;
}

std::string AliasDir(const std::string& store_dir, absl::string_view alias) {
  return absl::StrCat(store_dir, "/", filesystem_internal::AliasDirName(alias));
}

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env) {
  ProcessOptions options;
  options.env = env;
  ProcessResult run = RunProcess(argv, options);
  return CommandResult{run.exit_code, run.out + run.err};
}

ChildProcess::ChildProcess(const std::function<int(int ready_fd)>& body) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return;
  }
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Dies with the test, even if the test is killed.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
      _exit(125);
    }
    close(fds[0]);
    _exit(body(fds[1]));
  }
  close(fds[1]);
  ready_fd_ = fds[0];
  if (pid_ < 0) {
    ADD_FAILURE() << "fork failed";
  }
}

ChildProcess::~ChildProcess() {
  Kill();
  if (ready_fd_ >= 0) {
    close(ready_fd_);
  }
}

bool ChildProcess::WaitReady(absl::Duration timeout) {
  struct pollfd p = {ready_fd_, POLLIN, 0};
  char byte;
  return poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) ==
             1 &&
         read(ready_fd_, &byte, 1) == 1;
}

std::optional<int> ChildProcess::Poll() {
  int status = 0;
  if (pid_ <= 0 || waitpid(pid_, &status, WNOHANG) != pid_) {
    return std::nullopt;
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void ChildProcess::Kill() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

int ChildProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0 && absl::Now() < deadline) {
    if (std::optional<int> code = Poll()) {
      return *code;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  Kill();
  return -1;
}

namespace {

constexpr absl::string_view kDigestField = "certstore-digest: ";

// Where the digest line starts and how long it is (with its newline).
std::pair<size_t, size_t> DigestLine(absl::string_view content) {
  size_t start = content.find(absl::StrCat("\n", kDigestField));
  if (start == absl::string_view::npos) {
    return {absl::string_view::npos, 0};
  }
  ++start;
  const size_t end = content.find('\n', start);
  return {start,
          (end == absl::string_view::npos ? content.size() : end + 1) - start};
}

}  // namespace

std::string WithoutDigest(absl::string_view content) {
  auto [start, length] = DigestLine(content);
  std::string out(content);
  if (start != absl::string_view::npos) {
    out.erase(start, length);
  }
  return out;
}

std::string Redigested(absl::string_view content) {
  auto [start, length] = DigestLine(content);
  EXPECT_NE(start, absl::string_view::npos) << "no digest line";
  if (start == absl::string_view::npos) {
    return std::string(content);
  }
  const std::string rest = WithoutDigest(content);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_length = 0;
  EXPECT_EQ(EVP_Digest(rest.data(), rest.size(), md, &md_length, EVP_sha256(),
                       nullptr),
            1);
  std::string out = rest;
  out.insert(start, absl::StrCat(kDigestField, "sha256:",
                                 absl::WebSafeBase64Escape(absl::string_view(
                                     reinterpret_cast<char*>(md), md_length)),
                                 "\n"));
  return out;
}

}  // namespace certstore::testing

// The certstore-emulator executable as a real child process: ready line,
// admin endpoints from outside, clean exit on SIGTERM / SIGINT / stdin EOF,
// usage errors.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "certstore/testing/status_matchers.h"
#include "emulator/emulator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/emulator/emulator_test_util.h"

#ifndef CERTSTORE_EMULATOR_BINARY
#error "CERTSTORE_EMULATOR_BINARY must name the certstore-emulator executable"
#endif

namespace certstore::emulator::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// A child running the executable, with pipes on stdin, stdout and stderr.
class EmulatorProcess {
 public:
  explicit EmulatorProcess(const std::vector<std::string>& args) {
    int in[2], out[2], err[2];
    EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    std::vector<char*> argv = {const_cast<char*>(CERTSTORE_EMULATOR_BINARY)};
    for (const std::string& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], STDIN_FILENO);
      dup2(out[1], STDOUT_FILENO);
      dup2(err[1], STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    stderr_ = err[0];
  }

  ~EmulatorProcess() {
    if (pid_ > 0 && WaitExit(absl::ZeroDuration()) == kStillRunning) {
      kill(pid_, SIGKILL);
      WaitExit(absl::Seconds(5));
    }
    for (int fd : {stdin_, stdout_, stderr_}) {
      if (fd >= 0) close(fd);
    }
  }

  // Reads stdout up to the first newline (bounded by `timeout`).
  std::string ReadLine(absl::Duration timeout = absl::Seconds(10)) {
    return ReadUntil(stdout_, timeout, /*stop_at_newline=*/true);
  }
  std::string ReadStderr(absl::Duration timeout = absl::Seconds(5)) {
    return ReadUntil(stderr_, timeout, /*stop_at_newline=*/false);
  }

  static constexpr int kStillRunning = -1000;
  // The exit code, -signal when killed, kStillRunning after `timeout`.
  int WaitExit(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      }
      if (absl::Now() >= deadline) {
        return kStillRunning;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  void Signal(int sig) { kill(pid_, sig); }
  void CloseStdin() {
    close(stdin_);
    stdin_ = -1;
  }

 private:
  static std::string ReadUntil(int fd, absl::Duration timeout,
                               bool stop_at_newline) {
    std::string text;
    const absl::Time deadline = absl::Now() + timeout;
    char c;
    while (absl::Now() < deadline) {
      pollfd pfd = {fd, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) {
        continue;
      }
      if (read(fd, &c, 1) != 1) {
        break;
      }
      if (stop_at_newline && c == '\n') {
        break;
      }
      text.push_back(c);
    }
    return text;
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  int stderr_ = -1;
};

struct ReadyLine {
  std::string issuing;
  std::string token;
};

ReadyLine ParseReadyLine(const std::string& line) {
  ReadyLine ready;
  for (absl::string_view part : absl::StrSplit(line, ' ')) {
    if (absl::ConsumePrefix(&part, "issuing="))
      ready.issuing = std::string(part);
    if (absl::ConsumePrefix(&part, "token=")) ready.token = std::string(part);
  }
  return ready;
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, "-", getpid());
}

TEST(EmulatorProcessTest, PrintsItsPortsServesAndExitsZeroOnSigterm) {
  const std::string ca_file = TempPath("emulator-ca.pem");
  EmulatorProcess process({"--port-issuing", "0", "--port-token", "0",
                           "--print-ports", "--ca-file", ca_file, "--client-id",
                           "cli-client", "--tenant-id", "cli-tenant",
                           "--validity", "2d"});
  const std::string line = process.ReadLine();
  ASSERT_THAT(line, MatchesRegex("issuing=http://127\\.0\\.0\\.1:[0-9]+ "
                                 "token=https://127\\.0\\.0\\.1:[0-9]+"));
  const ReadyLine ready = ParseReadyLine(line);

  Client admin;
  HttpResult metadata = admin.Get(
      ready.issuing +
          "/metadata/identity/getplatformmetadata?cred-api-version=2.0",
      {"Metadata: true"});
  ASSERT_EQ(metadata.status, 200) << metadata.Describe();
  EXPECT_EQ(metadata.Json()["clientId"], "cli-client");
  EXPECT_EQ(metadata.Json()["tenantId"], "cli-tenant");
  std::ifstream ca(ca_file);
  std::stringstream ca_pem;
  ca_pem << ca.rdbuf();
  EXPECT_EQ(admin.Get(ready.issuing + "/admin/ca").body, ca_pem.str());
  EXPECT_EQ(admin
                .Post(ready.issuing + "/admin/faults",
                      R"({"kind":"invalid_client","count":2})")
                .status,
            200);
  EXPECT_EQ(admin.Get(ready.issuing + "/admin/counters").Json()["mints"], 0);

  process.Signal(SIGTERM);
  EXPECT_EQ(process.WaitExit(absl::Seconds(5)), 0);
  std::remove(ca_file.c_str());
}

TEST(EmulatorProcessTest, ExitsZeroOnSigintAndOnStdinEofWhenAsked) {
  {
    EmulatorProcess process({});
    ASSERT_THAT(process.ReadLine(), HasSubstr("issuing="));
    process.Signal(SIGINT);
    EXPECT_EQ(process.WaitExit(absl::Seconds(5)), 0);
  }
  {
    EmulatorProcess process({"--exit-on-stdin-eof"});
    ASSERT_THAT(process.ReadLine(), HasSubstr("issuing="));
    process.CloseStdin();
    EXPECT_EQ(process.WaitExit(absl::Seconds(5)), 0);
  }
}

TEST(EmulatorProcessTest, VerboseLogsMintsAndFaultsWithoutSecrets) {
  EmulatorProcess process({"-v"});
  const ReadyLine ready = ParseReadyLine(process.ReadLine());
  Client admin;
  EXPECT_EQ(admin
                .Post(ready.issuing + "/admin/faults",
                      R"({"kind":"tls_alert","alert":"decrypt_error"})")
                .status,
            200);
  process.Signal(SIGTERM);
  EXPECT_EQ(process.WaitExit(absl::Seconds(5)), 0);
  const std::string log = process.ReadStderr(absl::Seconds(1));
  EXPECT_THAT(log, HasSubstr("fault queued: tls_alert(decrypt_error)"));
  EXPECT_THAT(log, HasSubstr("stopped"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("PRIVATE KEY")));
}

TEST(EmulatorProcessTest, UsageErrorsExitTwoAndNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    const char* flag;
    int code;
  };
  const Case cases[] = {
      {{"--tls-min", "1.1"}, "--tls-min", 2},
      {{"--validity", "0d"}, "--validity", 2},
      {{"--token-lifetime", "soon"}, "--token-lifetime", 2},
      {{"--no-such-flag"}, "no-such-flag", 2},
      // Parsed fine, refused by Emulator::Start: cannot start.
      {{"--tenant-id", "a/b"}, "tenant_id", 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.flag);
    EmulatorProcess process(c.args);
    EXPECT_EQ(process.WaitExit(absl::Seconds(5)), c.code);
    EXPECT_THAT(process.ReadStderr(absl::Seconds(1)), HasSubstr(c.flag));
  }
}

TEST(EmulatorProcessTest, ABusyPortExitsOneNamingThePort) {
  auto emulator = Emulator::Start();
  ASSERT_OK(emulator);
  const std::string port = absl::StrCat((*emulator)->issuing_port());
  EmulatorProcess process({"--port-issuing", port});
  EXPECT_EQ(process.WaitExit(absl::Seconds(5)), 1);
  EXPECT_THAT(process.ReadStderr(absl::Seconds(1)), HasSubstr(port));
}

}  // namespace
}  // namespace certstore::emulator::testing

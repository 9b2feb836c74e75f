#include "tests/pkcs11/p11kit_server.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/internal/percent_encoding.h"
#include "tests/support/subprocess.h"

namespace certstore::testing {
namespace {

// Whether something accepts connections on the unix socket `path`.
bool Accepts(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  const bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

// A dead process nobody has reaped yet (the detached server's parent is
// whatever adopted it, which may never reap).
bool Zombie(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() &&
         line[paren + 2] == 'Z';
}

}  // namespace

absl::StatusOr<std::string> P11KitClientModule() {
  std::error_code ignored;
  for (const auto& dir :
       std::filesystem::directory_iterator("/usr/lib", ignored)) {
    const std::string candidate =
        dir.path().string() + "/pkcs11/p11-kit-client.so";
    if (access(candidate.c_str(), R_OK) == 0) {
      return candidate;
    }
  }
  return absl::NotFoundError(
      "p11-kit-client.so not found under /usr/lib/*/pkcs11 (scripts/setup "
      "installs p11-kit-modules)");
}

P11KitServer::P11KitServer(const SoftHsmToken& token)
    : token_(token),
      socket_(SoftHsmToken::Dir() + "/p11kit-" + token.label()) {}

P11KitServer::~P11KitServer() {
  if (pid_ != 0) {
    (void)Stop();
  }
}

absl::Status P11KitServer::Start() {
  if (pid_ != 0) {
    return absl::FailedPreconditionError("p11-kit server already running");
  }
  std::error_code ignored;
  std::filesystem::remove(socket_, ignored);
  // Without -f the server detaches and prints its pid for the shell. Its
  // output goes to a file: the detached server keeps it open, and a pipe
  // would not see its end until the server exits.
  const std::string output = socket_ + ".out";
  ProcessResult started = RunProcess(
      {"sh", "-c",
       absl::StrCat("exec p11-kit server --sh -n '", socket_, "' --provider '",
                    kSoftHsmModule, "' 'pkcs11:token=", token_.label(), "' >'",
                    output, "' 2>&1")},
      ProcessOptions{{}, "", absl::Seconds(30)});
  std::ifstream file(output);
  std::stringstream printed;
  printed << file.rdbuf();
  const std::string out = printed.str();
  const std::string marker = "P11_KIT_SERVER_PID=";
  const size_t at = out.find(marker);
  int pid = 0;
  if (started.exit_code != 0 || at == std::string::npos ||
      !absl::SimpleAtoi(out.substr(at + marker.size(),
                                   out.find(';', at) - at - marker.size()),
                        &pid)) {
    return absl::InternalError(
        absl::StrCat("p11-kit server did not start: ", out, started.err));
  }
  pid_ = pid;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!Accepts(socket_)) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "p11-kit server (pid ", pid_, ") never accepted on ", socket_));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  setenv("P11_KIT_SERVER_ADDRESS", absl::StrCat("unix:path=", socket_).c_str(),
         1);
  return absl::OkStatus();
}

absl::Status P11KitServer::Signal(int signal) {
  if (pid_ == 0) {
    return absl::OkStatus();
  }
  const pid_t pid = pid_;
  pid_ = 0;
  // The server serves each connection in a child of its own session:
  // signal them all, as a host going down would end them.
  if (kill(-pid, signal) != 0 && kill(pid, signal) != 0 && errno != ESRCH) {
    return absl::InternalError(
        absl::StrCat("kill p11-kit server: ", std::strerror(errno)));
  }
  // Not our child (it detached): wait until the pid is gone.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (kill(pid, 0) == 0 && !Zombie(pid)) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      return absl::DeadlineExceededError("p11-kit server did not exit");
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::OkStatus();
}

absl::Status P11KitServer::Stop() { return Signal(SIGTERM); }
absl::Status P11KitServer::Kill() { return Signal(SIGKILL); }

std::string P11KitServer::ClientUri(const std::string& extra) const {
  absl::StatusOr<std::string> module = P11KitClientModule();
  return absl::StrCat(
      "pkcs11:token=", internal::PercentEncode(token_.label()),
      "?module-path=", module.ok() ? *module : "/missing/p11-kit-client.so",
      "&pin-source=file:", internal::PercentEncode(token_.pin_file(), "/"),
      extra);
}

}  // namespace certstore::testing

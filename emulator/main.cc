// certstore-emulator: runs the emulator as its own process.
//
//   certstore-emulator [--port-issuing 0] [--port-token 0] [--ca-file PATH]
//                      [--client-id ID] [--tenant-id ID] [--validity 7d] …
//
// Prints `issuing=http://127.0.0.1:P token=https://127.0.0.1:Q` on one line
// to stdout once both listeners accept, then serves until SIGINT / SIGTERM
// (or stdin EOF with --exit-on-stdin-eof) and exits 0 after a clean stop.
// Exit codes: 0 clean stop, 1 could not start, 2 usage.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "emulator/emulator.h"

namespace {

using certstore::emulator::Emulator;
using certstore::emulator::EmulatorOptions;
using certstore::emulator::TlsVersion;

struct Flags {
  EmulatorOptions options;
  std::string validity = "7d";
  std::string token_lifetime = "3600s";
  std::string tls_min = "1.2";
  std::string tls_max = "1.3";
  std::string ca_file;
  bool print_ports = false;
  bool exit_on_stdin_eof = false;
  bool no_keep_alive = false;
  bool verbose = false;
};

// "7d", "36h", "90m", "45s", "1h30m".
bool ParseDuration(std::string text, absl::Duration* out) {
  int64_t days = 0;
  absl::string_view view(text);
  if (absl::ConsumeSuffix(&view, "d")) {
    if (!absl::SimpleAtoi(view, &days) || days <= 0) {
      return false;
    }
    *out = absl::Hours(24 * days);
    return true;
  }
  return absl::ParseDuration(text, out) && *out > absl::ZeroDuration();
}

bool ParseTls(const std::string& text, TlsVersion* out) {
  if (text == "1.2" || text == "1.3") {
    *out = text == "1.2" ? TlsVersion::kTls12 : TlsVersion::kTls13;
    return true;
  }
  return false;
}

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--port-issuing", f.options.issuing_port,
                 "issuing endpoint port (0: a free one)");
  app.add_option("--port-token", f.options.token_port,
                 "mTLS token endpoint port (0: a free one)");
  app.add_flag("--print-ports", f.print_ports,
               "accepted for scripts; the ready line is always printed");
  app.add_option("--client-id", f.options.client_id, "clientId to serve");
  app.add_option("--tenant-id", f.options.tenant_id, "tenantId to serve");
  app.add_option("--vm-id", f.options.vm_id, "cuId.vmId to report");
  app.add_option("--attestation-endpoint", f.options.attestation_endpoint,
                 "attestationEndpoint to report (default: none)");
  app.add_option("--validity", f.validity,
                 "issued certificate lifetime: 7d, 36h, 90m, 45s");
  app.add_option("--token-lifetime", f.token_lifetime,
                 "access token lifetime (expires_in)");
  app.add_option("--tls-min", f.tls_min, "lowest TLS version: 1.2 or 1.3");
  app.add_option("--tls-max", f.tls_max, "highest TLS version: 1.2 or 1.3");
  app.add_flag("--allow-resumption", f.options.allow_session_resumption,
               "allow TLS session resumption (default: full handshakes)");
  app.add_flag("--no-keep-alive", f.no_keep_alive,
               "close the token connection after each response");
  app.add_option("--ca-file", f.ca_file,
                 "write the root certificate (PEM) here before serving");
  app.add_flag("--exit-on-stdin-eof", f.exit_on_stdin_eof,
               "stop when stdin reaches end of file");
  app.add_flag("-v,--verbose", f.verbose,
               "log requests, mints and faults to stderr");
}

// Turns the textual flags into options; an error names the flag.
std::string Finish(Flags& f) {
  if (!ParseDuration(f.validity, &f.options.cert_validity)) {
    return "--validity: expected a positive duration like 7d, 36h, 90m";
  }
  if (!ParseDuration(f.token_lifetime, &f.options.token_lifetime)) {
    return "--token-lifetime: expected a positive duration like 3600s";
  }
  if (!ParseTls(f.tls_min, &f.options.min_tls) ||
      !ParseTls(f.tls_max, &f.options.max_tls)) {
    return "--tls-min/--tls-max: expected 1.2 or 1.3";
  }
  f.options.keep_alive = !f.no_keep_alive;
  if (f.verbose) {
    f.options.log = [](certstore::LogLevel level, absl::string_view component,
                       absl::string_view message) {
      std::cerr << component << ": " << certstore::LogLevelName(level) << ": "
                << message << std::endl;
    };
  }
  return "";
}

bool WriteCaFile(const std::string& path, const std::string& pem) {
  std::ofstream out(path, std::ios::trunc);
  out << pem;
  out.close();
  return out.good();
}

// SIGINT and SIGTERM go to the returned signalfd only; threads started
// later inherit the mask. -1 on failure.
int StopSignalFd() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signalfd(-1, &stop_signals, SFD_CLOEXEC);
}

// Blocks until SIGINT/SIGTERM, or stdin EOF when asked.
void WaitForStop(int signal_fd, bool watch_stdin) {
  for (;;) {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    if (poll(fds, watch_stdin ? 2 : 1, -1) < 0 && errno != EINTR) {
      return;
    }
    if (fds[0].revents != 0) {
      return;
    }
    if (watch_stdin && fds[1].revents != 0) {
      char buf[512];
      const ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
      if (n <= 0 && !(n < 0 && errno == EINTR)) {
        return;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "certstore-emulator: local issuing endpoint and mTLS token "
      "endpoint with fault injection");
  Flags flags;
  AddFlags(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (std::string error = Finish(flags); !error.empty()) {
    std::cerr << "certstore-emulator: " << error << "\n";
    return 2;
  }
  const int signal_fd = StopSignalFd();

  auto emulator = Emulator::Start(flags.options);
  if (!emulator.ok() || signal_fd < 0) {
    std::cerr << "certstore-emulator: "
              << (emulator.ok() ? "signalfd failed"
                                : emulator.status().ToString())
              << "\n";
    return 1;
  }
  if (!flags.ca_file.empty() &&
      !WriteCaFile(flags.ca_file, (*emulator)->ca_root_pem())) {
    std::cerr << "certstore-emulator: cannot write --ca-file " << flags.ca_file
              << "\n";
    return 1;
  }
  std::printf("issuing=%s token=%s\n", (*emulator)->issuing_url().c_str(),
              (*emulator)->token_url().c_str());
  std::fflush(stdout);
  WaitForStop(signal_fd, flags.exit_on_stdin_eof);
  (*emulator)->Stop();
  close(signal_fd);
  return 0;
}

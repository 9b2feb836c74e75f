#include "tests/support/nginx.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/support/files.h"
#include "tests/support/loopback.h"

namespace certstore::testing {
namespace {

constexpr char kNginxConf[] = R"(worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events { worker_connections 64; }
http {
  access_log {dir}/access.log;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $ssl_client_fingerprint $rejected {
    default 0;
    include {dir}/rejected.map;
  }
  server {
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {dir}/server.pem;
    ssl_certificate_key {dir}/server.key;
    ssl_client_certificate {dir}/client-ca.pem;
    ssl_verify_client on;
    ssl_verify_depth 3;
    default_type application/json;
    location = /oauth2/v2.0/token {
      if ($request_method != POST) { return 405; }
      if ($rejected) {
        return 401 '{"error":"invalid_client","error_description":"revoked"}';
      }
      return 200 '{"access_token":"nginx-$ssl_client_serial","token_type":"Bearer","expires_in":3600}';
    }
    location / {
      return 404 '{"error":"not_found"}';
    }
    location = /bound-elsewhere/token {
      return 200 '{"access_token":"x","token_type":"Bearer","expires_in":3600,"cnf":{"x5t#S256":"AAAA"}}';
    }
  }
}
)";

}  // namespace

NginxTokenEndpoint::NginxTokenEndpoint(std::string dir, int port)
    : dir_(std::move(dir)), port_(port) {
  WriteFile(dir_ + "/nginx.conf",
            absl::StrReplaceAll(
                kNginxConf, {{"{dir}", dir_}, {"{port}", absl::StrCat(port)}}));
  if (access((dir_ + "/rejected.map").c_str(), F_OK) != 0) {
    WriteFile(dir_ + "/rejected.map", "");
  }
}

NginxTokenEndpoint::~NginxTokenEndpoint() { Stop().IgnoreError(); }

absl::Status NginxTokenEndpoint::Start() {
  thread_ = std::thread([this] {
    ProcessOptions options;
    options.timeout = absl::Minutes(30);  // a benchmark run, at most
    result_ =
        RunProcess({"nginx", "-p", dir_, "-c", dir_ + "/nginx.conf"}, options);
  });
  for (int i = 0; i < 200 && !AcceptsConnections(port_); ++i) {
    usleep(50 * 1000);
  }
  if (!AcceptsConnections(port_)) {
    return absl::UnavailableError(
        absl::StrCat("nginx does not listen on 127.0.0.1:", port_, ": ",
                     ReadFile(dir_ + "/error.log")));
  }
  return absl::OkStatus();
}

absl::Status NginxTokenEndpoint::Stop() {
  if (!thread_.joinable()) {
    return absl::OkStatus();
  }
  RunProcess({"nginx", "-p", dir_, "-c", dir_ + "/nginx.conf", "-s", "quit"});
  thread_.join();
  if (result_.timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("nginx was killed after its time limit: ", result_.err));
  }
  return absl::OkStatus();
}

void NginxTokenEndpoint::Reject(const std::string& sha1) {
  WriteFile(dir_ + "/rejected.map", absl::StrCat(sha1, " 1;\n"));
}

std::string NginxTokenEndpoint::Url(absl::string_view path) const {
  return absl::StrCat("https://127.0.0.1:", port_, path);
}

absl::Status NginxTokenEndpoint::WriteServerCertificate(
    const std::string& dir) {
  ProcessResult made = RunProcess(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/server.key",
       "-out", dir + "/server.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
       "-addext", "subjectAltName=IP:127.0.0.1"});
  if (made.exit_code != 0) {
    return absl::InternalError(absl::StrCat("openssl req: ", made.err));
  }
  return absl::OkStatus();
}

}  // namespace certstore::testing

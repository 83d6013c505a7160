// sockd: the SOCKS 4/4a/5 relay. A thin shell over diode::sockd: options,
// configuration, logging set-up; the daemon itself is Server.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/platform/config.hpp"
#include "diode/sockd/log.hpp"
#include "diode/sockd/server.hpp"

namespace {

using namespace diode;

constexpr std::string_view kUsage =
    "usage: sockd [--config FILE] [--listen ADDR:PORT]... [--listen-fd N]... [--port-file FILE]\n"
    "             [--threads N] [--log-format text|json] [--log-target stderr|syslog]\n"
    "             [--control PATH | --control-fd N] [--inetd] [--check] [--help] [--version]\n"
    "       sockd --control PATH stats|metrics|hits   ask a running sockd\n"
    "Without --config, sockd runs on its built-in configuration: 127.0.0.1:1080,\n"
    "clients on this host only. See docs/sockd.md.\n";

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

bool is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> config_path;
  std::vector<sockd::ListenSpec> listens;
  std::string port_file;
  std::optional<unsigned> threads;
  std::optional<platform::LogFormat> log_format;
  std::optional<platform::LogTarget> log_target;
  bool inetd = false;
  bool check = false;
  std::string control_path;
  int control_fd = -1;
  std::vector<std::string> command;

  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::optional<std::string_view> {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sockd: %.*s needs a value\n", static_cast<int>(a.size()), a.data());
        return std::nullopt;
      }
      return std::string_view(argv[++i]);
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage.data(), stdout);
      return 0;
    } else if (a == "--version") {
      std::puts("sockd (Diode) 0.1.0");
      return 0;
    } else if (a == "--inetd") {
      inetd = true;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--config" || a == "--listen" || a == "--listen-fd" || a == "--port-file" ||
               a == "--threads" || a == "--log-format" || a == "--log-target" ||
               a == "--control" || a == "--control-fd") {
      auto v = value();
      if (!v) return 2;
      if (a == "--config") {
        config_path = std::string(*v);
      } else if (a == "--listen") {
        auto ep = platform::Endpoint::parse(*v);
        if (!ep) {
          std::fprintf(stderr, "sockd: --listen wants ADDR:PORT or [V6]:PORT, not '%s'\n", argv[i]);
          return 2;
        }
        listens.push_back(sockd::ListenSpec{*ep, std::string{}, -1});
      } else if (a == "--listen-fd") {
        auto n = parse_int(*v);
        if (!n || *n < 0 || !is_socket(*n)) {
          std::fprintf(stderr, "sockd: --listen-fd %s is not a socket\n", argv[i]);
          return 2;
        }
        listens.push_back(sockd::ListenSpec{platform::Endpoint{}, std::string{}, *n});
      } else if (a == "--port-file") {
        port_file = std::string(*v);
      } else if (a == "--control") {
        control_path = std::string(*v);
      } else if (a == "--control-fd") {
        auto n = parse_int(*v);
        if (!n || *n < 3 || !is_socket(*n)) {
          std::fprintf(stderr, "sockd: --control-fd %s is not a socket\n", argv[i]);
          return 2;
        }
        control_fd = *n;
      } else if (a == "--threads") {
        auto n = parse_int(*v);
        if (!n || *n < 1 || *n > 1024) {
          std::fprintf(stderr, "sockd: --threads wants 1-1024\n");
          return 2;
        }
        threads = static_cast<unsigned>(*n);
      } else if (a == "--log-format") {
        if (*v == "text") log_format = platform::LogFormat::Text;
        else if (*v == "json") log_format = platform::LogFormat::Json;
        else {
          std::fprintf(stderr, "sockd: --log-format wants text or json\n");
          return 2;
        }
      } else {
        if (*v == "stderr") log_target = platform::LogTarget::Stderr;
        else if (*v == "syslog") log_target = platform::LogTarget::Syslog;
        else {
          std::fprintf(stderr, "sockd: --log-target wants stderr or syslog\n");
          return 2;
        }
      }
    } else if (!a.empty() && a[0] != '-') {
      command.emplace_back(a);
    } else {
      std::fprintf(stderr, "sockd: unknown argument '%s'\n%s", argv[i], kUsage.data());
      return 2;
    }
  }
  if (!command.empty()) {
    // Client mode: one command to a running sockd's control socket.
    if (control_path.empty() || command.size() != 1) {
      std::fprintf(stderr, "sockd: a command wants --control PATH and one word (stats, metrics, hits)\n%s",
                   kUsage.data());
      return 2;
    }
    return sockd::control_client(control_path, command.front());
  }

  // Sockets handed over the systemd way (LISTEN_PID/LISTEN_FDS), e.g. by a supervisor.
  if (const char* pid = std::getenv("LISTEN_PID"); pid != nullptr && !inetd) {
    const char* fds = std::getenv("LISTEN_FDS");
    if (parse_int(pid) == static_cast<int>(::getpid()) && fds != nullptr) {
      const int n = parse_int(fds).value_or(0);
      for (int fd = 3; fd < 3 + n && fd < 3 + 64; ++fd) {
        if (is_socket(fd)) listens.push_back(sockd::ListenSpec{platform::Endpoint{}, std::string{}, fd});
      }
    }
  }

  platform::Diagnostics diags;
  std::optional<platform::GatewayConfig> cfg;
  if (config_path) {
    cfg = platform::load_gateway_config(*config_path, diags);
  } else {
    cfg = platform::parse_gateway_config(platform::embedded_default_config(),
                                         "<built-in gateway.toml>", diags);
  }
  if (!diags.empty()) std::fputs(diags.format().c_str(), stderr);
  if (!cfg) return 1;
  if (threads) cfg->sockd.threads = *threads;
  if (log_format) cfg->log.format = *log_format;
  if (log_target) cfg->log.target = *log_target;
  // Under inetd, stderr may be the client's socket: never log into it.
  if (inetd && !log_target && is_socket(STDERR_FILENO)) cfg->log.target = platform::LogTarget::Syslog;

  sockd::Logger log(cfg->log.format, cfg->log.target, cfg->log.level);
  sockd::ServerOptions opts;
  opts.config = *cfg;
  opts.listens = listens;
  opts.port_file = port_file;
  opts.control_fd = control_fd;
  opts.control_path = control_path;
  sockd::Server server(std::move(opts), log);
  platform::Diagnostics policy_diags;
  const bool loaded = server.load(policy_diags);
  if (!policy_diags.empty()) {
    if (check) std::fputs(policy_diags.format().c_str(), stderr);
    else log.diagnostics(policy_diags.format());
  }
  if (!loaded) return 1;
  if (check) return 0;

  // SIGHUP, SIGTERM and SIGINT go to the server's signal_set; a write (or a
  // splice) to a client that has gone must be an error, not SIGPIPE's death.
  std::signal(SIGPIPE, SIG_IGN);
  if (inetd) return server.run_inetd(STDIN_FILENO);

  if (!server.open()) return 1;
  if (!config_path) {
    std::fprintf(stderr,
                 "sockd: running on the built-in configuration (clients on this host only).\n"
                 "sockd: try: curl --socks5-hostname %s http://example.test/\n",
                 server.bound().front().to_string().c_str());
  }
  return server.run();
}

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

#include <filesystem>

#include "diode/platform/config.hpp"
#include "diode/platform/listen_fds.hpp"
#include "diode/platform/logger.hpp"
#include "diode/platform/privileges.hpp"
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
  sockd::ConfigOverrides overrides;
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
      std::puts("sockd (Diode) " DIODE_VERSION);
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
        overrides.threads = static_cast<unsigned>(*n);
      } else if (a == "--log-format") {
        if (*v == "text") overrides.log_format = platform::LogFormat::Text;
        else if (*v == "json") overrides.log_format = platform::LogFormat::Json;
        else {
          std::fprintf(stderr, "sockd: --log-format wants text or json\n");
          return 2;
        }
      } else {
        if (*v == "stderr") overrides.log_target = platform::LogTarget::Stderr;
        else if (*v == "syslog") overrides.log_target = platform::LogTarget::Syslog;
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

  platform::Diagnostics diags;
  std::optional<platform::GatewayConfig> cfg;
  if (config_path) {
    // Absolute before the privilege drop's chdir("/"): SIGHUP reads it again.
    std::error_code ec;
    const auto abs = std::filesystem::absolute(*config_path, ec);
    if (!ec) config_path = abs.lexically_normal().string();
    cfg = platform::load_gateway_config(*config_path, diags);
  } else {
    cfg = platform::parse_gateway_config(platform::embedded_default_config(),
                                         "<built-in gateway.toml>", diags);
  }
  if (!diags.empty()) std::fputs(diags.format().c_str(), stderr);
  if (!cfg) return 1;
  // Under inetd, stderr may be the client's socket: never log into it.
  if (inetd && !overrides.log_target && is_socket(STDERR_FILENO)) {
    overrides.log_target = platform::LogTarget::Syslog;
  }
  overrides.apply(*cfg);

  platform::Logger log("sockd", cfg->log);
  sockd::ServerOptions opts;
  opts.config = *cfg;
  opts.config_path = config_path.value_or("");
  opts.overrides = overrides;
  opts.port_file = port_file;
  opts.drain_timeout = cfg->gateway.drain_timeout;

  // Sockets handed down the systemd way (a supervisor, socket activation):
  // when there are any, they are the listeners, each with its interface.
  if (!inetd && !check) {
    std::string error;
    for (const auto& ns : platform::take_listen_fds(error)) {
      if (ns.purpose == platform::SocketPurpose::Socks) {
        listens.push_back(sockd::ListenSpec{platform::Endpoint{}, ns.iface, ns.fd});
      } else if (ns.purpose == platform::SocketPurpose::Control && opts.control_fd < 0) {
        opts.control_fd = ns.fd;
      } else {
        log.event(platform::LogLevel::Warning, "socket_ignored",
                  {{"name", platform::socket_name(ns.purpose, ns.iface)}, {"fd", std::to_string(ns.fd)},
                   {"reason", "not a socket sockd serves"}});
        ::close(ns.fd);
      }
    }
    if (!error.empty()) {
      log.event(platform::LogLevel::Error, "listen_error", {{"error", error}});
      return 1;
    }
  }
  opts.listens = listens;
  if (control_fd >= 0) opts.control_fd = control_fd;
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
  // Root is dropped once the sockets are open, before a byte is read from
  // the network; a process that cannot drop it does not run.
  auto drop = [&] {
    std::string error;
    if (platform::drop_privileges({cfg->gateway.user, cfg->gateway.group, "/"}, error)) return true;
    log.event(platform::LogLevel::Error, "privilege_drop_failed",
              {{"user", cfg->gateway.user}, {"group", cfg->gateway.group}, {"error", error}});
    return false;
  };
  if (inetd) return drop() ? server.run_inetd(STDIN_FILENO) : 1;

  if (!server.open()) return 1;
  if (!drop()) return 1;
  if (!config_path) {
    std::fprintf(stderr,
                 "sockd: running on the built-in configuration (clients on this host only).\n"
                 "sockd: try: curl --socks5-hostname %s http://example.test/\n",
                 server.bound().front().to_string().c_str());
  }
  return server.run();
}

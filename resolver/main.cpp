// diode-resolver: the caching recursive DNS resolver (docs/resolver.md).
//   diode-resolver [--config FILE] [--control PATH]   run the daemon
//     [--udp-fd N]... [--tcp-fd N]...                 on inherited sockets instead
//     [--control-fd N]                                 an inherited listening control socket
//   diode-resolver --check-config [--config FILE]      check gateway.toml and the root hints
//   diode-resolver --control PATH stats|metrics|flush [NAME]   talk to a running daemon
//   diode-resolver --version
// Sockets handed down the systemd way (LISTEN_FDS, LISTEN_FDNAMES dns-udp.IFACE,
// dns-tcp.IFACE, control) replace what gateway.toml implies.
// Without --config the embedded default runs: 127.0.0.1:5353, loopback clients only.

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/config.hpp"
#include "diode/platform/diagnostics.hpp"
#include "diode/platform/listen_fds.hpp"
#include "diode/platform/logger.hpp"
#include "diode/resolver/root_hints.hpp"
#include "diode/resolver/server.hpp"

namespace {

int usage() {
  std::cerr << "usage: diode-resolver [--config FILE] [--control PATH] [--check-config]\n"
               "                      [--udp-fd N]... [--tcp-fd N]... [--control-fd N] [--version]\n"
               "       diode-resolver --control PATH stats | metrics | flush [NAME]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::string control_path;
  bool check_only = false;
  std::vector<int> udp_fds, tcp_fds;
  int control_fd = -1;
  std::vector<std::string> command;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--config" || a == "--control") && i + 1 < argc) {
      (a == "--config" ? config_path : control_path) = argv[++i];
    } else if ((a == "--udp-fd" || a == "--tcp-fd") && i + 1 < argc) {
      const auto fd = diode::platform::parse_port_number(argv[++i]);  // a small decimal
      if (!fd || *fd < 3) return usage();
      (a == "--udp-fd" ? udp_fds : tcp_fds).push_back(*fd);
    } else if (a == "--control-fd" && i + 1 < argc) {
      const auto fd = diode::platform::parse_port_number(argv[++i]);
      if (!fd || *fd < 3) return usage();
      control_fd = *fd;
    } else if (a == "--check-config") {
      check_only = true;
    } else if (a == "--version") {
      std::cout << "diode-resolver (Diode) " DIODE_VERSION "\n";
      return 0;
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      return usage();
    } else {
      command.push_back(a);
    }
  }
  if (!command.empty()) {
    if (control_path.empty() || command.size() > 2) return usage();
    std::string line = command[0];
    if (command.size() == 2) line += " " + command[1];
    return diode::resolver::control_client(control_path, line);
  }

  diode::platform::Diagnostics diags;
  std::optional<diode::platform::GatewayConfig> cfg;
  if (config_path.empty()) {
    cfg = diode::platform::parse_gateway_config(diode::platform::embedded_default_config(),
                                                "<embedded>", diags);
  } else {
    // Absolute before the privilege drop's chdir("/"): SIGHUP reads it again.
    std::error_code ec;
    const auto abs = std::filesystem::absolute(config_path, ec);
    if (!ec) config_path = abs.lexically_normal().string();
    cfg = diode::platform::load_gateway_config(config_path, diags);
  }
  std::optional<diode::resolver::RootHints> hints;
  if (cfg) hints = diode::resolver::load_root_hints(cfg->files.root_hints, diags);
  std::optional<std::shared_ptr<const diode::resolver::dnssec::TrustAnchors>> anchors;
  if (cfg) anchors = diode::resolver::load_trust_anchors(*cfg, diags);
  std::cerr << diags.format();
  if (!cfg || !hints || !anchors) return 1;
  if (check_only) {
    std::cout << "configuration OK, " << hints->servers.size() << " root servers";
    if (*anchors) {
      std::cout << ", DNSSEC validation from " << (*anchors)->anchors().size() << " trust anchor"
                << ((*anchors)->anchors().size() == 1 ? "" : "s");
      if (!cfg->files.trust_anchor_state.empty())
        std::cout << ", kept current (RFC 5011) in " << cfg->files.trust_anchor_state;
    } else {
      std::cout << ", DNSSEC validation off";
    }
    std::cout << "\n";
    return 0;
  }
  if (config_path.empty()) {
    std::cerr << "diode-resolver: embedded default configuration; try it with\n"
                 "  dig @127.0.0.1 -p 5353 localhost A\n";
  }
  diode::platform::Logger log("diode-resolver", cfg->log);
  diode::resolver::DaemonOptions opts;
  {
    std::string error;
    for (const auto& ns : diode::platform::take_listen_fds(error)) {
      using diode::platform::SocketPurpose;
      if (ns.purpose == SocketPurpose::DnsUdp) {
        opts.udp_fds.push_back(ns.fd);
      } else if (ns.purpose == SocketPurpose::DnsTcp) {
        opts.tcp_fds.push_back(ns.fd);
      } else if (ns.purpose == SocketPurpose::Control && opts.control_fd < 0) {
        opts.control_fd = ns.fd;
      } else {
        log.event(diode::platform::LogLevel::Warning, "socket_ignored",
                  {{"name", diode::platform::socket_name(ns.purpose, ns.iface)},
                   {"fd", std::to_string(ns.fd)},
                   {"reason", "not a socket diode-resolver serves"}});
        ::close(ns.fd);
      }
    }
    if (!error.empty()) {
      log.event(diode::platform::LogLevel::Error, "error", {{"what", "listen_fds"}, {"error", error}});
      return 1;
    }
  }
  opts.config = std::move(*cfg);
  opts.hints = std::move(*hints);
  opts.anchors = std::move(*anchors);
  opts.control_path = control_path;
  if (control_fd >= 0) opts.control_fd = control_fd;
  opts.config_path = config_path;
  opts.udp_fds.insert(opts.udp_fds.end(), udp_fds.begin(), udp_fds.end());
  opts.tcp_fds.insert(opts.tcp_fds.end(), tcp_fds.begin(), tcp_fds.end());
  return diode::resolver::run_daemon(opts, log);
}

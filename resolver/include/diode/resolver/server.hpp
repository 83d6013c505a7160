#pragma once
// The diode-resolver daemon's I/O side on Asio: DNS service on UDP and TCP
// (RFC 1035 §4.2, RFC 7766), the client ACL, the upstream transport (a fresh
// connected UDP socket per query, IDs from getrandom(), TCP on TC), the
// control socket and the signals. All DNS logic lives in the sans-I/O core
// (the front end, the cache, the iterator, answer building); this part only
// moves bytes and time.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/config.hpp"
#include "diode/platform/logger.hpp"
#include "diode/resolver/front.hpp"  // Stats
#include "diode/resolver/root_hints.hpp"
#include "diode/resolver/validator.hpp"

namespace diode::resolver {

/// The counters and the cache's size in the Prometheus text exposition
/// format (0.0.4), names prefixed `diode_resolver_` (docs/resolver.md).
std::string format_metrics(const Stats& stats, std::size_t cache_entries, std::size_t cache_bytes);

/// Where and how the daemon runs.
struct DaemonOptions {
  platform::GatewayConfig config;
  RootHints hints;
  /// The DNSSEC trust anchors (files.trust_anchor); null when
  /// resolver.dnssec is false.
  std::shared_ptr<const dnssec::TrustAnchors> anchors;
  std::string control_path;  // "" = no control socket
  /// An already listening AF_UNIX stream socket handed down by the
  /// supervisor (LISTEN_FDNAMES `control`); used instead of control_path
  /// when >= 0, and never unlinked. -1 = none.
  int control_fd = -1;
  /// gateway.toml, read again on SIGHUP ("" = the embedded default).
  std::string config_path;
  /// Sockets opened by a parent (the supervisor, systemd) and inherited:
  /// bound UDP sockets and listening TCP sockets. When any is given, the
  /// interfaces' dns_port are not bound; every thread serves all of them.
  /// run_daemon takes them over (and closes these descriptors).
  std::vector<int> udp_fds;
  std::vector<int> tcp_fds;
};

/// Reads files.trust_anchor when resolver.dnssec is on: null (and no error)
/// when it is off; nullopt with every bad line reported in `diags` (as
/// file:line:col) when the file cannot be read or holds no valid anchor.
std::optional<std::shared_ptr<const dnssec::TrustAnchors>> load_trust_anchors(
    const platform::GatewayConfig& cfg, platform::Diagnostics& diags);

/// Runs the resolver until SIGTERM or SIGINT. Binds what gateway.toml
/// implies (platform::implied_sockets: dns-udp and dns-tcp), or serves on
/// the inherited sockets; then drops root ([gateway] user and group) before
/// serving, and tells the service manager (sd_notify). Returns the exit
/// status; errors (a port in use...) are logged as `event=error ...` on `log`.
int run_daemon(const DaemonOptions& options, platform::Logger& log);

/// Client side of the control socket: sends `command` ("stats", "flush",
/// "flush NAME", "metrics") to the daemon at `path` and prints its reply to stdout.
int control_client(const std::string& path, const std::string& command);

}  // namespace diode::resolver

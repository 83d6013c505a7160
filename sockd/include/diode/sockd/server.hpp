#pragma once
// The sockd daemon: listeners on the internal interfaces (one io_context per
// thread, each thread its own SO_REUSEPORT listening socket), one coroutine
// per session over the sans-I/O handshake (socks_proto.hpp), the policy of
// session.hpp, c-ares name resolution, the splice relay (relay.hpp), and a
// log line per session (log.hpp). SIGHUP re-reads gateway.toml and the rule,
// route and users files, all or nothing; SIGTERM and SIGINT stop accepting
// and let sessions drain. Readiness, reloads and stops go to sd_notify. A
// control socket answers `stats`, `metrics` and `hits` (docs/sockd.md).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/config.hpp"
#include "diode/platform/diagnostics.hpp"
#include "diode/sockd/log.hpp"

namespace diode::sockd {

/// One address to listen on, and the interface name rules see (`iface=`).
struct ListenSpec {
  platform::Endpoint endpoint;
  std::string iface;
  int inherited_fd = -1;  // >= 0: an already listening socket (supervisor, --listen-fd)

  bool operator==(const ListenSpec&) const = default;
};

/// What the command line sets over gateway.toml, applied again on SIGHUP.
struct ConfigOverrides {
  std::optional<unsigned> threads;
  std::optional<platform::LogFormat> log_format;
  std::optional<platform::LogTarget> log_target;

  void apply(platform::GatewayConfig& cfg) const;
};

struct ServerOptions {
  platform::GatewayConfig config;
  /// gateway.toml, absolute, read again on SIGHUP; "" = the configuration
  /// above stays (only the files it names are read again).
  std::string config_path;
  ConfigOverrides overrides;
  /// Empty: listen where the config says (platform::implied_sockets, the
  /// Socks ones).
  std::vector<ListenSpec> listens;
  /// When set, the first listener's port is written there once listening
  /// (for tests on port 0).
  std::string port_file;
  /// How long SIGTERM waits for running sessions before closing them.
  std::chrono::milliseconds drain_timeout{std::chrono::seconds{5}};
  /// An already listening AF_UNIX stream socket for the control protocol,
  /// handed down by the supervisor (LISTEN_FDNAMES `control`); the server
  /// takes it over. -1 = none.
  int control_fd = -1;
  /// Where to create the control socket (mode 0600) when control_fd is -1;
  /// "" = none. Removed again at exit.
  std::string control_path;
};

/// Client side of the control socket: sends `command` (stats, metrics,
/// hits) to the daemon at `path`, prints the reply to stdout; 0 if it came.
int control_client(const std::string& path, const std::string& command);

class Server {
 public:
  Server(ServerOptions options, Logger& log);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Loads sockd.conf, sockd.route and users; every problem goes to `diags`.
  bool load(platform::Diagnostics& diags);
  /// Opens every listener; false (with a log line) if one cannot be opened.
  bool open();
  /// Serves until SIGTERM or SIGINT (or stop()); returns the exit status.
  int run();
  /// Serves one session on the connected socket `fd` (inetd mode), then returns.
  int run_inetd(int fd);
  /// Asks run() to stop as SIGTERM would; callable from any thread.
  void stop();
  /// Where the listeners ended up (ports chosen by the kernel filled in).
  std::vector<platform::Endpoint> bound() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace diode::sockd

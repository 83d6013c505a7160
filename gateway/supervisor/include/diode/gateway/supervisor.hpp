#pragma once
// diode-gateway, the supervisor (docs/gateway.md): validates every file,
// opens every listening socket, starts one sockd per internal interface and
// one diode-resolver with only their own sockets (LISTEN_FDS), each dropped
// to the unprivileged user before exec; restarts a child that exits, with
// back-off; SIGHUP validates then reloads every child; SIGTERM drains and
// stops. A root-only control socket (diodectl) and optional Prometheus
// metrics over HTTP report on the children.

#include <string>

#include "diode/platform/logger.hpp"

namespace diode::gateway {

struct SupervisorOptions {
  std::string config_path;   // absolute; "" = the embedded default configuration
  std::string sockd_path;    // the executables the children run
  std::string resolver_path;
  std::string runtime_dir;   // "" = gateway.runtime_dir
};

/// Where the child executables are when no flag names them: beside this
/// executable, then in the build tree's layout (../sockd/sockd,
/// ../resolver/diode-resolver), then /usr/sbin.
std::string default_child_path(const std::string& self_dir, const std::string& name);

/// --check: loads gateway.toml and has each child's own checker
/// (`sockd --check`, `diode-resolver --check-config`) validate the rest, run
/// as the unprivileged user when started as root. Prints the diagnostics to
/// stderr; returns 0 if everything is valid, 1 otherwise.
int check_configuration(const SupervisorOptions& options);

/// Runs the supervisor until SIGTERM/SIGINT; returns the exit status.
int run_supervisor(const SupervisorOptions& options);

/// diodectl's side: sends `command` to the control socket at `path` and
/// prints the reply; returns 0, or 1 if unreachable or the reply is an error.
int control_client(const std::string& path, const std::string& command);

}  // namespace diode::gateway

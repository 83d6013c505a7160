#pragma once
// Starting processes for the supervisor: a child daemon with its sockets
// handed down and its privileges dropped before exec, and a checker run
// the same way whose output is collected. Internal to diode::gateway.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "diode/platform/sockets.hpp"

namespace diode::gateway {

/// Who a started process runs as; nullopt ids = stay as we are (the
/// supervisor is not root, so there is nothing to drop).
struct RunAs {
  std::string user;
  std::string group;
  bool drop = false;  // true when the supervisor is root
};

/// fork + exec of `argv` with `sockets` handed down as LISTEN_FDS (named),
/// NOTIFY_SOCKET set to `notify_socket` ("" = unset), privileges dropped
/// after fork and before exec, and SIGTERM as the parent-death signal.
/// Returns the pid, or -1 with `error` set if fork failed. A failure in the
/// child (drop, exec) is reported on its stderr and it exits 126/127.
pid_t spawn_child(const std::vector<std::string>& argv,
                  const std::vector<platform::NamedSocket>& sockets,
                  const std::string& notify_socket, const RunAs& run_as, std::string& error);

struct CheckOutcome {
  bool ok = false;
  std::string output;  // what the checker printed (stdout and stderr)
};

/// A checker started without waiting for it (a reload, in the supervisor's
/// event loop): its pid, and the read end of a pipe that holds its stdout
/// and stderr, non-blocking and close-on-exec, owned by the caller. The
/// caller reaps the pid. pid -1 with `error` set if it could not start.
struct StartedChecker {
  pid_t pid = -1;
  int output_fd = -1;
};
StartedChecker start_checker(const std::vector<std::string>& argv, const RunAs& run_as,
                             std::string& error);

/// Runs `argv` as `run_as` with no sockets, collects its output, and waits
/// for it (killed after `timeout`). ok = exited 0.
CheckOutcome run_checker(const std::vector<std::string>& argv, const RunAs& run_as,
                         std::chrono::milliseconds timeout);

/// "exit 0", "exit 3", "signal KILL" for a waitpid status.
std::string describe_wait_status(int status);

/// Resident memory of `pid` in KiB from /proc/PID/status, or nullopt.
std::optional<unsigned long> resident_kib(pid_t pid);

}  // namespace diode::gateway

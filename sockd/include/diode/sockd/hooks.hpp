#pragma once
// The rules' shell commands (`: shell command`, `#NO_IDENTD:`, `#BAD_ID:`),
// run as NEC ran them — `/bin/sh -c COMMAND` after %-expansion with NEC's
// sanitising (expand.hpp) — without ever blocking a relay thread:
// posix_spawn, then the exit is awaited through a pidfd on the io_context.
// At most `max_running` hooks run at once (process-wide; more are skipped
// and logged), each is killed after `timeout`.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "diode/platform/asio.hpp"
#include "diode/sockd/log.hpp"

namespace diode::sockd {

namespace net = boost::asio;

struct HookLimits {
  unsigned max_running = 8;
  std::chrono::milliseconds timeout{std::chrono::seconds{30}};
};

/// Starts hooks on one io_context; `running` is shared by every thread's runner.
class HookRunner {
 public:
  HookRunner(net::io_context& io, HookLimits limits, std::atomic<unsigned>& running, Logger& log);

  /// Runs `/bin/sh -c command` (already expanded) in the background, with
  /// standard input, output and error on /dev/null and no other descriptor
  /// inherited. `origin` (file:line) is logged with its outcome. Returns
  /// false when it was skipped (limit reached) or could not be started.
  bool run(const std::string& command, const std::string& origin);
  /// New limits (SIGHUP) for hooks started from now on; on the io_context's thread.
  void set_limits(HookLimits limits) { limits_ = limits; }

 private:
  net::io_context& io_;
  HookLimits limits_;
  std::atomic<unsigned>& running_;
  Logger& log_;
};

}  // namespace diode::sockd

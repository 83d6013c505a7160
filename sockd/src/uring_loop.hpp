#pragma once
// sockd's io_uring session path (docs/sockd.md, "I/O paths"): one ring per
// relay thread, accepting on that thread's listeners and running the
// sessions it can do alone — the handshake, a decision of the session plan
// that needs no lookup, the CONNECT and the relay — with every decision
// taken by the same plan and codecs as the Asio path. A session whose next
// step is one the ring does not do (a name to resolve, identd, a password
// check, BIND, UDP ASSOCIATE, several addresses to race) is handed, with its
// handshake machine and the bytes already read, to the Asio path of the
// same worker (Server::Impl::session with `resumed`), which runs it to its end.

#include <memory>
#include <string>

#include "diode/sockd/server.hpp"

namespace diode::sockd {

struct RelayWorker;

/// What uring_probe found.
struct UringProbe {
  /// "" when this process may use io_uring as the ring path needs it (a
  /// ring, with SINGLE_ISSUER and DEFER_TASKRUN if the kernel has them, and
  /// a ring of provided buffers); otherwise why not (e.g. "io_uring_setup:
  /// Operation not permitted" under a seccomp filter or
  /// kernel.io_uring_disabled).
  std::string why;
  /// The kernel runs socket commands from the ring (getsockopt: Linux 6.7):
  /// a multishot accept, each client's address then read by a socket
  /// command. Else a single-shot accept per session, which brings it. The
  /// environment's DIODE_URING_NO_SOCKET_CMD=1 says no (for tests).
  bool socket_cmd = false;
};
UringProbe uring_probe();

/// One worker's ring. Made on the thread that starts run(); run() itself
/// runs on the ring's own thread until Impl::rings_stop, and if the ring
/// cannot be set up there, puts the worker's Asio accept loops to work instead.
class UringLoop {
 public:
  UringLoop(Server::Impl& server, RelayWorker& worker);
  ~UringLoop();
  UringLoop(const UringLoop&) = delete;
  UringLoop& operator=(const UringLoop&) = delete;

  void run();

  struct State;

 private:
  std::unique_ptr<State> st_;
};

}  // namespace diode::sockd

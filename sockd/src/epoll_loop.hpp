#pragma once
// sockd's epoll session path (docs/sockd.md, "I/O paths"): the twin of the
// io_uring loop (uring_loop.hpp) for kernels or sandboxes without io_uring.
// One edge-triggered epoll loop per relay thread accepts on that thread's
// listeners and runs the sessions it can do alone — the handshake, a
// decision of the session plan that needs no lookup, the CONNECT and the
// relay — and hands every other session, with its handshake machine and the
// bytes already read, to the Asio path of the same worker, exactly as the
// ring does (fast_session.hpp holds what the two loops share).

#include <memory>

#include "diode/sockd/server.hpp"

namespace diode::sockd {

struct RelayWorker;

/// One worker's epoll loop. Made on the thread that starts run() (it takes
/// the worker's listening sockets out of Asio's hands); run() runs on the
/// loop's own thread until Impl::rings_stop, and if epoll cannot be set up
/// there, puts the worker's Asio accept loops to work instead.
class EpollLoop {
 public:
  EpollLoop(Server::Impl& server, RelayWorker& worker);
  ~EpollLoop();
  EpollLoop(const EpollLoop&) = delete;
  EpollLoop& operator=(const EpollLoop&) = delete;

  void run();

  struct State;

 private:
  std::unique_ptr<State> st_;
};

}  // namespace diode::sockd

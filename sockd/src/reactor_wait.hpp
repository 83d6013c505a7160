#pragma once
// Readiness waits on Asio's epoll reactor that cost no system call, for the
// relay's sockets (docs/performance.md, "The epoll path: system calls per
// session"). Asio's own async_wait re-arms the descriptor with
// EPOLL_CTL_MOD every time it starts (it cannot know whether the socket is
// ready already); a caller that has just seen EAGAIN knows it, so its wait
// only needs to be queued on the reactor, where the next edge finds it.
// That is what Asio does for a read that found nothing; these do the same
// without a buffer. The operation is queued through the reactor's start_op,
// as Asio's socket service does (Boost 1.74, epoll): the one call made
// while it is started is skipped, every later one (an edge) completes it.
//
// Only for a socket whose last read (wait_readable) or write (wait_writable)
// failed with EAGAIN, with nothing run on it since: the edge that ends the
// wait is then still to come.

#include <memory>
#include <utility>

#include "diode/platform/asio.hpp"

namespace diode::sockd {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// A socket's Asio-internal state: its descriptor, state bits and reactor
// registration, reached through basic_socket's protected member from a
// derived class, as the language allows (a renamed member fails the build).
// basic_socket_acceptor keeps its own private: sockd's listening sockets are
// held as tcp::socket (RelayWorker::acceptors).
template <typename IoObject>
struct Internals : IoObject {
  static auto& of(IoObject& s) { return (s.*(&Internals::impl_)).get_implementation(); }
};
using SocketInternals = Internals<tcp::socket>;

namespace reactor_wait_detail {

// Queued on the reactor; the first perform() (the speculative one made while
// starting) reports "not done", every later one "done".
class ReadyOpBase : public net::detail::reactor_op {
 public:
  bool starting = false;
  bool* fired = nullptr;  // set when an edge completes it (the connect watch)

 protected:
  explicit ReadyOpBase(func_type on_complete)
      : reactor_op(boost::system::error_code(), &ReadyOpBase::do_perform, on_complete) {}

 private:
  static status do_perform(reactor_op* base) {
    auto* o = static_cast<ReadyOpBase*>(base);
    if (o->starting) return not_done;
    if (o->fired != nullptr) *o->fired = true;
    return done;
  }
};

template <typename Handler>
class ReadyOp : public ReadyOpBase {
 public:
  explicit ReadyOp(Handler h) : ReadyOpBase(&ReadyOp::do_complete), handler_(std::move(h)) {}

 private:
  static void do_complete(void* owner, net::detail::scheduler_operation* base,
                          const boost::system::error_code& /*ec*/, std::size_t /*bytes*/) {
    auto* o = static_cast<ReadyOp*>(base);
    Handler h(std::move(o->handler_));
    const boost::system::error_code ec = o->ec_;  // operation_aborted when closed or cancelled
    delete o;
    if (owner != nullptr) std::move(h)(ec);  // null: the io_context is being destroyed
  }
  Handler handler_;
};

// The connect watch: completes (setting *fired) on EPOLLPRI, EPOLLERR or
// EPOLLHUP; nobody waits for it.
class WatchOp : public ReadyOpBase {
 public:
  explicit WatchOp(bool* f) : ReadyOpBase(&WatchOp::do_complete) { fired = f; }

 private:
  static void do_complete(void* /*owner*/, net::detail::scheduler_operation* base,
                          const boost::system::error_code& /*ec*/, std::size_t /*bytes*/) {
    delete static_cast<WatchOp*>(base);
  }
};

template <typename IoObject>
net::detail::reactor& reactor_of(IoObject& s) {
  // Looked up each time (a short list under an uncontended mutex): a cache
  // keyed by the context's address would outlive a destroyed io_context.
  return net::use_service<net::detail::reactor>(
      net::query(s.get_executor(), net::execution::context));
}

template <typename IoObject>
void start(IoObject& s, int op_type, ReadyOpBase* op) {
  auto& impl = Internals<IoObject>::of(s);
  op->starting = true;
  reactor_of(s).start_op(op_type, impl.socket_, impl.reactor_data_, op, false, true);
  op->starting = false;  // still alive: completions run later, from the scheduler
}

}  // namespace reactor_wait_detail

/// Waits until `s` may be readable (or has an error, or was closed:
/// operation_aborted). Precondition: its last read (or, for a listening
/// socket, accept) failed with EAGAIN.
template <typename IoObject, typename Token>
auto async_wait_readable(IoObject& s, Token&& token) {
  return net::async_initiate<Token, void(boost::system::error_code)>(
      [](auto handler, IoObject* sp) {
        using H = std::decay_t<decltype(handler)>;
        reactor_wait_detail::start(*sp, net::detail::reactor::read_op,
                                   new reactor_wait_detail::ReadyOp<H>(std::move(handler)));
      },
      token, &s);
}

/// Waits until `s` may be writable (or has an error). Precondition: its
/// last write failed with EAGAIN (or it is connecting). The first such wait
/// on a socket adds EPOLLOUT to its registration (one EPOLL_CTL_MOD), as
/// Asio's own first write wait does; later ones cost nothing.
template <typename Token>
auto async_wait_writable(tcp::socket& s, Token&& token) {
  return net::async_initiate<Token, void(boost::system::error_code)>(
      [](auto handler, tcp::socket* sp) {
        using H = std::decay_t<decltype(handler)>;
        reactor_wait_detail::start(*sp, net::detail::reactor::write_op,
                                   new reactor_wait_detail::ReadyOp<H>(std::move(handler)));
      },
      token, &s);
}

/// Sets *error_seen when `s` reports EPOLLERR, EPOLLHUP or EPOLLPRI, from
/// inside the reactor, before any write wait of the same edge completes: a
/// connecting socket whose wait_writable ends with *error_seen still false
/// has connected. Costs no system call; ended by s.cancel() or s.close().
inline void watch_errors(tcp::socket& s, bool* error_seen) {
  reactor_wait_detail::start(s, net::detail::reactor::except_op,
                             new reactor_wait_detail::WatchOp(error_seen));
}

}  // namespace diode::sockd

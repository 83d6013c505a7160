#include "connect_race.hpp"

#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "server_impl.hpp"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace diode::sockd {

// Binds an outgoing socket to the egress sockd.route chose, if any; 0 or an errno.
int bind_egress(int fd, const Route* route, const IpAddress& dst) {
  if (route == nullptr) return 0;
  if (route->egress_addr) {
    if (route->egress_addr->family != dst.family) return ENETUNREACH;
    // The port is chosen at connect time, per destination: no port shortage
    // when many sessions leave from one address.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (dst.family == platform::Family::V4) {
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_addr.s_addr = htonl(route->egress_addr->v4_value());
      std::memcpy(&ss, &sin, sizeof sin);
      len = sizeof sin;
    } else {
      sockaddr_in6 sin6{};
      sin6.sin6_family = AF_INET6;
      std::memcpy(&sin6.sin6_addr, route->egress_addr->bytes.data(), 16);
      std::memcpy(&ss, &sin6, sizeof sin6);
      len = sizeof sin6;
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) return errno;
    return 0;
  }
  if (!route->egress_iface.empty()) {
    const std::string& name = route->egress_iface;
    if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                     static_cast<socklen_t>(name.size())) != 0) {
      return errno;
    }
  }
  return 0;
}

namespace {

// Waits for a connect() in progress to end. Asio's async_connect would
// poll() the socket and read SO_ERROR once its wait ends, and async_wait
// re-arms epoll; here the wait costs nothing (reactor_wait.hpp) and
// SO_ERROR is read only when the reactor saw EPOLLERR or EPOLLHUP (or
// EPOLLPRI) on the socket: a wait that ends without them is a connection
// made. The socket entered epoll after connect() (start_attempt), so no
// event of the unconnected socket (EPOLLHUP) can end the wait early.
net::awaitable<void> connect_wait(tcp::socket& s, error_code& ec) {
  bool error_seen = false;
  watch_errors(s, &error_seen);
  co_await async_wait_writable(s, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;  // closed (another attempt won, or the deadline): the watch ended too
  error_code ignored;
  s.cancel(ignored);  // ends the watch; no system call
  if (!error_seen) co_return;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) ec = error_code(err, boost::system::system_category());
}

net::awaitable<void> race_attempt(std::shared_ptr<Race> r, std::size_t i, bool in_progress) {
  error_code ec;
  if (in_progress) co_await connect_wait(r->sockets[i], ec);
  if (!ec && r->winner < 0) {
    r->winner = static_cast<int>(i);
  } else if (ec) {
    ++r->failed;
    if (ec != net::error::operation_aborted) r->last_error = ec.value();
  }
  r->wake.cancel();
}

}  // namespace

bool start_attempt(const std::shared_ptr<Race>& r, std::size_t i, const tcp::endpoint& ep,
                   const Route* route) {
  error_code ec;
  tcp::socket& s = r->sockets[i];
  // Non-blocking from birth (no ioctl), bound to its egress and connecting
  // before epoll sees it: one EPOLL_CTL_ADD, and no EPOLLHUP of an
  // unconnected socket queued for the wait to come.
  const int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          IPPROTO_TCP);
  int e = fd < 0 ? errno : bind_egress(fd, route, from_asio(ep.address()));
  bool in_progress = false;
  if (e == 0 && ::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) != 0) {
    e = errno;
    if (e == EINPROGRESS) {
      in_progress = true;
      e = 0;
    }
  }
  if (e != 0 && fd >= 0) ::close(fd);
  if (e == 0 && !adopt_socket(s, ep.protocol(), fd, ec)) e = ec.value();
  ++r->started;
  if (e != 0) {
    ++r->failed;
    r->last_error = e;
    return false;
  }
  net::co_spawn(s.get_executor(), race_attempt(r, i, in_progress), net::detached);
  return true;
}

}  // namespace diode::sockd

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

// Asio's async_connect would also poll() the socket before reading
// SO_ERROR; a wait for writability and SO_ERROR say the same with one call less.
net::awaitable<void> connect_socket(tcp::socket& s, tcp::endpoint ep, error_code& ec) {
  s.native_non_blocking(true, ec);
  if (ec) co_return;
  if (::connect(s.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) == 0) co_return;
  if (errno != EINPROGRESS) {
    ec = error_code(errno, boost::system::system_category());
    co_return;
  }
  co_await s.async_wait(tcp::socket::wait_write, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) ec = error_code(err, boost::system::system_category());
}

net::awaitable<void> race_attempt(std::shared_ptr<Race> r, std::size_t i, tcp::endpoint ep) {
  error_code ec;
  co_await connect_socket(r->sockets[i], ep, ec);
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
  s.open(ep.protocol(), ec);
  const int e = ec ? ec.value() : bind_egress(s.native_handle(), route, from_asio(ep.address()));
  ++r->started;
  if (e != 0) {
    ++r->failed;
    r->last_error = e;
    return false;
  }
  net::co_spawn(s.get_executor(), race_attempt(r, i, ep), net::detached);
  return true;
}

}  // namespace diode::sockd

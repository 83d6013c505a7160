#pragma once
// The connection attempts of one CONNECT (happy eyeballs, RFC 8305 §5):
// each candidate's socket, bound to the egress its route names, connecting
// in its own small coroutine that wakes the session when it ends. The order
// and the pacing are the session's (the plan's order, kAttemptDelay).

#include <cstddef>
#include <memory>
#include <vector>

#include "diode/platform/asio.hpp"
#include "diode/sockd/rules.hpp"

namespace diode::sockd {

namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto kAttemptDelay = std::chrono::milliseconds{250};  // RFC 8305 §5's recommended value

// Attempts wake the session through `wake` as they finish; the first success wins.
struct Race {
  Race(const net::any_io_executor& ex, std::size_t n) : wake(ex) {
    sockets.reserve(n);
    for (std::size_t i = 0; i < n; ++i) sockets.emplace_back(ex);
  }
  net::steady_timer wake;
  std::vector<tcp::socket> sockets;  // one per candidate, never reallocated
  int winner = -1;
  std::size_t started = 0;
  std::size_t failed = 0;
  int last_error = EHOSTUNREACH;
};

/// Binds an outgoing socket to the egress `route` names for `dst` (an
/// address, or an interface), if any; 0 or an errno. Both I/O paths use it.
int bind_egress(int fd, const Route* route, const platform::IpAddress& dst);

/// Starts attempt `i` toward `ep` (IPv4-mapped addresses as such), its
/// socket first bound to `route`'s egress; false (with r->last_error set
/// and the attempt counted as failed) when the socket cannot even be made
/// or connect() fails at once.
bool start_attempt(const std::shared_ptr<Race>& r, std::size_t i, const tcp::endpoint& ep,
                   const Route* route);

}  // namespace diode::sockd

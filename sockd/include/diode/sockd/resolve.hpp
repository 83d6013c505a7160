#pragma once
// Asynchronous name resolution for the relay with c-ares: one channel per
// io_context, its sockets watched with Asio descriptor waits
// (ARES_OPT_SOCK_STATE_CB + ares_process_fd), queries sent only to the one
// configured nameserver, never to /etc/hosts or the host's resolv.conf
// servers.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/asio.hpp"

namespace diode::sockd {

namespace net = boost::asio;

/// The outcome of one lookup: A and AAAA answers (IPv6 first when both, as
/// c-ares sorts them), or a c-ares status text when nothing came back.
struct Resolved {
  std::vector<platform::IpAddress> addrs;
  int status = 0;      // ARES_SUCCESS (0) or an ARES_E* code
  std::string error;   // ares_strerror(status) when it failed
};

/// RFC 6761 §6.3: `localhost` and every name below it (any case, with or
/// without the final dot) are loopback, answered without DNS: ::1 and
/// 127.0.0.1, IPv6 first as c-ares sorts. nullopt for every other name.
std::optional<std::vector<platform::IpAddress>> special_use_addresses(std::string_view name);

class NameLookup {
 public:
  /// A channel on `io` asking `server` only. On failure returns null and
  /// sets `error`. Calls ares_library_init once per process.
  static std::unique_ptr<NameLookup> create(net::io_context& io, const platform::Endpoint& server,
                                          std::string& error);
  ~NameLookup();
  NameLookup(const NameLookup&) = delete;
  NameLookup& operator=(const NameLookup&) = delete;

  /// Looks `name` up (A and AAAA); special_use_addresses() first, without
  /// asking the nameserver. Completes on the io_context's thread; a
  /// coroutine may abandon the wait by calling cancel_all() (all waiting
  /// lookups then finish with ARES_ECANCELLED).
  net::awaitable<Resolved> resolve(std::string name);

  /// Fails every pending lookup with ARES_ECANCELLED.
  void cancel_all();

  struct Impl;

 private:
  explicit NameLookup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace diode::sockd

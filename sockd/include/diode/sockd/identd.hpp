#pragma once
// The identd client (RFC 1413): ask the client's host which user owns the
// connection to sockd, to check the user a SOCKS request claims (NEC's
// `?=I` / `?=i`). The query and reply codecs are sans-I/O (ident_codec.hpp);
// ask_identd() does the I/O, bounded by a timeout. Ident is not authentication: whoever is
// root on the client host controls the answer.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "diode/platform/asio.hpp"
#include "diode/sockd/ident_codec.hpp"
#include "diode/sockd/rules.hpp"

namespace diode::sockd {

namespace net = boost::asio;

struct IdentOutcome {
  IdentResult result = IdentResult::Unreachable;
  std::string user;  // what identd said (empty when unreachable)
};

/// Asks identd on port `ident_port` (113) of the peer of `client`, from the
/// address the client reached sockd at, within `timeout`; compares the
/// answer with `claimed`. A failed connection, a timeout, an ERROR reply or
/// a malformed one is Unreachable; another user is Mismatch.
net::awaitable<IdentOutcome> ask_identd(const net::ip::tcp::socket& client, std::string claimed,
                                        std::chrono::milliseconds timeout,
                                        std::uint16_t ident_port = 113);

}  // namespace diode::sockd

#pragma once
// The identd client (RFC 1413): ask the client's host which user owns the
// connection to sockd, to check the user a SOCKS request claims (NEC's
// `?=I` / `?=i`). The query and reply codecs are sans-I/O; ask_identd() does
// the I/O, bounded by a timeout. Ident is not authentication: whoever is
// root on the client host controls the answer.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "diode/platform/asio.hpp"
#include "diode/sockd/rules.hpp"

namespace diode::sockd {

namespace net = boost::asio;

/// RFC 1413 §2: "<port-on-server> , <port-on-client>\r\n" — from identd's
/// point of view, the client's own port first, then sockd's port.
std::string ident_query(std::uint16_t client_port, std::uint16_t sockd_port);

struct IdentReply {
  bool ok = false;      // a USERID reply for the asked ports
  std::string user;     // the user id (USERID replies)
  std::string error;    // the error token (ERROR replies) or why it is malformed
};

/// Parses one reply line (without or with its CR LF), RFC 1413 §3:
/// "<ports> : USERID : <opsys>[,<charset>] : <user-id>" or
/// "<ports> : ERROR : <error-type>". The port pair must be the one asked.
IdentReply parse_ident_reply(std::string_view line, std::uint16_t client_port,
                             std::uint16_t sockd_port);

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

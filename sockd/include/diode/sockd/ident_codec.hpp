#pragma once
// RFC 1413 (identd) query and reply, sans-I/O: no Asio, so the reply parser
// also builds (and is fuzzed) under the clang-14 fuzz preset.

#include <cstdint>
#include <string>
#include <string_view>

namespace diode::sockd {

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

}  // namespace diode::sockd

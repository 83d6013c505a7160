#pragma once
// NEC SOCKS %-expansion of shell commands (percent_x.c semantics): the
// tokens %A %a %c %p %S %s %U %u %Z %z and %%.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "diode/sockd/rules.hpp"

namespace diode::sockd {

/// The values a command may refer to; empty strings expand to nothing.
struct ExpandContext {
  std::string client_host;  // %A: client host name if known, else its address
  std::string client_addr;  // %a
  std::string command;      // %c: connect, bind or udp
  std::string pid;          // %p
  std::string dst_service;  // %S: service name of the port if known, else the number
  std::string dst_port;     // %s
  std::string ident_user;   // %U: what identd reported ("unknown" when nothing)
  std::string client_user;  // %u: what the client sent
  std::string dst_host;     // %Z: destination name if known, else its address
  std::string dst_addr;     // %z
};

/// Expands `cmd`. Unknown %x (and a trailing lone %) expand to nothing; every
/// expanded value is sanitised: characters outside 0-9 A-Z a-z ! @ % - _ = +
/// : , . / become '_', and so does a leading '-', so a value can never inject
/// shell syntax, end a quote or be taken for an option.
std::string expand_command(std::string_view cmd, const ExpandContext& ctx);

/// Offsets and letters of the % tokens that expand to nothing (for lint); a
/// trailing lone % is reported with the letter '\0'.
std::vector<std::pair<std::size_t, char>> unknown_percent_tokens(std::string_view cmd);

/// The context a relay would use for `q` without DNS: host names fall back
/// to addresses, the service to the port number, the pid to this process.
ExpandContext context_for(const RuleRequest& q);

}  // namespace diode::sockd

#pragma once
// sockd's event log: one structured line per finished or refused session,
// `key=value` text or JSON, through platform::Logger (stderr or syslog). NEC's words stay: events are
// `terminated` (a relayed session ended), `refused` (the request was denied
// or malformed) and `failed` (permitted, but the destination could not be
// reached). Every key is documented in docs/sockd.md.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "diode/platform/config.hpp"
#include "diode/platform/log_text.hpp"
#include "diode/platform/logger.hpp"

namespace diode::sockd {

/// What one session did, filled in as it goes and logged once at its end.
struct SessionRecord {
  std::string event = "refused";  // terminated | refused | failed
  std::chrono::system_clock::time_point start = std::chrono::system_clock::now();
  std::string client;             // ip:port of the client
  std::string listener;           // ip:port the client connected to
  std::string version;            // socks4 | socks4a | socks5 | "" (unknown)
  std::string user;               // SOCKS4 USERID or RFC 1929 UNAME, raw bytes
  std::string method;             // none | userpass | ""
  std::string cmd;                // connect | bind | udp | ""
  std::string dst;                // destination as asked (name or address, with port)
  std::string addr;               // destination as connected (address:port)
  std::string rule;               // deciding rule as file:line, "" for none
  std::string verdict;            // permit | deny | ""
  int reply = -1;                 // reply code sent (SOCKS4 CD or SOCKS5 REP); -1 none
  std::uint64_t up = 0;           // client → destination bytes
  std::uint64_t down = 0;         // destination → client bytes
  std::chrono::milliseconds duration{0};
  std::string reason;             // why it ended or was refused
};

/// The record as one text line of `key=value` pairs (values with blanks,
/// quotes, `=` or control bytes quoted and escaped), without a newline.
std::string format_text(const SessionRecord& r);
/// The same record as one JSON object, without a newline.
std::string format_json(const SessionRecord& r);

/// Escapes a value for the text format (the shared rule of
/// platform/log_text.hpp: bare when safe, else quoted with \xHH escapes).
using platform::quote_value;

/// sockd logs through the one logger of every Diode process.
using Logger = platform::Logger;

/// Logs a session record at level Info through `log`, in its format
/// (format_text or format_json); not even formatted below its level.
void log_session(platform::Logger& log, const SessionRecord& r);

}  // namespace diode::sockd

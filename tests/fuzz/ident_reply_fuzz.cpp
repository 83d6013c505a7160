// Fuzzes the RFC 1413 reply parser sockd runs on what a client's identd
// says: the first four bytes choose the asked ports, the rest is the line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "diode/sockd/ident_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const auto client_port = static_cast<std::uint16_t>((data[0] << 8) | data[1]);
  const auto sockd_port = static_cast<std::uint16_t>((data[2] << 8) | data[3]);
  const std::string_view line(reinterpret_cast<const char*>(data + 4), size - 4);
  const diode::sockd::IdentReply r = diode::sockd::parse_ident_reply(line, client_port, sockd_port);
  // A user is only ever reported for a well-formed USERID reply, and is
  // bounded by the input it came from.
  if (r.ok && (r.user.empty() || r.user.size() > 512 || r.user.size() > line.size())) std::abort();
  if (r.ok && !r.error.empty()) std::abort();
  // The query for the same ports names them in identd's order.
  const std::string q = diode::sockd::ident_query(client_port, sockd_port);
  if (q.size() < 7 || q.substr(q.size() - 2) != "\r\n") std::abort();
  return 0;
}

#include "diode/sockd/ident_codec.hpp"

#include <charconv>
#include <optional>

namespace diode::sockd {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<std::uint16_t> port_of(std::string_view s) {
  s = trim(s);
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

std::string ident_query(std::uint16_t client_port, std::uint16_t sockd_port) {
  return std::to_string(client_port) + " , " + std::to_string(sockd_port) + "\r\n";
}

IdentReply parse_ident_reply(std::string_view line, std::uint16_t client_port,
                             std::uint16_t sockd_port) {
  IdentReply r;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  const std::size_t c1 = line.find(':');
  if (c1 == std::string_view::npos) {
    r.error = "malformed";
    return r;
  }
  const std::string_view ports = line.substr(0, c1);
  const std::size_t comma = ports.find(',');
  if (comma == std::string_view::npos || port_of(ports.substr(0, comma)) != client_port ||
      port_of(ports.substr(comma + 1)) != sockd_port) {
    r.error = "wrong ports";
    return r;
  }
  const std::string_view rest = line.substr(c1 + 1);
  const std::size_t c2 = rest.find(':');
  const std::string_view type = trim(rest.substr(0, c2));
  if (iequals(type, "ERROR")) {
    r.error = c2 == std::string_view::npos ? "ERROR" : std::string(trim(rest.substr(c2 + 1)));
    return r;
  }
  if (!iequals(type, "USERID") || c2 == std::string_view::npos) {
    r.error = "malformed";
    return r;
  }
  const std::string_view after = rest.substr(c2 + 1);
  const std::size_t c3 = after.find(':');
  if (c3 == std::string_view::npos) {
    r.error = "malformed";
    return r;
  }
  // The user id is everything after the third colon (it may hold colons);
  // RFC 1413 §3 allows leading blanks to be stripped.
  std::string_view user = after.substr(c3 + 1);
  while (!user.empty() && (user.front() == ' ' || user.front() == '\t')) user.remove_prefix(1);
  if (user.empty() || user.size() > 512) {
    r.error = "malformed";
    return r;
  }
  r.ok = true;
  r.user = std::string(user);
  return r;
}

}  // namespace diode::sockd

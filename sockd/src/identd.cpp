#include "diode/sockd/identd.hpp"

#include <charconv>
#include <memory>

namespace diode::sockd {

namespace {

using boost::system::error_code;
using tcp = net::ip::tcp;

constexpr std::size_t kMaxReply = 1000;  // RFC 1413 §6: replies are at most 1000 characters

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

net::awaitable<IdentOutcome> ask_identd(const tcp::socket& client, std::string claimed,
                                        std::chrono::milliseconds timeout, std::uint16_t ident_port) {
  IdentOutcome out;
  error_code ec;
  const tcp::endpoint local = client.local_endpoint(ec);
  if (ec) co_return out;
  const tcp::endpoint peer = client.remote_endpoint(ec);
  if (ec) co_return out;
  auto ex = co_await net::this_coro::executor;
  auto sock = std::make_shared<tcp::socket>(ex);
  auto timer = std::make_shared<net::steady_timer>(ex);
  sock->open(local.protocol(), ec);
  if (!ec) sock->bind(tcp::endpoint(local.address(), 0), ec);
  if (ec) co_return out;
  timer->expires_after(timeout);
  timer->async_wait([sock](error_code e) {
    if (!e) {
      error_code ignored;
      sock->close(ignored);
    }
  });
  co_await sock->async_connect(tcp::endpoint(peer.address(), ident_port),
                               net::redirect_error(net::use_awaitable, ec));
  std::string reply;
  if (!ec) {
    const std::string q = ident_query(peer.port(), local.port());
    co_await net::async_write(*sock, net::buffer(q), net::redirect_error(net::use_awaitable, ec));
  }
  if (!ec) {
    co_await net::async_read_until(*sock, net::dynamic_buffer(reply, kMaxReply), '\n',
                                   net::redirect_error(net::use_awaitable, ec));
  }
  timer->cancel();
  sock->close(ec);
  const std::size_t nl = reply.find('\n');
  if (nl == std::string::npos) co_return out;
  const IdentReply r = parse_ident_reply(std::string_view(reply).substr(0, nl), peer.port(), local.port());
  if (!r.ok) co_return out;
  out.user = r.user;
  out.result = r.user == claimed ? IdentResult::Ok : IdentResult::Mismatch;
  co_return out;
}

}  // namespace diode::sockd

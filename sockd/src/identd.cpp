#include "diode/sockd/identd.hpp"

#include <memory>

namespace diode::sockd {

namespace {

using boost::system::error_code;
using tcp = net::ip::tcp;

constexpr std::size_t kMaxReply = 1000;  // RFC 1413 §6: replies are at most 1000 characters

}  // namespace

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

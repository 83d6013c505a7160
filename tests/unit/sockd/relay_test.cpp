// The splice relay over real loopback sockets, in one io_context.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "diode/sockd/relay.hpp"

using namespace diode::sockd;
using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

struct Pair {
  tcp::socket a;
  tcp::socket b;
};

// Two connected loopback sockets (port 0: the kernel picks).
Pair make_pair(net::io_context& io) {
  tcp::acceptor acc(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
  tcp::socket a(io);
  a.connect(acc.local_endpoint());
  tcp::socket b = acc.accept();
  return {std::move(a), std::move(b)};
}

std::string pattern(std::size_t n, char seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + static_cast<char>(i % 251));
  return s;
}

// Writes `data`, then half-closes, then reads everything until EOF.
net::awaitable<void> talk(tcp::socket& s, std::string data, std::string& received) {
  error_code ec;
  co_await net::async_write(s, net::buffer(data), net::redirect_error(net::use_awaitable, ec));
  REQUIRE_FALSE(ec);
  s.shutdown(tcp::socket::shutdown_send, ec);
  char buf[8192];
  for (;;) {
    std::size_t n = co_await s.async_read_some(net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
    if (ec) break;
    received.append(buf, n);
  }
  CHECK(ec == net::error::eof);
}

struct Run {
  std::optional<RelayResult> result;
  std::string client_got;
  std::string target_got;
};

Run run_both_ways(RelayOptions opt, std::size_t up_bytes, std::size_t down_bytes) {
  net::io_context io;
  PipePool pool;
  auto [client_app, relay_client_side] = make_pair(io);
  auto [relay_target_side, target_app] = make_pair(io);
  Run run;
  net::co_spawn(io, relay(std::move(relay_client_side), std::move(relay_target_side), pool, opt),
                [&](std::exception_ptr e, RelayResult r) {
                  REQUIRE_FALSE(e);
                  run.result = r;
                });
  net::co_spawn(io, talk(client_app, pattern(up_bytes, 'a'), run.client_got), net::detached);
  net::co_spawn(io, talk(target_app, pattern(down_bytes, 'A'), run.target_got), net::detached);
  io.run_for(20s);
  CHECK(pool.idle() == pool.created());  // every pipe came back
  return run;
}

}  // namespace

TEST_CASE("relay copies both ways and passes half-closes on", "[sockd][relay]") {
  for (bool splice : {true, false}) {
    RelayOptions opt;
    opt.use_splice = splice;
    const std::size_t up = 3 * 1024 * 1024 + 17;
    const std::size_t down = 1024 * 1024 + 3;
    auto run = run_both_ways(opt, up, down);
    INFO("splice=" << splice);
    REQUIRE(run.result);
    CHECK(run.result->end == RelayEnd::Eof);
    CHECK(run.result->up == up);
    CHECK(run.result->down == down);
    CHECK(run.target_got == pattern(up, 'a'));
    CHECK(run.client_got == pattern(down, 'A'));
  }
}

// Messages go through one at a time, each answered before the next: small
// ones by recv/send, ones that fill the small buffer by splice (or, without
// splice, the bulk copy), and the direction comes back to small reads after
// each burst. Every byte arrives, in order, and every pipe comes back.
TEST_CASE("relay: question and answer of every size, small and bulk, in turn", "[sockd][relay]") {
  const std::vector<std::size_t> sizes{1, 64, 1023, 1024, 1025, 5000, 64, 300000, 2, 70000, 1};
  std::size_t total = 0;
  for (std::size_t n : sizes) total += n;
  for (bool splice : {true, false}) {
    INFO("splice=" << splice);
    net::io_context io;
    PipePool pool;
    auto [client_app, relay_client_side] = make_pair(io);
    auto [relay_target_side, target_app] = make_pair(io);
    RelayOptions opt;
    opt.use_splice = splice;
    std::optional<RelayResult> result;
    net::co_spawn(io, relay(std::move(relay_client_side), std::move(relay_target_side), pool, opt),
                  [&](std::exception_ptr, RelayResult r) { result = r; });
    std::size_t answered = 0;
    bool client_saw_eof = false;
    // The target answers each question with as many bytes of its own.
    net::co_spawn(io, [&]() -> net::awaitable<void> {
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        std::string q(sizes[i], '\0');
        co_await net::async_read(target_app, net::buffer(q), net::use_awaitable);
        CHECK(q == pattern(sizes[i], static_cast<char>('a' + i)));
        co_await net::async_write(target_app, net::buffer(pattern(sizes[i], static_cast<char>('A' + i))),
                                  net::use_awaitable);
      }
      target_app.shutdown(tcp::socket::shutdown_send);
    }, net::detached);
    net::co_spawn(io, [&]() -> net::awaitable<void> {
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        co_await net::async_write(client_app, net::buffer(pattern(sizes[i], static_cast<char>('a' + i))),
                                  net::use_awaitable);
        std::string a(sizes[i], '\0');
        co_await net::async_read(client_app, net::buffer(a), net::use_awaitable);
        CHECK(a == pattern(sizes[i], static_cast<char>('A' + i)));
        ++answered;
      }
      client_app.shutdown(tcp::socket::shutdown_send);
      char c;
      error_code ec;
      co_await client_app.async_read_some(net::buffer(&c, 1), net::redirect_error(net::use_awaitable, ec));
      client_saw_eof = ec == net::error::eof;
    }, net::detached);
    io.run_for(20s);
    CHECK(answered == sizes.size());
    CHECK(client_saw_eof);
    REQUIRE(result);
    CHECK(result->end == RelayEnd::Eof);
    CHECK(result->up == total);
    CHECK(result->down == total);
    CHECK(pool.idle() == pool.created());
    // Bulk went by splice (300000 bytes in one message), and only with it.
    CHECK((pool.created() > 0) == splice);
  }
}

TEST_CASE("relay: an empty session ends cleanly", "[sockd][relay]") {
  auto run = run_both_ways({}, 0, 0);
  REQUIRE(run.result);
  CHECK(run.result->end == RelayEnd::Eof);
  CHECK(run.result->up == 0);
  CHECK(run.result->down == 0);
}

TEST_CASE("relay: the target closes first, the client still gets every byte", "[sockd][relay]") {
  net::io_context io;
  PipePool pool;
  auto [client_app, relay_client_side] = make_pair(io);
  auto [relay_target_side, target_app] = make_pair(io);
  const std::string reply = pattern(200000, 'x');
  std::optional<RelayResult> result;
  net::co_spawn(io, relay(std::move(relay_client_side), std::move(relay_target_side), pool, {}),
                [&](std::exception_ptr, RelayResult r) { result = r; });
  // The client asks and keeps its side open; the target reads the request,
  // answers with more than the socket buffers hold, and closes at once.
  const std::string request = "GET / HTTP/1.0\r\n\r\n";
  net::write(client_app, net::buffer(request));
  std::string got;
  net::co_spawn(io, [&]() -> net::awaitable<void> {
    std::string req(request.size(), '\0');
    co_await net::async_read(target_app, net::buffer(req), net::use_awaitable);
    CHECK(req == request);
    co_await net::async_write(target_app, net::buffer(reply), net::use_awaitable);
    target_app.close();
  }, net::detached);
  net::co_spawn(io, [&]() -> net::awaitable<void> {
    char buf[4096];
    error_code ec;
    for (;;) {
      std::size_t n = co_await client_app.async_read_some(net::buffer(buf), net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
      got.append(buf, n);
    }
    CHECK(ec == net::error::eof);
    client_app.close();
  }, net::detached);
  io.run_for(10s);
  REQUIRE(result);
  CHECK(got == reply);
  CHECK(result->down == reply.size());
}

TEST_CASE("relay: an idle session ends at the idle timeout and holds no pipe", "[sockd][relay]") {
  net::io_context io;
  PipePool pool;
  auto [client_app, relay_client_side] = make_pair(io);
  auto [relay_target_side, target_app] = make_pair(io);
  RelayOptions opt;
  opt.idle_timeout = 200ms;
  std::optional<RelayResult> result;
  const auto start = std::chrono::steady_clock::now();
  net::co_spawn(io, relay(std::move(relay_client_side), std::move(relay_target_side), pool, opt),
                [&](std::exception_ptr, RelayResult r) { result = r; });
  io.run_for(100ms);
  CHECK_FALSE(result);
  CHECK(pool.idle() == pool.created());  // idle: no pipe held
  io.run_for(5s);
  REQUIRE(result);
  CHECK(result->end == RelayEnd::Idle);
  CHECK(std::chrono::steady_clock::now() - start >= 200ms);
  // The relay closed both of its sockets: the applications see EOF.
  char c;
  error_code ec;
  client_app.read_some(net::buffer(&c, 1), ec);
  CHECK(ec == net::error::eof);
  target_app.read_some(net::buffer(&c, 1), ec);
  CHECK(ec == net::error::eof);
}

TEST_CASE("relay: a reset from the client ends the session as a client error", "[sockd][relay]") {
  net::io_context io;
  PipePool pool;
  auto [client_app, relay_client_side] = make_pair(io);
  auto [relay_target_side, target_app] = make_pair(io);
  std::optional<RelayResult> result;
  net::co_spawn(io, relay(std::move(relay_client_side), std::move(relay_target_side), pool, {}),
                [&](std::exception_ptr, RelayResult r) { result = r; });
  io.run_for(50ms);
  client_app.set_option(net::socket_base::linger(true, 0));  // close → RST
  client_app.close();
  io.run_for(5s);
  REQUIRE(result);
  CHECK(result->end == RelayEnd::ClientError);
}

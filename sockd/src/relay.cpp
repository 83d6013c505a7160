#include "diode/sockd/relay.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace diode::sockd {

namespace {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

// State the two pump halves and the watchdog share; lives until the last of
// them is done.
struct Tunnel {
  Tunnel(tcp::socket c, tcp::socket t, PipePool& p, RelayOptions o)
      : client(std::move(c)), target(std::move(t)), timer(client.get_executor()), pool(p),
        options(o) {}

  tcp::socket client;
  tcp::socket target;
  net::steady_timer timer;  // idle watchdog, and the "both halves done" signal
  PipePool& pool;
  RelayOptions options;
  Clock::time_point last_activity = Clock::now();
  RelayResult result;
  int running = 2;
  bool closed = false;
  bool failed = false;

  // The first failure is the cause; later ones are its consequences.
  void record(RelayEnd why) {
    if (failed) return;
    failed = true;
    result.end = why;
  }

  // Ends the tunnel at once, for a reason other than two clean half-closes.
  void close(RelayEnd why) {
    if (closed) return;
    closed = true;
    record(why);
    error_code ignored;
    client.close(ignored);
    target.close(ignored);
    timer.cancel();
  }

  void half_done() {
    if (--running == 0) timer.cancel();
  }
};

bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

enum class Step : std::uint8_t { Ok, Eof, Stop };

// Moves bytes one way by copying through a buffer: the fallback when no
// pipe can be had (descriptor limit reached) or splice is turned off.
net::awaitable<Step> copy_once(Tunnel& t, tcp::socket& from, tcp::socket& to, std::uint64_t& count,
                               RelayEnd from_err, RelayEnd to_err) {
  constexpr std::size_t kSize = 16 * 1024;
  std::unique_ptr<char[]> buf(new char[kSize]);
  error_code ec;
  const std::size_t n = co_await from.async_read_some(net::buffer(buf.get(), kSize),
                                                      net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    if (ec == net::error::eof) co_return Step::Eof;
    t.close(from_err);
    co_return Step::Stop;
  }
  co_await net::async_write(to, net::buffer(buf.get(), n), net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    t.record(to_err);  // as in the splice path: the other direction drains
    co_return Step::Stop;
  }
  count += n;
  t.last_activity = Clock::now();
  co_return Step::Ok;
}

// One direction. Returns normally on EOF after passing the half-close on.
net::awaitable<void> pump(std::shared_ptr<Tunnel> t, bool upstream) {
  tcp::socket& from = upstream ? t->client : t->target;
  tcp::socket& to = upstream ? t->target : t->client;
  std::uint64_t& count = upstream ? t->result.up : t->result.down;
  const RelayEnd from_err = upstream ? RelayEnd::ClientError : RelayEnd::TargetError;
  const RelayEnd to_err = upstream ? RelayEnd::TargetError : RelayEnd::ClientError;
  const int in = from.native_handle();
  const int out = to.native_handle();
  error_code ec;
  bool eof = false;

  while (!t->closed) {
    PipePool::Pipe pipe{};
    if (t->options.use_splice) pipe = t->pool.get();
    if (pipe.read_fd < 0) {
      const Step step = co_await copy_once(*t, from, to, count, from_err, to_err);
      if (step == Step::Ok) continue;
      eof = step == Step::Eof;
      break;
    }
    // Optimistic: try first, wait only when nothing is there. Read no
    // more than the pipe can take without blocking.
    const ssize_t n = ::splice(in, nullptr, pipe.write_fd, nullptr, t->options.chunk,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) {
      t->pool.put(pipe);
      eof = true;
      break;
    }
    if (n < 0) {
      const int e = errno;
      t->pool.put(pipe);
      if (would_block(e)) {
        co_await from.async_wait(tcp::socket::wait_read, net::redirect_error(net::use_awaitable, ec));
        if (ec) {
          t->close(t->closed ? t->result.end : RelayEnd::Stopped);
          break;
        }
        continue;
      }
      if (e == EINTR) continue;
      t->close(from_err);
      break;
    }
    // Drain the pipe completely before reading again: the pipe goes back
    // to the pool empty, and no byte is left behind if the source closes.
    std::size_t pending = static_cast<std::size_t>(n);
    bool failed = false;
    while (pending > 0) {
      const ssize_t m = ::splice(pipe.read_fd, nullptr, out, nullptr, pending,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m > 0) {
        pending -= static_cast<std::size_t>(m);
        continue;
      }
      const int e = errno;
      if (m < 0 && would_block(e)) {
        co_await to.async_wait(tcp::socket::wait_write, net::redirect_error(net::use_awaitable, ec));
        if (!ec) continue;
      } else if (m < 0 && e == EINTR) {
        continue;
      }
      failed = true;
      break;
    }
    if (failed) {
      // `to` takes no more bytes, but what it sent before going away may
      // still sit in our receive queue: let the other direction deliver it
      // (it ends on its own EOF or reset) instead of closing everything.
      PipePool::discard(pipe);
      t->record(to_err);
      break;
    }
    t->pool.put(pipe);
    count += static_cast<std::uint64_t>(n);
    t->last_activity = Clock::now();
  }

  if (eof && !t->closed && (t->running > 1 || t->failed)) {
    // Pass the half-close on; the other direction may still carry bytes.
    // The last direction to end after a clean one needs no shutdown: both
    // sockets are closed next, each read to its end, so close() sends the FIN.
    to.shutdown(tcp::socket::shutdown_send, ec);
  }
  t->half_done();
}

}  // namespace

PipePool::~PipePool() {
  for (auto p : idle_) discard(p);
}

PipePool::Pipe PipePool::get() {
  if (!idle_.empty()) {
    Pipe p = idle_.back();
    idle_.pop_back();
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return {};
  ++created_;
  return {fds[0], fds[1]};
}

void PipePool::put(Pipe p) {
  if (idle_.size() < max_idle_) {
    idle_.push_back(p);
  } else {
    discard(p);
  }
}

void PipePool::discard(Pipe p) {
  if (p.read_fd >= 0) ::close(p.read_fd);
  if (p.write_fd >= 0) ::close(p.write_fd);
}

std::string_view to_string(RelayEnd e) {
  switch (e) {
    case RelayEnd::Eof: return "eof";
    case RelayEnd::Idle: return "idle";
    case RelayEnd::ClientError: return "client_error";
    case RelayEnd::TargetError: return "target_error";
    case RelayEnd::Stopped: return "stopped";
  }
  return "?";
}

net::awaitable<RelayResult> relay(tcp::socket client, tcp::socket target, PipePool& pool,
                                  RelayOptions options) {
  auto ex = co_await net::this_coro::executor;
  error_code ec;
  // splice() needs O_NONBLOCK on the sockets themselves. Asio has set it
  // already on a socket it has read from or connected: no system call then.
  for (tcp::socket* s : {&client, &target}) {
    if (!s->non_blocking() && !s->native_non_blocking()) s->native_non_blocking(true, ec);
  }
  auto t = std::make_shared<Tunnel>(std::move(client), std::move(target), pool, options);
  net::co_spawn(ex, pump(t, true), net::detached);
  net::co_spawn(ex, pump(t, false), net::detached);

  // The watchdog: wakes at the idle deadline, or when both halves are done.
  while (t->running > 0) {
    // Once closed, only the halves' completion wakes us (half_done cancels).
    t->timer.expires_at(t->closed ? Clock::time_point::max()
                                  : t->last_activity + t->options.idle_timeout);
    co_await t->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (t->running > 0 && !t->closed &&
        Clock::now() >= t->last_activity + t->options.idle_timeout) {
      t->close(RelayEnd::Idle);
    }
  }
  t->client.close(ec);
  t->target.close(ec);
  co_return t->result;
}

}  // namespace diode::sockd

#include "diode/sockd/relay.hpp"

#include "reactor_wait.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace diode::sockd {

namespace {

using Clock = std::chrono::steady_clock;
using boost::system::error_code;

// A direction starts on plain recv and send through the thread's buffer: a
// small message costs one of each, and no memory of the session's own. A
// read that fills the buffer shows bulk: the direction moves to splice
// (bytes never enter user space) for the rest of the session, as the floor
// relay of ../shared/bench does. Waits come after an EAGAIN only, and cost
// no system call (reactor_wait.hpp).
constexpr std::size_t kReadChunk = 64 * 1024;

std::uint8_t* thread_buffer() {
  thread_local std::unique_ptr<std::uint8_t[]> buf;
  if (!buf) buf.reset(new std::uint8_t[kReadChunk]);
  return buf.get();
}

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

// Writes bytes [p, p + n) to `to`, waiting for room when its buffer is full.
// The bytes may live in the thread's buffer, which is not ours across a
// wait: what is left is copied out first. false: `to` failed (recorded) or
// the tunnel was closed meanwhile (no raw descriptor may be used then).
net::awaitable<bool> send_all(Tunnel& t, tcp::socket& to, const std::uint8_t* p, std::size_t n,
                              RelayEnd to_err) {
  const int out = to.native_handle();
  std::vector<std::uint8_t> rest;
  while (n > 0) {
    const ssize_t m = ::send(out, p, n, MSG_NOSIGNAL);
    if (m > 0) {
      p += m;
      n -= static_cast<std::size_t>(m);
      continue;
    }
    const int e = errno;
    if (m < 0 && e == EINTR) continue;
    if (m < 0 && would_block(e)) {
      if (rest.empty()) {
        rest.assign(p, p + n);
        p = rest.data();
      }
      error_code ec;
      co_await async_wait_writable(to, net::redirect_error(net::use_awaitable, ec));
      if (ec || t.closed) co_return false;
      continue;
    }
    // `to` takes no more bytes, but what it sent before going away may
    // still sit in our receive queue: let the other direction deliver it
    // (it ends on its own EOF or reset) instead of closing everything.
    t.record(to_err);
    co_return false;
  }
  co_return true;
}

enum class Step : std::uint8_t { Moved, Drained, Eof, Stop, NoPipe };

// One splice round, source → pipe → `to`; the pipe is drained completely
// before the next round, so it goes back to the pool empty and no byte is
// left behind if the source closes.
net::awaitable<Step> splice_once(Tunnel& t, tcp::socket& from, tcp::socket& to,
                                 std::uint64_t& count, RelayEnd from_err, RelayEnd to_err) {
  PipePool::Pipe pipe = t.pool.get();
  if (pipe.read_fd < 0) co_return Step::NoPipe;
  const int in = from.native_handle();
  const int out = to.native_handle();
  // Read no more than the pipe can take without blocking.
  ssize_t n = 0;
  do {
    n = ::splice(in, nullptr, pipe.write_fd, nullptr, t.options.chunk,
                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    const int e = errno;
    t.pool.put(pipe);
    if (n == 0) co_return Step::Eof;
    if (would_block(e)) co_return Step::Drained;
    t.close(from_err);
    co_return Step::Stop;
  }
  std::size_t pending = static_cast<std::size_t>(n);
  error_code ec;
  while (pending > 0) {
    const ssize_t m = ::splice(pipe.read_fd, nullptr, out, nullptr, pending,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (m > 0) {
      pending -= static_cast<std::size_t>(m);
      continue;
    }
    const int e = errno;
    if (m < 0 && e == EINTR) continue;
    if (m < 0 && would_block(e)) {
      co_await async_wait_writable(to, net::redirect_error(net::use_awaitable, ec));
      if (!ec && !t.closed) continue;
    } else {
      t.record(to_err);  // as in send_all: the other direction may still deliver
    }
    PipePool::discard(pipe);
    co_return Step::Stop;
  }
  t.pool.put(pipe);
  count += static_cast<std::uint64_t>(n);
  t.last_activity = Clock::now();
  co_return Step::Moved;
}

// One direction. Returns normally on EOF after passing the half-close on.
net::awaitable<void> pump(std::shared_ptr<Tunnel> t, bool upstream) {
  tcp::socket& from = upstream ? t->client : t->target;
  tcp::socket& to = upstream ? t->target : t->client;
  std::uint64_t& count = upstream ? t->result.up : t->result.down;
  const RelayEnd from_err = upstream ? RelayEnd::ClientError : RelayEnd::TargetError;
  const RelayEnd to_err = upstream ? RelayEnd::TargetError : RelayEnd::ClientError;
  const int in = from.native_handle();
  error_code ec;
  bool eof = false;
  bool bulk = false;

  // Every descriptor use follows a check of t->closed: a closed tunnel's
  // descriptors may already belong to someone else.
  while (!t->closed) {
    bool drained = false;
    if (bulk) {
      const Step step = co_await splice_once(*t, from, to, count, from_err, to_err);
      if (step == Step::Eof) eof = true;
      if (step == Step::Eof || step == Step::Stop) break;
      if (step == Step::NoPipe) bulk = false;  // descriptor limit: copy this round
      drained = step == Step::Drained;
    }
    if (!bulk) {
      std::uint8_t* buf = thread_buffer();
      const ssize_t n = ::recv(in, buf, kReadChunk, 0);
      if (n > 0) {
        if (!co_await send_all(*t, to, buf, static_cast<std::size_t>(n), to_err)) break;
        count += static_cast<std::uint64_t>(n);
        t->last_activity = Clock::now();
        bulk = static_cast<std::size_t>(n) == kReadChunk && t->options.use_splice;
        continue;
      }
      if (n == 0) {
        eof = true;
        break;
      }
      const int e = errno;
      if (e == EINTR) continue;
      if (!would_block(e)) {
        t->close(from_err);
        break;
      }
      drained = true;
    }
    if (drained) {
      co_await async_wait_readable(from, net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        // Aborted: the tunnel was closed (idle, the other half) or stopped.
        t->close(t->closed ? t->result.end : RelayEnd::Stopped);
        break;
      }
    }
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
  if (pipe_size_ > 0) ::fcntl(fds[1], F_SETPIPE_SZ, pipe_size_);
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
  // splice() needs O_NONBLOCK on the sockets themselves. sockd's own
  // sockets are made non-blocking (accept4, socket with SOCK_NONBLOCK) and
  // Asio knows it; Asio has set it on any socket it has read from: no
  // system call then.
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

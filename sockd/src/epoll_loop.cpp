// The epoll session path (epoll_loop.hpp). One thread, one epoll instance,
// no locks: the thread alone touches its sessions; what it shares with the
// rest of the daemon goes through Server::Impl (the limits, the policy in
// force, the counters, the log) exactly as the io_uring loop does.
//
// A session's course, in the fewest system calls (the floor relay of
// ../shared/bench, floorsocks.c, is the model):
//   accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) → admit (limits) → recv at once
//   (the greeting is usually there) → the ServerHandshake fed as on the
//   other paths, its replies sent with send(2) → one EPOLL_CTL_ADD of the
//   client (IN | OUT | RDHUP, edge-triggered) only when a read found nothing
//   more to do → the SessionPlan → CONNECT: socket(2) non-blocking, the
//   route's egress, connect(2), one EPOLL_CTL_ADD of the target; its first
//   wake says connected (EPOLLOUT) or failed (EPOLLERR: only then SO_ERROR)
//   → reply (BND from getsockname, as the other paths send) → relay: recv
//   and send through the thread's 64 KiB buffer; a read that fills it moves
//   that direction to splice(2) through a pooled pipe; a send that cannot
//   finish parks the rest in a pipe until the socket is writable again; a
//   short read after the peer's FIN is the end (no extra read) → shutdown(2)
//   passes a half-close on → close(2), which also leaves epoll.
// Deadlines (handshake, connect, idle) are checked by a sweep every tick,
// the wait for events being bounded by the tick.
#include "epoll_loop.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "connect_race.hpp"
#include "fast_session.hpp"

namespace diode::sockd {

namespace {

constexpr std::size_t kBufferSize = 64 * 1024;  // the thread's relay buffer
// Bulk moves through pipes of 1 MiB (fs.pipe-max-size's default), as the
// floor relay's: a quarter of the splice calls of a 64 KiB pipe per byte.
constexpr int kPipeSize = 1024 * 1024;
constexpr std::size_t kSpliceChunk = kPipeSize;  // most bytes asked of one splice
constexpr int kEvents = 256;                      // events taken per epoll_wait
constexpr int kAcceptBatch = 16;  // accepts per listener wake (level-triggered: the rest next turn)
constexpr auto kTick = std::chrono::milliseconds{100};
constexpr auto kAcceptBackoff = std::chrono::milliseconds{100};
constexpr std::uint64_t kTarget = 1;    // tag: the event is the target's socket
constexpr std::uint64_t kListener = 2;  // tag: a listening socket
constexpr std::uint64_t kTagMask = 7;
constexpr unsigned kTagBits = 3;
// A session's event: its slot in bits 3-31 (State::table), the slot's
// generation in bits 32-63.
constexpr std::uint64_t kSlotMask = 0xFFFFFFFFULL & ~kTagMask;
constexpr std::uint32_t kSessionEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

using Ms = std::chrono::milliseconds;

bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

struct alignas(8) Listener : fast::FastListener {
  Clock::time_point retry_at{};  // after EMFILE and the like: watched again then
  bool watched = false;
};

// One direction of a relay: d = 0 client → target (reads fd[0]), d = 1 back.
struct Half {
  PipePool::Pipe pipe;     // held only while bytes are in it
  std::uint32_t inpipe = 0;  // bytes parked in the pipe
  std::vector<std::uint8_t> spill;  // what no pipe could take (a pipe limit): after the pipe's
  std::size_t spill_off = 0;
  bool splice = false;       // bulk: source → pipe → destination
  bool blocked = false;      // waiting for the destination to take the pipe's bytes
  bool eof = false, done = false;
};

struct alignas(8) Sess : fast::FastSession, Recycled<Sess> {
  enum class Phase : std::uint8_t { Handshake, Connect, Relay };
  int fd[2] = {-1, -1};  // client, target
  Phase phase = Phase::Handshake;
  bool watched = false;  // the client is in epoll
  bool dead = false;     // ended in this batch; freed after it
  bool cpend = false;    // the client may have bytes or a FIN not read yet
  bool rdhup[2] = {false, false};
  Clock::time_point last_activity;
  Half h[2];
  Sess* prev = nullptr;
  Sess* next = nullptr;
  std::uint32_t entry = 0;  // in State::table, which its epoll events name
  std::uint32_t gen = 0;    // the entry's generation when it was given
};

}  // namespace

struct EpollLoop::State {
  // Takes the worker's listening sockets out of its io_context (before any
  // thread runs), as the ring does.
  State(Server::Impl& s, RelayWorker& w) : server(s), worker(w) {
    for (auto& [acc, iface] : worker.acceptors) {
      auto l = std::make_unique<Listener>();
      fast::take_listener(*acc, iface, *l);
      listeners.push_back(std::move(l));
    }
  }

  ~State() { teardown(); }

  Server::Impl& server;
  RelayWorker& worker;
  int ep = -1;
  std::unique_ptr<std::uint8_t[]> buf;
  // This thread's (the worker's own is its io_context's). Few kept idle: a
  // 1 MiB pipe counts 256 pages against the user's fs.pipe-user-pages-soft,
  // beyond which the kernel makes new pipes small (deliver() copes).
  PipePool pool{16, kPipeSize};
  std::vector<std::unique_ptr<Listener>> listeners;
  Sess* head = nullptr;   // every live session
  Sess* zombies = nullptr;  // ended in this batch of events
  // A session's epoll events name its slot here and the slot's generation,
  // not its address: a socket closed without EPOLL_CTL_DEL stays in epoll
  // while another process still holds it (a hook's child between its fork
  // and its closefrom), so its events may come after the session is gone;
  // they then meet an empty slot or a newer generation and are dropped.
  std::vector<Sess*> table;
  std::vector<std::uint32_t> gens;
  std::vector<std::uint32_t> free_slots;
  bool stopping = false;
  bool ending = false;
  // Read once per turn of the loop, when the wait returns: every time
  // stamp of that turn's events (the clock is not free in a guest).
  Clock::time_point now{};

  // epoll could not be had: the listening sockets go back to the worker's
  // acceptors, whose Asio accept loops serve them instead.
  void give_back_listeners() { fast::give_back_listeners(server, worker, listeners); }

  bool setup() {
    ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
      server.log.event(platform::LogLevel::Error, "io_error",
                       {{"error", errno_text("epoll_create1", errno)}, {"fallback", "asio"}});
      return false;
    }
    buf.reset(new std::uint8_t[kBufferSize]);
    for (auto& l : listeners) {
      // accept4() must not block: another thread may take the connection.
      const int fl = ::fcntl(l->fd, F_GETFL);
      if (fl >= 0 && (fl & O_NONBLOCK) == 0) ::fcntl(l->fd, F_SETFL, fl | O_NONBLOCK);
      watch_listener(*l);
    }
    return true;
  }

  // On the loop's thread when it ran. Sessions still here at exit go
  // unlogged, as on the other paths.
  void teardown() {
    free_zombies();
    while (head != nullptr) {
      Sess* s = head;
      unlink(s);
      close_session_fds(s);
      delete s;
    }
    for (auto& l : listeners) {
      if (l->fd >= 0) ::close(l->fd);
      l->fd = -1;
    }
    if (ep >= 0) ::close(ep);
    ep = -1;
  }

  void link(Sess* s) { fast::list_push(head, s); }
  void unlink(Sess* s) { fast::list_remove(head, s); }

  void free_zombies() {
    while (zombies != nullptr) {
      Sess* z = zombies;
      zombies = z->next;
      release_slot(z);
      delete z;
    }
  }

  void assign_slot(Sess* s) {
    if (free_slots.empty()) {
      s->entry = static_cast<std::uint32_t>(table.size());
      table.push_back(s);
      gens.push_back(0);
    } else {
      s->entry = free_slots.back();
      free_slots.pop_back();
      table[s->entry] = s;
    }
    s->gen = gens[s->entry];
  }

  void release_slot(Sess* s) {
    table[s->entry] = nullptr;
    ++gens[s->entry];
    free_slots.push_back(s->entry);
  }

  // The session an event names, or null for one already gone.
  Sess* session_of(std::uint64_t u) const {
    const auto slot = static_cast<std::size_t>((u & kSlotMask) >> kTagBits);
    if (slot >= table.size() || table[slot] == nullptr) return nullptr;
    return gens[slot] == static_cast<std::uint32_t>(u >> 32) ? table[slot] : nullptr;
  }

  // --- accept

  // Level-triggered, and EXCLUSIVE: an inherited listener is one socket
  // shared by every thread, and one connection should wake one of them.
  void watch_listener(Listener& l) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.u64 = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&l)) | kListener;
    l.watched = ::epoll_ctl(ep, EPOLL_CTL_ADD, l.fd, &ev) == 0;
    if (!l.watched && errno == EINVAL) {  // a kernel before 4.5: every thread wakes
      ev.events = EPOLLIN;
      l.watched = ::epoll_ctl(ep, EPOLL_CTL_ADD, l.fd, &ev) == 0;
    }
    if (!l.watched) {
      server.log.event(platform::LogLevel::Error, "io_error",
                       {{"error", errno_text("epoll_ctl", errno)},
                        {"listen", l.local.to_string()}});
    }
  }

  // An inherited listener is a duplicate: close() alone would leave it in
  // epoll (the socket lives on in the other threads).
  void unwatch_listener(Listener& l) {
    if (l.watched) ::epoll_ctl(ep, EPOLL_CTL_DEL, l.fd, nullptr);
    l.watched = false;
  }

  void on_accept(Listener& l) {
    for (int k = 0; k < kAcceptBatch; ++k) {
      if (stopping || l.fd < 0) return;
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      // The peer's address from accept4() itself: no getpeername per session.
      const int fd = ::accept4(l.fd, reinterpret_cast<sockaddr*>(&ss), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        if (would_block(e)) return;
        // A connection reset while queued: take the next one.
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
        ++server.accept_errors;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
          // The connection stays queued: watching it again at once would spin.
          server.log.event(platform::LogLevel::Warning, "accept_error",
                           {{"error", std::strerror(e)},
                            {"count", std::to_string(server.accept_errors.load())}});
          unwatch_listener(l);
          l.retry_at = now + kAcceptBackoff;
        }
        return;
      }
      start_session(fd, fast::from_sockaddr(ss), l);
    }
  }

  void stop_accepting() {
    stopping = true;
    for (auto& l : listeners) {
      if (l->fd < 0) continue;
      unwatch_listener(*l);
      ::close(l->fd);
      l->fd = -1;
    }
  }

  void start_session(int fd, const Endpoint& client, Listener& l) {
    auto* s = new Sess;
    if (!fast::admit(server, worker, fd, client, l, *s, now)) {
      ::close(fd);
      delete s;
      return;
    }
    s->fd[0] = fd;
    link(s);
    assign_slot(s);
    hs_read(s);
  }

  bool watch(Sess* s, int d) {
    epoll_event ev{};
    ev.events = kSessionEvents;
    ev.data.u64 = (static_cast<std::uint64_t>(s->gen) << 32) |
                  (static_cast<std::uint64_t>(s->entry) << kTagBits) | (d == 1 ? kTarget : 0);
    return ::epoll_ctl(ep, EPOLL_CTL_ADD, s->fd[d], &ev) == 0;
  }

  // --- handshake

  // Sends what was gathered in `out` to the client; the few bytes of a
  // handshake reply always fit an idle socket's buffer.
  bool send_out(Sess* s) {
    if (s->out_len == 0) return true;
    ssize_t n = 0;
    do {
      n = ::send(s->fd[0], s->out.data(), s->out_len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    const bool ok = n == static_cast<ssize_t>(s->out_len);
    s->out_len = 0;
    return ok;
  }

  // Reads and feeds the handshake until the socket has nothing more or the
  // session goes on (connect, hand-off, end). It reads into the thread's
  // relay buffer, as much as the Asio path would read at once: the machine
  // keeps what it needs of a partial message, and `early` the bytes after
  // the request; a session holds no read buffer of its own.
  void hs_read(Sess* s) {
    constexpr std::size_t kReadSize = HandshakeBuffers::kReadSize;
    for (;;) {
      const ssize_t n = ::recv(s->fd[0], buf.get(), kReadSize, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && would_block(errno)) {
        // Nothing yet (or nothing more): wait for the next edge.
        if (!s->watched && !(s->watched = watch(s, 0))) {
          s->rec.reason = "client closed during handshake";
          end_session(s);
        }
        return;
      }
      if (n <= 0) {
        s->rec.reason = "client closed during handshake";
        end_session(s);
        return;
      }
      const bool full = static_cast<std::size_t>(n) == kReadSize;
      std::size_t off = 0;
      const std::span<const std::uint8_t> in(buf.get(), static_cast<std::size_t>(n));
      switch (fast::feed(worker, *s, in, now, off)) {
        case fast::HsNext::NeedMore:
          if (!send_out(s)) {
            s->rec.reason = "client closed during handshake";
            end_session(s);
            return;
          }
          // A short read drained the socket (edge-triggered: the next bytes
          // raise a new edge), unless the FIN came with it.
          if (full || s->rdhup[0]) continue;
          if (!s->watched && !(s->watched = watch(s, 0))) {
            s->rec.reason = "client closed during handshake";
            end_session(s);
          }
          return;
        case fast::HsNext::HandOff:
          // The bytes not fed yet went with the machine (hx->in); what was
          // fed may have held a password: it does not stay in the buffer.
          proto::wipe_except({buf.get(), static_cast<std::size_t>(n)}, 0, 0);
          send_out(s);  // a failure is for the Asio path to find
          hand_off(s);
          return;
        case fast::HsNext::Final:
          send_out(s);
          end_session(s);
          return;
        case fast::HsNext::Connect:
          // A full read may have left early bytes behind: read them once
          // connected. Replies still gathered (a pipelined request's method
          // selection) go out in front of the request's reply.
          s->cpend = full;
          if (!s->watched && !(s->watched = watch(s, 0))) {
            s->rec.reason = "client closed during handshake";
            s->plan.reset();
            end_session(s);
            return;
          }
          start_connect(s);
          return;
      }
    }
  }

  // Gives the session to the Asio path of this worker: out of this epoll
  // first (Asio registers the same socket with its own).
  void hand_off(Sess* s) {
    if (s->watched) ::epoll_ctl(ep, EPOLL_CTL_DEL, s->fd[0], nullptr);
    s->watched = false;
    fast::post_hand_off(server, worker, *s, s->fd[0], true);
    s->fd[0] = -1;
    retire(s);
  }

  // --- connect

  void start_connect(Sess* s) {
    SessionPlan& plan = *s->plan;
    const Candidate& c = plan.candidates().front();
    s->phase = Sess::Phase::Connect;
    s->connect_started = now;
    s->deadline = s->connect_started + s->pol->settings.connect_timeout;
    sockaddr_storage target{};
    socklen_t target_len = 0;
    fast::fill_sockaddr(c.addr, s->port, target, target_len);
    const int fd = ::socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = fd < 0 ? errno : bind_egress(fd, c.check.route, c.addr);
    if (err == 0 &&
        ::connect(fd, reinterpret_cast<const sockaddr*>(&target), target_len) != 0 &&
        errno != EINPROGRESS) {
      err = errno;
    }
    if (err == 0) {
      s->fd[1] = fd;
      if (!watch(s, 1)) {
        err = errno;
        s->fd[1] = -1;
      }
    }
    if (err != 0) {
      if (fd >= 0) ::close(fd);
      plan.connect_failed(0, err, false);
      conclude(s);
    }
    // Connected or refused, the target's first wake says which.
  }

  // Ends the session as the plan decided (Deny, Failed): the reply, the log.
  void conclude(Sess* s) {
    fast::conclude(worker, *s);
    send_out(s);
    end_session(s);
  }

  void on_connect_event(Sess* s, std::uint32_t ev) {
    if ((ev & (EPOLLERR | EPOLLHUP)) != 0) {
      // Only now is the reason asked for.
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(s->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) {
        err = ECONNREFUSED;
      }
      s->plan->connect_failed(0, err, false);
      conclude(s);
      return;
    }
    if ((ev & EPOLLOUT) == 0) return;
    fast::granted(worker, *s, fast::local_of(s->fd[1]), now);
    s->phase = Sess::Phase::Relay;
    s->last_activity = now;
    if (!send_out(s)) {
      kill(s, RelayEnd::ClientError);
      return;
    }
    if (!s->early.empty()) {
      // The client's bytes after its request go first to the target.
      const std::vector<std::uint8_t> early = std::move(s->early);
      s->early.clear();
      std::memcpy(buf.get(), early.data(), early.size());
      if (!deliver(s, 0, early.size())) return;
    }
    if ((s->cpend || s->rdhup[0]) && !s->h[0].blocked && !pump(s, 0)) return;
    if ((ev & (EPOLLIN | EPOLLRDHUP)) != 0) pump(s, 1);
  }

  // --- relay

  void count(Sess* s, int d, std::size_t n) {
    if (n == 0) return;
    (d == 0 ? s->up : s->down) += n;
    s->last_activity = now;
  }

  // Sends buf[0, n) from direction d on; what the destination cannot take
  // now waits in a pipe. False when the session ended.
  bool deliver(Sess* s, int d, std::size_t n) {
    Half& h = s->h[d];
    ssize_t w = 0;
    do {
      w = ::send(s->fd[d ^ 1], buf.get(), n, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (!would_block(errno)) return dest_failed(s, d);
      w = 0;
    }
    count(s, d, static_cast<std::size_t>(w));
    const std::size_t rest = n - static_cast<std::size_t>(w);
    if (rest == 0) return true;
    // Park the rest (at most the buffer: an empty pipe of the default size
    // takes it whole). A pipe the kernel made smaller (the user's pipe
    // pages are over fs.pipe-user-pages-soft), or none at the descriptor
    // limit: what it cannot take waits in memory, after it.
    const std::uint8_t* rest_at = buf.get() + w;
    std::size_t parked = 0;
    if (h.pipe.read_fd < 0) h.pipe = pool.get();
    if (h.pipe.read_fd >= 0) {
      const ssize_t k = ::write(h.pipe.write_fd, rest_at, rest);
      parked = k > 0 ? static_cast<std::size_t>(k) : 0;
      if (parked == 0) {
        pool.put(h.pipe);
        h.pipe = {};
      }
    }
    h.inpipe = static_cast<std::uint32_t>(parked);
    if (parked < rest) {
      h.spill.assign(rest_at + parked, rest_at + rest);
      h.spill_off = 0;
    }
    h.blocked = true;
    return true;
  }

  // Sends direction d's spilled bytes; false while some are left (or on error).
  bool send_spill(Sess* s, int d, bool& alive) {
    Half& h = s->h[d];
    while (h.spill_off < h.spill.size()) {
      const ssize_t w = ::send(s->fd[d ^ 1], h.spill.data() + h.spill_off,
                               h.spill.size() - h.spill_off, MSG_NOSIGNAL);
      if (w < 0) {
        const int e = errno;
        if (e == EINTR) continue;
        if (!would_block(e)) alive = dest_failed(s, d);
        return false;
      }
      count(s, d, static_cast<std::size_t>(w));
      h.spill_off += static_cast<std::size_t>(w);
    }
    std::vector<std::uint8_t>().swap(h.spill);
    h.spill_off = 0;
    return true;
  }

  // The destination of direction d failed: that way takes no more bytes,
  // but what its peer sent before going may still be moving the other way.
  bool dest_failed(Sess* s, int d) {
    Half& h = s->h[d];
    s->record(d == 0 ? RelayEnd::TargetError : RelayEnd::ClientError);
    h.done = true;
    h.blocked = false;
    h.inpipe = 0;
    PipePool::discard(h.pipe);
    h.pipe = {};
    std::vector<std::uint8_t>().swap(h.spill);
    if (s->h[d ^ 1].done) {
      end_session(s);
      return false;
    }
    return true;
  }

  // A direction at EOF with everything sent: pass the half-close on. The
  // last direction to end needs no shutdown: both sockets close next.
  bool half_done(Sess* s, int d) {
    s->h[d].done = true;
    if (s->h[d ^ 1].done) {
      end_session(s);
      return false;
    }
    ::shutdown(s->fd[d ^ 1], SHUT_WR);
    return true;
  }

  // Moves direction d's bytes until its source has none or its destination
  // is full. False when the session ended.
  bool pump(Sess* s, int d) {
    Half& h = s->h[d];
    const int src = s->fd[d];
    const int dst = s->fd[d ^ 1];
    const RelayEnd from_err = d == 0 ? RelayEnd::ClientError : RelayEnd::TargetError;
    for (;;) {
      if (h.done) return true;
      if (h.inpipe > 0) {
        const ssize_t w = ::splice(h.pipe.read_fd, nullptr, dst, nullptr, h.inpipe,
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w < 0) {
          const int e = errno;
          if (e == EINTR) continue;
          if (!would_block(e)) return dest_failed(s, d);
        } else {
          count(s, d, static_cast<std::size_t>(w));
          h.inpipe -= static_cast<std::uint32_t>(w);
        }
        if (h.inpipe > 0) {
          h.blocked = true;  // EPOLLOUT will come
          return true;
        }
        pool.put(h.pipe);  // an idle session holds no pipe
        h.pipe = {};
      }
      if (!h.spill.empty()) {
        bool alive = true;
        if (!send_spill(s, d, alive)) {
          if (alive && !h.done) h.blocked = true;  // EPOLLOUT will come
          return alive;
        }
      }
      h.blocked = false;
      if (h.eof) return half_done(s, d);
      if (h.splice) {
        int e = 0;
        switch (fast::fill_pipe(pool, src, kSpliceChunk, h.pipe, h.inpipe, e)) {
          case fast::Fill::Filled: continue;
          case fast::Fill::NoPipe:  // the descriptor limit: copy this round
            h.splice = false;
            continue;
          case fast::Fill::Eof: h.eof = true; continue;
          case fast::Fill::Empty: return true;
          case fast::Fill::Failed: break;
        }
        kill(s, from_err);
        return false;
      }
      const ssize_t r = ::recv(src, buf.get(), kBufferSize, 0);
      if (r > 0) {
        const bool full = static_cast<std::size_t>(r) == kBufferSize;
        if (full) h.splice = true;  // bulk: bytes no longer enter user space
        if (!deliver(s, d, static_cast<std::size_t>(r))) return false;
        if (h.blocked || h.done) return true;
        if (full) continue;
        // A short read drained the socket; after the FIN it was the last.
        if (s->rdhup[d]) h.eof = true;
        if (h.eof) continue;
        return true;
      }
      if (r == 0) {
        h.eof = true;
        continue;
      }
      const int e = errno;
      if (e == EINTR) continue;
      if (would_block(e)) return true;
      kill(s, from_err);
      return false;
    }
  }

  void on_relay_event(Sess* s, int i, std::uint32_t ev) {
    constexpr std::uint32_t kReadable = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
    constexpr std::uint32_t kWritable = EPOLLOUT | EPOLLHUP | EPOLLERR;
    if (!s->h[i].done && !s->h[i].blocked && (ev & kReadable) != 0 && !pump(s, i)) return;
    if (s->h[i ^ 1].blocked && (ev & kWritable) != 0 && !pump(s, i ^ 1)) return;
    if ((ev & EPOLLERR) != 0 && s->h[i].done && !s->h[i ^ 1].done) {
      // This side is reset after its own half-close: nothing more goes to it.
      kill(s, i == 0 ? RelayEnd::ClientError : RelayEnd::TargetError);
    }
  }

  void on_event(Sess* s, int i, std::uint32_t ev) {
    if (s->dead) return;  // ended earlier in this batch
    if ((ev & EPOLLRDHUP) != 0) s->rdhup[i] = true;
    switch (s->phase) {
      case Sess::Phase::Handshake:
        if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) hs_read(s);
        return;
      case Sess::Phase::Connect:
        if (i == 0) {
          // The client spoke (or left) before the reply: seen once connected.
          if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) s->cpend = true;
          return;
        }
        on_connect_event(s, ev);
        return;
      case Sess::Phase::Relay:
        on_relay_event(s, i, ev);
        return;
    }
  }

  // --- ending

  void close_session_fds(Sess* s) {
    for (int& fd : s->fd) {
      if (fd >= 0) ::close(fd);  // close() also takes it out of epoll
      fd = -1;
    }
    for (Half& h : s->h) {
      if (h.pipe.read_fd >= 0) {
        if (h.inpipe == 0) pool.put(h.pipe);
        else PipePool::discard(h.pipe);
      }
      h.pipe = {};
      h.inpipe = 0;
    }
  }

  // Out of the live list; freed once this batch of events is done (more
  // of its events may be queued in it).
  void retire(Sess* s) {
    s->dead = true;
    unlink(s);
    s->next = zombies;
    zombies = s;
  }

  // Ends the session now: its sockets closed, its line logged, its place
  // in the limits given back.
  void end_session(Sess* s) {
    if (s->dead) return;
    close_session_fds(s);
    fast::finish(server, worker, *s, s->phase == Sess::Phase::Relay, now);
    s->slot.reset();
    retire(s);
  }

  void kill(Sess* s, RelayEnd why) {
    s->record(why);
    end_session(s);
  }

  // --- the tick: deadlines, and the daemon's stop

  void sweep() {
    if (!stopping && server.stopping.load()) stop_accepting();
    if (!stopping) {
      for (auto& l : listeners) {
        if (l->retry_at != Clock::time_point{} && now >= l->retry_at) {
          l->retry_at = {};
          if (!l->watched && l->fd >= 0) watch_listener(*l);
        }
      }
    }
    const bool end_all = !ending && server.rings_ending.load();
    if (end_all) ending = true;
    for (Sess* s = head; s != nullptr;) {
      Sess* next = s->next;
      if (end_all) {
        // The drain is over: end it the way a peer's reset would, so it logs.
        for (int fd : s->fd) {
          if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
        }
      }
      switch (s->phase) {
        case Sess::Phase::Handshake:
          if (now >= s->deadline) {
            s->rec.reason = "handshake timeout";
            end_session(s);
          } else if (end_all) {
            hs_read(s);
          }
          break;
        case Sess::Phase::Connect:
          if (now >= s->deadline || end_all) {
            s->plan->connect_failed(0, now >= s->deadline ? ETIMEDOUT : ECANCELED,
                                    now >= s->deadline);
            conclude(s);
          }
          break;
        case Sess::Phase::Relay:
          if (now >= s->last_activity + s->idle) {
            kill(s, RelayEnd::Idle);
          } else if (end_all) {
            if (pump(s, 0)) pump(s, 1);
          }
          break;
      }
      s = next;
    }
    free_zombies();
  }

  void loop() {
    std::vector<epoll_event> evs(kEvents);
    now = Clock::now();
    worker.loop_wall = std::chrono::system_clock::now();
    auto next_sweep = now + kTick;
    while (!server.rings_stop.load(std::memory_order_relaxed)) {
      const auto left = std::chrono::ceil<Ms>(next_sweep - now);
      const int timeout = static_cast<int>(std::max<Ms::rep>(0, left.count()));
      const int n = ::epoll_wait(ep, evs.data(), kEvents, timeout);
      if (n < 0 && errno != EINTR) {
        server.log.event(platform::LogLevel::Error, "io_error",
                         {{"error", errno_text("epoll_wait", errno)}});
        break;
      }
      now = Clock::now();
      for (int k = 0; k < n; ++k) {
        const std::uint64_t u = evs[static_cast<std::size_t>(k)].data.u64;
        void* p = reinterpret_cast<void*>(static_cast<std::uintptr_t>(u & ~kTagMask));
        if ((u & kTagMask) == kListener) {
          on_accept(*static_cast<Listener*>(p));
        } else if (Sess* s = session_of(u)) {
          on_event(s, (u & kTarget) != 0 ? 1 : 0, evs[static_cast<std::size_t>(k)].events);
        }
      }
      free_zombies();
      if (now >= next_sweep) {
        worker.loop_wall = std::chrono::system_clock::now();
        sweep();
        next_sweep = now + kTick;
      }
    }
  }
};

EpollLoop::EpollLoop(Server::Impl& server, RelayWorker& worker)
    : st_(std::make_unique<State>(server, worker)) {}

EpollLoop::~EpollLoop() = default;

void EpollLoop::run() { fast::run_loop(*st_); }

}  // namespace diode::sockd

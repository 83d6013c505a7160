// The io_uring session path (uring_loop.hpp). One thread, one ring, no
// locks: the thread alone touches its sessions; what it shares with the rest
// of the daemon goes through Server::Impl (the limits, the policy in force,
// the counters, the log) exactly as the Asio path does.
//
// A session's course on the ring:
//   accept (one multishot accept per listener, each client's address then
//   read by a socket command, getsockopt SO_PEERNAME, linked ahead of its
//   first receive, its success unreported; on kernels without socket
//   commands, before Linux 6.7, a few single-shot accepts armed per
//   listener, each completion bringing the client's address) → admit
//   (limits; at the receive's first completion) →
//   handshake: the client's multishot recv (provided buffers), armed at the
//   accept and kept to the session's end, its buffers fed to the
//   ServerHandshake as on the Asio path, its replies sent as they come →
//   the SessionPlan → CONNECT: socket(2), the route's egress, a connect SQE
//   (what the client sends meanwhile is queued) → reply (BND from
//   getsockname: the connected socket's own address, as the Asio path
//   sends; so the reply cannot be linked to the connect, its bytes being
//   unknown until then; it is linked ahead of the target's first receive
//   instead, its success unreported) → relay: the target's multishot recv,
//   one send at a time per direction, back-pressure by
//   cancelling a direction's recv, half-close passed on with shutdown(2)
//   (IORING_OP_SHUTDOWN would go to an io-wq thread), close as ring ops.
// Deadlines (handshake, connect, idle) are checked by a sweep every tick
// (a timeout request on the ring, re-armed after each sweep).
#include "uring_loop.hpp"

#include <liburing.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "connect_race.hpp"
#include "fast_session.hpp"
#include "server_impl.hpp"

namespace diode::sockd {

using fast::fill_sockaddr;
using fast::from_sockaddr;
using fast::local_of;

namespace {

constexpr unsigned kEntries = 4096;             // submission queue
constexpr unsigned kBuffers = 256;              // provided buffers per ring (a power of two)
constexpr std::size_t kBufferSize = 64 * 1024;  // each
constexpr int kGroup = 0;                       // their buffer group
constexpr int kQueuePause = 8;   // buffers queued one way before that way's recv is cancelled
constexpr int kQueueResume = 2;  // ... and re-armed
constexpr unsigned kAcceptsArmed = 4;  // single-shot accepts kept armed per listener
constexpr auto kTick = std::chrono::milliseconds{100};
constexpr auto kAcceptBackoff = std::chrono::milliseconds{100};
constexpr int kPipeSize = 1 << 20;         // bulk: each direction's pipe, as the epoll loop's
constexpr std::size_t kSpliceChunk = 1 << 20;

// What a completion is about: the low 4 bits of its user_data; the rest is
// the session's (or the accept slot's) address, 16-byte aligned.
enum Op : std::uint64_t {
  kIgnore = 0,
  kRecv0 = 1,    // relay: the client's bytes (multishot, provided buffers)
  kRecv1 = 2,    // relay: the target's bytes
  kSend0 = 3,    // relay: to the target (early bytes, then buffers)
  kSend1 = 4,    // relay: to the client (buffers; the CONNECT reply goes unreported)
  kConnect = 5,  // the target's connect
  kSocket = 6,   // a socket for the pool (IORING_OP_SOCKET); the address is the pool's
  kHsSend = 7,   // handshake replies; the session goes on
  kFinal = 8,    // the last reply (refusal, failure); the session ends after it
  kAccept = 9,
  kTickDone = 10,  // the sweep's timer
  kPollIn0 = 11,   // bulk: the client readable (multishot poll)
  kPollIn1 = 12,   // bulk: the target readable
  kPollOut0 = 13,  // bulk: the target writable again (d = 0's pipe)
  kPollOut1 = 14,  // bulk: the client writable again
};
constexpr std::uint64_t kOpMask = 15;

// kPollIn0 + d and the like.
constexpr Op with_dir(Op base, int d) {
  return static_cast<Op>(static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(d));
}

using Ms = std::chrono::milliseconds;

// The ring's setup flags, best first: SINGLE_ISSUER + DEFER_TASKRUN (the
// completions' work runs when this thread asks for it), else COOP_TASKRUN,
// else none.
int init_ring(io_uring& ring, unsigned entries) {
  static constexpr unsigned kTries[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      0,
  };
  int err = -EINVAL;
  for (const unsigned flags : kTries) {
    io_uring_params p{};
    p.flags = flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = 4 * entries;
    err = io_uring_queue_init_params(entries, &ring, &p);
    if (err == 0) return 0;
    if (err == -EPERM || err == -ENOSYS) return err;  // no flags will help
  }
  return err;
}

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

// getsockopt(2) as a socket command on the ring (SOCKET_URING_OP_GETSOCKOPT,
// Linux 6.7; liburing 2.3 has no helper for it): the level and the option's
// name where a request's address goes, the option's length where a file
// index goes, the value's address in addr3. The completion's result is the
// length written. The length must not exceed the option's (SO_PEERNAME
// refuses a buffer longer than the address).
constexpr std::uint32_t kSocketCmdGetsockopt = 2;

void prep_getsockopt(io_uring_sqe* e, int fd, int level, int name, void* value,
                     std::uint32_t len) {
  io_uring_prep_rw(IORING_OP_URING_CMD, e, fd, nullptr, 0, 0);
  e->cmd_op = kSocketCmdGetsockopt;
  e->addr = static_cast<std::uint64_t>(static_cast<std::uint32_t>(level)) |
            (static_cast<std::uint64_t>(static_cast<std::uint32_t>(name)) << 32);
  e->file_index = len;
  e->addr3 = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(value));
}

// Whether the kernel runs socket commands from `ring` (a fresh one, nothing
// else in flight): getsockopt(SO_TYPE) of a socket of our own. Before Linux
// 6.7 the ring refuses it (EOPNOTSUPP; EINVAL before 5.19).
// DIODE_URING_NO_SOCKET_CMD=1 in the environment answers no without asking
// (the tests run the single-shot accepts so).
bool socket_cmd_works(io_uring& ring) {
  if (const char* v = std::getenv("DIODE_URING_NO_SOCKET_CMD");
      v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0) {
    return false;
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int type = 0;
  bool ok = false;
  if (io_uring_sqe* e = io_uring_get_sqe(&ring); e != nullptr) {
    prep_getsockopt(e, fd, SOL_SOCKET, SO_TYPE, &type, sizeof type);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait(&ring, 1) == 1 && io_uring_peek_cqe(&ring, &cqe) == 0) {
      ok = cqe->res == static_cast<int>(sizeof type) && type == SOCK_STREAM;
      io_uring_cqe_seen(&ring, cqe);
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace

UringProbe uring_probe() {
  UringProbe out;
  io_uring ring{};
  if (const int e = init_ring(ring, 8); e != 0) {
    out.why = errno_text("io_uring_setup", -e);
    return out;
  }
  // Provided-buffer rings (Linux 5.19) and multishot recv (6.0) are needed too.
  void* mem = ::mmap(nullptr, sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    out.why = errno_text("mmap", errno);
  } else {
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
    reg.ring_entries = 1;
    reg.bgid = kGroup;
    if (const int e = io_uring_register_buf_ring(&ring, &reg, 0); e != 0) {
      out.why = errno_text("io_uring_register_buf_ring", -e);
    } else {
      io_uring_unregister_buf_ring(&ring, kGroup);
    }
    ::munmap(mem, sizeof(io_uring_buf));
  }
  if (out.why.empty()) out.socket_cmd = socket_cmd_works(ring);
  io_uring_queue_exit(&ring);
  return out;
}

namespace {

struct Listener;

// One armed accept: where its completion writes the client's address.
struct alignas(16) AcceptSlot {
  Listener* listener = nullptr;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  bool armed = false;
};

// fd: taken from the worker's acceptor, which no longer watches it.
struct Listener : fast::FastListener {
  std::vector<AcceptSlot> slots;
  Clock::time_point retry_at{};  // after EMFILE and the like: re-arm then
  bool closing = false;
};

// Sockets for targets of one address family, made ahead (State::take_socket).
struct alignas(16) SocketPool {
  int family = AF_INET;
  std::vector<int> ready;
  int pending = 0;       // socket requests in flight
  bool wanted = false;   // the family is in use: keep it filled
  Clock::time_point retry_at{};  // after a failure: not before then
};

// One direction of a relay: d = 0 client → target (reads fd[0]), d = 1 back.
struct Dir {
  int qh = -1, qt = -1, qn = 0;  // queued buffer ids, linked through State::bnext
  const std::uint8_t* prefix = nullptr;  // d = 0: the client's early bytes, before any buffer
  std::size_t prefix_len = 0;
  bool armed = false, sending = false, eof = false, done = false, paused = false, starved = false;
  // Bulk (a receive filled a whole buffer): the direction leaves the
  // provided buffers for splice(2) through a pipe, driven by poll requests
  // (the kernel would run a splice request on a worker thread).
  bool bulk = false;
  bool polling = false;   // the source's multishot POLLIN is armed
  bool in_ready = false;  // the source may have bytes (since the last EAGAIN)
  bool out_wait = false;  // a POLLOUT on the destination is armed
  PipePool::Pipe pipe;    // held only while bytes are in it
  std::uint32_t inpipe = 0;
};

struct Sess;

// What the completions of a session read and write, first in the session
// (its first cache lines); what the decisions need comes after.
struct SessIo {
  enum class Phase : std::uint8_t { Handshake, Connect, Relay, Ending };
  int fd[2] = {-1, -1};  // client, target
  int inflight = 0;      // requests that will still complete naming this session
  Phase phase = Phase::Handshake;
  bool dead = false;     // no new work; freed (logged, closed) once inflight is 0
  bool expired = false;  // the handshake or connect deadline passed
  bool nonblocking = false;  // both sockets O_NONBLOCK (bulk splices)
  int hs_sends = 0;
  // [out_sent, out_len) of `out` is not sent yet; `out` starts over once no
  // handshake send is in flight (hs_sends), so a send's bytes stay put.
  std::size_t out_sent = 0;
  Clock::time_point last_activity;
  // Accepted by the multishot accept, its address not read yet: not admitted
  // yet (State::start_naming, admit_named).
  Listener* naming = nullptr;
  Sess* prev = nullptr;
  Sess* next = nullptr;
  Dir d[2];
};

// The shared part (fast::FastSession): the listener, the client, the
// limits' slot, the policy, the record, the handshake machine, the plan,
// `out` and `handoff` (to the Asio path once inflight is 0).
struct alignas(16) Sess : SessIo, fast::FastSession, Recycled<Sess> {
  sockaddr_storage target{};
  socklen_t target_len = 0;
};

}  // namespace

struct UringLoop::State {
  // Takes the worker's listening sockets out of its io_context (before any
  // thread runs): an edge-triggered registration there would wake that
  // thread for every connection the ring accepts.
  State(Server::Impl& s, RelayWorker& w) : server(s), worker(w) {
    for (auto& [acc, iface] : worker.acceptors) {
      auto l = std::make_unique<Listener>();
      fast::take_listener(*acc, iface, *l);
      l->slots.resize(kAcceptsArmed);
      for (auto& slot : l->slots) slot.listener = l.get();
      listeners.push_back(std::move(l));
    }
  }

  // The ring could not be had: the listening sockets go back to the
  // worker's acceptors, whose Asio accept loops serve them instead.
  void give_back_listeners() { fast::give_back_listeners(server, worker, listeners); }

  Server::Impl& server;
  RelayWorker& worker;
  io_uring ring{};
  bool ring_ok = false;
  io_uring_buf_ring* br = nullptr;
  std::uint8_t* bufs = nullptr;
  std::array<std::uint32_t, kBuffers> boff{}, blen{};
  std::array<int, kBuffers> bnext{};
  int nfree = 0;
  std::vector<std::pair<Sess*, int>> starved;
  std::vector<std::unique_ptr<Listener>> listeners;
  Sess* head = nullptr;  // every live session
  PipePool pool{16, kPipeSize};  // bulk directions' pipes
  // Read once per turn of the loop, when the wait returns: every time stamp
  // of that turn's completions (the clock is not free in a guest).
  Clock::time_point now = Clock::now();
  // The sweep's tick is a timeout request of its own, armed once per tick:
  // a wait with a timeout would arm and cancel a kernel timer on every turn.
  __kernel_timespec tick_ts{0, std::chrono::duration_cast<std::chrono::nanoseconds>(kTick).count()};
  bool tick_due = false;
  bool stopping = false;
  bool ending = false;
  // Targets' sockets made ahead by the ring (IORING_OP_SOCKET, Linux 5.19),
  // one pool per address family: a connect takes one and starts at once,
  // with no socket(2) call; the refill's completions come with the rest.
  // Without the operation (or while the ring cannot make one), socket(2).
  bool socket_op = false;
  bool multishot_accept = false;  // Server::Impl::uring_socket_cmd
  std::size_t sockets_high = 0;  // from the descriptor limit at start
  std::array<SocketPool, 2> sockets{};  // AF_INET, AF_INET6

  // --- ring plumbing

  io_uring_sqe* sqe() {
    io_uring_sqe* e = io_uring_get_sqe(&ring);
    if (e == nullptr) {
      io_uring_submit(&ring);
      e = io_uring_get_sqe(&ring);
    }
    return e;  // never null after a submit with kEntries free slots
  }

  static std::uint64_t ud(const void* p, Op op) {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)) | op;
  }

  std::uint8_t* buf(int bid) { return bufs + static_cast<std::size_t>(bid) * kBufferSize; }

  void buf_return(int bid) {
    io_uring_buf_ring_add(br, buf(bid), kBufferSize, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(kBuffers), 0);
    io_uring_buf_ring_advance(br, 1);
    ++nfree;
  }

  bool setup() {
    if (const int e = init_ring(ring, kEntries); e != 0) {
      server.log.event(platform::LogLevel::Error, "io_error",
                       {{"error", errno_text("io_uring_setup", -e)}, {"fallback", "epoll"}});
      return false;
    }
    ring_ok = true;
    // The ring's descriptor registered with the thread (Linux 5.18): each
    // io_uring_enter then skips looking the descriptor up. Without it, the
    // plain descriptor serves the same.
    (void)io_uring_register_ring_fd(&ring);
    if (io_uring_probe* probe = io_uring_get_probe_ring(&ring)) {
      socket_op = io_uring_opcode_supported(probe, IORING_OP_SOCKET) != 0;
      io_uring_free_probe(probe);
    }
    sockets[0].family = AF_INET;
    sockets[1].family = AF_INET6;
    if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
      sockets_high = nofile.rlim_cur == RLIM_INFINITY
                         ? kSocketsHigh
                         : std::min<std::size_t>(kSocketsHigh, nofile.rlim_cur / 256);
    }
    void* r = ::mmap(nullptr, kBuffers * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* b = ::mmap(nullptr, kBuffers * kBufferSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED || b == MAP_FAILED) {
      if (r != MAP_FAILED) ::munmap(r, kBuffers * sizeof(io_uring_buf));
      if (b != MAP_FAILED) ::munmap(b, kBuffers * kBufferSize);
      server.log.event(platform::LogLevel::Error, "io_error",
                       {{"error", errno_text("mmap", ENOMEM)}, {"fallback", "epoll"}});
      return false;
    }
    br = static_cast<io_uring_buf_ring*>(r);
    bufs = static_cast<std::uint8_t*>(b);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(br);
    reg.ring_entries = kBuffers;
    reg.bgid = kGroup;
    if (const int e = io_uring_register_buf_ring(&ring, &reg, 0); e != 0) {
      server.log.event(platform::LogLevel::Error, "io_error",
                       {{"error", errno_text("io_uring_register_buf_ring", -e)},
                        {"fallback", "epoll"}});
      return false;
    }
    io_uring_buf_ring_init(br);
    for (int i = 0; i < static_cast<int>(kBuffers); ++i) buf_return(i);
    // With socket commands, one multishot accept per listener; else
    // kAcceptsArmed single-shot ones, each bringing its client's address.
    multishot_accept = server.uring_socket_cmd;
    for (auto& l : listeners) {
      if (multishot_accept) l->slots.resize(1);
      for (auto& slot : l->slots) arm_accept(slot);
    }
    return true;
  }

  ~State() { teardown(); }

  // On the ring's thread when it ran: the ring goes first, so that no
  // request still names a session or a buffer freed here.
  void teardown() {
    if (ring_ok) io_uring_queue_exit(&ring);
    ring_ok = false;
    // Sessions still here at exit go unlogged, as on the Asio path.
    while (head != nullptr) {
      Sess* s = head;
      unlink(s);
      for (int fd : s->fd) {
        if (fd >= 0) ::close(fd);
      }
      delete s;
    }
    for (auto& l : listeners) {
      if (l->fd >= 0) ::close(l->fd);
      l->fd = -1;
    }
    for (auto& p : sockets) {
      for (int fd : p.ready) ::close(fd);
      p.ready.clear();
    }
    if (br != nullptr) ::munmap(br, kBuffers * sizeof(io_uring_buf));
    if (bufs != nullptr) ::munmap(bufs, kBuffers * kBufferSize);
    br = nullptr;
    bufs = nullptr;
  }

  void link(Sess* s) { fast::list_push(head, s); }
  void unlink(Sess* s) { fast::list_remove(head, s); }

  // --- accept

  void arm_accept(AcceptSlot& slot) {
    io_uring_sqe* e = sqe();
    if (multishot_accept) {
      // Armed until it fails or is cancelled: no request per session. Its
      // completions cannot bring addresses (each would overwrite the one
      // before in a batch): start_naming asks each socket for its peer.
      io_uring_prep_multishot_accept(e, slot.listener->fd, nullptr, nullptr, SOCK_CLOEXEC);
    } else {
      slot.len = sizeof slot.addr;
      io_uring_prep_accept(e, slot.listener->fd, reinterpret_cast<sockaddr*>(&slot.addr),
                           &slot.len, SOCK_CLOEXEC);
    }
    io_uring_sqe_set_data64(e, ud(&slot, kAccept));
    slot.armed = true;
  }

  // `more`: a multishot accept stays armed (IORING_CQE_F_MORE).
  void on_accept(AcceptSlot& slot, int res, bool more) {
    slot.armed = more;
    Listener& l = *slot.listener;
    if (stopping || l.closing) {
      if (res >= 0) ::close(res);
      maybe_close_listener(l);
      return;
    }
    if (res < 0) {
      if (res == -ECANCELED) return;
      ++server.accept_errors;
      const int e = -res;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        // The connection stays queued: retrying at once would spin.
        server.log.event(platform::LogLevel::Warning, "accept_error",
                         {{"error", std::strerror(e)},
                          {"count", std::to_string(server.accept_errors.load())}});
        l.retry_at = now + kAcceptBackoff;
        return;
      }
      if (!slot.armed) arm_accept(slot);
      return;
    }
    if (multishot_accept) {
      if (!slot.armed) arm_accept(slot);
      start_naming(res, l);
      return;
    }
    const Endpoint client = from_sockaddr(slot.addr);
    arm_accept(slot);
    start_session(res, client, l);
  }

  void maybe_close_listener(Listener& l) {
    if (l.fd < 0) return;
    for (const auto& s : l.slots) {
      if (s.armed) return;
    }
    // No accept refers to it any more: give back this duplicate.
    io_uring_sqe* e = sqe();
    io_uring_prep_close(e, l.fd);
    e->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(e, kIgnore);
    l.fd = -1;
  }

  void stop_accepting() {
    stopping = true;
    for (auto& l : listeners) {
      l->closing = true;
      bool any = false;
      for (const auto& s : l->slots) any = any || s.armed;
      if (any) {
        io_uring_sqe* e = sqe();
        io_uring_prep_cancel_fd(e, l->fd, IORING_ASYNC_CANCEL_ALL);
        e->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(e, kIgnore);
      } else {
        maybe_close_listener(*l);
      }
    }
  }

  void start_session(int fd, const Endpoint& client, Listener& l) {
    auto* s = new Sess;
    // The ring reads into its provided buffers: no handshake buffer.
    if (!fast::admit(server, worker, fd, client, l, *s, now)) {
      delete s;
      close_fd(fd);
      return;
    }
    s->fd[0] = fd;
    link(s);
    arm_recv(s, 0);
  }

  // A client from the multishot accept: its address is asked of the socket
  // (getsockopt SO_PEERNAME as a socket command, into `target`, unused until
  // the connect), linked ahead of the client's multishot receive and its
  // success unreported: the receive's first completion finds the address in
  // and admits the session (admit_named); a failed command cancels the
  // receive, whose -ECANCELED then comes before any admission. A client
  // that sends nothing is admitted by the next sweep all the same, so that
  // the limits count it. The handshake deadline runs from the accept.
  void start_naming(int fd, Listener& l) {
    auto* s = new Sess;
    s->fd[0] = fd;
    s->naming = &l;
    s->started = now;
    s->deadline = now + server.worker_policy(worker)->settings.handshake_timeout;
    link(s);
    if (io_uring_sq_space_left(&ring) < 2) io_uring_submit(&ring);  // the link in one batch
    io_uring_sqe* e = sqe();
    prep_getsockopt(e, fd, SOL_SOCKET, SO_PEERNAME, &s->target,
                    l.family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    e->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(e, kIgnore);
    arm_recv(s, 0);
  }

  // Admits a session start_naming began, its address in, as start_session
  // does; a refusal (a limit) ends it unlogged here (admit counted and
  // logged it). `failed`: the command failed, which ends the session too,
  // counted as a handshake the client left, unlogged (no address to log):
  // not seen in practice, since SO_PEERNAME answers even for a socket its
  // client has reset.
  void admit_named(Sess* s, bool failed) {
    Listener& l = *s->naming;
    s->naming = nullptr;
    if (failed) {
      worker.counters.accepted.fetch_add(1, std::memory_order_relaxed);
      worker.counters.add_outcome(Outcome::Incomplete);
      end(s);
      return;
    }
    const Endpoint client = from_sockaddr(s->target);
    if (!fast::admit(server, worker, s->fd[0], client, l, *s, s->started)) end(s);
  }

  void close_fd(int fd) {
    io_uring_sqe* e = sqe();
    io_uring_prep_close(e, fd);
    e->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(e, kIgnore);
  }

  // --- handshake

  // Sends what was gathered in `out` and not sent yet, if anything; kFinal
  // ends the session after it.
  void send_out(Sess* s, Op op) {
    if (s->out_len == s->out_sent) return;
    static constexpr std::uint8_t kNoAuth[2] = {5, 0};  // SOCKS5: no authentication
    if (op == kHsSend && !s->handoff && s->out_len - s->out_sent == sizeof kNoAuth &&
        std::memcmp(s->out.data() + s->out_sent, kNoAuth, sizeof kNoAuth) == 0) {
      // The usual method choice goes from constant bytes, its success
      // unreported: the request does not wait on it, no session memory is
      // named (a failure shows on the client's recv as well). Not before a
      // hand-off, which waits for its sends: the Asio path's must follow.
      io_uring_sqe* e = sqe();
      io_uring_prep_send(e, s->fd[0], kNoAuth, sizeof kNoAuth, MSG_NOSIGNAL | MSG_WAITALL);
      e->flags |= IOSQE_CQE_SKIP_SUCCESS;
      io_uring_sqe_set_data64(e, kIgnore);
      s->out_sent = s->out_len;
      return;
    }
    io_uring_sqe* e = sqe();
    io_uring_prep_send(e, s->fd[0], s->out.data() + s->out_sent, s->out_len - s->out_sent,
                       MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data64(e, ud(s, op));
    s->out_sent = s->out_len;
    ++s->hs_sends;
    ++s->inflight;
  }

  // A failed send needs nothing here: the client's recv finds the error
  // and ends the session.
  void on_hs_send(Sess* s) {
    --s->hs_sends;
    --s->inflight;
  }

  // The client's bytes during the handshake: buffer `bid`, `len` bytes, fed
  // to the machine; what follows a request goes to the target once it is
  // connected.
  void on_hs_input(Sess* s, int bid, std::size_t len) {
    if (s->handoff) {
      // Read after the hand-off was decided: it goes over with the rest.
      keep_for_hand_off(s, buf(bid), len);
      buf_return(bid);
      return;
    }
    if (s->hs_sends == 0) s->out_len = s->out_sent = 0;
    std::size_t off = 0;
    const auto next = fast::feed(worker, *s, {buf(bid), len}, now, off);
    switch (next) {
      case fast::HsNext::NeedMore:
        send_out(s, kHsSend);
        break;
      case fast::HsNext::HandOff:
        // A password check, a name, identd, BIND, UDP, several addresses to
        // race: the Asio path's, with the machine and the bytes not fed.
        // What was fed may have held a password.
        std::memset(buf(bid), 0, len);
        send_out(s, kHsSend);
        end(s);
        break;
      case fast::HsNext::Final:
        finish_with_out(s);
        break;
      case fast::HsNext::Connect:
        start_connect(s);
        break;
    }
    buf_return(bid);
  }

  // Ends the session once `out` (if anything) is sent.
  void finish_with_out(Sess* s) {
    s->phase = Sess::Phase::Ending;
    send_out(s, kFinal);
    end(s);
  }

  // Bytes the client's recv brought after the hand-off was decided (before
  // its cancellation completed): they go over after the unfed ones.
  void keep_for_hand_off(Sess* s, const std::uint8_t* p, std::size_t n) {
    HandshakeBuffers& hx = *s->hx;
    if (hx.in.size() < hx.have + n) hx.in.resize(hx.have + n);
    std::copy_n(p, n, hx.in.data() + hx.have);
    hx.have += n;
  }

  // Ends the session as the plan decided (Deny, Failed): hooks, hits, log, reply.
  void conclude(Sess* s) {
    fast::conclude(worker, *s);
    finish_with_out(s);
  }

  void start_connect(Sess* s) {
    SessionPlan& plan = *s->plan;
    const Candidate& c = plan.candidates().front();
    s->phase = Sess::Phase::Connect;
    s->connect_started = now;
    s->deadline = s->connect_started + s->pol->settings.connect_timeout;
    s->expired = false;
    fill_sockaddr(c.addr, s->port, s->target, s->target_len);
    connect_with(s, take_socket(s->target.ss_family));
  }

  // --- targets' sockets

  // Kept ready per family in use: topped up to sockets_high once fewer than
  // half as many are ready or coming, so that their completions (each of
  // which would end the loop's next wait at once) come in batches.
  // At most kSocketsHigh, and no more than 1/256 of the descriptor limit
  // (none below 256 descriptors: every one is then worth a session).
  static constexpr std::size_t kSocketsHigh = 32;
  static constexpr auto kSocketRetry = std::chrono::milliseconds{100};

  // A new socket of `family` (SOCK_CLOEXEC), or -errno.
  int take_socket(int family) {
    if (socket_op && sockets_high > 0 && (family == AF_INET || family == AF_INET6)) {
      SocketPool& p = sockets[family == AF_INET ? 0 : 1];
      p.wanted = true;
      int fd = -1;
      if (!p.ready.empty()) {
        fd = p.ready.back();
        p.ready.pop_back();
      }
      refill(p);
      if (fd >= 0) return fd;
    }
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
  }

  void refill(SocketPool& p) {
    if (stopping || now < p.retry_at) return;
    if (p.ready.size() + static_cast<std::size_t>(p.pending) >= sockets_high / 2) return;
    while (p.ready.size() + static_cast<std::size_t>(p.pending) < sockets_high) {
      io_uring_sqe* e = sqe();
      io_uring_prep_socket(e, p.family, SOCK_STREAM | SOCK_CLOEXEC, 0, 0);
      io_uring_sqe_set_data64(e, ud(&p, kSocket));
      ++p.pending;
    }
  }

  void on_pool_socket(SocketPool& p, int res) {
    --p.pending;
    if (res < 0) {
      // EMFILE and the like: connects make their own until the retry.
      p.retry_at = now + kSocketRetry;
      return;
    }
    if (stopping) {
      close_fd(res);
      return;
    }
    p.ready.push_back(res);
  }

  // `fd`: the target's new socket, or -errno: the route's egress, then the
  // connect request.
  void connect_with(Sess* s, int fd) {
    SessionPlan& plan = *s->plan;
    const Candidate& c = plan.candidates().front();
    int err = fd < 0 ? -fd : bind_egress(fd, c.check.route, c.addr);
    if (err != 0) {
      if (fd >= 0) close_fd(fd);
      plan.connect_failed(0, err, false);
      conclude(s);
      return;
    }
    s->fd[1] = fd;
    io_uring_sqe* e = sqe();
    io_uring_prep_connect(e, fd, reinterpret_cast<const sockaddr*>(&s->target), s->target_len);
    io_uring_sqe_set_data64(e, ud(s, kConnect));
    ++s->inflight;
  }

  void on_connect(Sess* s, int res) {
    --s->inflight;
    if (s->dead) return;
    if (res < 0) {
      const bool timed_out = s->expired || now >= s->deadline;
      s->plan->connect_failed(0, -res, timed_out);
      conclude(s);
      return;
    }
    fast::granted(worker, *s, local_of(s->fd[1]), now);
    // --- relay: the reply first to the client; to the target, what came
    // after the request, then what the client sent while it was connected.
    s->phase = Sess::Phase::Relay;
    s->last_activity = now;
    if (!s->early.empty()) {
      s->d[0].prefix = s->early.data();
      s->d[0].prefix_len = s->early.size();
    }
    send_reply_then_read(s);
    send_next(s, 0);  // what the client sent after its request
    dir_check_done(s, 0);  // a client that half-closed meanwhile
  }

  // The CONNECT reply, linked ahead of the target's first receive: nothing
  // from the target can reach the client before it, and its success is not
  // reported (one completion less a session). A failed reply cancels the
  // receive, which is then armed again: the client's own receive finds
  // the error and ends the session. The reply is in `out`, which lives as
  // long as the session; the session lives while the receive is armed,
  // which cannot complete before the reply has.
  void send_reply_then_read(Sess* s) {
    const std::size_t n = s->out_len - s->out_sent;
    if (n == 0) {
      arm_recv(s, 1, /*poll_first=*/true);
      return;
    }
    if (io_uring_sq_space_left(&ring) < 2) io_uring_submit(&ring);  // the link in one batch
    io_uring_sqe* e = sqe();
    io_uring_prep_send(e, s->fd[0], s->out.data() + s->out_sent, n, MSG_NOSIGNAL | MSG_WAITALL);
    e->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(e, kIgnore);
    s->out_sent = s->out_len;
    arm_recv(s, 1, /*poll_first=*/true);
  }

  // --- relay

  // `poll_first`: nothing is expected yet (the target just connected), so
  // the kernel waits for data without trying a receive first
  // (IORING_RECVSEND_POLL_FIRST, Linux 5.19; what arrived before is seen
  // by the poll at once).
  void arm_recv(Sess* s, int d, bool poll_first = false) {
    io_uring_sqe* e = sqe();
    io_uring_prep_recv_multishot(e, s->fd[d], nullptr, 0, 0);
    if (poll_first) e->ioprio |= IORING_RECVSEND_POLL_FIRST;
    e->flags |= IOSQE_BUFFER_SELECT;
    e->buf_group = kGroup;
    io_uring_sqe_set_data64(e, ud(s, d == 0 ? kRecv0 : kRecv1));
    s->d[d].armed = true;
    ++s->inflight;
  }

  void cancel_recv(Sess* s, int d) {
    io_uring_sqe* e = sqe();
    io_uring_prep_cancel64(e, ud(s, d == 0 ? kRecv0 : kRecv1), 0);
    e->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(e, kIgnore);
  }

  void send_next(Sess* s, int d) {
    Dir& D = s->d[d];
    if (D.sending || s->dead || s->phase != Sess::Phase::Relay) return;
    const std::uint8_t* p = nullptr;
    std::size_t n = 0;
    if (D.prefix_len > 0) {
      p = D.prefix;
      n = D.prefix_len;
    } else if (D.qn > 0) {
      p = buf(D.qh) + boff[static_cast<std::size_t>(D.qh)];
      n = blen[static_cast<std::size_t>(D.qh)];
    } else {
      return;
    }
    io_uring_sqe* e = sqe();
    io_uring_prep_send(e, s->fd[d ^ 1], p, n, MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data64(e, ud(s, d == 0 ? kSend0 : kSend1));
    D.sending = true;
    ++s->inflight;
  }

  void enqueue(Sess* s, int d, int bid, std::uint32_t len, std::uint32_t off = 0) {
    Dir& D = s->d[d];
    const auto b = static_cast<std::size_t>(bid);
    boff[b] = off;
    blen[b] = len;
    bnext[b] = -1;
    if (D.qn > 0) bnext[static_cast<std::size_t>(D.qt)] = bid;
    else D.qh = bid;
    D.qt = bid;
    ++D.qn;
    if (D.qn >= kQueuePause && D.armed && !D.paused) {  // back-pressure: stop reading this side
      D.paused = true;
      cancel_recv(s, d);
    }
  }

  void drop_queue(Dir& D) {
    for (int b = D.qh; D.qn > 0; --D.qn, b = bnext[static_cast<std::size_t>(b)]) buf_return(b);
    D.qh = D.qt = -1;
  }

  // A direction that reached EOF with everything sent: pass the half-close on.
  void dir_check_done(Sess* s, int d) {
    Dir& D = s->d[d];
    if (s->dead || s->phase != Sess::Phase::Relay || D.done || !D.eof || D.qn > 0 || D.sending ||
        D.prefix_len > 0 || D.inpipe > 0) {
      return;
    }
    D.done = true;
    // The last direction to end needs no shutdown: both sockets close next.
    if (s->d[d ^ 1].done) {
      end(s);
      return;
    }
    ::shutdown(s->fd[d ^ 1], SHUT_WR);
  }

  void on_recv(Sess* s, int d, const io_uring_cqe* cqe) {
    Dir& D = s->d[d];
    const int res = cqe->res;
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
      D.armed = false;
      --s->inflight;
    }
    if (s->naming != nullptr) admit_named(s, res == -ECANCELED);
    if (res > 0) {
      const int bid = static_cast<int>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      --nfree;
      if (s->phase == Sess::Phase::Handshake && (s->handoff || !s->dead)) {
        on_hs_input(s, bid, static_cast<std::size_t>(res));
      } else if (s->dead || D.done) {
        buf_return(bid);
      } else {
        enqueue(s, d, bid, static_cast<std::uint32_t>(res));
        send_next(s, d);
        if (static_cast<std::size_t>(res) == kBufferSize && !D.bulk &&
            s->phase == Sess::Phase::Relay) {
          // Bulk: what is queued goes first, then splice takes over. A
          // splice from or to a socket waits unless the socket itself is
          // non-blocking: both become so now (the ring needs neither).
          if (!s->nonblocking) {
            for (int fd : s->fd) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
            s->nonblocking = true;
          }
          D.bulk = true;
          D.in_ready = true;
          if (more) cancel_recv(s, d);
        }
      }
    } else if (s->phase == Sess::Phase::Handshake && !s->dead && res != -ENOBUFS &&
               res != -ECANCELED) {
      s->rec.reason = s->expired ? "handshake timeout" : "client closed during handshake";
      D.eof = true;
      end(s);
    } else if (res == 0) {
      D.eof = true;
      dir_check_done(s, d);
    } else if (res == -ENOBUFS) {
      if (!s->dead && !s->d[d].starved) {
        s->d[d].starved = true;
        starved.emplace_back(s, d);
        ++s->inflight;
      }
    } else if (res != -ECANCELED) {
      kill(s, d == 0 ? RelayEnd::ClientError : RelayEnd::TargetError);
    }
    if (!more && !D.armed && !s->dead && !D.eof && !D.paused && !D.done &&
        (res > 0 || res == -ECANCELED)) {
      rearm(s, d);
    }
  }

  // Reading direction d again: its receive, or in bulk its poll and a pump.
  void rearm(Sess* s, int d) {
    Dir& D = s->d[d];
    if (!D.bulk) {
      arm_recv(s, d);
      return;
    }
    if (!D.polling) arm_poll(s, d, kPollIn0, POLLIN | POLLRDHUP, true);
    pump(s, d);
  }

  void arm_poll(Sess* s, int d, Op base, unsigned mask, bool multishot) {
    Dir& D = s->d[d];
    io_uring_sqe* e = sqe();
    if (multishot) {
      io_uring_prep_poll_multishot(e, s->fd[d], mask);
      D.polling = true;
    } else {
      io_uring_prep_poll_add(e, s->fd[d ^ 1], mask);
      D.out_wait = true;
    }
    io_uring_sqe_set_data64(e, ud(s, with_dir(base, d)));
    ++s->inflight;
  }

  void cancel_op(Sess* s, Op op) {
    io_uring_sqe* e = sqe();
    io_uring_prep_cancel64(e, ud(s, op), 0);
    e->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(e, kIgnore);
  }

  // Bulk direction d: source → pipe → destination with non-blocking
  // splice(2), once nothing is queued or in flight that way, until the
  // source has nothing (its next POLLIN resumes) or the destination is full
  // (its POLLOUT resumes).
  void pump(Sess* s, int d) {
    Dir& D = s->d[d];
    if (s->dead || D.done || !D.bulk || D.armed || D.qn > 0 || D.sending || D.prefix_len > 0 ||
        D.out_wait) {
      return;
    }
    const int src = s->fd[d];
    const int dst = s->fd[d ^ 1];
    for (;;) {
      if (D.inpipe > 0) {
        const ssize_t w = ::splice(D.pipe.read_fd, nullptr, dst, nullptr, D.inpipe,
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w < 0) {
          const int e = errno;
          if (e == EINTR) continue;
          if (e == EAGAIN || e == EWOULDBLOCK) {
            arm_poll(s, d, kPollOut0, POLLOUT, false);
            return;
          }
          // This way takes no more bytes; the other may still drain (as on_send).
          s->record(d == 0 ? RelayEnd::TargetError : RelayEnd::ClientError);
          D.done = true;
          if (D.polling) cancel_op(s, with_dir(kPollIn0, d));
          if (s->d[d ^ 1].done) end(s);
          return;
        }
        (d == 0 ? s->up : s->down) += static_cast<std::uint64_t>(w);
        s->last_activity = now;
        D.inpipe -= static_cast<std::uint32_t>(w);
        if (D.inpipe > 0) continue;
        pool.put(D.pipe);  // an idle direction holds no pipe
        D.pipe = {};
      }
      if (D.eof) {
        if (D.polling) cancel_op(s, with_dir(kPollIn0, d));
        dir_check_done(s, d);
        return;
      }
      if (!D.in_ready) return;
      int e = 0;
      switch (fast::fill_pipe(pool, src, kSpliceChunk, D.pipe, D.inpipe, e)) {
        case fast::Fill::Filled: continue;
        case fast::Fill::NoPipe:
          // No pipe (the descriptor limit): back to the provided buffers.
          D.bulk = false;
          if (D.polling) cancel_op(s, with_dir(kPollIn0, d));
          arm_recv(s, d);
          return;
        case fast::Fill::Eof: D.eof = true; continue;
        case fast::Fill::Empty: D.in_ready = false; return;
        case fast::Fill::Failed: break;
      }
      kill(s, d == 0 ? RelayEnd::ClientError : RelayEnd::TargetError);
      return;
    }
  }

  void on_poll_in(Sess* s, int d, const io_uring_cqe* cqe) {
    Dir& D = s->d[d];
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
      D.polling = false;
      --s->inflight;
    }
    if (s->dead || D.done) return;
    if (cqe->res > 0) {
      D.in_ready = true;
      pump(s, d);
    }
    if (!more && !D.polling && !s->dead && !D.done && !D.eof && cqe->res != -ECANCELED) {
      arm_poll(s, d, kPollIn0, POLLIN | POLLRDHUP, true);
    }
  }

  void on_poll_out(Sess* s, int d) {
    s->d[d].out_wait = false;
    --s->inflight;
    pump(s, d);
  }

  void resume_starved() {
    auto list = std::move(starved);
    starved.clear();
    for (auto [s, d] : list) {
      Dir& D = s->d[d];
      D.starved = false;
      --s->inflight;
      if (!s->dead && !D.armed && !D.eof && !D.paused && !D.done) rearm(s, d);
      maybe_free(s);  // each entry holds its own reference: a session goes with its last
    }
  }

  void on_send(Sess* s, int d, int res) {
    Dir& D = s->d[d];
    D.sending = false;
    --s->inflight;
    if (s->dead) return;
    if (res < 0) {
      // This way takes no more bytes, but what its peer sent before going
      // may still be queued the other way: let that way drain.
      s->record(d == 0 ? RelayEnd::TargetError : RelayEnd::ClientError);
      D.done = true;
      D.prefix_len = 0;
      drop_queue(D);
      if (D.armed) cancel_recv(s, d);
      if (D.polling) cancel_op(s, with_dir(kPollIn0, d));
      if (s->d[d ^ 1].done) end(s);
      return;
    }
    const auto n = static_cast<std::size_t>(res);
    s->last_activity = now;
    if (D.prefix_len > 0) {
      s->up += n;  // the client's early bytes (only d = 0 has a prefix)
      D.prefix += n;
      D.prefix_len -= std::min(n, D.prefix_len);
    } else {
      const auto b = static_cast<std::size_t>(D.qh);
      (d == 0 ? s->up : s->down) += n;
      if (n < blen[b]) {  // a short send (rare with MSG_WAITALL): the rest next
        boff[b] += static_cast<std::uint32_t>(n);
        blen[b] -= static_cast<std::uint32_t>(n);
      } else {
        D.qh = bnext[b];
        --D.qn;
        buf_return(static_cast<int>(b));
        if (D.paused && D.qn <= kQueueResume) {
          D.paused = false;
          if (!D.armed && !D.eof) rearm(s, d);
        }
      }
    }
    send_next(s, d);
    dir_check_done(s, d);
    pump(s, d);  // a bulk direction whose queue has drained
  }

  // --- ending

  // Ends the session now for `why`: its sockets are shut down so that every
  // armed request completes; it is freed when the last one has.
  void kill(Sess* s, RelayEnd why) {
    s->record(why);
    if (s->dead) return;
    for (int fd : s->fd) {
      if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    }
    if (s->phase == Sess::Phase::Connect) {
      io_uring_sqe* e = sqe();
      io_uring_prep_cancel64(e, ud(s, kConnect), 0);
      e->flags |= IOSQE_CQE_SKIP_SUCCESS;
      io_uring_sqe_set_data64(e, kIgnore);
    }
    end(s);
  }

  // Handlers only mark a session dead; whoever took the completion (or
  // the sweep) frees it afterwards, so no handler outlives its session.
  // A recv still armed is cancelled (a session ends with a reply still to
  // go out, or goes over to the Asio path with its socket open).
  void end(Sess* s) {
    if (s->dead) return;
    s->dead = true;
    for (int d = 0; d < 2; ++d) {
      if (s->d[d].armed) cancel_recv(s, d);
      if (s->d[d].polling) cancel_op(s, with_dir(kPollIn0, d));
      if (s->d[d].out_wait) cancel_op(s, with_dir(kPollOut0, d));
    }
  }

  void maybe_free(Sess* s) {
    if (!s->dead || s->inflight > 0) return;
    unlink(s);
    if (s->listener == nullptr) {
      // Never admitted (admit_named): nothing to log, no limits' slot.
      close_fd(s->fd[0]);
      delete s;
      return;
    }
    for (Dir& D : s->d) {
      drop_queue(D);
      if (D.pipe.read_fd >= 0) {
        if (D.inpipe > 0) PipePool::discard(D.pipe);
        else pool.put(D.pipe);
        D.pipe = {};
      }
    }
    if (s->handoff) {
      fast::post_hand_off(server, worker, *s, s->fd[0], false);
      s->fd[0] = -1;
    } else {
      if (s->phase == Sess::Phase::Connect && s->failed) {
        s->rec.reason = std::string(to_string(s->end));  // the client went while connecting
      }
      fast::finish(server, worker, *s, s->phase == Sess::Phase::Relay, now);
    }
    for (int fd : s->fd) {
      if (fd >= 0) close_fd(fd);
    }
    delete s;  // gives the limits' slot back
  }

  // --- the tick: deadlines, and the daemon's stop

  void sweep() {
    if (!stopping && server.stopping.load()) stop_accepting();
    if (!stopping) {
      for (auto& l : listeners) {
        if (l->retry_at != Clock::time_point{} && now >= l->retry_at) {
          l->retry_at = {};
          for (auto& slot : l->slots) {
            if (!slot.armed) arm_accept(slot);
          }
        }
      }
      for (auto& p : sockets) {
        if (p.wanted) refill(p);  // after a failure, once its retry time has come
      }
    }
    const bool end_all = !ending && server.rings_ending.load();
    if (end_all) ending = true;
    for (Sess* s = head; s != nullptr;) {
      Sess* next = s->next;
      if (end_all && !s->dead) {
        // The drain is over: end it the way a peer's reset would, so it logs.
        for (int fd : s->fd) {
          if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
        }
      }
      // A named client that sent nothing yet: its command ran when the
      // turn that accepted it submitted (`started` is that turn's time).
      if (s->naming != nullptr && !s->dead && s->started < now && s->target.ss_family != 0) {
        admit_named(s, false);
      }
      if (!s->dead) {
        switch (s->phase) {
          case Sess::Phase::Handshake:
            if (!s->expired && now >= s->deadline) {
              s->expired = true;
              ::shutdown(s->fd[0], SHUT_RDWR);
            }
            break;
          case Sess::Phase::Connect:
            if (!s->expired && (now >= s->deadline || end_all)) {
              s->expired = now >= s->deadline;
              io_uring_sqe* e = sqe();
              io_uring_prep_cancel64(e, ud(s, kConnect), 0);
              e->flags |= IOSQE_CQE_SKIP_SUCCESS;
              io_uring_sqe_set_data64(e, kIgnore);
            }
            break;
          case Sess::Phase::Relay:
            if (now >= s->last_activity + s->idle) kill(s, RelayEnd::Idle);
            break;
          case Sess::Phase::Ending:
            break;
        }
      }
      maybe_free(s);
      s = next;
    }
  }

  void dispatch(const io_uring_cqe* cqe) {
    const std::uint64_t u = cqe->user_data;
    const auto op = static_cast<Op>(u & kOpMask);
    void* p = reinterpret_cast<void*>(static_cast<std::uintptr_t>(u & ~kOpMask));
    auto* s = static_cast<Sess*>(p);
    switch (op) {
      case kIgnore: break;
      case kAccept:
        on_accept(*static_cast<AcceptSlot*>(p), cqe->res, (cqe->flags & IORING_CQE_F_MORE) != 0);
        break;
      case kTickDone: tick_due = true; break;
      case kPollIn0: on_poll_in(s, 0, cqe); break;
      case kPollIn1: on_poll_in(s, 1, cqe); break;
      case kPollOut0: on_poll_out(s, 0); break;
      case kPollOut1: on_poll_out(s, 1); break;
      case kHsSend: on_hs_send(s); break;
      case kFinal: on_hs_send(s); break;
      case kConnect: on_connect(s, cqe->res); break;
      case kSocket: on_pool_socket(*static_cast<SocketPool*>(p), cqe->res); break;
      case kRecv0: on_recv(s, 0, cqe); break;
      case kRecv1: on_recv(s, 1, cqe); break;
      case kSend0: on_send(s, 0, cqe->res); break;
      case kSend1: on_send(s, 1, cqe->res); break;
    }
    if (op != kIgnore && op != kAccept && op != kTickDone && op != kSocket) maybe_free(s);
  }

  void arm_tick() {
    io_uring_sqe* e = sqe();
    io_uring_prep_timeout(e, &tick_ts, 0, 0);
    io_uring_sqe_set_data64(e, kTickDone);
  }

  void loop() {
    worker.loop_wall = std::chrono::system_clock::now();
    arm_tick();
    while (!server.rings_stop.load(std::memory_order_relaxed)) {
      const int r = io_uring_submit_and_wait(&ring, 1);
      if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
        server.log.event(platform::LogLevel::Error, "io_error",
                         {{"error", errno_text("io_uring_enter", -r)}});
        break;
      }
      now = Clock::now();
      unsigned head_index = 0;
      unsigned n = 0;
      io_uring_cqe* cqe = nullptr;
      // A batch names sessions that were last touched many completions ago:
      // their first cache lines are asked for now, all at once, so that each
      // completion does not wait for its session's miss in turn.
      io_uring_for_each_cqe(&ring, head_index, cqe) {
        const std::uint64_t u = cqe->user_data;
        if (u > kOpMask) {
          const auto* p = reinterpret_cast<const char*>(static_cast<std::uintptr_t>(u & ~kOpMask));
          __builtin_prefetch(p);
          __builtin_prefetch(p + 64);
        }
      }
      io_uring_for_each_cqe(&ring, head_index, cqe) {
        ++n;
        dispatch(cqe);
      }
      io_uring_cq_advance(&ring, n);
      if (!starved.empty() && nfree >= static_cast<int>(kBuffers / 8)) resume_starved();
      if (tick_due) {
        tick_due = false;
        worker.loop_wall = std::chrono::system_clock::now();
        sweep();
        arm_tick();
      }
    }
  }
};

UringLoop::UringLoop(Server::Impl& server, RelayWorker& worker)
    : st_(std::make_unique<State>(server, worker)) {}

UringLoop::~UringLoop() = default;

void UringLoop::run() { fast::run_loop(*st_); }

}  // namespace diode::sockd

// libdiode-socksify.so: the library diode-socksify preloads into a program
// so that its connections follow socks.conf (docs/socksify.md).
//
// How it is built, and why:
// - C-linkage interposers for the socket and resolver calls, each finding
//   the real one with dlsym(RTLD_NEXT). Nothing else is exported.
// - No Asio and no thread of its own. A SOCKS handshake runs inside the
//   program's connect() (or bind()/listen()), synchronously, on the
//   program's own socket made non-blocking for the time being, each wait
//   bounded by poll(): a non-blocking connect() then returns EINPROGRESS
//   with the socket already connected (writable, SO_ERROR 0), which is what
//   curl, Python's asyncio and other event loops wait for.
// - State per descriptor lives in one array made with mmap at start-up and
//   read without locks, so that close() and dup*() (async-signal-safe
//   calls) neither allocate nor lock. Each entry also records the socket's
//   inode, so a descriptor closed behind our back (fclose, a raw syscall)
//   and reused is not mistaken for the old one.
// - Proxied names get fake addresses from 240.0.0.0/4 (policy.hpp): the
//   program connects to the fake address and the SOCKS5 request carries
//   the name, so the name is never looked up on this host.

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <resolv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "diode/sockd/proto_client.hpp"
#include "diode/sockd/socks_proto.hpp"
#include "diode/socksify/policy.hpp"

#define DIODE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace diode;
namespace proto = diode::sockd::proto;
using socksify::Route;

// Bounds on the waits done inside the program's calls (docs/socksify.md).
constexpr int kServerConnectMs = 5000;  // per server address
constexpr int kHandshakeMs = 20000;     // greeting to final reply (sockd may resolve a name)

// --- the real functions ------------------------------------------------------

template <class F>
F next(const char* name) {
  void* p = ::dlsym(RTLD_NEXT, name);
  F f;
  static_assert(sizeof f == sizeof p);
  std::memcpy(&f, &p, sizeof f);
  return f;
}

#define DIODE_REAL(name) static const auto real_##name = next<decltype(&::name)>(#name)

// Each interposer resolves its real function on first use (static local).
// The constructor at the end calls every async-signal-safe one once, so
// none is first resolved (dlsym) inside a signal handler.

// --- settings ------------------------------------------------------------------

struct Global {
  socksify::Settings settings;
  std::string local_user;
};

Global* g = nullptr;  // set once by init(); never freed
socksify::FakeNames* g_names = nullptr;
pthread_once_t g_once = PTHREAD_ONCE_INIT;
thread_local int t_inside = 0;  // > 0 while our own code runs: interposers pass through

struct Inside {
  Inside() { ++t_inside; }
  ~Inside() { --t_inside; }
  Inside(const Inside&) = delete;
  Inside& operator=(const Inside&) = delete;
};

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

__attribute__((format(printf, 1, 2))) void say(const char* fmt, ...) {
  const int saved = errno;
  char buf[1024];
  int n = std::snprintf(buf, sizeof buf, "diode-socksify[%d]: ", static_cast<int>(::getpid()));
  va_list ap;
  va_start(ap, fmt);
  const int m = std::vsnprintf(buf + n, sizeof buf - static_cast<std::size_t>(n) - 1, fmt, ap);
  va_end(ap);
  n = std::min(static_cast<int>(sizeof buf) - 2, n + std::max(m, 0));
  buf[n++] = '\n';
  write_all(2, buf, static_cast<std::size_t>(n));
  errno = saved;
}

#define DEBUG(...)                                           \
  do {                                                       \
    if (g != nullptr && g->settings.debug) say(__VA_ARGS__); \
  } while (0)

void lock_last();
void unlock_last();

// fork(): the locks are held across it, so the child never starts with one
// held by a thread it does not have.
void at_fork_prepare() {
  lock_last();
  if (g_names != nullptr) g_names->lock();
}
void at_fork_release() {
  if (g_names != nullptr) g_names->unlock();
  unlock_last();
}

void init_fd_table();

void init_once() {
  Inside in;
  init_fd_table();
  platform::Diagnostics diags;
  auto settings = socksify::load_settings([](const char* n) { return ::getenv(n); }, diags);
  if (!settings) {
    // A half-understood socks.conf must not let the program run: it would
    // connect in ways nobody chose.
    const std::string text = diags.format();
    write_all(2, text.data(), text.size());
    say("refusing to run: fix %s (or SOCKS_* variables) first",
        ::getenv("SOCKS_CONF") != nullptr ? ::getenv("SOCKS_CONF") : socksify::kDefaultConf);
    ::_exit(2);
  }
  auto* global = new Global{std::move(*settings), {}};
  bool need_user = false;
  for (const auto& r : global->settings.rules.rules) need_user = need_user || !r.users.any;
  if (need_user) {
    std::array<char, 4096> buf{};
    passwd pw{};
    passwd* res = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &res) == 0 && res != nullptr) {
      global->local_user = res->pw_name;
    }
  }
  g_names = new socksify::FakeNames;
  ::pthread_atfork(at_fork_prepare, at_fork_release, at_fork_release);
  g = global;
  DEBUG("loaded %s (%zu lines%s), %zu default server(s)", global->settings.conf_path.c_str(),
        global->settings.rules.rules.size(), global->settings.conf_present ? "" : ", absent",
        global->settings.default_servers.size());
}

// The settings, loading them on first use; null only while loading.
Global* state() {
  if (g != nullptr) return g;
  if (t_inside > 0) return nullptr;
  ::pthread_once(&g_once, init_once);
  return g;
}

// --- per-descriptor state -------------------------------------------------------------

// Proxied: a CONNECT through a server. BindPending: bound by the program
// after a proxied connection, so maybe the data socket of active FTP: the
// SOCKS BIND starts at listen() or getsockname(). Bind: the descriptor is
// now the connection to the server waiting for the peer. Udp: a datagram
// socket with an association; UdpControl: that association's TCP connection.
enum class Kind : std::uint8_t { None, Proxied, BindPending, Bind, Udp, UdpControl };

union SockAddr {
  sockaddr sa;
  sockaddr_in in;
  sockaddr_in6 in6;
};

struct FdEntry {
  std::atomic<Kind> kind{Kind::None};
  ino_t ino = 0;
  SockAddr peer{};  // Proxied/Bind: what getpeername() answers
  socklen_t peer_len = 0;
  SockAddr local{};  // Bind: the relay's announced address (getsockname)
  socklen_t local_len = 0;
  bool accepted = false;  // Bind: the second reply has been read
  int control = -1;       // Udp: the TCP connection that holds the association
  SockAddr dst{};         // Udp: the destination of a connect()ed socket
  socklen_t dst_len = 0;
  SockAddr relay{};  // Udp: where datagrams go
  socklen_t relay_len = 0;
  std::atomic<int> refs{0};  // UdpControl: how many Udp descriptors use it
};

FdEntry* g_fds = nullptr;
std::size_t g_nfds = 0;

void init_fd_table() {
  if (g_fds != nullptr) return;
  rlimit rl{};
  std::size_t n = 65536;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max > n) {
    n = static_cast<std::size_t>(rl.rlim_max);
  }
  n = std::min<std::size_t>(n, std::size_t{1} << 20);
  void* p = ::mmap(nullptr, n * sizeof(FdEntry), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return;
  // Zero pages are valid entries: Kind::None, no refs (the types are trivial
  // in their zero state), so nothing needs constructing.
  g_fds = static_cast<FdEntry*>(p);
  g_nfds = n;
}

ino_t inode_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  return st.st_ino;
}

// The live entry of `fd`, or null (not ours, or a stale entry).
FdEntry* entry(int fd) {
  if (g_fds == nullptr || fd < 0 || static_cast<std::size_t>(fd) >= g_nfds) return nullptr;
  FdEntry* e = &g_fds[fd];
  if (e->kind.load(std::memory_order_acquire) == Kind::None) return nullptr;
  if (e->ino != inode_of(fd)) {
    e->kind.store(Kind::None, std::memory_order_release);
    return nullptr;
  }
  return e;
}

// Makes `e` a fresh entry for the socket with inode `ino` (kind None until
// the caller publishes it).
void reset_entry(FdEntry* e, ino_t ino) {
  e->kind.store(Kind::None, std::memory_order_release);
  e->ino = ino;
  e->peer = {};
  e->peer_len = 0;
  e->local = {};
  e->local_len = 0;
  e->accepted = false;
  e->control = -1;
  e->dst = {};
  e->dst_len = 0;
  e->relay = {};
  e->relay_len = 0;
}

// The live entry of `fd` if it is of kind `k`: the kind is tested before
// the inode (an fstat), so the data path of other sockets pays no syscall.
FdEntry* entry_of_kind(int fd, Kind k);

FdEntry* slot(int fd) {
  if (g_fds == nullptr || fd < 0 || static_cast<std::size_t>(fd) >= g_nfds) return nullptr;
  return &g_fds[fd];
}

FdEntry* entry_of_kind(int fd, Kind k) {
  FdEntry* e = slot(fd);
  if (e == nullptr || e->kind.load(std::memory_order_acquire) != k) return nullptr;
  return entry(fd);
}

// Forgets `fd` (before it is closed or replaced). Async-signal-safe.
void forget(int fd);

void release_control(int control) {
  FdEntry* c = slot(control);
  if (c == nullptr) return;
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    c->kind.store(Kind::None, std::memory_order_release);
    DIODE_REAL(close);
    real_close(control);
  }
}

void forget(int fd) {
  FdEntry* e = slot(fd);
  if (e == nullptr) return;
  const Kind k = e->kind.exchange(Kind::None, std::memory_order_acq_rel);
  if (k == Kind::Udp && e->control >= 0) release_control(e->control);
}

// Copies the state of `from` to `to` (dup). Async-signal-safe.
void copy_entry(int from, int to) {
  FdEntry* src = slot(from);
  FdEntry* dst = slot(to);
  if (src == nullptr || dst == nullptr || from == to) return;
  const Kind k = src->kind.load(std::memory_order_acquire);
  if (k == Kind::None || k == Kind::UdpControl) return;
  dst->kind.store(Kind::None, std::memory_order_release);
  dst->ino = src->ino;
  dst->peer = src->peer;
  dst->peer_len = src->peer_len;
  dst->local = src->local;
  dst->local_len = src->local_len;
  dst->accepted = src->accepted;
  dst->control = src->control;
  dst->dst = src->dst;
  dst->dst_len = src->dst_len;
  dst->relay = src->relay;
  dst->relay_len = src->relay_len;
  if (k == Kind::Udp && src->control >= 0) {
    if (FdEntry* c = slot(src->control)) c->refs.fetch_add(1, std::memory_order_acq_rel);
  }
  dst->kind.store(k, std::memory_order_release);
}

// --- addresses ------------------------------------------------------------------

// Fake IPv6 addresses: 100::/64 (RFC 6666, discard only) with the fake IPv4
// address in the last 32 bits. Not ::ffff:240.x.y.z, which some programs
// (curl -6) drop from an IPv6-only answer.
constexpr std::array<std::uint8_t, 12> kFakeV6Prefix{0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

bool is_fake_v6(const std::uint8_t* b) {
  return std::memcmp(b, kFakeV6Prefix.data(), 12) == 0;
}

void fake_v6(std::uint32_t fake, std::uint8_t* out) {
  std::memcpy(out, kFakeV6Prefix.data(), 12);
  const std::uint32_t n = htonl(fake);
  std::memcpy(out + 12, &n, 4);
}

// What a program connects to: an address, or a proxied name behind a fake one.
struct Target {
  std::optional<platform::IpAddress> ip;
  const char* name = nullptr;
  std::uint16_t port = 0;
};

std::optional<Target> target_of(const sockaddr* sa, socklen_t len) {
  Target t;
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, sa, sizeof in);
    const std::uint32_t v = ntohl(in.sin_addr.s_addr);
    t.port = ntohs(in.sin_port);
    if (g_names != nullptr && (t.name = g_names->lookup(v)) != nullptr) return t;
    t.ip = platform::IpAddress::v4(v);
    return t;
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, sa, sizeof in6);
    t.port = ntohs(in6.sin6_port);
    platform::IpAddress a;
    a.family = platform::Family::V6;
    std::memcpy(a.bytes.data(), &in6.sin6_addr, 16);
    if (g_names != nullptr && is_fake_v6(a.bytes.data())) {
      std::uint32_t v = 0;
      std::memcpy(&v, a.bytes.data() + 12, 4);
      if ((t.name = g_names->lookup(ntohl(v))) != nullptr) return t;
    }
    a = a.unmapped();
    if (a.family == platform::Family::V4 && g_names != nullptr &&
        (t.name = g_names->lookup(a.v4_value())) != nullptr) {
      return t;
    }
    t.ip = a;
    return t;
  }
  return std::nullopt;
}

std::string describe(const Target& t) {
  if (t.name != nullptr) return std::string(t.name) + ":" + std::to_string(t.port);
  if (t.ip->family == platform::Family::V6)
    return "[" + t.ip->to_string() + "]:" + std::to_string(t.port);
  return t.ip->to_string() + ":" + std::to_string(t.port);
}

socklen_t to_sockaddr(const platform::IpAddress& ip, std::uint16_t port, int family,
                      SockAddr* out) {
  *out = SockAddr{};
  if (family == AF_INET) {
    if (ip.family != platform::Family::V4) return 0;
    out->in.sin_family = AF_INET;
    out->in.sin_port = htons(port);
    out->in.sin_addr.s_addr = htonl(ip.v4_value());
    return sizeof(sockaddr_in);
  }
  out->in6.sin6_family = AF_INET6;
  out->in6.sin6_port = htons(port);
  if (ip.family == platform::Family::V4) {
    std::uint8_t* b = out->in6.sin6_addr.s6_addr;
    b[10] = 0xff;
    b[11] = 0xff;
    std::memcpy(b + 12, ip.bytes.data(), 4);
  } else {
    std::memcpy(out->in6.sin6_addr.s6_addr, ip.bytes.data(), 16);
  }
  return sizeof(sockaddr_in6);
}

[[maybe_unused]] proto::Address socks_address_of(const SockAddr& sa) {
  platform::IpAddress ip;
  std::uint16_t port = 0;
  if (sa.sa.sa_family == AF_INET) {
    ip = platform::IpAddress::v4(ntohl(sa.in.sin_addr.s_addr));
    port = ntohs(sa.in.sin_port);
  } else {
    ip.family = platform::Family::V6;
    std::memcpy(ip.bytes.data(), &sa.in6.sin6_addr, 16);
    ip = ip.unmapped();
    port = ntohs(sa.in6.sin6_port);
  }
  return proto::Address::from_ip(ip, port);
}

int socket_family(int fd) {
  int domain = AF_UNSPEC;
  socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return AF_UNSPEC;
  return domain;
}

int socket_type(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return -1;
  return type;
}

// --- bounded waits ---------------------------------------------------------------------

long now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Waits for `events` on fd until the deadline: 0, or ETIMEDOUT / errno.
int wait_for(int fd, short events, long deadline) {
  for (;;) {
    const long left = deadline - now_ms();
    if (left <= 0) return ETIMEDOUT;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return 0;
    if (r == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

// Connects the non-blocking fd to `sa` within the timeout: 0 or an errno.
int connect_bounded(int fd, const SockAddr& sa, socklen_t len, int timeout_ms) {
  DIODE_REAL(connect);
  if (real_connect(fd, &sa.sa, len) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) return errno;
  if (const int w = wait_for(fd, POLLOUT, now_ms() + timeout_ms); w != 0) return w;
  int err = 0;
  socklen_t elen = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) return errno;
  return err;
}

int send_all(int fd, std::span<const std::uint8_t> bytes, long deadline) {
  DIODE_REAL(send);
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = real_send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (const int w = wait_for(fd, POLLOUT, deadline); w != 0) return w;
      continue;
    }
    return n < 0 ? errno : EPIPE;
  }
  return 0;
}

// Looks at what the server sent without taking it: the caller then takes
// exactly the bytes of the SOCKS message, so that a server that speaks first
// (ssh, FTP, SMTP) keeps its first bytes for the program.
ssize_t peek(int fd, std::uint8_t* buf, std::size_t n, long deadline, int* err) {
  DIODE_REAL(recv);
  for (;;) {
    const ssize_t r = real_recv(fd, buf, n, MSG_PEEK);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      *err = errno;
      return -1;
    }
    if (const int w = wait_for(fd, POLLIN, deadline); w != 0) {
      *err = w;
      return -1;
    }
  }
}

void take(int fd, std::size_t n) {
  DIODE_REAL(recv);
  std::array<std::uint8_t, 600> sink{};
  while (n > 0) {
    const ssize_t r = real_recv(fd, sink.data(), std::min(n, sink.size()), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    n -= static_cast<std::size_t>(r);
  }
}

// --- the SOCKS handshake -----------------------------------------------------------------

struct HandshakeResult {
  int err = 0;           // 0: a reply arrived (granted or not); else why not
  bool refused = false;  // the server answered, and not with success
  proto::ClientReply reply;
};

// Runs the client handshake on the connected, non-blocking fd up to the
// first reply. Bytes after the reply stay in the socket.
HandshakeResult handshake(int fd, proto::Command cmd, const proto::Address& dst, long deadline) {
  HandshakeResult out;
  proto::ClientRequest req;
  req.version = proto::Version::Socks5;
  req.command = cmd;
  req.destination = dst;
  req.username = g->settings.user;
  req.password = g->settings.password;
  req.offer_no_auth = g->settings.user.empty();
  proto::ClientHandshake hs(req);
  proto::ClientStep step = hs.start();
  std::array<std::uint8_t, 600> buf{};
  for (;;) {
    switch (step.kind) {
      case proto::ClientStepKind::Failed:
        say("SOCKS handshake failed: %s", std::string(proto::to_string(step.failure)).c_str());
        out.err = step.failure == proto::ClientFailure::AuthFailed ||
                          step.failure == proto::ClientFailure::NoAcceptableMethod
                      ? EACCES
                      : EPROTO;
        out.refused = true;
        return out;
      case proto::ClientStepKind::Reply:
        out.reply = hs.reply();
        out.refused = !out.reply.granted;
        return out;
      case proto::ClientStepKind::Send: {
        const std::array<std::uint8_t, 600>::size_type n = step.send.size();
        std::array<std::uint8_t, 600> copy{};
        std::memcpy(copy.data(), step.send.data(), n);
        if (const int e = send_all(fd, std::span<const std::uint8_t>(copy.data(), n), deadline);
            e != 0) {
          out.err = e;
          return out;
        }
        break;
      }
      case proto::ClientStepKind::NeedMore:
        break;
    }
    int err = 0;
    const ssize_t n = peek(fd, buf.data(), buf.size(), deadline, &err);
    if (n < 0) {
      out.err = err;
      return out;
    }
    if (n == 0) {
      out.err = ECONNRESET;
      return out;
    }
    step = hs.feed(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    take(fd, step.consumed);
  }
}

// A server's addresses for a socket of `family`, resolved here (servers are
// not proxied names).
std::vector<std::pair<SockAddr, socklen_t>> server_addresses(const socksify::Server& s,
                                                             int family) {
  std::vector<std::pair<SockAddr, socklen_t>> out;
  DIODE_REAL(getaddrinfo);
  addrinfo hints{};
  hints.ai_family = family == AF_INET ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(s.port);
  if (real_getaddrinfo(s.host.c_str(), port.c_str(), &hints, &res) != 0) return out;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    SockAddr sa{};
    if (a->ai_family == AF_INET && family == AF_INET) {
      std::memcpy(&sa.in, a->ai_addr, sizeof sa.in);
      out.emplace_back(sa, static_cast<socklen_t>(sizeof sa.in));
    } else if (family == AF_INET6 && (a->ai_family == AF_INET || a->ai_family == AF_INET6)) {
      const auto t = target_of(a->ai_addr, a->ai_addrlen);
      if (!t || !t->ip) continue;
      const socklen_t l = to_sockaddr(*t->ip, s.port, AF_INET6, &sa);
      out.emplace_back(sa, l);
    }
  }
  ::freeaddrinfo(res);
  return out;
}

// Connects fd to the first server of `servers` that answers and runs the
// handshake for `cmd` to `dst`. On return fd is connected to that server
// (result.err == 0, reply read) or reset.
HandshakeResult via_servers(int fd, const std::vector<socksify::Server>& servers,
                            proto::Command cmd, const proto::Address& dst, std::string* used) {
  HandshakeResult last;
  last.err = ECONNREFUSED;
  const int family = socket_family(fd);
  DIODE_REAL(connect);
  for (const auto& s : servers) {
    for (const auto& [sa, len] : server_addresses(s, family)) {
      const int e = connect_bounded(fd, sa, len, kServerConnectMs);
      if (e != 0) {
        DEBUG("server %s: %s", s.to_string().c_str(), std::strerror(e));
        last.err = e;
        SockAddr un{};
        un.sa.sa_family = AF_UNSPEC;
        real_connect(fd, &un.sa, sizeof un.sa);
        continue;
      }
      HandshakeResult r = handshake(fd, cmd, dst, now_ms() + kHandshakeMs);
      *used = s.to_string();
      if (r.err == 0 || r.refused) return r;  // an answer: final
      DEBUG("server %s: handshake: %s", s.to_string().c_str(), std::strerror(r.err));
      last = r;
      SockAddr un{};
      un.sa.sa_family = AF_UNSPEC;
      real_connect(fd, &un.sa, sizeof un.sa);
    }
  }
  return last;
}

proto::Address socks_destination(const Target& t) {
  if (t.name != nullptr) {
    if (auto a = proto::Address::from_name(t.name, t.port)) return *a;
  }
  return proto::Address::from_ip(*t.ip, t.port);
}

socksify::Decision decide(const Target& t, sockd::RuleCommand cmd = sockd::RuleCommand::Connect) {
  if (t.name != nullptr)
    return socksify::decide_name(g->settings, t.name, t.port, g->local_user, cmd);
  return socksify::decide_address(g->settings, *t.ip, t.port, g->local_user, cmd);
}

// The destination of the latest proxied connection: the peer a SOCKS BIND
// expects (active FTP's server connects back from the host it serves on).
struct LastPeer {
  std::mutex mutex;
  bool set = false;
  Target target;
  platform::IpAddress bound;  // the server's side of it (CONNECT's BND.ADDR)
};
LastPeer g_last;

void lock_last() {
  g_last.mutex.lock();
}
void unlock_last() {
  g_last.mutex.unlock();
}

class NonBlocking {
 public:
  explicit NonBlocking(int fd) : fd_(fd), flags_(::fcntl(fd, F_GETFL)) {
    if (flags_ >= 0 && (flags_ & O_NONBLOCK) == 0) ::fcntl(fd, F_SETFL, flags_ | O_NONBLOCK);
  }
  ~NonBlocking() {
    if (flags_ >= 0 && (flags_ & O_NONBLOCK) == 0) ::fcntl(fd_, F_SETFL, flags_);
  }
  bool was_nonblocking() const { return flags_ >= 0 && (flags_ & O_NONBLOCK) != 0; }
  NonBlocking(const NonBlocking&) = delete;
  NonBlocking& operator=(const NonBlocking&) = delete;

 private:
  int fd_;
  int flags_;
};

int fail(int err) {
  errno = err;
  return -1;
}

// Resolves a proxied name for a direct connection (a port test sent it
// direct after the lookup gave it a fake address).
std::optional<std::pair<SockAddr, socklen_t>> resolve_direct(const char* name, std::uint16_t port,
                                                             int family);

int connect_direct_name(int fd, const Target& t) {
  DIODE_REAL(connect);
  const auto sa = resolve_direct(t.name, t.port, socket_family(fd));
  if (!sa) return fail(EHOSTUNREACH);
  return real_connect(fd, &sa->first.sa, sa->second);
}

int tcp_connect(int fd, const sockaddr* addr, socklen_t len) {
  DIODE_REAL(connect);
  const auto t = target_of(addr, len);
  if (!t) return real_connect(fd, addr, len);
  if (t->ip && (t->ip->is_loopback() || t->ip->is_unspecified()))
    return real_connect(fd, addr, len);
  const socksify::Decision d = decide(*t);
  const std::string what = describe(*t);
  switch (d.route) {
    case Route::Direct:
      DEBUG("connect %s: direct (%s)", what.c_str(), d.where().c_str());
      if (t->name != nullptr) return connect_direct_name(fd, *t);
      return real_connect(fd, addr, len);
    case Route::Deny:
      say("connect %s: denied by %s", what.c_str(), d.where().c_str());
      return fail(ECONNREFUSED);
    case Route::Sockd:
      break;
  }
  FdEntry* e = slot(fd);
  if (e == nullptr) {
    say("connect %s: descriptor %d is beyond the table; refusing rather than going direct",
        what.c_str(), fd);
    return fail(EMFILE);
  }
  HandshakeResult r;
  std::string server;
  bool nonblocking = false;
  {
    NonBlocking nb(fd);
    nonblocking = nb.was_nonblocking();
    r = via_servers(fd, *d.servers, proto::Command::Connect, socks_destination(*t), &server);
  }
  if (r.err != 0 || !r.reply.granted) {
    const int err = r.err != 0 ? r.err : socksify::errno_for_reply(r.reply.code);
    say("connect %s via %s (%s): %s%s", what.c_str(), server.empty() ? "no server" : server.c_str(),
        d.where().c_str(), r.refused && r.err == 0 ? "refused by the server: " : "",
        std::strerror(err));
    return fail(err);
  }
  DEBUG("connect %s: via %s (%s), bound %s", what.c_str(), server.c_str(), d.where().c_str(),
        r.reply.bound.to_string().c_str());
  reset_entry(e, inode_of(fd));
  e->peer_len = std::min<socklen_t>(len, sizeof(SockAddr));
  std::memcpy(&e->peer, addr, e->peer_len);
  // getsockname() answers the server's side of the connection, the address
  // the destination sees (what a program announces, e.g. in FTP's PORT).
  e->local = SockAddr{};
  e->local_len = 0;
  if (r.reply.bound.type != proto::AddressType::Domain && !r.reply.bound.ip.is_unspecified()) {
    e->local_len = to_sockaddr(r.reply.bound.ip, r.reply.bound.port, socket_family(fd), &e->local);
  }
  e->kind.store(Kind::Proxied, std::memory_order_release);
  {
    const std::lock_guard<std::mutex> lock(g_last.mutex);
    g_last.set = true;
    g_last.target = *t;
    g_last.bound =
        r.reply.bound.type != proto::AddressType::Domain ? r.reply.bound.ip : platform::IpAddress{};
  }
  // Already connected: an event loop sees it writable with SO_ERROR 0.
  return nonblocking ? fail(EINPROGRESS) : 0;
}

int udp_connect(int fd, const sockaddr* addr, socklen_t len);

// --- name lookups ------------------------------------------------------------------------

bool is_numeric_host(const char* node) {
  in6_addr a6{};
  in_addr a4{};
  return ::inet_pton(AF_INET6, node, &a6) == 1 || ::inet_aton(node, &a4) != 0;
}

bool is_local_name(const char* node) {
  const std::size_t n = std::strlen(node);
  auto ends = [&](const char* suffix) {
    const std::size_t m = std::strlen(suffix);
    return n >= m && ::strcasecmp(node + n - m, suffix) == 0;
  };
  return ::strcasecmp(node, "localhost") == 0 || ends(".localhost") || ends(".localhost.") ||
         ::strcasecmp(node, "localhost.") == 0;
}

// Points this thread's resolver at SOCKS_NS (IPv4) for the next lookup.
void use_socks_ns() {
  if (!g->settings.nameserver || g->settings.nameserver->family != platform::Family::V4) return;
  if ((_res.options & RES_INIT) == 0) ::res_init();
  _res.options |= RES_NORELOAD;
  _res.nscount = 1;
  _res.nsaddr_list[0].sin_family = AF_INET;
  _res.nsaddr_list[0].sin_port = htons(53);
  _res.nsaddr_list[0].sin_addr.s_addr = htonl(g->settings.nameserver->v4_value());
}

std::optional<std::pair<SockAddr, socklen_t>> resolve_direct(const char* name, std::uint16_t port,
                                                             int family) {
  DIODE_REAL(getaddrinfo);
  use_socks_ns();
  addrinfo hints{};
  hints.ai_family = family == AF_INET ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (real_getaddrinfo(name, nullptr, &hints, &res) != 0 || res == nullptr) return std::nullopt;
  const auto t = target_of(res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  if (!t || !t->ip) return std::nullopt;
  SockAddr sa{};
  const socklen_t len = to_sockaddr(*t->ip, port, family == AF_INET ? AF_INET : AF_INET6, &sa);
  if (len == 0) return std::nullopt;
  return std::make_pair(sa, len);
}

// The port a service string names, for the decision at lookup time.
int service_port(const char* service, int socktype, bool numeric_only,
                 std::optional<std::uint16_t>* out) {
  if (service == nullptr) return 0;
  if (auto p = platform::parse_port_number(service)) {
    *out = *p;
    return 0;
  }
  if (numeric_only) return EAI_NONAME;
  servent se{};
  servent* res = nullptr;
  std::array<char, 1024> buf{};
  ::getservbyname_r(service, socktype == SOCK_DGRAM ? "udp" : "tcp", &se, buf.data(), buf.size(),
                    &res);
  if (res == nullptr) return EAI_SERVICE;
  *out = ntohs(static_cast<std::uint16_t>(res->s_port));
  return 0;
}

// Is `node` a name that socks.conf sends through a server or refuses? Then
// it gets a fake address and is never looked up here.
std::optional<std::uint32_t> fake_for(const char* node, std::optional<std::uint16_t> port) {
  if (node == nullptr || *node == '\0' || is_numeric_host(node) || is_local_name(node))
    return std::nullopt;
  if (std::strlen(node) > 255) return std::nullopt;
  const socksify::Decision d = socksify::decide_name(g->settings, node, port, g->local_user);
  if (d.route == Route::Direct) {
    DEBUG("lookup %s: direct (%s)", node, d.where().c_str());
    return std::nullopt;
  }
  const auto fake = g_names->intern(node);
  if (fake) {
    in_addr a{};
    a.s_addr = htonl(*fake);
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a, text, sizeof text);
    DEBUG("lookup %s: %s (%s), fake address %s", node, std::string(to_string(d.route)).c_str(),
          d.where().c_str(), text);
  }
  return fake;
}

addrinfo* make_ai(int family, int socktype, int protocol, std::uint32_t fake, std::uint16_t port,
                  const char* canon) {
  const std::size_t addrlen = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  // One block for the entry and its address, as glibc's freeaddrinfo expects.
  auto* block = static_cast<char*>(std::calloc(1, sizeof(addrinfo) + sizeof(SockAddr)));
  if (block == nullptr) return nullptr;
  auto* ai = reinterpret_cast<addrinfo*>(block);
  auto* sa = reinterpret_cast<SockAddr*>(block + sizeof(addrinfo));
  if (family == AF_INET) {
    to_sockaddr(platform::IpAddress::v4(fake), port, family, sa);
  } else {
    sa->in6.sin6_family = AF_INET6;
    sa->in6.sin6_port = htons(port);
    fake_v6(fake, sa->in6.sin6_addr.s6_addr);
  }
  ai->ai_family = family;
  ai->ai_socktype = socktype;
  ai->ai_protocol = protocol;
  ai->ai_addrlen = static_cast<socklen_t>(addrlen);
  ai->ai_addr = &sa->sa;
  if (canon != nullptr) ai->ai_canonname = ::strdup(canon);
  return ai;
}

// --- hostent results for gethostbyname* ------------------------------------------------

// Fills a hostent for a fake address inside `buf`; false if it does not fit.
bool fill_hostent(const char* name, int af, std::uint32_t fake, hostent* h, char* buf,
                  std::size_t len) {
  const std::size_t addr_len = af == AF_INET ? 4 : 16;
  const std::size_t name_len = std::strlen(name) + 1;
  const std::size_t need = 4 * sizeof(char*) + 16 + name_len;
  if (len < need) return false;
  auto** ptrs = reinterpret_cast<char**>(buf);
  char* addr = buf + 4 * sizeof(char*);
  char* nm = addr + 16;
  std::memcpy(nm, name, name_len);
  const std::uint32_t n = htonl(fake);
  if (af == AF_INET) {
    std::memcpy(addr, &n, 4);
  } else {
    std::array<std::uint8_t, 16> b{};
    fake_v6(fake, b.data());
    std::memcpy(addr, b.data(), 16);
  }
  ptrs[0] = addr;  // h_addr_list
  ptrs[1] = nullptr;
  ptrs[2] = nullptr;  // h_aliases (empty)
  h->h_name = nm;
  h->h_aliases = ptrs + 2;
  h->h_addrtype = af;
  h->h_length = static_cast<int>(addr_len);
  h->h_addr_list = ptrs;
  return true;
}

thread_local hostent t_hostent;
thread_local std::array<char, 512> t_hostbuf;

}  // namespace

// --- the interposers --------------------------------------------------------------------

DIODE_EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) {
  DIODE_REAL(connect);
  if (t_inside > 0 || addr == nullptr || len < sizeof(sa_family_t) ||
      (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) || state() == nullptr) {
    return real_connect(fd, addr, len);
  }
  if (FdEntry* e = entry(fd)) {
    // Bound, then connected: an outgoing socket with a chosen source after all.
    if (e->kind.load(std::memory_order_acquire) != Kind::BindPending) {
      return real_connect(fd, addr, len);  // EISCONN / EALREADY as usual
    }
    e->kind.store(Kind::None, std::memory_order_release);
  }
  const int type = socket_type(fd);
  Inside in;
  if (type == SOCK_DGRAM) return udp_connect(fd, addr, len);
  if (type != SOCK_STREAM) return real_connect(fd, addr, len);
  return tcp_connect(fd, addr, len);
}

DIODE_EXPORT int getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                             addrinfo** res) {
  DIODE_REAL(getaddrinfo);
  if (t_inside > 0 || node == nullptr || state() == nullptr)
    return real_getaddrinfo(node, service, hints, res);
  const int family = hints != nullptr ? hints->ai_family : AF_UNSPEC;
  const int flags = hints != nullptr ? hints->ai_flags : 0;
  if ((flags & AI_NUMERICHOST) != 0 ||
      (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)) {
    return real_getaddrinfo(node, service, hints, res);
  }
  Inside in;
  const int socktype = hints != nullptr ? hints->ai_socktype : 0;
  std::optional<std::uint16_t> port;
  if (const int e = service_port(service, socktype, (flags & AI_NUMERICSERV) != 0, &port); e != 0) {
    if (is_numeric_host(node) || is_local_name(node))
      return real_getaddrinfo(node, service, hints, res);
    return e;
  }
  const auto fake = fake_for(node, port);
  if (!fake) {
    use_socks_ns();
    return real_getaddrinfo(node, service, hints, res);
  }
  // AF_UNSPEC: both families, IPv4 first, as for a name with A and AAAA
  // records (curl -6, for one, asks for AF_UNSPEC and keeps the IPv6 ones).
  std::array<int, 2> families{AF_INET, AF_INET6};
  std::size_t nfamilies = 2;
  if (family != AF_UNSPEC) {
    families[0] = family;
    nfamilies = 1;
  }
  struct Kind2 {
    int socktype, protocol;
  };
  std::array<Kind2, 2> kinds{{{SOCK_STREAM, IPPROTO_TCP}, {SOCK_DGRAM, IPPROTO_UDP}}};
  std::size_t nkinds = 2;
  if (socktype != 0) {
    int protocol = hints->ai_protocol;
    if (protocol == 0)
      protocol = socktype == SOCK_DGRAM ? IPPROTO_UDP : socktype == SOCK_STREAM ? IPPROTO_TCP : 0;
    kinds[0] = {socktype, protocol};
    nkinds = 1;
  }
  addrinfo* head = nullptr;
  addrinfo** tail = &head;
  for (std::size_t f = 0; f < nfamilies; ++f) {
    for (std::size_t i = 0; i < nkinds; ++i) {
      const bool first = head == nullptr;
      addrinfo* ai =
          make_ai(families[f], kinds[i].socktype, kinds[i].protocol, *fake, port.value_or(0),
                  (first && (flags & AI_CANONNAME) != 0) ? node : nullptr);
      if (ai == nullptr) {
        if (head != nullptr) ::freeaddrinfo(head);
        return EAI_MEMORY;
      }
      *tail = ai;
      tail = &ai->ai_next;
    }
  }
  *res = head;
  return 0;
}

DIODE_EXPORT int getnameinfo(const sockaddr* sa, socklen_t salen, char* host, socklen_t hostlen,
                             char* serv, socklen_t servlen, int flags) {
  DIODE_REAL(getnameinfo);
  if (t_inside == 0 && sa != nullptr && host != nullptr && hostlen > 0 &&
      (flags & NI_NUMERICHOST) == 0 && state() != nullptr) {
    const auto t = target_of(sa, salen);
    if (t && t->name != nullptr) {
      if (std::strlen(t->name) + 1 > hostlen) return EAI_OVERFLOW;
      std::strcpy(host, t->name);
      if (serv != nullptr && servlen > 0) {
        return real_getnameinfo(sa, salen, nullptr, 0, serv, servlen, flags | NI_NUMERICHOST);
      }
      return 0;
    }
  }
  return real_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
}

DIODE_EXPORT hostent* gethostbyname2(const char* name, int af) {
  DIODE_REAL(gethostbyname2);
  if (t_inside > 0 || name == nullptr || (af != AF_INET && af != AF_INET6) || state() == nullptr) {
    return real_gethostbyname2(name, af);
  }
  Inside in;
  const auto fake = fake_for(name, std::nullopt);
  if (!fake) {
    use_socks_ns();
    return real_gethostbyname2(name, af);
  }
  if (!fill_hostent(name, af, *fake, &t_hostent, t_hostbuf.data(), t_hostbuf.size())) {
    h_errno = NO_RECOVERY;
    return nullptr;
  }
  return &t_hostent;
}

DIODE_EXPORT hostent* gethostbyname(const char* name) {
  return gethostbyname2(name, AF_INET);
}

DIODE_EXPORT int gethostbyname2_r(const char* name, int af, hostent* ret, char* buf, size_t buflen,
                                  hostent** result, int* h_errnop) {
  DIODE_REAL(gethostbyname2_r);
  if (t_inside > 0 || name == nullptr || (af != AF_INET && af != AF_INET6) || state() == nullptr) {
    return real_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
  }
  Inside in;
  const auto fake = fake_for(name, std::nullopt);
  if (!fake) {
    use_socks_ns();
    return real_gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
  }
  *result = nullptr;
  if (!fill_hostent(name, af, *fake, ret, buf, buflen)) {
    if (h_errnop != nullptr) *h_errnop = NETDB_INTERNAL;
    return ERANGE;
  }
  *result = ret;
  if (h_errnop != nullptr) *h_errnop = 0;
  return 0;
}

DIODE_EXPORT int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen,
                                 hostent** result, int* h_errnop) {
  return gethostbyname2_r(name, AF_INET, ret, buf, buflen, result, h_errnop);
}

DIODE_EXPORT int getpeername(int fd, sockaddr* addr, socklen_t* len) {
  DIODE_REAL(getpeername);
  FdEntry* e = t_inside > 0 ? nullptr : entry(fd);
  if (e == nullptr || addr == nullptr || len == nullptr) return real_getpeername(fd, addr, len);
  const Kind k = e->kind.load(std::memory_order_acquire);
  if (k == Kind::Proxied || (k == Kind::Bind && e->accepted) ||
      (k == Kind::Udp && e->peer_len > 0)) {
    std::memcpy(addr, &e->peer, std::min(*len, e->peer_len));
    *len = e->peer_len;
    return 0;
  }
  return real_getpeername(fd, addr, len);
}

DIODE_EXPORT int close(int fd) {
  DIODE_REAL(close);
  forget(fd);
  return real_close(fd);
}

DIODE_EXPORT int dup(int fd) {
  DIODE_REAL(dup);
  const int r = real_dup(fd);
  if (r >= 0) copy_entry(fd, r);
  return r;
}

DIODE_EXPORT int dup2(int fd, int to) {
  DIODE_REAL(dup2);
  if (fd != to) forget(to);
  const int r = real_dup2(fd, to);
  if (r >= 0) copy_entry(fd, r);
  return r;
}

DIODE_EXPORT int dup3(int fd, int to, int flags) {
  DIODE_REAL(dup3);
  if (fd != to) forget(to);
  const int r = real_dup3(fd, to, flags);
  if (r >= 0) copy_entry(fd, r);
  return r;
}

DIODE_EXPORT int fcntl(int fd, int cmd, ...) {
  DIODE_REAL(fcntl);
  va_list ap;
  va_start(ap, cmd);
  // Every fcntl argument is an int, a long-sized value or a pointer; passing
  // one machine word on serves them all (as glibc's own wrappers do).
  void* arg = va_arg(ap, void*);
  va_end(ap);
  const int r = real_fcntl(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) copy_entry(fd, r);
  return r;
}

// --- BIND (active FTP and other programs that wait for one connection) -----------------

namespace {

socklen_t copy_out(const SockAddr& from, socklen_t from_len, sockaddr* addr, socklen_t* len) {
  if (addr != nullptr && len != nullptr) {
    std::memcpy(addr, &from, std::min(*len, from_len));
    *len = from_len;
  }
  return from_len;
}

// Turns a BindPending descriptor into a SOCKS BIND waiting for the peer of
// the latest proxied connection: the descriptor becomes the connection to
// the server, and getsockname() answers the server's announced address.
int start_bind(int fd, FdEntry* e) {
  Target peer;
  {
    const std::lock_guard<std::mutex> lock(g_last.mutex);
    peer = g_last.target;
  }
  peer.port = 0;
  const socksify::Decision d = decide(peer, sockd::RuleCommand::Bind);
  const std::string what = describe(peer);
  if (d.route != Route::Sockd) {
    // Not through a server after all: the program's own bind stands.
    e->kind.store(Kind::None, std::memory_order_release);
    DEBUG("bind for %s: %s (%s), left local", what.c_str(), std::string(to_string(d.route)).c_str(),
          d.where().c_str());
    return 0;
  }
  const int family = socket_family(fd);
  const int fl = ::fcntl(fd, F_GETFL);
  const int fdfl = ::fcntl(fd, F_GETFD);
  const int c = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c < 0) return -1;
  std::string server;
  HandshakeResult r =
      via_servers(c, *d.servers, proto::Command::Bind, socks_destination(peer), &server);
  DIODE_REAL(close);
  if (r.err != 0 || !r.reply.granted) {
    const int err = r.err != 0 ? r.err : socksify::errno_for_reply(r.reply.code);
    say("bind for %s via %s (%s): %s", what.c_str(), server.empty() ? "no server" : server.c_str(),
        d.where().c_str(), std::strerror(err));
    real_close(c);
    e->kind.store(Kind::None, std::memory_order_release);
    return fail(err);
  }
  // The server's address as the program's socket family writes it.
  SockAddr local{};
  socklen_t local_len = 0;
  if (r.reply.bound.type != proto::AddressType::Domain) {
    local_len = to_sockaddr(r.reply.bound.ip, r.reply.bound.port, family, &local);
  }
  if (local_len == 0) {
    say("bind for %s: the server announced %s, which a %s socket cannot name", what.c_str(),
        r.reply.bound.to_string().c_str(), family == AF_INET ? "IPv4" : "IPv6");
    real_close(c);
    e->kind.store(Kind::None, std::memory_order_release);
    return fail(EADDRNOTAVAIL);
  }
  DIODE_REAL(dup3);
  ::fcntl(c, F_SETFL, fl >= 0 ? fl : 0);
  e->kind.store(Kind::None, std::memory_order_release);
  if (real_dup3(c, fd, (fdfl >= 0 && (fdfl & FD_CLOEXEC) != 0) ? O_CLOEXEC : 0) < 0) {
    const int err = errno;
    real_close(c);
    return fail(err);
  }
  real_close(c);
  reset_entry(e, inode_of(fd));
  e->local = local;
  e->local_len = local_len;
  e->accepted = false;
  e->kind.store(Kind::Bind, std::memory_order_release);
  DEBUG("bind for %s: via %s (%s), announced %s", what.c_str(), server.c_str(), d.where().c_str(),
        r.reply.bound.to_string().c_str());
  return 0;
}

// Waits for the second BIND reply on fd (non-blocking descriptors: EAGAIN
// until it is there). 0, or -1 with errno.
int second_reply(int fd, FdEntry* e) {
  const bool nonblocking = (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
  std::array<std::uint8_t, 600> buf{};
  DIODE_REAL(recv);
  for (;;) {
    const ssize_t n =
        real_recv(fd, buf.data(), buf.size(), MSG_PEEK | (nonblocking ? MSG_DONTWAIT : 0));
    if (n < 0) return -1;
    if (n == 0) return fail(ECONNABORTED);
    const auto p = proto::parse_socks5_reply(
        std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    if (p.status == proto::ParseStatus::Malformed) {
      say("bind: malformed second reply from the server");
      return fail(EPROTO);
    }
    if (p.status == proto::ParseStatus::NeedMore) {
      if (nonblocking) return fail(EAGAIN);
      pollfd pf{fd, POLLIN, 0};
      ::poll(&pf, 1, 100);  // the rest of a reply already on its way
      continue;
    }
    take(fd, p.consumed);
    if (p.value.rep != 0) {
      say("bind: the server gave up waiting for the peer (REP %u)",
          static_cast<unsigned>(p.value.rep));
      return fail(p.value.rep == 6 ? ETIMEDOUT : ECONNABORTED);
    }
    SockAddr peer{};
    socklen_t plen = 0;
    if (p.value.bound.type != proto::AddressType::Domain) {
      plen = to_sockaddr(p.value.bound.ip, p.value.bound.port, socket_family(fd), &peer);
    }
    e->peer = peer;
    e->peer_len = plen;
    e->accepted = true;
    DEBUG("bind: the peer %s connected", p.value.bound.to_string().c_str());
    return 0;
  }
}

int accept_bind(int fd, FdEntry* e, sockaddr* addr, socklen_t* len, int flags) {
  if (e->accepted) return fail(EAGAIN);  // one connection per BIND
  if (second_reply(fd, e) != 0) return -1;
  DIODE_REAL(fcntl);
  const int nfd = real_fcntl(fd, (flags & SOCK_CLOEXEC) != 0 ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
  if (nfd < 0) return -1;
  if ((flags & SOCK_NONBLOCK) != 0) ::fcntl(nfd, F_SETFL, ::fcntl(nfd, F_GETFL) | O_NONBLOCK);
  if (FdEntry* n = slot(nfd)) {
    reset_entry(n, e->ino);
    n->peer = e->peer;
    n->peer_len = e->peer_len;
    n->local = e->local;
    n->local_len = e->local_len;
    n->kind.store(Kind::Proxied, std::memory_order_release);
  }
  copy_out(e->peer, e->peer_len, addr, len);
  return nfd;
}

}  // namespace

DIODE_EXPORT int bind(int fd, const sockaddr* addr, socklen_t len) {
  DIODE_REAL(bind);
  int r = real_bind(fd, addr, len);
  const int err = errno;
  if (t_inside > 0 || addr == nullptr || state() == nullptr) return r;
  if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) return r;
  const auto t = target_of(addr, len);
  if (!t || !t->ip || t->ip->is_loopback() || socket_type(fd) != SOCK_STREAM) return r;
  {
    const std::lock_guard<std::mutex> lock(g_last.mutex);
    if (!g_last.set) return r;
    // The address getsockname() gave for a proxied connection is the
    // server's, not this host's: binding to it means "listen there", BIND.
    if (r != 0 && err == EADDRNOTAVAIL && t->ip->unmapped() == g_last.bound.unmapped()) r = 0;
  }
  if (r != 0) {
    errno = err;
    return r;
  }
  if (FdEntry* e = slot(fd)) {
    reset_entry(e, inode_of(fd));
    e->kind.store(Kind::BindPending, std::memory_order_release);
  }
  return r;
}

DIODE_EXPORT int listen(int fd, int backlog) {
  DIODE_REAL(listen);
  FdEntry* e = t_inside > 0 ? nullptr : entry(fd);
  if (e == nullptr) return real_listen(fd, backlog);
  Inside in;
  Kind k = e->kind.load(std::memory_order_acquire);
  if (k == Kind::BindPending) {
    if (start_bind(fd, e) != 0) return -1;
    k = e->kind.load(std::memory_order_acquire);
  }
  if (k == Kind::Bind) return 0;  // the server listens for us
  return real_listen(fd, backlog);
}

DIODE_EXPORT int getsockname(int fd, sockaddr* addr, socklen_t* len) {
  DIODE_REAL(getsockname);
  FdEntry* e = t_inside > 0 ? nullptr : entry(fd);
  if (e == nullptr) return real_getsockname(fd, addr, len);
  Inside in;
  Kind k = e->kind.load(std::memory_order_acquire);
  if (k == Kind::BindPending) {
    if (start_bind(fd, e) != 0) return -1;
    k = e->kind.load(std::memory_order_acquire);
  }
  if (k == Kind::Bind || (k == Kind::Proxied && e->local_len > 0)) {
    copy_out(e->local, e->local_len, addr, len);
    return 0;
  }
  return real_getsockname(fd, addr, len);
}

DIODE_EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  DIODE_REAL(accept4);
  FdEntry* e = t_inside > 0 ? nullptr : entry(fd);
  if (e == nullptr || e->kind.load(std::memory_order_acquire) != Kind::Bind) {
    return real_accept4(fd, addr, len, flags);
  }
  Inside in;
  return accept_bind(fd, e, addr, len, flags);
}

DIODE_EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) {
  DIODE_REAL(accept);
  FdEntry* e = t_inside > 0 ? nullptr : entry(fd);
  if (e == nullptr || e->kind.load(std::memory_order_acquire) != Kind::Bind)
    return real_accept(fd, addr, len);
  Inside in;
  return accept_bind(fd, e, addr, len, 0);
}

// --- UDP ASSOCIATE (sockd lines whose cmd= lists udp) ------------------------------

namespace {

bool same_endpoint(const SockAddr& a, const SockAddr& b) {
  const auto ta = target_of(&a.sa, sizeof(SockAddr));
  const auto tb = target_of(&b.sa, sizeof(SockAddr));
  return ta && tb && ta->ip && tb->ip && ta->port == tb->port &&
         ta->ip->unmapped() == tb->ip->unmapped();
}

// Makes fd's association: a TCP connection to the server (kept, hidden, for
// the association's life) and the relay's UDP address.
int udp_associate(int fd, const socksify::Decision& d, const std::string& what) {
  FdEntry* e = slot(fd);
  if (e == nullptr) return fail(EMFILE);
  const int family = socket_family(fd);
  const int c = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c < 0) return -1;
  FdEntry* ce = slot(c);
  DIODE_REAL(close);
  if (ce == nullptr) {
    real_close(c);
    return fail(EMFILE);
  }
  std::string server;
  const proto::Address any = proto::Address::from_ip(
      family == AF_INET6 ? *platform::IpAddress::parse("::") : platform::IpAddress::v4(0), 0);
  const HandshakeResult r = via_servers(c, *d.servers, proto::Command::UdpAssociate, any, &server);
  if (r.err != 0 || !r.reply.granted) {
    const int err = r.err != 0 ? r.err : socksify::errno_for_reply(r.reply.code);
    say("udp %s via %s (%s): %s", what.c_str(), server.empty() ? "no server" : server.c_str(),
        d.where().c_str(), std::strerror(err));
    real_close(c);
    return fail(err);
  }
  platform::IpAddress relay_ip = r.reply.bound.ip;
  if (r.reply.bound.type == proto::AddressType::Domain || relay_ip.is_unspecified()) {
    // "The address the client reached the server at" (RFC 1928 §6).
    SockAddr peer{};
    socklen_t plen = sizeof peer;
    DIODE_REAL(getpeername);
    real_getpeername(c, &peer.sa, &plen);
    const auto t = target_of(&peer.sa, plen);
    if (t && t->ip) relay_ip = *t->ip;
  }
  SockAddr relay{};
  const socklen_t relay_len = to_sockaddr(relay_ip, r.reply.bound.port, family, &relay);
  if (relay_len == 0) {
    real_close(c);
    return fail(EAFNOSUPPORT);
  }
  reset_entry(ce, inode_of(c));
  ce->refs.store(1, std::memory_order_release);
  ce->kind.store(Kind::UdpControl, std::memory_order_release);
  const ino_t ino = inode_of(fd);
  forget(fd);
  reset_entry(e, ino);
  e->control = c;
  e->relay = relay;
  e->relay_len = relay_len;
  e->kind.store(Kind::Udp, std::memory_order_release);
  DEBUG("udp %s: associated via %s (%s), relay %s", what.c_str(), server.c_str(), d.where().c_str(),
        r.reply.bound.to_string().c_str());
  return 0;
}

// The datagram socket's association, made on first use; null with errno
// set when it cannot be made.
FdEntry* association(int fd, const socksify::Decision& d, const std::string& what) {
  if (FdEntry* e = entry(fd); e != nullptr && e->kind.load(std::memory_order_acquire) == Kind::Udp)
    return e;
  if (udp_associate(fd, d, what) != 0) return nullptr;
  return slot(fd);
}

// Sends one datagram through the relay: the RFC 1928 §7 header for `t`,
// then the program's bytes, in one sendmsg. Returns the program's byte count.
ssize_t send_wrapped(int fd, FdEntry* e, const Target& t, const msghdr* msg, int flags) {
  std::array<std::uint8_t, 300> header{};
  const std::size_t hlen = proto::encode_udp_header(socks_destination(t), header);
  if (hlen == 0) return fail(EINVAL);
  constexpr std::size_t kMaxIov = 64;
  if (msg->msg_iovlen + 1 > kMaxIov) return fail(EMSGSIZE);
  std::array<iovec, kMaxIov> iov{};
  iov[0] = iovec{header.data(), hlen};
  for (std::size_t i = 0; i < msg->msg_iovlen; ++i) iov[i + 1] = msg->msg_iov[i];
  msghdr m{};
  m.msg_name = &e->relay;
  m.msg_namelen = e->relay_len;
  m.msg_iov = iov.data();
  m.msg_iovlen = msg->msg_iovlen + 1;
  m.msg_control = msg->msg_control;
  m.msg_controllen = msg->msg_controllen;
  DIODE_REAL(sendmsg);
  const ssize_t r = real_sendmsg(fd, &m, flags);
  if (r < 0) return r;
  return r >= static_cast<ssize_t>(hlen) ? r - static_cast<ssize_t>(hlen) : 0;
}

// What sendmsg() should do with a datagram to `dest` (or to the connected
// destination): -2 for "not ours, call the real function".
ssize_t udp_send(int fd, const msghdr* msg, int flags) {
  FdEntry* e = entry_of_kind(fd, Kind::Udp);
  const bool associated = e != nullptr;
  if (msg->msg_name == nullptr || msg->msg_namelen == 0) {
    if (!associated || e->dst_len == 0) return -2;
    const auto t = target_of(&e->dst.sa, e->dst_len);
    return send_wrapped(fd, e, *t, msg, flags);
  }
  const auto* dest = static_cast<const sockaddr*>(msg->msg_name);
  if (dest->sa_family != AF_INET && dest->sa_family != AF_INET6) return -2;
  const auto t = target_of(dest, msg->msg_namelen);
  if (!t || (t->ip && (t->ip->is_loopback() || t->ip->is_unspecified()))) return -2;
  if (socket_type(fd) != SOCK_DGRAM) return -2;
  const socksify::Decision d = decide(*t, sockd::RuleCommand::Udp);
  const std::string what = describe(*t);
  switch (d.route) {
    case Route::Deny:
      say("udp %s: denied by %s", what.c_str(), d.where().c_str());
      return fail(ECONNREFUSED);
    case Route::Direct: {
      if (t->name == nullptr) return -2;
      const auto sa = resolve_direct(t->name, t->port, socket_family(fd));
      if (!sa) return fail(EHOSTUNREACH);
      msghdr m = *msg;
      SockAddr copy = sa->first;
      m.msg_name = &copy;
      m.msg_namelen = sa->second;
      DIODE_REAL(sendmsg);
      return real_sendmsg(fd, &m, flags);
    }
    case Route::Sockd:
      break;
  }
  FdEntry* a = association(fd, d, what);
  if (a == nullptr) return -1;
  return send_wrapped(fd, a, *t, msg, flags);
}

// Receives one datagram for an associated socket: from the relay, the
// header is taken off and its address becomes the source; anything else is
// passed on as it came. -2: not ours.
ssize_t udp_recv(int fd, msghdr* msg, int flags) {
  FdEntry* e = entry_of_kind(fd, Kind::Udp);
  if (e == nullptr) return -2;
  DIODE_REAL(recvmsg);
  for (;;) {
    std::array<std::uint8_t, 300> head{};
    SockAddr from{};
    iovec piov{head.data(), head.size()};
    msghdr peekm{};
    peekm.msg_name = &from;
    peekm.msg_namelen = sizeof from;
    peekm.msg_iov = &piov;
    peekm.msg_iovlen = 1;
    const ssize_t n = real_recvmsg(fd, &peekm, MSG_PEEK | (flags & MSG_DONTWAIT));
    if (n < 0) return n;
    if (!same_endpoint(from, e->relay)) return real_recvmsg(fd, msg, flags);
    const auto p = proto::parse_udp_header(
        std::span<const std::uint8_t>(head.data(), static_cast<std::size_t>(n)));
    if (p.status != proto::ParseStatus::Ok || p.header.fragmented()) {
      std::array<std::uint8_t, 1> drop{};
      ::recv(fd, drop.data(), drop.size(), MSG_DONTWAIT | MSG_TRUNC);
      DEBUG("udp: dropped a %s datagram from the relay",
            p.header.fragmented() ? "fragmented" : "malformed");
      continue;
    }
    constexpr std::size_t kMaxIov = 64;
    if (msg->msg_iovlen + 1 > kMaxIov) return fail(EMSGSIZE);
    std::array<iovec, kMaxIov> iov{};
    iov[0] = iovec{head.data(), p.payload_offset};
    for (std::size_t i = 0; i < msg->msg_iovlen; ++i) iov[i + 1] = msg->msg_iov[i];
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = msg->msg_iovlen + 1;
    m.msg_control = msg->msg_control;
    m.msg_controllen = msg->msg_controllen;
    const ssize_t r = real_recvmsg(fd, &m, flags);
    if (r < 0) return r;
    msg->msg_controllen = m.msg_controllen;
    msg->msg_flags = m.msg_flags;
    if (msg->msg_name != nullptr) {
      SockAddr src{};
      socklen_t slen = 0;
      const proto::Address& a = p.header.destination;
      if (a.type == proto::AddressType::Domain) {
        if (const auto fake = g_names->intern(a.name.view())) {
          slen = to_sockaddr(platform::IpAddress::v4(*fake), a.port, socket_family(fd), &src);
        }
      } else {
        slen = to_sockaddr(a.ip, a.port, socket_family(fd), &src);
      }
      std::memcpy(msg->msg_name, &src, std::min<socklen_t>(msg->msg_namelen, slen));
      msg->msg_namelen = slen;
    }
    return r >= static_cast<ssize_t>(p.payload_offset) ? r - static_cast<ssize_t>(p.payload_offset)
                                                       : 0;
  }
}

// connect() on a datagram socket: through the relay, the socket is
// connected to the relay and the destination is remembered.
int udp_connect(int fd, const sockaddr* addr, socklen_t len) {
  DIODE_REAL(connect);
  const auto t = target_of(addr, len);
  if (!t || (t->ip && (t->ip->is_loopback() || t->ip->is_unspecified())))
    return real_connect(fd, addr, len);
  const socksify::Decision d = decide(*t, sockd::RuleCommand::Udp);
  const std::string what = describe(*t);
  switch (d.route) {
    case Route::Deny:
      say("udp %s: denied by %s", what.c_str(), d.where().c_str());
      return fail(ECONNREFUSED);
    case Route::Direct:
      if (t->name != nullptr) return connect_direct_name(fd, *t);
      return real_connect(fd, addr, len);
    case Route::Sockd:
      break;
  }
  FdEntry* e = association(fd, d, what);
  if (e == nullptr) return -1;
  if (real_connect(fd, &e->relay.sa, e->relay_len) != 0) return -1;
  e->dst = SockAddr{};
  e->dst_len = std::min<socklen_t>(len, sizeof(SockAddr));
  std::memcpy(&e->dst, addr, e->dst_len);
  e->peer = e->dst;
  e->peer_len = e->dst_len;
  return 0;
}

}  // namespace

DIODE_EXPORT ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  DIODE_REAL(sendmsg);
  if (t_inside > 0 || msg == nullptr || state() == nullptr) return real_sendmsg(fd, msg, flags);
  Inside in;
  const ssize_t r = udp_send(fd, msg, flags);
  return r == -2 ? real_sendmsg(fd, msg, flags) : r;
}

DIODE_EXPORT ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr,
                            socklen_t len) {
  DIODE_REAL(sendto);
  if (t_inside > 0 || state() == nullptr) return real_sendto(fd, buf, n, flags, addr, len);
  if (addr == nullptr && entry_of_kind(fd, Kind::Udp) == nullptr)
    return real_sendto(fd, buf, n, flags, addr, len);
  Inside in;
  iovec iov{const_cast<void*>(buf), n};
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(addr);
  m.msg_namelen = addr != nullptr ? len : 0;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  const ssize_t r = udp_send(fd, &m, flags);
  return r == -2 ? real_sendto(fd, buf, n, flags, addr, len) : r;
}

DIODE_EXPORT ssize_t send(int fd, const void* buf, size_t n, int flags) {
  DIODE_REAL(send);
  if (t_inside > 0 || entry_of_kind(fd, Kind::Udp) == nullptr) return real_send(fd, buf, n, flags);
  return sendto(fd, buf, n, flags, nullptr, 0);
}

DIODE_EXPORT int sendmmsg(int fd, mmsghdr* msgs, unsigned int vlen, int flags) {
  DIODE_REAL(sendmmsg);
  FdEntry* e = t_inside > 0 ? nullptr : entry_of_kind(fd, Kind::Udp);
  const bool named = vlen > 0 && msgs != nullptr && msgs[0].msg_hdr.msg_name != nullptr;
  if (t_inside > 0 || (e == nullptr && !named)) {
    return real_sendmmsg(fd, msgs, vlen, flags);
  }
  unsigned int i = 0;
  for (; i < vlen; ++i) {
    const ssize_t r = sendmsg(fd, &msgs[i].msg_hdr, flags);
    if (r < 0) return i > 0 ? static_cast<int>(i) : -1;
    msgs[i].msg_len = static_cast<unsigned int>(r);
  }
  return static_cast<int>(i);
}

DIODE_EXPORT ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  DIODE_REAL(recvmsg);
  if (t_inside > 0 || msg == nullptr) return real_recvmsg(fd, msg, flags);
  Inside in;
  const ssize_t r = udp_recv(fd, msg, flags);
  return r == -2 ? real_recvmsg(fd, msg, flags) : r;
}

DIODE_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr,
                              socklen_t* len) {
  DIODE_REAL(recvfrom);
  if (t_inside > 0 || entry_of_kind(fd, Kind::Udp) == nullptr)
    return real_recvfrom(fd, buf, n, flags, addr, len);
  Inside in;
  iovec iov{buf, n};
  msghdr m{};
  m.msg_name = addr;
  m.msg_namelen = (addr != nullptr && len != nullptr) ? *len : 0;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  const ssize_t r = udp_recv(fd, &m, flags);
  if (r == -2) return real_recvfrom(fd, buf, n, flags, addr, len);
  if (r >= 0 && addr != nullptr && len != nullptr) *len = m.msg_namelen;
  return r;
}

DIODE_EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) {
  DIODE_REAL(recv);
  if (t_inside > 0 || entry_of_kind(fd, Kind::Udp) == nullptr) return real_recv(fd, buf, n, flags);
  return recvfrom(fd, buf, n, flags, nullptr, nullptr);
}

DIODE_EXPORT int recvmmsg(int fd, mmsghdr* msgs, unsigned int vlen, int flags, timespec* timeout) {
  DIODE_REAL(recvmmsg);
  if (t_inside > 0 || entry_of_kind(fd, Kind::Udp) == nullptr)
    return real_recvmmsg(fd, msgs, vlen, flags, timeout);
  // One datagram as the flags say, then whatever is already there.
  unsigned int i = 0;
  for (; i < vlen; ++i) {
    const ssize_t r = recvmsg(fd, &msgs[i].msg_hdr, i == 0 ? flags : (flags | MSG_DONTWAIT));
    if (r < 0) return i > 0 ? static_cast<int>(i) : -1;
    msgs[i].msg_len = static_cast<unsigned int>(r);
  }
  return static_cast<int>(i);
}

// Load the settings before main() (a malformed socks.conf stops the program
// here), and resolve the real functions of the calls a signal handler may
// make: each interposer called once on descriptor -1 (EBADF, no effect).
__attribute__((constructor)) static void diode_socksify_init() {
  (void)state();
  const int saved = errno;
  ++t_inside;
  (void)close(-1);
  [[maybe_unused]] const int d = dup(-1);
  (void)dup2(-1, -1);
  (void)dup3(-1, -1, 0);
  (void)fcntl(-1, F_GETFD);
  (void)connect(-1, nullptr, 0);
  (void)bind(-1, nullptr, 0);
  (void)listen(-1, 0);
  (void)accept(-1, nullptr, nullptr);
  (void)accept4(-1, nullptr, nullptr, 0);
  (void)getpeername(-1, nullptr, nullptr);
  (void)getsockname(-1, nullptr, nullptr);
  (void)send(-1, nullptr, 0, 0);
  (void)sendto(-1, nullptr, 0, 0, nullptr, 0);
  (void)sendmsg(-1, nullptr, 0);
  (void)sendmmsg(-1, nullptr, 0, 0);
  (void)recv(-1, nullptr, 0, 0);
  (void)recvfrom(-1, nullptr, 0, 0, nullptr, nullptr);
  (void)recvmsg(-1, nullptr, 0);
  (void)recvmmsg(-1, nullptr, 0, 0, nullptr);
  --t_inside;
  errno = saved;
}

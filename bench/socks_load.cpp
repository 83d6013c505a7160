// socks_load: the load generator of bench/socks.sh (docs/performance.md,
// "SOCKS relay"). It speaks the client side of SOCKS5 (RFC 1928 §3 method
// negotiation, §4 CONNECT request, §6 reply; RFC 1929 §2 username/password)
// to any SOCKS5 server, and also runs the echo, sink and source servers the
// sessions go to, so that one binary without Boost is the whole harness.
//
//   socks_load serve [--host 127.0.0.1] [--port-file FILE] [--seconds N]
//   socks_load rate  (--proxy EP | --direct) --target EP [--clients N] [--seconds T | --count N]
//                    [--close client|target] [--user U --password P] [--timeout S]
//   socks_load bulk  (--proxy EP | --direct) --target EP [--streams N] [--seconds T] [--direction
//   up|down] socks_load idle  --proxy EP --target EP --sessions N [--until-failure] [--hold S]
//   [--ready-file FILE]
//
// Every mode is bounded in time; every result is one `result key=value ...`
// line on standard output, which bench/socks.sh parses.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace diode::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kEchoSize = 64;  // the payload of one rate-mode session
constexpr std::size_t kBulkBuffer = std::size_t{256} * 1024;  // one write or read in bulk mode
constexpr std::size_t kMaxLatencySamples = 8'000'000;
constexpr int kMaxEvents = 512;

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int /*signo*/) {
  g_stop = 1;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------- addresses

struct Endpoint {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// Parses "a.b.c.d:port" or "[v6]:port".
std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return std::nullopt;
  }
  Endpoint ep;
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(static_cast<std::uint16_t>(port));
    std::memcpy(&ep.storage, &v4, sizeof v4);
    ep.length = sizeof v4;
    return ep;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(static_cast<std::uint16_t>(port));
    std::memcpy(&ep.storage, &v6, sizeof v6);
    ep.length = sizeof v6;
    return ep;
  }
  return std::nullopt;
}

const sockaddr* as_sockaddr(const Endpoint& ep) {
  return reinterpret_cast<const sockaddr*>(&ep.storage);
}

std::uint16_t endpoint_port(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    sockaddr_in v4{};
    std::memcpy(&v4, &ss, sizeof v4);
    return ntohs(v4.sin_port);
  }
  sockaddr_in6 v6{};
  std::memcpy(&v6, &ss, sizeof v6);
  return ntohs(v6.sin6_port);
}

// ---------------------------------------------------------------- SOCKS5 client messages

struct Auth {
  std::string user;
  std::string password;
  bool enabled() const { return !user.empty(); }
};

// RFC 1928 §3: version 5, one method offered: 0x00 (none) or 0x02 (RFC 1929).
std::string build_greeting(const Auth& auth) {
  return std::string{'\x05', '\x01', auth.enabled() ? '\x02' : '\x00'};
}

// RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD.
std::string build_auth(const Auth& auth) {
  std::string out{'\x01'};
  out += static_cast<char>(auth.user.size());
  out += auth.user;
  out += static_cast<char>(auth.password.size());
  out += auth.password;
  return out;
}

// RFC 1928 §4: CONNECT to an IPv4 (ATYP 1) or IPv6 (ATYP 4) address.
std::string build_connect(const Endpoint& target) {
  std::string out{'\x05', '\x01', '\x00'};
  if (target.storage.ss_family == AF_INET) {
    sockaddr_in v4{};
    std::memcpy(&v4, &target.storage, sizeof v4);
    out += '\x01';
    out.append(reinterpret_cast<const char*>(&v4.sin_addr), 4);
    out.append(reinterpret_cast<const char*>(&v4.sin_port), 2);
  } else {
    sockaddr_in6 v6{};
    std::memcpy(&v6, &target.storage, sizeof v6);
    out += '\x04';
    out.append(reinterpret_cast<const char*>(&v6.sin6_addr), 16);
    out.append(reinterpret_cast<const char*>(&v6.sin6_port), 2);
  }
  return out;
}

// RFC 1928 §6: the length of a complete reply, or 0 while fewer than the
// bytes that decide it have arrived; SIZE_MAX for an unknown ATYP.
std::size_t reply_length(const std::uint8_t* data, std::size_t size) {
  if (size < 5) {
    return 0;
  }
  switch (data[3]) {
    case 1:
      return 4 + 4 + 2;
    case 4:
      return 4 + 16 + 2;
    case 3:
      return 4 + 1 + std::size_t{data[4]} + 2;
    default:
      return SIZE_MAX;
  }
}

enum class Failure : std::uint8_t {
  kNone,
  kConnect,   // connect(2) to the proxy or target failed
  kMethod,    // the proxy chose no method we offered (or not SOCKS5)
  kAuth,      // RFC 1929 status not 0
  kReply,     // CONNECT reply REP not 0
  kEof,       // the peer closed before the session was complete
  kIo,        // any other socket error
  kTimeout,   // the session took longer than --timeout
  kMismatch,  // the echo did not return the bytes sent
  kCount
};

constexpr std::array<const char*, static_cast<std::size_t>(Failure::kCount)> kFailureNames{
    "none", "connect", "method", "auth", "reply", "eof", "io", "timeout", "mismatch"};

// ---------------------------------------------------------------- sockets

void set_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Raises the soft descriptor limit to the hard one: the idle mode holds one
// descriptor per session, the servers one per connection.
void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// Blocking I/O with a deadline, for the bulk and idle modes' handshakes.
bool send_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

Failure recv_exact(int fd, std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = recv(fd, data, size, 0);
    if (n == 0) {
      return Failure::kEof;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return (errno == EAGAIN || errno == EWOULDBLOCK) ? Failure::kTimeout : Failure::kIo;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return Failure::kNone;
}

// Connects (blocking, with SO_SNDTIMEO/SO_RCVTIMEO bounding every step) and
// runs the SOCKS5 handshake up to the CONNECT reply. Returns the descriptor
// or -1 with the failure.
int open_session_blocking(const std::optional<Endpoint>& proxy, const Endpoint& target,
                          const Auth& auth, double timeout_s, Failure& failure) {
  const Endpoint& first = proxy ? *proxy : target;
  const int fd = socket(first.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    failure = Failure::kConnect;
    return -1;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout_s);
  tv.tv_usec = static_cast<suseconds_t>((timeout_s - static_cast<double>(tv.tv_sec)) * 1e6);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  set_nodelay(fd);
  auto fail = [&](Failure f) {
    close(fd);
    failure = f;
    return -1;
  };
  if (connect(fd, as_sockaddr(first), first.length) != 0) {
    return fail(Failure::kConnect);
  }
  if (!proxy) {
    failure = Failure::kNone;
    return fd;
  }
  std::array<std::uint8_t, 300> buf{};
  const std::string greeting = build_greeting(auth);
  if (!send_all(fd, greeting.data(), greeting.size())) {
    return fail(Failure::kIo);
  }
  if (const Failure f = recv_exact(fd, buf.data(), 2); f != Failure::kNone) {
    return fail(f);
  }
  if (buf[0] != 5 || buf[1] != (auth.enabled() ? 2 : 0)) {
    return fail(Failure::kMethod);
  }
  if (auth.enabled()) {
    const std::string request = build_auth(auth);
    if (!send_all(fd, request.data(), request.size())) {
      return fail(Failure::kIo);
    }
    if (const Failure f = recv_exact(fd, buf.data(), 2); f != Failure::kNone) {
      return fail(f);
    }
    if (buf[1] != 0) {
      return fail(Failure::kAuth);
    }
  }
  const std::string request = build_connect(target);
  if (!send_all(fd, request.data(), request.size())) {
    return fail(Failure::kIo);
  }
  if (const Failure f = recv_exact(fd, buf.data(), 5); f != Failure::kNone) {
    return fail(f);
  }
  const std::size_t total = reply_length(buf.data(), 5);
  if (buf[0] != 5 || total == SIZE_MAX || total > buf.size()) {
    return fail(Failure::kReply);
  }
  if (const Failure f = recv_exact(fd, buf.data() + 5, total - 5); f != Failure::kNone) {
    return fail(f);
  }
  if (buf[1] != 0) {
    return fail(Failure::kReply);
  }
  failure = Failure::kNone;
  return fd;
}

// Writes text to FILE.tmp, then renames it to FILE, so a reader polling for
// FILE never sees it half written. False (with a message) on any failure.
bool write_file_atomically(const std::string& path, const char* text) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  bool ok = f != nullptr && std::fputs(text, f) >= 0;
  ok = (f != nullptr && std::fclose(f) == 0) && ok;
  ok = ok && std::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) {
    static_cast<void>(std::fprintf(stderr, "socks_load: cannot write %s: %s\n", path.c_str(),
                                   std::strerror(errno)));
  }
  return ok;
}

// ---------------------------------------------------------------- serve

enum class Service : std::uint8_t { kEcho, kEchoClose, kSink, kSource };

struct ServerConn {
  int fd = -1;
  Service service = Service::kEcho;
  std::size_t echoed = 0;
  std::string pending;     // echo bytes the socket did not take yet
  bool out_armed = false;  // EPOLLOUT asked for, while pending is not empty
};

// The echo, echo-then-close, sink and source servers on one epoll loop.
// echo: returns every byte, closes on EOF (the client closes first).
// echo_close: returns the first 64 bytes, then closes (the target closes first).
// sink: discards with MSG_TRUNC (no copy to user space); source: sends zeros.
int run_serve(const std::string& host, const std::string& port_file, double max_seconds) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  std::array<int, 4> listeners{};
  std::array<std::uint16_t, 4> ports{};
  std::optional<Endpoint> bind_at =
      parse_endpoint(host.find(':') != std::string::npos ? "[" + host + "]:0" : host + ":0");
  if (!bind_at) {
    static_cast<void>(std::fprintf(stderr, "socks_load serve: bad --host %s\n", host.c_str()));
    return 2;
  }
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const int fd =
        socket(bind_at->storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, as_sockaddr(*bind_at), bind_at->length) != 0 || listen(fd, 4096) != 0) {
      static_cast<void>(
          std::fprintf(stderr, "socks_load serve: cannot listen: %s\n", std::strerror(errno)));
      return 1;
    }
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    ports[i] = endpoint_port(local);
    listeners[i] = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;  // listeners are 0..3; connections carry their index + 4
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  char line[128];
  static_cast<void>(std::snprintf(line, sizeof line, "echo=%u echo_close=%u sink=%u source=%u\n",
                                  ports[0], ports[1], ports[2], ports[3]));
  if (!port_file.empty() && !write_file_atomically(port_file, line)) {
    return 1;
  }
  static_cast<void>(std::fputs(line, stdout));
  static_cast<void>(std::fflush(stdout));

  std::vector<ServerConn> conns;  // indexed by slot
  std::vector<std::size_t> free_slots;
  std::vector<char> zeros(kBulkBuffer, 0);
  std::vector<char> scratch(kBulkBuffer);
  std::array<bool, 4> paused{};
  Clock::time_point resume_at{};
  const auto start = Clock::now();
  std::array<epoll_event, kMaxEvents> events{};

  auto drop = [&](std::size_t slot) {
    close(conns[slot].fd);
    conns[slot].fd = -1;
    conns[slot].pending.clear();
    free_slots.push_back(slot);
  };
  // Echo what came in; false when the connection is finished.
  auto flush_echo = [&](ServerConn& c) {
    while (!c.pending.empty()) {
      const ssize_t n = send(c.fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
      if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK;
      }
      c.pending.erase(0, static_cast<std::size_t>(n));
    }
    return !(c.service == Service::kEchoClose && c.echoed >= kEchoSize);
  };

  while (g_stop == 0 && seconds_since(start) < max_seconds) {
    if (std::any_of(paused.begin(), paused.end(), [](bool p) { return p; }) &&
        Clock::now() >= resume_at) {
      for (std::size_t i = 0; i < listeners.size(); ++i) {
        if (paused[i]) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = i;
          epoll_ctl(ep, EPOLL_CTL_ADD, listeners[i], &ev);
          paused[i] = false;
        }
      }
    }
    const int n = epoll_wait(ep, events.data(), kMaxEvents, 100);
    for (int e = 0; e < n; ++e) {
      const std::uint64_t key = events[static_cast<std::size_t>(e)].data.u64;
      const std::uint32_t what = events[static_cast<std::size_t>(e)].events;
      if (key < listeners.size()) {
        for (int burst = 0; burst < 256; ++burst) {
          const int fd = accept4(listeners[key], nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
              // Out of descriptors: stop accepting for 100 ms instead of spinning.
              epoll_ctl(ep, EPOLL_CTL_DEL, listeners[key], nullptr);
              paused[key] = true;
              resume_at = Clock::now() + std::chrono::milliseconds(100);
            }
            break;
          }
          set_nodelay(fd);
          std::size_t slot = conns.size();
          if (!free_slots.empty()) {
            slot = free_slots.back();
            free_slots.pop_back();
          } else {
            conns.emplace_back();
          }
          ServerConn& c = conns[slot];
          c.fd = fd;
          c.service = static_cast<Service>(key);
          c.echoed = 0;
          c.out_armed = false;
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLRDHUP | (c.service == Service::kSource ? EPOLLOUT : 0u);
          ev.data.u64 = slot + listeners.size();
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      const std::size_t slot = key - listeners.size();
      ServerConn& c = conns[slot];
      if (c.fd < 0) {
        continue;
      }
      bool alive = true;
      switch (c.service) {
        case Service::kEcho:
        case Service::kEchoClose: {
          if ((what & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
            for (int reads = 0; reads < 64 && alive; ++reads) {
              const ssize_t got = recv(c.fd, scratch.data(), scratch.size(), 0);
              if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                alive = false;
              } else if (got < 0) {
                break;
              } else {
                c.pending.append(scratch.data(), static_cast<std::size_t>(got));
                c.echoed += static_cast<std::size_t>(got);
                alive = flush_echo(c);
              }
            }
          }
          if (alive && (what & EPOLLOUT) != 0) {
            alive = flush_echo(c);
          }
          if (alive && c.out_armed == c.pending.empty()) {
            c.out_armed = !c.pending.empty();
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP | (c.out_armed ? EPOLLOUT : 0u);
            ev.data.u64 = key;
            epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
          }
          break;
        }
        case Service::kSink:
          for (int reads = 0; reads < 64; ++reads) {
            const ssize_t got = recv(c.fd, nullptr, kBulkBuffer, MSG_TRUNC | MSG_DONTWAIT);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
              alive = false;
              break;
            }
            if (got < 0) {
              break;
            }
          }
          break;
        case Service::kSource:
          if ((what & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
            alive = false;
            break;
          }
          for (int writes = 0; writes < 64; ++writes) {
            const ssize_t put = send(c.fd, zeros.data(), zeros.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (put < 0) {
              alive = errno == EAGAIN || errno == EWOULDBLOCK;
              break;
            }
          }
          break;
      }
      if (!alive) {
        drop(slot);
      }
    }
  }
  return 0;
}

// ---------------------------------------------------------------- rate

enum class Step : std::uint8_t { kIdle, kConnect, kMethod, kAuth, kReply, kEcho, kDrain };

struct Client {
  int fd = -1;
  Step step = Step::kIdle;
  Clock::time_point started{};
  std::array<std::uint8_t, 320> in{};
  std::size_t in_len = 0;
};

struct RateOptions {
  std::optional<Endpoint> proxy;  // empty: direct to the target
  Endpoint target;
  Auth auth;
  std::size_t clients = 50;
  double seconds = 5;
  std::uint64_t count = 0;  // 0: run for `seconds`
  bool client_closes_first = false;
  double timeout = 10;
};

class RateRun {
 public:
  explicit RateRun(RateOptions options) : opt_(std::move(options)) {}

  int run();

 private:
  void start_session(Client& c);
  void progress(Client& c, std::uint32_t events);
  void finish(Client& c, Failure failure);
  bool send_message(Client& c, const std::string& message);
  // Reads into c.in until `want` bytes are there; false while more are needed
  // (or when the session failed: then c.step is kIdle).
  bool read_until(Client& c, std::size_t want);

  RateOptions opt_;
  int ep_ = -1;
  std::vector<Client> clients_;
  std::string greeting_;
  std::string auth_request_;
  std::string connect_request_;
  std::array<std::uint8_t, kEchoSize> payload_{};
  Clock::time_point start_{};
  Clock::time_point end_{};
  std::uint64_t started_ = 0;
  std::uint64_t completed_ = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(Failure::kCount)> failures_{};
  std::vector<std::uint32_t> latencies_us_;
  std::vector<std::uint64_t> per_second_;
  bool stopping_ = false;
};

bool RateRun::send_message(Client& c, const std::string& message) {
  const ssize_t n = send(c.fd, message.data(), message.size(), MSG_NOSIGNAL);
  // A fresh loopback socket takes a few hundred bytes whole; a partial write
  // would be a finding, counted as an I/O failure.
  if (n != static_cast<ssize_t>(message.size())) {
    finish(c, Failure::kIo);
    return false;
  }
  return true;
}

bool RateRun::read_until(Client& c, std::size_t want) {
  while (c.in_len < want) {
    const ssize_t n = recv(c.fd, c.in.data() + c.in_len, want - c.in_len, 0);
    if (n > 0) {
      c.in_len += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return false;
    }
    finish(c, n == 0 ? Failure::kEof : Failure::kIo);
    return false;
  }
  return true;
}

void RateRun::start_session(Client& c) {
  if (stopping_ || (opt_.count != 0 && started_ >= opt_.count)) {
    c.step = Step::kIdle;
    return;
  }
  ++started_;
  c.started = Clock::now();
  c.in_len = 0;
  const Endpoint& first = opt_.proxy ? *opt_.proxy : opt_.target;
  c.fd = socket(first.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    c.step = Step::kConnect;
    finish(c, Failure::kConnect);
    return;
  }
  set_nodelay(c.fd);
  c.step = Step::kConnect;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &c;
  epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
  if (connect(c.fd, as_sockaddr(first), first.length) != 0 && errno != EINPROGRESS) {
    finish(c, Failure::kConnect);
  }
  // The connect's completion comes as EPOLLOUT (edge-triggered: once).
}

void RateRun::finish(Client& c, Failure failure) {
  if (c.fd >= 0) {
    close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }
  const auto now = Clock::now();
  if (failure == Failure::kNone) {
    if (now <= end_ || opt_.count != 0) {
      ++completed_;
      const auto us =
          std::chrono::duration_cast<std::chrono::microseconds>(now - c.started).count();
      if (latencies_us_.size() < kMaxLatencySamples) {
        latencies_us_.push_back(static_cast<std::uint32_t>(std::min<long long>(us, UINT32_MAX)));
      }
      const auto second =
          static_cast<std::size_t>(std::chrono::duration<double>(now - start_).count());
      if (second >= per_second_.size()) {
        per_second_.resize(second + 1, 0);
      }
      ++per_second_[second];
    }
  } else {
    ++failures_[static_cast<std::size_t>(failure)];
  }
  c.step = Step::kIdle;
}

void RateRun::progress(Client& c, std::uint32_t events) {
  // Each step either completes and falls through to the next, or returns to
  // wait for the next edge; finish() leaves the client idle for a restart.
  if (c.step == Step::kConnect) {
    int err = 0;
    socklen_t len = sizeof err;
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
      return;
    }
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      finish(c, Failure::kConnect);
      return;
    }
    if (!opt_.proxy) {
      if (!send_message(
              c, std::string(reinterpret_cast<const char*>(payload_.data()), payload_.size()))) {
        return;
      }
      c.step = Step::kEcho;
    } else {
      if (!send_message(c, greeting_)) {
        return;
      }
      c.step = Step::kMethod;
    }
  }
  if (c.step == Step::kMethod) {
    if (!read_until(c, 2)) {
      return;
    }
    if (c.in[0] != 5 || c.in[1] != (opt_.auth.enabled() ? 2 : 0)) {
      finish(c, Failure::kMethod);
      return;
    }
    c.in_len = 0;
    if (opt_.auth.enabled()) {
      if (!send_message(c, auth_request_)) {
        return;
      }
      c.step = Step::kAuth;
    } else {
      if (!send_message(c, connect_request_)) {
        return;
      }
      c.step = Step::kReply;
    }
  }
  if (c.step == Step::kAuth) {
    if (!read_until(c, 2)) {
      return;
    }
    if (c.in[1] != 0) {
      finish(c, Failure::kAuth);
      return;
    }
    c.in_len = 0;
    if (!send_message(c, connect_request_)) {
      return;
    }
    c.step = Step::kReply;
  }
  if (c.step == Step::kReply) {
    if (!read_until(c, 5)) {
      return;
    }
    const std::size_t total = reply_length(c.in.data(), c.in_len);
    if (c.in[0] != 5 || total == SIZE_MAX || total > c.in.size()) {
      finish(c, Failure::kReply);
      return;
    }
    if (!read_until(c, total)) {
      return;
    }
    if (c.in[1] != 0) {
      finish(c, Failure::kReply);
      return;
    }
    c.in_len = 0;
    if (!send_message(
            c, std::string(reinterpret_cast<const char*>(payload_.data()), payload_.size()))) {
      return;
    }
    c.step = Step::kEcho;
  }
  if (c.step == Step::kEcho) {
    if (!read_until(c, kEchoSize)) {
      return;
    }
    if (!std::equal(payload_.begin(), payload_.end(), c.in.begin())) {
      finish(c, Failure::kMismatch);
      return;
    }
    if (opt_.client_closes_first) {
      finish(c, Failure::kNone);
      return;
    }
    c.step = Step::kDrain;
    c.in_len = 0;
  }
  if (c.step == Step::kDrain) {
    // The target closes first: the session ends at the relayed EOF.
    std::array<std::uint8_t, 64> sink{};
    for (;;) {
      const ssize_t n = recv(c.fd, sink.data(), sink.size(), 0);
      if (n == 0) {
        finish(c, Failure::kNone);
        return;
      }
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          finish(c, Failure::kIo);
        }
        return;
      }
      finish(c, Failure::kMismatch);  // nothing may follow the echo
      return;
    }
  }
}

int RateRun::run() {
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  greeting_ = build_greeting(opt_.auth);
  auth_request_ = build_auth(opt_.auth);
  connect_request_ = build_connect(opt_.target);
  for (std::size_t i = 0; i < payload_.size(); ++i) {
    payload_[i] = static_cast<std::uint8_t>('A' + i % 26);
  }
  clients_.resize(opt_.clients);
  latencies_us_.reserve(std::min<std::size_t>(kMaxLatencySamples, 1'000'000));
  start_ = Clock::now();
  // A count run is still bounded in time: at most an hour.
  const double limit = opt_.count != 0 ? 3600.0 : opt_.seconds;
  end_ = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit));
  for (Client& c : clients_) {
    start_session(c);
  }
  std::array<epoll_event, kMaxEvents> events{};
  auto last_scan = Clock::now();
  const auto timeout =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.timeout));
  for (;;) {
    const auto now = Clock::now();
    if (!stopping_ && (now >= end_ || g_stop != 0)) {
      stopping_ = true;
    }
    if (stopping_) {
      break;
    }
    const bool any_active = std::any_of(clients_.begin(), clients_.end(),
                                        [](const Client& c) { return c.step != Step::kIdle; });
    if (!any_active) {
      break;  // a count run is done
    }
    const int n = epoll_wait(ep_, events.data(), kMaxEvents, 10);
    for (int e = 0; e < n; ++e) {
      auto* c = static_cast<Client*>(events[static_cast<std::size_t>(e)].data.ptr);
      if (c->step != Step::kIdle) {
        progress(*c, events[static_cast<std::size_t>(e)].events);
      }
    }
    // Restart finished clients, and time out stuck ones every 100 ms.
    const auto after = Clock::now();
    const bool scan_timeouts = after - last_scan > std::chrono::milliseconds(100);
    if (scan_timeouts) {
      last_scan = after;
    }
    for (Client& c : clients_) {
      if (c.step != Step::kIdle && scan_timeouts && after - c.started > timeout) {
        finish(c, Failure::kTimeout);
      }
      if (c.step == Step::kIdle && after < end_ && g_stop == 0) {
        start_session(c);
      }
    }
  }
  const double elapsed =
      opt_.count != 0 ? seconds_since(start_) : std::min(seconds_since(start_), opt_.seconds);
  for (Client& c : clients_) {
    if (c.fd >= 0) {
      close(c.fd);  // in flight at the end: neither completed nor failed
      c.fd = -1;
    }
  }
  std::sort(latencies_us_.begin(), latencies_us_.end());
  auto percentile = [&](double p) -> std::uint32_t {
    if (latencies_us_.empty()) {
      return 0;
    }
    const auto idx = static_cast<std::size_t>(p * static_cast<double>(latencies_us_.size() - 1));
    return latencies_us_[idx];
  };
  std::uint64_t failed = 0;
  for (std::size_t i = 1; i < failures_.size(); ++i) {
    failed += failures_[i];
  }
  // Per-second counts; the trend compares the last third to the first third
  // of the whole seconds, so a decline over a long run is one number.
  const std::size_t whole =
      std::min<std::size_t>(per_second_.size(), static_cast<std::size_t>(elapsed));
  double trend = 0;
  if (whole >= 3) {
    const std::size_t third = whole / 3;
    double first = 0;
    double last = 0;
    for (std::size_t i = 0; i < third; ++i) {
      first += static_cast<double>(per_second_[i]);
      last += static_cast<double>(per_second_[whole - third + i]);
    }
    trend = first > 0 ? last / first : 0;
  }
  static_cast<void>(std::printf(
      "result mode=rate clients=%zu seconds=%.2f sessions=%llu rate=%.1f p50_us=%u p99_us=%u "
      "errors=%llu trend=%.3f",
      opt_.clients, elapsed, static_cast<unsigned long long>(completed_),
      elapsed > 0 ? static_cast<double>(completed_) / elapsed : 0.0, percentile(0.50),
      percentile(0.99), static_cast<unsigned long long>(failed), trend));
  for (std::size_t i = 1; i < failures_.size(); ++i) {
    if (failures_[i] != 0) {
      static_cast<void>(std::printf(" err_%s=%llu", kFailureNames[i],
                                    static_cast<unsigned long long>(failures_[i])));
    }
  }
  static_cast<void>(std::printf("\nper_second"));
  for (std::size_t i = 0; i < whole; ++i) {
    static_cast<void>(std::printf(" %llu", static_cast<unsigned long long>(per_second_[i])));
  }
  static_cast<void>(std::printf("\n"));
  return completed_ > 0 ? 0 : 1;
}

// ---------------------------------------------------------------- bulk

struct BulkOptions {
  std::optional<Endpoint> proxy;
  Endpoint target;
  Auth auth;
  std::size_t streams = 1;
  double seconds = 5;
  bool up = true;  // client to target (to a sink); false: from a source
};

int run_bulk(const BulkOptions& opt) {
  std::vector<int> fds;
  for (std::size_t i = 0; i < opt.streams; ++i) {
    Failure failure = Failure::kNone;
    const int fd = open_session_blocking(opt.proxy, opt.target, opt.auth, 5.0, failure);
    if (fd < 0) {
      static_cast<void>(std::printf("result mode=bulk error=%s stream=%zu\n",
                                    kFailureNames[static_cast<std::size_t>(failure)], i));
      for (const int f : fds) {
        close(f);
      }
      return 1;
    }
    set_nonblocking(fd);
    fds.push_back(fd);
  }
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    epoll_event ev{};
    ev.events = opt.up ? EPOLLOUT : EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  std::vector<char> zeros(kBulkBuffer, 0);
  std::uint64_t bytes = 0;
  std::uint64_t failed = 0;
  const auto start = Clock::now();
  std::array<epoll_event, kMaxEvents> events{};
  std::size_t open_streams = fds.size();
  while (seconds_since(start) < opt.seconds && g_stop == 0 && open_streams > 0) {
    const int n = epoll_wait(ep, events.data(), kMaxEvents, 10);
    for (int e = 0; e < n; ++e) {
      const std::size_t i = events[static_cast<std::size_t>(e)].data.u64;
      if (fds[i] < 0) {
        continue;
      }
      const ssize_t got = opt.up ? send(fds[i], zeros.data(), zeros.size(), MSG_NOSIGNAL)
                                 : recv(fds[i], nullptr, kBulkBuffer, MSG_TRUNC);
      if (got > 0) {
        bytes += static_cast<std::uint64_t>(got);
      } else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        ++failed;
        close(fds[i]);
        fds[i] = -1;
        --open_streams;
      }
    }
  }
  const double elapsed = seconds_since(start);
  for (const int fd : fds) {
    if (fd >= 0) {
      close(fd);
    }
  }
  close(ep);
  static_cast<void>(std::printf(
      "result mode=bulk direction=%s streams=%zu seconds=%.2f bytes=%llu gbit_s=%.3f errors=%llu\n",
      opt.up ? "up" : "down", opt.streams, elapsed, static_cast<unsigned long long>(bytes),
      static_cast<double>(bytes) * 8.0 / elapsed / 1e9, static_cast<unsigned long long>(failed)));
  return failed == 0 && bytes > 0 ? 0 : 1;
}

// ---------------------------------------------------------------- idle

struct IdleOptions {
  std::optional<Endpoint> proxy;
  Endpoint target;  // the echo server that keeps connections open
  Auth auth;
  std::size_t sessions = 1000;
  bool until_failure = false;
  double hold = 30;
  std::string ready_file;
};

// One byte there and back through a relayed session: proves the relay holds it.
bool ping(int fd) {
  const char byte = 'p';
  char back = 0;
  return send_all(fd, &byte, 1) &&
         recv_exact(fd, reinterpret_cast<std::uint8_t*>(&back), 1) == Failure::kNone &&
         back == byte;
}

int run_idle(const IdleOptions& opt) {
  std::vector<int> fds;
  fds.reserve(opt.sessions);
  Failure first_failure = Failure::kNone;
  const auto start = Clock::now();
  for (std::size_t i = 0; i < opt.sessions && g_stop == 0; ++i) {
    Failure failure = Failure::kNone;
    // Short timeouts when looking for the limit: a relay out of descriptors
    // typically leaves the connection unanswered in its backlog.
    const int fd = open_session_blocking(opt.proxy, opt.target, opt.auth,
                                         opt.until_failure ? 2.0 : 10.0, failure);
    if (fd < 0 || !ping(fd)) {
      if (fd >= 0) {
        close(fd);
        failure = Failure::kEof;
      }
      first_failure = failure;
      break;
    }
    fds.push_back(fd);
  }
  const double open_seconds = seconds_since(start);
  // Check every held session again: an earlier one the relay dropped when it
  // ran out of something would not count as held.
  std::size_t verified = 0;
  for (const int fd : fds) {
    verified += ping(fd) ? 1U : 0U;
  }
  char line[256];
  static_cast<void>(std::snprintf(
      line, sizeof line,
      "result mode=idle wanted=%zu held=%zu verified=%zu open_seconds=%.2f first_failure=%s\n",
      opt.sessions, fds.size(), verified, open_seconds,
      kFailureNames[static_cast<std::size_t>(first_failure)]));
  static_cast<void>(std::fputs(line, stdout));
  static_cast<void>(std::fflush(stdout));
  const bool ready_written = opt.ready_file.empty() || write_file_atomically(opt.ready_file, line);
  // Hold them (bounded) until told to stop, so the caller can read the relay's memory.
  const auto hold_start = Clock::now();
  while (g_stop == 0 && seconds_since(hold_start) < opt.hold) {
    poll(nullptr, 0, 50);
  }
  for (const int fd : fds) {
    close(fd);
  }
  const bool ok = opt.until_failure ? verified > 0 : verified == opt.sessions;
  return ok && ready_written ? 0 : 1;
}

// ---------------------------------------------------------------- command line

int usage() {
  static_cast<void>(std::fputs(
      "usage: socks_load serve [--host 127.0.0.1] [--port-file FILE] [--seconds N]\n"
      "       socks_load rate  (--proxy EP | --direct) --target EP [--clients N] [--seconds T | "
      "--count N]\n"
      "                        [--close client|target] [--user U --password P] [--timeout S]\n"
      "       socks_load bulk  (--proxy EP | --direct) --target EP [--streams N] [--seconds T]\n"
      "                        [--direction up|down] [--user U --password P]\n"
      "       socks_load idle  --proxy EP --target EP --sessions N [--until-failure] [--hold S]\n"
      "                        [--ready-file FILE] [--user U --password P]\n"
      "EP is ADDR:PORT or [V6]:PORT. See docs/performance.md, \"SOCKS relay\".\n",
      stderr));
  return 2;
}

template <typename T>
bool parse_number(const char* text, T& out) {
  const std::string_view s(text);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

int main_impl(int argc, char** argv) {
  if (argc < 2) {
    return usage();
  }
  const std::string mode = argv[1];
  std::optional<Endpoint> proxy;
  std::optional<Endpoint> target;
  bool direct = false;
  Auth auth;
  std::string host = "127.0.0.1";
  std::string file;
  std::size_t count_n = 0;
  std::uint64_t count = 0;
  double seconds = -1;
  double timeout = 10;
  double hold = 30;
  bool client_first = false;
  bool up = true;
  bool until_failure = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    auto need = [&]() {
      if (value == nullptr) {
        static_cast<void>(std::fprintf(stderr, "socks_load: %s needs a value\n", argv[i]));
        return false;
      }
      ++i;
      return true;
    };
    bool ok = true;
    if (arg == "--proxy") {
      ok = need() && (proxy = parse_endpoint(value)).has_value();
    } else if (arg == "--target") {
      ok = need() && (target = parse_endpoint(value)).has_value();
    } else if (arg == "--direct") {
      direct = true;
    } else if (arg == "--user") {
      ok = need() && (auth.user = value, !auth.user.empty() && auth.user.size() < 256);
    } else if (arg == "--password") {
      ok = need() && (auth.password = value, auth.password.size() < 256);
    } else if (arg == "--host") {
      ok = need() && (host = value, true);
    } else if (arg == "--port-file" || arg == "--ready-file") {
      ok = need() && (file = value, true);
    } else if (arg == "--clients" || arg == "--streams" || arg == "--sessions") {
      ok = need() && parse_number(value, count_n) && count_n > 0 && count_n <= 1'000'000;
    } else if (arg == "--count") {
      ok = need() && parse_number(value, count) && count > 0;
    } else if (arg == "--seconds") {
      ok = need() && parse_number(value, seconds) && seconds > 0 && seconds <= 86400;
    } else if (arg == "--timeout") {
      ok = need() && parse_number(value, timeout) && timeout > 0 && timeout <= 600;
    } else if (arg == "--hold") {
      ok = need() && parse_number(value, hold) && hold >= 0 && hold <= 86400;
    } else if (arg == "--close") {
      ok = need() && (std::string_view(value) == "client" || std::string_view(value) == "target");
      client_first = ok && std::string_view(value) == "client";
    } else if (arg == "--direction") {
      ok = need() && (std::string_view(value) == "up" || std::string_view(value) == "down");
      up = ok && std::string_view(value) == "up";
    } else if (arg == "--until-failure") {
      until_failure = true;
    } else {
      static_cast<void>(std::fprintf(stderr, "socks_load: unknown argument %s\n", argv[i]));
      ok = false;
    }
    if (!ok) {
      return usage();
    }
  }
  static_cast<void>(std::signal(SIGPIPE, SIG_IGN));
  static_cast<void>(std::signal(SIGTERM, on_signal));
  static_cast<void>(std::signal(SIGINT, on_signal));
  raise_fd_limit();
  if (mode == "serve") {
    return run_serve(host, file, seconds > 0 ? seconds : 3600);
  }
  if (!target || (proxy.has_value() == direct)) {
    static_cast<void>(
        std::fputs("socks_load: give --target and exactly one of --proxy and --direct\n", stderr));
    return usage();
  }
  if (mode == "rate") {
    RateOptions opt;
    opt.proxy = proxy;
    opt.target = *target;
    opt.auth = auth;
    opt.clients = count_n != 0 ? count_n : 50;
    opt.seconds = seconds > 0 ? seconds : 5;
    opt.count = count;
    opt.client_closes_first = client_first;
    opt.timeout = timeout;
    return RateRun(opt).run();
  }
  if (mode == "bulk") {
    BulkOptions opt;
    opt.proxy = proxy;
    opt.target = *target;
    opt.auth = auth;
    opt.streams = count_n != 0 ? count_n : 1;
    opt.seconds = seconds > 0 ? seconds : 5;
    opt.up = up;
    return run_bulk(opt);
  }
  if (mode == "idle") {
    IdleOptions opt;
    opt.proxy = proxy;
    opt.target = *target;
    opt.auth = auth;
    opt.sessions = count_n != 0 ? count_n : 1000;
    opt.until_failure = until_failure;
    opt.hold = hold;
    opt.ready_file = file;
    return run_idle(opt);
  }
  return usage();
}

}  // namespace
}  // namespace diode::bench

int main(int argc, char** argv) {
  return diode::bench::main_impl(argc, argv);
}

#include "diode/sockd/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <cctype>
#include <map>
#include <set>
#include <functional>
#include <mutex>
#include <sys/stat.h>
#include <thread>

#include <iostream>

#include "diode/platform/asio.hpp"
#include "diode/platform/control_client.hpp"
#include "diode/platform/log_limit.hpp"
#include "diode/platform/notify.hpp"
#include "diode/platform/sockets.hpp"
#include "diode/sockd/auth.hpp"
#include "diode/sockd/counters.hpp"
#include "diode/sockd/hooks.hpp"
#include "diode/sockd/host_addresses.hpp"
#include "diode/sockd/identd.hpp"
#include "diode/sockd/plan.hpp"
#include "diode/sockd/relay.hpp"
#include "diode/sockd/resolve.hpp"
#include "diode/sockd/session.hpp"
#include "diode/sockd/socks_proto.hpp"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace diode::sockd {

namespace {

using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using platform::Endpoint;
using platform::IpAddress;
using proto::ReplyKind;

constexpr auto kAcceptBackoff = std::chrono::milliseconds{100};
constexpr auto kAttemptDelay = std::chrono::milliseconds{250};  // RFC 8305 §5's recommended value

net::ip::address to_asio(const IpAddress& a) {
  if (a.family == platform::Family::V4) return net::ip::address_v4(a.v4_value());
  net::ip::address_v6::bytes_type b;
  std::copy(a.bytes.begin(), a.bytes.end(), b.begin());
  return net::ip::address_v6(b);
}

IpAddress from_asio(const net::ip::address& a) {
  if (a.is_v4()) return IpAddress::v4(a.to_v4().to_uint());
  IpAddress out;
  out.family = platform::Family::V6;
  const auto b = a.to_v6().to_bytes();
  std::copy(b.begin(), b.end(), out.bytes.begin());
  return out.unmapped();
}

Endpoint from_asio(const tcp::endpoint& ep) { return Endpoint{from_asio(ep.address()), ep.port()}; }

tcp::endpoint to_asio(const Endpoint& ep) { return {to_asio(ep.addr), ep.port}; }

// The session's sockets and its one deadline (handshake, then connect).
// The timer's handler closes what the phase allows; a generation number
// makes a handler that was already queued when the phase ended harmless.
struct SessionState {
  explicit SessionState(tcp::socket c)
      : client(std::move(c)), target(client.get_executor()), acceptor(client.get_executor()),
        timer(client.get_executor()) {}
  tcp::socket client;
  tcp::socket target;
  tcp::acceptor acceptor;  // BIND's one-connection listener
  net::steady_timer timer;
  std::uint64_t generation = 0;
  bool expired = false;
};

void arm(const std::shared_ptr<SessionState>& s, std::chrono::milliseconds d, bool close_client) {
  const std::uint64_t gen = ++s->generation;
  s->expired = false;
  s->timer.expires_after(d);
  s->timer.async_wait([s, gen, close_client](error_code ec) {
    if (ec || s->generation != gen) return;
    s->expired = true;
    error_code ignored;
    s->target.close(ignored);
    s->acceptor.close(ignored);
    if (close_client) s->client.close(ignored);
  });
}

void disarm(const std::shared_ptr<SessionState>& s) {
  ++s->generation;
  s->timer.cancel();
}

// Ties a socket to an interface (sockd.route's interface lines); 0 or an errno.
int bind_to_device(int fd, const std::string& iface) {
  if (iface.empty()) return 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface.c_str(),
                   static_cast<socklen_t>(iface.size())) != 0) {
    return errno;
  }
  return 0;
}

// The address the kernel would send from toward `peer` (a UDP connect()
// sends nothing), out of `iface` if one is named, for BIND without a
// sockd.route address.
std::optional<IpAddress> local_address_toward(const IpAddress& peer, const std::string& iface) {
  net::io_context io;
  net::ip::udp::socket u(io);
  error_code ec;
  const net::ip::udp::endpoint ep(to_asio(peer), 9);
  u.open(ep.protocol(), ec);
  if (!ec && bind_to_device(u.native_handle(), iface) != 0) return std::nullopt;
  if (!ec) u.connect(ep, ec);
  if (ec) return std::nullopt;
  const auto local = u.local_endpoint(ec);
  if (ec) return std::nullopt;
  return from_asio(local.address());
}

// Binds an outgoing socket to the egress sockd.route chose, if any; 0 or an errno.
int bind_egress(int fd, const Route* route, const IpAddress& dst) {
  if (route == nullptr) return 0;
  if (route->egress_addr) {
    if (route->egress_addr->family != dst.family) return ENETUNREACH;
    // The port is chosen at connect time, per destination: no port shortage
    // when many sessions leave from one address.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (dst.family == platform::Family::V4) {
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_addr.s_addr = htonl(route->egress_addr->v4_value());
      std::memcpy(&ss, &sin, sizeof sin);
      len = sizeof sin;
    } else {
      sockaddr_in6 sin6{};
      sin6.sin6_family = AF_INET6;
      std::memcpy(&sin6.sin6_addr, route->egress_addr->bytes.data(), 16);
      std::memcpy(&ss, &sin6, sizeof sin6);
      len = sizeof sin6;
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) return errno;
    return 0;
  }
  if (!route->egress_iface.empty()) {
    const std::string& name = route->egress_iface;
    if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                     static_cast<socklen_t>(name.size())) != 0) {
      return errno;
    }
  }
  return 0;
}

// The connection attempts of one CONNECT (happy eyeballs). Attempts wake
// the session through `wake` as they finish; the first success wins.
struct Race {
  Race(const net::any_io_executor& ex, std::size_t n) : wake(ex) {
    sockets.reserve(n);
    for (std::size_t i = 0; i < n; ++i) sockets.emplace_back(ex);
  }
  net::steady_timer wake;
  std::vector<tcp::socket> sockets;  // one per candidate, never reallocated
  int winner = -1;
  std::size_t started = 0;
  std::size_t failed = 0;
  int last_error = EHOSTUNREACH;
};

// Asio's async_connect would also poll() the socket before reading
// SO_ERROR; a wait for writability and SO_ERROR say the same with one call less.
net::awaitable<void> connect_socket(tcp::socket& s, tcp::endpoint ep, error_code& ec) {
  s.native_non_blocking(true, ec);
  if (ec) co_return;
  if (::connect(s.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) == 0) co_return;
  if (errno != EINPROGRESS) {
    ec = error_code(errno, boost::system::system_category());
    co_return;
  }
  co_await s.async_wait(tcp::socket::wait_write, net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) ec = error_code(err, boost::system::system_category());
}

net::awaitable<void> race_attempt(std::shared_ptr<Race> r, std::size_t i, tcp::endpoint ep) {
  error_code ec;
  co_await connect_socket(r->sockets[i], ep, ec);
  if (!ec && r->winner < 0) {
    r->winner = static_cast<int>(i);
  } else if (ec) {
    ++r->failed;
    if (ec != net::error::operation_aborted) r->last_error = ec.value();
  }
  r->wake.cancel();
}

// A session's handshake input buffer, state machine and parsed request.
struct HandshakeBuffers {
  explicit HandshakeBuffers(proto::ServerOptions o) : hs(o) {}
  std::array<std::uint8_t, 1024> in{};
  proto::ServerHandshake hs;
  proto::Request req;
};

// BIND's wait for the peer: when the client's side becomes readable with
// EOF or an error (not data, which the relay will carry), the client is
// gone: close the listener so the wait ends now, not at connect_timeout.
net::awaitable<void> bind_client_watch(std::shared_ptr<SessionState> st,
                                       std::shared_ptr<bool> waiting,
                                       std::shared_ptr<bool> client_gone) {
  error_code ec;
  co_await st->client.async_wait(tcp::socket::wait_read, net::redirect_error(net::use_awaitable, ec));
  if (ec || !*waiting) co_return;
  char b = 0;
  const ssize_t n = ::recv(st->client.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) co_return;
  *client_gone = true;
  st->acceptor.close(ec);
}

int reply_code_of(std::span<const std::uint8_t> reply) {
  return reply.size() >= 2 ? reply[1] : -1;
}

proto::Address bound_of(const tcp::socket& s) {
  error_code ec;
  const auto ep = s.local_endpoint(ec);
  if (ec) return proto::Address::from_ip(IpAddress::v4(0), 0);
  return proto::Address::from_ip(from_asio(ep.address()), ep.port());
}

}  // namespace

struct UdpAssoc;

// One thread's share of the daemon.
struct Worker {
  // One thread runs this context and alone touches its sockets and timers
  // (other threads only post to it): the reactor's per-descriptor locks can go.
  net::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  PipePool pool;
  std::unique_ptr<Resolver> resolver;
  std::string resolver_error;
  bool resolver_tried = false;
  std::vector<std::pair<std::unique_ptr<tcp::acceptor>, std::string>> acceptors;
  std::unique_ptr<HookRunner> hooks;
  // Descriptors of this thread's running sessions (client and target), for
  // ending them at the end of a SIGTERM drain. Touched only on this thread.
  std::multiset<int> live_fds;
  // Written by this thread only; the control command reads them all.
  SessionCounters counters;
};

namespace {

// How a finished session's record reads as a counter (docs/sockd.md).
Outcome classify(const SessionRecord& rec) {
  if (rec.verdict == "permit") return rec.event == "failed" ? Outcome::Failed : Outcome::Permitted;
  if (rec.verdict == "deny") return Outcome::Denied;
  if (rec.version.empty()) {
    return rec.reason == "handshake timeout" || rec.reason == "client closed during handshake"
               ? Outcome::Incomplete
               : Outcome::Malformed;
  }
  if (rec.reason.rfind("cannot resolve", 0) == 0) return Outcome::Unresolved;
  return Outcome::Failed;  // a request that could not be served (a UDP socket error)
}

}  // namespace

// Registers a session's descriptors with its worker for as long as it runs.
class LiveFds {
 public:
  explicit LiveFds(Worker& w) : w_(w) {}
  LiveFds(const LiveFds&) = delete;
  LiveFds& operator=(const LiveFds&) = delete;
  ~LiveFds() {
    for (int fd : fds_) {
      auto it = w_.live_fds.find(fd);
      if (it != w_.live_fds.end()) w_.live_fds.erase(it);
    }
  }
  void add(int fd) {
    if (fd < 0) return;
    fds_.push_back(fd);
    w_.live_fds.insert(fd);
  }

 private:
  Worker& w_;
  std::vector<int> fds_;
};

struct Server::Impl {
  Impl(ServerOptions o, Logger& l)
      : options(std::move(o)), log(l), verifier(options.config.sockd.auth_cache_ttl) {}

  ServerOptions options;
  Logger& log;
  // Lines that clients can cause (refusals, failed logins, malformed
  // handshakes, failed connections): at most 10 a second of each kind.
  platform::LogRateLimiter log_limit;
  PasswordVerifier verifier;
  AuthThrottle auth_throttle;
  std::atomic<unsigned> hashes_pending{0};  // queued on or running in hash_pool
  // Slow password hashes run here, never on a relay thread. Declared after
  // the verifier: destroyed (joined) first.
  // Made by run(): no thread may exist before the privilege drop, which
  // changes only the calling thread's capabilities.
  std::unique_ptr<net::thread_pool> hash_pool;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<Endpoint> bound;
  // After the workers: goes before the io_context it runs on.
  std::unique_ptr<net::local::stream_protocol::acceptor> control;
  bool control_created = false;  // we made control_path: remove it at exit
  const Clock::time_point started_at = Clock::now();
  std::atomic<std::uint64_t> reloads{0};
  std::atomic<std::uint64_t> reload_failures{0};

  std::mutex policy_mu;
  std::shared_ptr<const Policy> policy;
  // The gateway.toml in force (command-line overrides applied); touched
  // only by the thread that handles signals.
  platform::GatewayConfig config_now;
  // The host's addresses from the kernel, for protect_internal: every
  // policy reads this one set; the watch (on the control thread) replaces it.
  std::shared_ptr<HostAddresses> host_addrs = std::make_shared<HostAddresses>();
  std::unique_ptr<HostAddressWatch> host_watch;

  // The host's addresses, dumped now and watched from run(); false (logged)
  // when the kernel cannot be asked: protect_internal would have holes.
  bool start_host_watch() {
    if (!options.config.sockd.protect_internal) return true;
    std::string error;
    host_watch = HostAddressWatch::start(host_addrs, log, error);
    if (host_watch) return true;
    log.event(platform::LogLevel::Error, "host_addresses_error", {{"error", error}});
    return false;
  }

  std::atomic<std::uint32_t> active{0};  // sessions open
  std::atomic<std::uint64_t> accept_errors{0};
  std::mutex clients_mu;
  std::map<IpAddress, std::uint32_t> per_client;
  std::atomic<unsigned> hooks_running{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> stop_requested{false};

  std::shared_ptr<const Policy> current_policy() {
    std::lock_guard lock(policy_mu);
    return policy;
  }

  // Holds one session's place in the limits; gives it back when destroyed.
  class Slot {
   public:
    Slot(Impl* impl, IpAddress a) : impl_(impl), addr_(a) {}
    Slot(Slot&& o) noexcept : impl_(std::exchange(o.impl_, nullptr)), addr_(o.addr_) {}
    Slot& operator=(Slot&&) = delete;
    Slot(const Slot&) = delete;
    ~Slot() {
      if (impl_ != nullptr) impl_->release(addr_);
    }

   private:
    Impl* impl_;
    IpAddress addr_;
  };

  // A place for a new session from `a`, or nullopt with the limit's name.
  std::optional<Slot> admit(const IpAddress& client, const platform::SockdSettings& s,
                            std::string& why) {
    const IpAddress a = client_limit_key(client);
    // Both counts change under the one lock, so threads cannot overshoot.
    std::lock_guard lock(clients_mu);
    // The limits themselves are the plan's (limit_refusal).
    std::uint32_t& n = per_client[a];
    if (const char* refusal = limit_refusal(active.load(), n, s)) {
      if (n == 0) per_client.erase(a);
      why = refusal;
      return std::nullopt;
    }
    ++n;
    ++active;
    return Slot(this, a);
  }

  void release(const IpAddress& a) {
    std::lock_guard lock(clients_mu);
    auto it = per_client.find(a);
    if (it != per_client.end() && --it->second == 0) per_client.erase(it);
    --active;
  }

  Worker& add_worker() {
    workers.push_back(std::make_unique<Worker>());
    Worker& w = *workers.back();
    HookLimits limits;
    limits.max_running = options.config.sockd.hook_max_running;
    limits.timeout = options.config.sockd.hook_timeout;
    w.hooks = std::make_unique<HookRunner>(w.io, limits, hooks_running, log);
    return w;
  }

  // Runs the hooks a decision asks for (the rule's command, identd's hook).
  void run_hooks(Worker& w, const Check& c) {
    if (c.command && c.rule != nullptr) w.hooks->run(*c.command, rule_label(*c.rule));
    if (c.ident_command) w.hooks->run(*c.ident_command, c.ident_origin);
  }

  Resolver* resolver_for(Worker& w) {
    if (!w.resolver_tried) {
      w.resolver_tried = true;
      auto ns = platform::effective_nameserver(options.config);
      if (!ns) {
        w.resolver_error = "no nameserver configured";
      } else {
        w.resolver = Resolver::create(w.io, *ns, w.resolver_error);
      }
    }
    return w.resolver.get();
  }

  // A remembered success is answered at once; otherwise the hash runs on
  // hash_pool and the session waits on its own thread, other sessions going on.
  // A client locked out by repeated failures, or a login beyond
  // auth_max_pending waiting hashes, is refused without one (`why` says so).
  net::awaitable<bool> verify_password(const Policy& p, std::string_view user,
                                       std::string_view password, IpAddress client,
                                       std::string& why) {
    if (!p.users) co_return false;
    if (auth_throttle.blocked(client)) {
      why = "too many failures from this client";
      co_return false;
    }
    if (verifier.cached(*p.users, user, password)) co_return true;
    if (hashes_pending.fetch_add(1) >= options.config.sockd.auth_max_pending) {
      --hashes_pending;
      why = "password check queue full";
      co_return false;
    }
    struct Job {
      explicit Job(const net::any_io_executor& ex) : wake(ex) {
        wake.expires_at(net::steady_timer::time_point::max());
      }
      ~Job() {
        volatile char* q = password.data();
        for (std::size_t i = 0; i < password.size(); ++i) q[i] = 0;
      }
      net::steady_timer wake;
      std::string user;
      std::string password;
      bool ok = false;
      bool done = false;
    };
    const auto ex = co_await net::this_coro::executor;
    auto job = std::make_shared<Job>(ex);
    job->user = std::string(user);
    job->password = std::string(password);
    net::post(*hash_pool, [this, job, users = p.users, ex] {
      const bool ok = verifier.verify(*users, job->user, job->password);
      --hashes_pending;
      net::post(ex, [job, ok] {
        job->ok = ok;
        job->done = true;
        job->wake.cancel();
      });
    });
    error_code ec;
    for (int i = 0; i < 64 && !job->done; ++i) {
      co_await job->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (!job->ok) auth_throttle.failed(client);
    co_return job->ok;
  }

  // What the handshake and connect phase leaves for the session to do.
  enum class Next : std::uint8_t { Log, Logged, Relay };

  net::awaitable<void> session(Worker& w, tcp::socket sock, Endpoint peer, Endpoint listener,
                               std::string iface, Slot slot, std::shared_ptr<const Policy> pol);
  net::awaitable<Next> negotiate(Worker& w, std::shared_ptr<SessionState> st, LiveFds& live,
                                 SessionRecord& rec, Endpoint client_ep, std::string iface,
                                 Clock::time_point started, std::shared_ptr<const Policy> pol);
  net::awaitable<void> udp_associate(Worker& w, std::shared_ptr<SessionState> st,
                                     std::shared_ptr<const Policy> pol, proto::Request req,
                                     Request q, SessionRecord& rec, Clock::time_point started);
  net::awaitable<void> udp_front_pump(Worker& w, std::shared_ptr<UdpAssoc> a,
                                      std::shared_ptr<const Policy> pol, Request q);
  net::awaitable<void> accept_loop(Worker& w, tcp::acceptor& acc, std::string iface);
  bool open_listener(const ListenSpec& spec);
  void reload();

  // Counts a finished session on its worker and logs it.
  void finish(Worker& w, const SessionRecord& rec) {
    SessionCounters& c = w.counters;
    c.add_outcome(classify(rec));
    if (rec.reply >= 0 && rec.reply < 256) {
      c.replies[static_cast<std::size_t>(rec.reply)].fetch_add(1, std::memory_order_relaxed);
    }
    c.bytes_up.fetch_add(rec.up, std::memory_order_relaxed);
    c.bytes_down.fetch_add(rec.down, std::memory_order_relaxed);
    log_limited(rec);
  }

  // Logs a session record; the kinds a client can cause at will go
  // through the flood limiter (docs/sockd.md, "Log flood limit").
  void log_limited(const SessionRecord& rec) {
    std::string_view kind;
    if (rec.event == "failed") {
      kind = "session_failed";
    } else if (rec.event == "refused") {
      if (rec.reason.find("limit") != std::string::npos && rec.version.empty()) {
        kind = "session_limited";
      } else if (rec.verdict == "deny") {
        kind = rec.method == "userpass" && rec.cmd.empty() ? "auth_failed" : "session_denied";
      } else {
        kind = "session_refused";  // malformed, incomplete, unresolved
      }
    }
    if (kind.empty()) {
      log_session(log, rec);
      return;
    }
    const auto d = log_limit.admit(kind);
    if (d.suppressed > 0) {
      log.event(platform::LogLevel::Notice, "log_suppressed",
                {{"what", std::string(kind)}, {"count", std::to_string(d.suppressed)}});
    }
    if (d.write) log_session(log, rec);
  }

  bool open_control();
  std::string control_command(std::string_view line);
  net::awaitable<void> control_session(net::local::stream_protocol::socket sock);
  net::awaitable<void> control_loop();
};

namespace {

net::awaitable<bool> write_all(tcp::socket& s, std::span<const std::uint8_t> bytes) {
  error_code ec;
  co_await net::async_write(s, net::buffer(bytes.data(), bytes.size()),
                            net::redirect_error(net::use_awaitable, ec));
  co_return !ec;
}

// Sends the reply for `kind` in the request's own protocol; returns the
// code sent (SOCKS4 CD or SOCKS5 REP).
net::awaitable<int> send_reply(tcp::socket& s, proto::Version v, ReplyKind kind,
                               proto::Address bound) {
  if (v == proto::Version::Socks5) {
    const auto enc = proto::encode_socks5_reply(kind, bound);
    co_await write_all(s, enc.view());
    co_return static_cast<int>(proto::to_socks5(kind));
  }
  const auto enc = proto::encode_socks4_reply(kind, bound);
  co_await write_all(s, std::span<const std::uint8_t>(enc.data(), enc.size()));
  co_return static_cast<int>(proto::to_socks4(kind));
}

}  // namespace

// The session's own frame stays alive, suspended, for as long as the relay
// runs: it holds only the log record, the limits' slot and the sockets.
// Everything the handshake and the connect phase need lives in negotiate()'s
// frame, which is gone before the relay starts.
net::awaitable<void> Server::Impl::session(Worker& w, tcp::socket sock, Endpoint peer,
                                           Endpoint listener, std::string iface, Slot slot,
                                           std::shared_ptr<const Policy> pol) {
  (void)slot;  // held for the session's lifetime
  const auto started = Clock::now();
  w.counters.accepted.fetch_add(1, std::memory_order_relaxed);
  SessionRecord rec;
  rec.client = peer.to_string();
  if (listener.addr.is_unspecified()) {
    // A wildcard listener: the address this client reached is the socket's own.
    error_code ec;
    const auto local = sock.local_endpoint(ec);
    rec.listener = ec ? "" : from_asio(local).to_string();
  } else {
    rec.listener = listener.to_string();
  }
  auto st = std::make_shared<SessionState>(std::move(sock));
  LiveFds live(w);
  live.add(st->client.native_handle());
  // The policy goes to negotiate(): the session's long-lived frame keeps
  // only the idle timeout it started with.
  const auto idle_timeout = pol->settings.idle_timeout;
  const Next next = co_await negotiate(w, st, live, rec, peer, iface, started, std::move(pol));
  if (next == Next::Relay) {
    RelayOptions ropts;
    ropts.idle_timeout = idle_timeout;
    const RelayResult rr =
        co_await relay(std::move(st->client), std::move(st->target), w.pool, ropts);
    rec.event = "terminated";
    rec.up += rr.up;
    rec.down = rr.down;
    rec.reason = std::string(to_string(rr.end));
  }
  if (next != Next::Logged) {
    rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    finish(w, rec);
  }
}

net::awaitable<Server::Impl::Next> Server::Impl::negotiate(Worker& w,
                                                           std::shared_ptr<SessionState> st,
                                                           LiveFds& live, SessionRecord& rec,
                                                           Endpoint client_ep, std::string iface,
                                                           Clock::time_point started,
                                                           std::shared_ptr<const Policy> pol) {
  error_code ec;
  const auto& settings = pol->settings;

  const proto::ServerOptions hopts = handshake_options(settings, pol->users != nullptr);
  auto hx = std::make_unique<HandshakeBuffers>(hopts);
  proto::ServerHandshake& hs = hx->hs;

  // --- handshake (RFC 1928 §3-§4, RFC 1929, SOCKS4/4a), bounded in time
  arm(st, settings.handshake_timeout, true);
  auto& in = hx->in;
  std::size_t have = 0;
  std::size_t off = 0;
  std::string auth_refusal;         // why a login was refused without a hash
  std::vector<std::uint8_t> early;  // bytes the client sent after its request
  bool done = false;
  while (!done) {
    if (off == have) {
      have = co_await st->client.async_read_some(net::buffer(in),
                                                 net::redirect_error(net::use_awaitable, ec));
      off = 0;
      if (ec) {
        rec.reason = st->expired ? "handshake timeout" : "client closed during handshake";
        disarm(st);
        co_return Next::Log;
      }
    }
    proto::Step step = hs.feed(std::span<const std::uint8_t>(in.data() + off, have - off));
    off += step.consumed;
    if (step.kind == proto::StepKind::Authenticate) {
      // The machine holds its own copy now: the password leaves the read buffer.
      proto::wipe_except(in, off, have);
      rec.user = std::string(hs.username());
      const bool ok = co_await verify_password(*pol, hs.username(), hs.password(), client_ep.addr,
                                               auth_refusal);
      step = hs.accept_auth(ok);
      rec.method = "userpass";
    }
    switch (step.kind) {
      case proto::StepKind::NeedMore:
      case proto::StepKind::Authenticate:
        break;
      case proto::StepKind::Send:
        if (!co_await write_all(st->client, step.reply)) {
          rec.reason = st->expired ? "handshake timeout" : "client closed during handshake";
          disarm(st);
          co_return Next::Log;
        }
        break;
      case proto::StepKind::Malformed:
        disarm(st);
        if (!step.reply.empty()) {
          rec.reply = reply_code_of(step.reply);
          co_await write_all(st->client, step.reply);
        }
        rec.verdict = handshake_denied(step.failure) ? "deny" : "";
        rec.reason = std::string(proto::to_string(step.failure));
        if (!auth_refusal.empty()) rec.reason += ": " + auth_refusal;
        co_return Next::Log;
      case proto::StepKind::Request:
        early.assign(in.begin() + static_cast<std::ptrdiff_t>(off),
                     in.begin() + static_cast<std::ptrdiff_t>(have));
        done = true;
        break;
    }
  }
  disarm(st);
  w.counters.handshake.observe(Clock::now() - started);

  hx->req = hs.request();
  const proto::Request& req = hx->req;
  rec.version = std::string(version_name(req.version));
  rec.cmd = std::string(command_name(req.command));
  rec.dst = req.destination.to_string();
  if (req.version == proto::Version::Socks5) {
    rec.method = req.method == proto::kMethodUserPass ? "userpass" : "none";
    rec.user = std::string(req.username.view());
  } else {
    rec.method = "none";
    rec.user = std::string(req.userid.view());
  }
  const auto fail = [&](ReplyKind kind, std::string reason) -> net::awaitable<void> {
    rec.reply = co_await send_reply(st->client, req.version, kind,
                                    proto::Address::from_ip(IpAddress::v4(0), 0));
    rec.reason = std::move(reason);
  };

  if (req.command == proto::Command::UdpAssociate) {
    co_await udp_associate(w, st, pol, req, make_rule_request(req, client_ep, iface), rec, started);
    co_return Next::Logged;
  }

  // --- the decision: the session plan says what to do next; this
  // coroutine only does the I/O it asks for (docs/sockd.md, "Pipeline").
  arm(st, settings.connect_timeout, false);
  const auto connect_deadline = Clock::now() + settings.connect_timeout;
  SessionPlan plan(*pol, make_rule_request(req, client_ep, iface));
  // Ends the session as the plan decided (Deny, Failed): hooks, hits, log, reply.
  const auto conclude = [&]() -> net::awaitable<void> {
    disarm(st);
    if (plan.decided() != nullptr) run_hooks(w, *plan.decided());
    if (plan.step() != PlanStep::Deny || plan.decided() != nullptr) {
      record_decision(*pol, plan.decided() != nullptr ? plan.decided()->rule : nullptr);
    }
    plan.describe(rec);
    co_await fail(plan.reply(), plan.reason());
  };
  while (plan.step() == PlanStep::Resolve || plan.step() == PlanStep::AskIdent) {
    if (plan.step() == PlanStep::Resolve) {
      Resolver* r = resolver_for(w);
      if (r == nullptr) {
        plan.resolved({}, w.resolver_error);
        continue;
      }
      Resolved res = co_await r->resolve(plan.name());
      plan.resolved(std::move(res.addrs), res.error);
    } else {
      // RFC 1413, once per session: the answer holds for every address.
      IdentOutcome id = co_await ask_identd(st->client, plan.user(), settings.identd_timeout);
      plan.ident(id.result, std::move(id.user));
    }
  }
  if (plan.step() == PlanStep::Deny) {
    co_await conclude();
    co_return Next::Log;
  }
  plan.describe(rec);
  const std::vector<Candidate>& candidates = plan.candidates();

  if (plan.step() == PlanStep::Bind) {
    // --- BIND (RFC 1928 §4, §6; SOCKS4): listen on the egress toward the
    // expected peer, accept one connection, and only from a peer the plan expects.
    const Candidate& c = candidates.front();
    IpAddress local;
    const std::string egress_iface = c.check.route != nullptr ? c.check.route->egress_iface : "";
    if (c.check.route != nullptr && c.check.route->egress_addr) {
      local = *c.check.route->egress_addr;
    } else if (auto l = local_address_toward(c.addr, egress_iface)) {
      local = *l;
    } else {
      plan.failed(ReplyKind::NetUnreachable, "bind: no local address toward the peer");
      co_await conclude();
      co_return Next::Log;
    }
    const tcp::endpoint lep(to_asio(local), 0);
    st->acceptor.open(lep.protocol(), ec);
    // An interface line: the peer's connection must come in on it.
    if (!ec && bind_to_device(st->acceptor.native_handle(), egress_iface) != 0) {
      ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) st->acceptor.bind(lep, ec);
    if (!ec) st->acceptor.listen(1, ec);
    if (ec) {
      plan.failed(proto::reply_kind_from_errno(ec.value()), "bind: " + ec.message());
      co_await conclude();
      co_return Next::Log;
    }
    const auto bound_ep = st->acceptor.local_endpoint(ec);
    rec.reply = co_await send_reply(st->client, req.version, ReplyKind::Granted,
                                    proto::Address::from_ip(local, bound_ep.port()));
    // While waiting for the peer, notice a client that goes away.
    auto waiting = std::make_shared<bool>(true);
    auto client_gone = std::make_shared<bool>(false);
    net::co_spawn(st->client.get_executor(),
                  bind_client_watch(st, waiting, client_gone), net::detached);
    // A connection from another host is closed and logged; the wait goes on
    // for the expected peer until connect_timeout.
    tcp::endpoint peer;
    IpAddress peer_addr;
    for (;;) {
      co_await st->acceptor.async_accept(st->target, net::redirect_error(net::use_awaitable, ec));
      if (ec || !st->target.is_open()) break;
      peer = st->target.remote_endpoint(ec);
      peer_addr = ec ? IpAddress{} : from_asio(peer.address());
      if (!ec && plan.bind_peer_ok(peer_addr)) break;
      log.limited_event(log_limit, platform::LogLevel::Warning, "bind_refused",
                        {{"client", rec.client}, {"peer", ec ? "-" : from_asio(peer).to_string()},
                         {"dst", rec.dst}, {"reason", "not the expected peer"}});
      st->target.close(ec);
    }
    *waiting = false;
    if (!*client_gone) st->client.cancel(ec);  // ends the watch
    if (st->target.is_open()) live.add(st->target.native_handle());
    const bool timed_out = st->expired;
    disarm(st);
    st->acceptor.close(ec);
    if (*client_gone) {
      plan.failed(ReplyKind::GeneralFailure, "bind: client closed before the peer connected");
      run_hooks(w, *plan.decided());
      record_decision(*pol, plan.decided()->rule);
      plan.describe(rec);
      co_return Next::Log;
    }
    if (!st->target.is_open()) {
      plan.failed(timed_out ? ReplyKind::TtlExpired : ReplyKind::GeneralFailure,
                  timed_out ? "bind: no connection in time" : "bind: accept failed");
      co_await conclude();
      co_return Next::Log;
    }
    plan.bind_accepted(peer_addr);
    run_hooks(w, *plan.decided());
    record_decision(*pol, plan.decided()->rule);
    plan.describe(rec);
    rec.addr = from_asio(peer).to_string();
    rec.reply = co_await send_reply(st->client, req.version, ReplyKind::Granted,
                                    proto::Address::from_ip(peer_addr, peer.port()));
  } else {
    // --- CONNECT (happy eyeballs, RFC 8305 §5): the candidates in the
    // plan's order; a new attempt every kAttemptDelay until one connects;
    // each socket leaves by the egress sockd.route chose for its address.
    auto race = std::make_shared<Race>(st->client.get_executor(), candidates.size());
    std::size_t next = 0;
    auto next_attempt = Clock::now();
    const auto first_attempt = next_attempt;
    while (race->winner < 0 && !st->expired && Clock::now() < connect_deadline) {
      if (next < candidates.size() &&
          (Clock::now() >= next_attempt || race->failed == race->started)) {
        const Candidate& c = candidates[next];
        tcp::socket& s = race->sockets[next];
        const tcp::endpoint ep(to_asio(c.addr), req.destination.port);
        s.open(ep.protocol(), ec);
        int e = ec ? ec.value() : bind_egress(s.native_handle(), c.check.route, c.addr);
        ++race->started;
        if (e != 0) {
          ++race->failed;
          race->last_error = e;
        } else {
          net::co_spawn(st->client.get_executor(), race_attempt(race, next, ep), net::detached);
        }
        ++next;
        next_attempt = Clock::now() + kAttemptDelay;
        continue;
      }
      if (next >= candidates.size() && race->failed == race->started) break;  // all failed
      auto wake_at = connect_deadline;
      if (next < candidates.size()) wake_at = std::min(wake_at, next_attempt);
      race->wake.expires_at(wake_at);
      co_await race->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    const bool timed_out = race->winner < 0 && (st->expired || Clock::now() >= connect_deadline);
    disarm(st);
    for (std::size_t i = 0; i < race->sockets.size(); ++i) {
      if (static_cast<int>(i) != race->winner) race->sockets[i].close(ec);  // the losers
    }
    if (race->winner < 0) {
      plan.connect_failed(std::min(next, candidates.size()) - 1, race->last_error, timed_out);
      co_await conclude();
      co_return Next::Log;
    }
    w.counters.connect.observe(Clock::now() - first_attempt);
    plan.connected(static_cast<std::size_t>(race->winner));
    run_hooks(w, *plan.decided());
    record_decision(*pol, plan.decided()->rule);
    plan.describe(rec);
    st->target = std::move(race->sockets[static_cast<std::size_t>(race->winner)]);
    live.add(st->target.native_handle());
    rec.reply =
        co_await send_reply(st->client, req.version, ReplyKind::Granted, bound_of(st->target));
  }

  // --- relay: the early bytes first; the caller runs the relay once this
  // frame, with everything the handshake needed, is gone.
  if (!early.empty()) {
    if (!co_await write_all(st->target, early)) {
      rec.event = "terminated";
      rec.reason = "target_error";
      co_return Next::Log;
    }
    rec.up += early.size();
  }
  co_return Next::Relay;
}

using udp = net::ip::udp;

// One UDP association (RFC 1928 §7): the client-facing socket, one outgoing
// socket per family, and what the pumps share. Lives as long as its TCP
// control connection.
struct UdpAssoc {
  explicit UdpAssoc(const net::any_io_executor& ex, tcp::socket& ctl)
      : front(ex), out4(ex), out6(ex), idle(ex), control(ctl) {}
  udp::socket front;
  udp::socket out4;
  udp::socket out6;
  std::optional<IpAddress> egress4;  // where out4 / out6 were bound, if anywhere
  std::optional<IpAddress> egress6;
  std::string egress_iface4;  // the interface line's device, if that was the route
  std::string egress_iface6;
  bool used4 = false;
  bool used6 = false;
  net::steady_timer idle;
  tcp::socket& control;
  Clock::time_point last = Clock::now();
  IpAddress client_ip;
  std::uint16_t client_port = 0;  // 0: learned from the first datagram
  std::optional<udp::endpoint> client_udp;
  std::set<Endpoint> peers;  // destinations the client sent to: only they may answer
  std::map<std::string, std::vector<IpAddress>> names;  // resolved once per association
  std::string first_rule;
  const Rule* first_rule_ptr = nullptr;  // the rule the log names, counted at the end
  std::uint64_t up = 0;
  std::uint64_t down = 0;
  std::uint64_t dropped = 0;
  bool closed = false;
  std::string reason;

  void close(std::string why) {
    if (closed) return;
    closed = true;
    reason = std::move(why);
    error_code ignored;
    front.close(ignored);
    out4.close(ignored);
    out6.close(ignored);
    control.close(ignored);
    idle.cancel();
  }
};

namespace {

constexpr std::size_t kMaxPeers = 4096;
constexpr std::size_t kMaxNames = 64;
constexpr std::size_t kDatagram = 65536;

net::awaitable<void> udp_back_pump(std::shared_ptr<UdpAssoc> a, bool v6) {
  udp::socket& sock = v6 ? a->out6 : a->out4;
  std::vector<std::uint8_t> buf(kDatagram);
  std::array<std::uint8_t, 32> hdr{};
  error_code ec;
  while (!a->closed) {
    udp::endpoint from;
    const std::size_t n = co_await sock.async_receive_from(net::buffer(buf), from,
                                                           net::redirect_error(net::use_awaitable, ec));
    if (a->closed || ec == net::error::operation_aborted || ec == net::error::bad_descriptor) break;
    if (ec) continue;
    const Endpoint src{from_asio(from.address()), from.port()};
    if (!a->client_udp || a->peers.count(src) == 0) {
      ++a->dropped;  // not an answer to this client: the relay is no reflector
      continue;
    }
    const std::size_t h = proto::encode_udp_header(proto::Address::from_ip(src.addr, src.port), hdr);
    if (h == 0) continue;
    const std::array<net::const_buffer, 2> out{net::buffer(hdr.data(), h), net::buffer(buf.data(), n)};
    co_await a->front.async_send_to(out, *a->client_udp, net::redirect_error(net::use_awaitable, ec));
    if (!ec) {
      a->down += n;
      a->last = Clock::now();
    }
  }
}

}  // namespace

net::awaitable<void> Server::Impl::udp_front_pump(Worker& w, std::shared_ptr<UdpAssoc> a,
                                                  std::shared_ptr<const Policy> pol, Request q) {
  std::vector<std::uint8_t> buf(kDatagram);
  error_code ec;
  q.command = Command::Udp;
  while (!a->closed) {
    udp::endpoint from;
    const std::size_t n = co_await a->front.async_receive_from(
        net::buffer(buf), from, net::redirect_error(net::use_awaitable, ec));
    if (a->closed || ec == net::error::operation_aborted || ec == net::error::bad_descriptor) break;
    if (ec) continue;
    // RFC 1928 §7: only the client's address; its port once known.
    if (from_asio(from.address()) != a->client_ip ||
        (a->client_port != 0 && from.port() != a->client_port) ||
        (a->client_udp && *a->client_udp != from)) {
      ++a->dropped;
      continue;
    }
    const proto::UdpParse p = proto::parse_udp_header(std::span<const std::uint8_t>(buf.data(), n));
    if (p.status != proto::ParseStatus::Ok || p.header.fragmented()) {
      ++a->dropped;  // no reassembly: FRAG != 0 is dropped, as §7 allows
      continue;
    }
    if (!a->client_udp) a->client_udp = from;
    const proto::Address& d = p.header.destination;
    q.dst_name.reset();
    q.dst_addr.reset();
    std::string name;
    if (d.type == proto::AddressType::Domain) {
      name = std::string(d.name.view());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      q.dst_name = name;
    } else {
      q.dst_addr = d.ip.unmapped();
    }
    q.dst_port = d.port;
    // Each datagram is decided by the plan, as a session is.
    SessionPlan plan(*pol, q, SessionPlan::Mode::Datagram);
    while (!a->closed &&
           (plan.step() == PlanStep::Resolve || plan.step() == PlanStep::AskIdent)) {
      if (plan.step() == PlanStep::Resolve) {
        auto it = a->names.find(name);
        if (it != a->names.end()) {
          plan.resolved(it->second);
        } else if (Resolver* r = resolver_for(w); r != nullptr) {
          Resolved res = co_await r->resolve(name);
          if (a->closed) break;
          if (a->names.size() < kMaxNames) a->names.emplace(name, res.addrs);
          plan.resolved(std::move(res.addrs), res.error);
        } else {
          plan.resolved({}, w.resolver_error);
        }
      } else {
        IdentOutcome id = co_await ask_identd(a->control, q.user, pol->settings.identd_timeout);
        if (a->closed) break;
        // Kept in q: identd is asked once per association.
        q.ident = id.result;
        q.ident_user = id.user;
        plan.ident(id.result, std::move(id.user));
      }
    }
    if (a->closed) break;
    if (plan.step() != PlanStep::Send) {
      ++a->dropped;
      continue;
    }
    const std::optional<IpAddress> target = plan.target();
    const Check& chosen = *plan.decided();
    if (a->first_rule.empty() && chosen.rule != nullptr) {
      a->first_rule = rule_label(*chosen.rule);
      a->first_rule_ptr = chosen.rule;
    }
    const bool v6 = target->family == platform::Family::V6;
    udp::socket& out = v6 ? a->out6 : a->out4;
    std::optional<IpAddress>& egress = v6 ? a->egress6 : a->egress4;
    bool& used = v6 ? a->used6 : a->used4;
    if (!out.is_open()) {
      ++a->dropped;
      continue;
    }
    // A socket takes one source address: the first routed datagram binds it.
    std::optional<IpAddress> want;
    if (chosen.route != nullptr && chosen.route->egress_addr) want = chosen.route->egress_addr;
    const std::string want_iface = chosen.route != nullptr ? chosen.route->egress_iface : "";
    std::string& egress_iface = v6 ? a->egress_iface6 : a->egress_iface4;
    if (!used) {
      if (want) {
        out.bind(udp::endpoint(to_asio(*want), 0), ec);
        if (ec) {
          ++a->dropped;
          continue;
        }
      }
      if (bind_to_device(out.native_handle(), want_iface) != 0) {
        ++a->dropped;
        continue;
      }
      egress = want;
      egress_iface = want_iface;
      used = true;
    } else if (want != egress || want_iface != egress_iface) {
      ++a->dropped;
      continue;
    }
    const std::size_t len = n - p.payload_offset;
    co_await out.async_send_to(net::buffer(buf.data() + p.payload_offset, len),
                               udp::endpoint(to_asio(*target), d.port),
                               net::redirect_error(net::use_awaitable, ec));
    if (ec) continue;
    if (a->peers.size() < kMaxPeers) a->peers.insert(Endpoint{*target, d.port});
    a->up += len;
    a->last = Clock::now();
  }
}

net::awaitable<void> Server::Impl::udp_associate(Worker& w, std::shared_ptr<SessionState> st,
                                                 std::shared_ptr<const Policy> pol,
                                                 proto::Request req, Request q,
                                                 SessionRecord& rec, Clock::time_point started) {
  error_code ec;
  const auto finish = [&] {
    rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    this->finish(w, rec);
  };
  const proto::Address none = proto::Address::from_ip(IpAddress::v4(0), 0);
  {
    const SessionPlan plan(*pol, q);
    if (plan.step() == PlanStep::Deny) {
      record_decision(*pol, nullptr);
      plan.describe(rec);
      rec.reply = co_await send_reply(st->client, req.version, plan.reply(), none);
      finish();
      co_return;
    }
  }
  auto a = std::make_shared<UdpAssoc>(st->client.get_executor(), st->client);
  // Datagrams are taken only from the control connection's peer: a DST.ADDR
  // naming another host would let that host (or a spoofer) use the relay.
  a->client_ip = q.src_addr;
  a->client_port = req.destination.port;
  // The client sends its datagrams to the address it reached us on.
  const auto local = st->client.local_endpoint(ec);
  if (!ec) {
    const udp::endpoint fep(local.address(), 0);
    a->front.open(fep.protocol(), ec);
    if (!ec) a->front.bind(fep, ec);
  }
  if (ec) {
    rec.event = "failed";
    rec.reply = co_await send_reply(st->client, req.version, proto::reply_kind_from_errno(ec.value()), none);
    rec.reason = "udp: " + ec.message();
    finish();
    co_return;
  }
  a->out4.open(udp::v4(), ec);
  a->out6.open(udp::v6(), ec);
  if (a->out6.is_open()) a->out6.set_option(net::ip::v6_only(true), ec);
  const auto fb = a->front.local_endpoint(ec);
  rec.verdict = "permit";
  rec.reply = co_await send_reply(st->client, req.version, ReplyKind::Granted,
                                  proto::Address::from_ip(from_asio(fb.address()), fb.port()));
  if (rec.reply != 0) {
    a->close("reply failed");
  } else {
    const auto ex = st->client.get_executor();
    net::co_spawn(ex, udp_front_pump(w, a, pol, q), net::detached);
    net::co_spawn(ex, udp_back_pump(a, false), net::detached);
    net::co_spawn(ex, udp_back_pump(a, true), net::detached);
    // The idle watchdog.
    net::co_spawn(ex, [](std::shared_ptr<UdpAssoc> as, std::chrono::milliseconds idle) -> net::awaitable<void> {
      error_code e;
      while (!as->closed) {
        as->idle.expires_at(as->last + idle);
        co_await as->idle.async_wait(net::redirect_error(net::use_awaitable, e));
        if (!as->closed && Clock::now() >= as->last + idle) as->close("idle");
      }
    }(a, pol->settings.idle_timeout), net::detached);
    // RFC 1928 §7: the association ends with its TCP connection.
    std::array<char, 512> sink{};
    for (;;) {
      co_await st->client.async_read_some(net::buffer(sink), net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
    }
    a->close(ec == net::error::eof ? "eof" : (a->closed ? a->reason : "client_error"));
  }
  rec.event = "terminated";
  // An association that relayed nothing was decided by no line: it counts
  // for none (its log line has no rule= either).
  if (a->first_rule_ptr != nullptr) record_decision(*pol, a->first_rule_ptr);
  rec.rule = a->first_rule;
  rec.up = a->up;
  rec.down = a->down;
  rec.reason = a->reason;
  finish();
}

net::awaitable<void> Server::Impl::accept_loop(Worker& w, tcp::acceptor& acc, std::string iface) {
  net::steady_timer backoff(w.io);
  error_code lec;
  const Endpoint listener = from_asio(acc.local_endpoint(lec));
  tcp::endpoint peer;  // from accept() itself: no getpeername per session
  for (;;) {
    error_code ec;
    tcp::socket s = co_await acc.async_accept(peer, net::redirect_error(net::use_awaitable, ec));
    if (stopping.load()) co_return;
    if (ec) {
      if (ec == net::error::operation_aborted || !acc.is_open()) co_return;
      ++accept_errors;
      // Out of descriptors (or memory): the pending connection stays queued,
      // so retrying at once would spin. Wait, then try again.
      const int e = ec.value();
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        log.event(platform::LogLevel::Warning, "accept_error",
                  {{"error", ec.message()}, {"count", std::to_string(accept_errors.load())}});
        backoff.expires_after(kAcceptBackoff);
        co_await backoff.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
      continue;
    }
    const Endpoint client = from_asio(peer);
    std::string why;
    // The session decides under the policy in force when it was accepted.
    auto pol = current_policy();
    auto slot = admit(client.addr, pol->settings, why);
    if (!slot) {
      SessionRecord rec;
      rec.client = client.to_string();
      rec.reason = why;
      w.counters.accepted.fetch_add(1, std::memory_order_relaxed);
      w.counters.add_outcome(Outcome::Limited);
      log_limited(rec);
      s.close(ec);
      continue;
    }
    net::co_spawn(w.io,
                  session(w, std::move(s), client, listener, iface, std::move(*slot), std::move(pol)),
                  net::detached);
  }
}

bool Server::Impl::open_listener(const ListenSpec& spec) {
  error_code ec;
  if (spec.inherited_fd >= 0) {
    // Every thread accepts on its own duplicate of the inherited socket.
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(spec.inherited_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      log.event(platform::LogLevel::Error, "listen_error",
                {{"fd", std::to_string(spec.inherited_fd)}, {"error", std::strerror(errno)}});
      return false;
    }
    const tcp protocol = ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
    for (auto& w : workers) {
      const int fd = ::fcntl(spec.inherited_fd, F_DUPFD_CLOEXEC, 3);
      auto acc = std::make_unique<tcp::acceptor>(w->io);
      acc->assign(protocol, fd, ec);
      if (ec) {
        ::close(fd);
        log.event(platform::LogLevel::Error, "listen_error",
                  {{"fd", std::to_string(spec.inherited_fd)}, {"error", ec.message()}});
        return false;
      }
      if (&w == &workers.front()) bound.push_back(from_asio(acc->local_endpoint(ec)));
      w->acceptors.emplace_back(std::move(acc), spec.iface);
    }
    return true;
  }
  tcp::endpoint ep = to_asio(spec.endpoint);
  for (auto& w : workers) {
    auto acc = std::make_unique<tcp::acceptor>(w->io);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && workers.size() > 1) {
      acc->set_option(net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
    }
    if (!ec && ep.address().is_v6()) acc->set_option(net::ip::v6_only(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      log.event(platform::LogLevel::Error, "listen_error",
                {{"listen", spec.endpoint.to_string()}, {"error", ec.message()}});
      return false;
    }
    // Port 0: the other threads join the port the kernel chose.
    if (&w == &workers.front()) {
      ep = acc->local_endpoint(ec);
      bound.push_back(from_asio(ep));
    }
    w->acceptors.emplace_back(std::move(acc), spec.iface);
  }
  return true;
}

void ConfigOverrides::apply(platform::GatewayConfig& cfg) const {
  if (threads) cfg.sockd.threads = *threads;
  if (log_format) cfg.log.format = *log_format;
  if (log_target) cfg.log.target = *log_target;
}

namespace {

unsigned thread_count(const platform::GatewayConfig& cfg) {
  const unsigned n = cfg.sockd.threads;
  return n == 0 ? std::max(1U, std::thread::hardware_concurrency()) : n;
}

// The Socks sockets a configuration implies, as listeners.
std::vector<ListenSpec> implied_listens(const platform::GatewayConfig& cfg) {
  std::vector<ListenSpec> out;
  for (const auto& spec : platform::implied_sockets(cfg)) {
    if (spec.purpose == platform::SocketPurpose::Socks) out.push_back(ListenSpec{spec.endpoint, spec.iface, -1});
  }
  return out;
}

}  // namespace

// SIGHUP: gateway.toml (when sockd was started with one) and the files it
// names, read again; all or nothing. New sessions take the new policy and
// [sockd] settings, running ones keep theirs. What only a restart changes is
// named in restart_needed=.
void Server::Impl::reload() {
  platform::Diagnostics diags;
  std::optional<platform::GatewayConfig> cfg = config_now;
  if (!options.config_path.empty()) {
    cfg = platform::load_gateway_config(options.config_path, diags);
    if (cfg) options.overrides.apply(*cfg);
  }
  std::shared_ptr<const Policy> fresh;
  if (cfg) fresh = load_policy(*cfg, diags, host_addrs);
  if (!diags.empty()) log.diagnostics(diags.format());
  if (!fresh) {
    reload_failures.fetch_add(1, std::memory_order_relaxed);
    log.event(platform::LogLevel::Error, "reload_failed",
              {{"reason", "invalid configuration; keeping the previous one"}});
    return;
  }
  std::string restart;
  auto differs = [&](bool d, const char* what) {
    if (d) restart += (restart.empty() ? "" : ",") + std::string(what);
  };
  // Sockets given on the command line or inherited are not gateway.toml's.
  differs(options.listens.empty() && implied_listens(*cfg) != implied_listens(config_now), "listen");
  differs(thread_count(*cfg) != thread_count(config_now), "threads");
  differs(platform::effective_nameserver(*cfg) != platform::effective_nameserver(config_now),
          "nameserver");
  differs(cfg->sockd.auth_cache_ttl != config_now.sockd.auth_cache_ttl, "auth_cache_ttl");
  differs(cfg->gateway != config_now.gateway, "user");
  {
    std::lock_guard lock(policy_mu);
    policy = std::move(fresh);
  }
  log.configure(cfg->log);
  HookLimits limits;
  limits.max_running = cfg->sockd.hook_max_running;
  limits.timeout = cfg->sockd.hook_timeout;
  for (auto& w : workers) {
    net::post(w->io, [wp = w.get(), limits] { wp->hooks->set_limits(limits); });
  }
  config_now = std::move(*cfg);
  if (restart.empty()) {
    log.event(platform::LogLevel::Notice, "reloaded");
  } else {
    log.event(platform::LogLevel::Notice, "reloaded", {{"restart_needed", restart}});
  }
  reloads.fetch_add(1, std::memory_order_relaxed);
}

// The control socket (docs/sockd.md): the supervisor's inherited one, or
// one made at control_path with mode 0600. Served on the first worker's
// io_context; a command only reads atomics and the current policy.
bool Server::Impl::open_control() {
  using local = net::local::stream_protocol;
  if (options.control_fd < 0 && options.control_path.empty()) return true;
  error_code ec;
  control = std::make_unique<local::acceptor>(workers.front()->io);
  if (options.control_fd >= 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(options.control_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
        ss.ss_family != AF_UNIX) {
      log.event(platform::LogLevel::Error, "control_error",
                {{"fd", std::to_string(options.control_fd)}, {"error", "not a unix socket"}});
      control.reset();
      return false;
    }
    control->assign(local(), options.control_fd, ec);
    if (ec) {
      log.event(platform::LogLevel::Error, "control_error",
                {{"fd", std::to_string(options.control_fd)}, {"error", ec.message()}});
      control.reset();
      return false;
    }
    return true;
  }
  const std::string& path = options.control_path;
  // A socket left by an earlier run that died is replaced; anything else is not.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  const local::endpoint ep(path);
  control->open(ep.protocol(), ec);
  if (!ec) {
    // Created 0600 from the start: no window in which others may connect.
    const mode_t old = ::umask(077);
    control->bind(ep, ec);
    ::umask(old);
  }
  if (!ec) control->listen(16, ec);
  if (ec) {
    log.event(platform::LogLevel::Error, "control_error", {{"path", path}, {"error", ec.message()}});
    control.reset();
    return false;
  }
  ::chmod(path.c_str(), 0600);
  control_created = true;
  return true;
}

std::string Server::Impl::control_command(std::string_view line) {
  if (line == "hits") {
    const auto pol = current_policy();
    if (!pol || !pol->hits) return "error no policy loaded\n";
    return format_hits(pol->engine->rules(), *pol->hits);
  }
  if (line == "stats" || line == "metrics") {
    CounterTotals t;
    for (const auto& w : workers) t.add(w->counters);
    t.sessions_open = active.load(std::memory_order_relaxed);
    t.accept_errors = accept_errors.load(std::memory_order_relaxed);
    t.reloads = reloads.load(std::memory_order_relaxed);
    t.reload_failures = reload_failures.load(std::memory_order_relaxed);
    if (const auto pol = current_policy()) t.rules = pol->engine->rules().rules.size();
    t.uptime_seconds = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_at).count());
    return line == "stats" ? format_stats(t) : format_metrics(t);
  }
  return "error unknown command (stats, metrics, hits)\n";
}

net::awaitable<void> Server::Impl::control_session(net::local::stream_protocol::socket sock) {
  std::string line;
  error_code ec;
  co_await net::async_read_until(sock, net::dynamic_buffer(line, 512), '\n',
                                 net::redirect_error(net::use_awaitable, ec));
  if (ec) co_return;
  line.resize(line.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const std::string reply = control_command(line);
  co_await net::async_write(sock, net::buffer(reply), net::redirect_error(net::use_awaitable, ec));
}

net::awaitable<void> Server::Impl::control_loop() {
  for (;;) {
    error_code ec;
    auto sock = co_await control->async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec == net::error::operation_aborted || !control->is_open()) co_return;
    if (ec) continue;
    net::co_spawn(control->get_executor(), control_session(std::move(sock)), net::detached);
  }
}

int control_client(const std::string& path, const std::string& command) {
  return platform::run_control_client("sockd", path, command);
}

Server::Server(ServerOptions options, Logger& log)
    : impl_(std::make_unique<Impl>(std::move(options), log)) {
  impl_->config_now = impl_->options.config;
}

Server::~Server() = default;

bool Server::load(platform::Diagnostics& diags) {
  auto p = load_policy(impl_->options.config, diags, impl_->host_addrs);
  if (!p) return false;
  std::lock_guard lock(impl_->policy_mu);
  impl_->policy = std::move(p);
  return true;
}

bool Server::open() {
  if (!impl_->start_host_watch()) return false;
  const unsigned n = thread_count(impl_->options.config);
  for (unsigned i = 0; i < n; ++i) impl_->add_worker();
  auto specs = impl_->options.listens;
  if (specs.empty()) specs = implied_listens(impl_->options.config);
  if (specs.empty()) {
    impl_->log.event(platform::LogLevel::Error, "listen_error",
                     {{"error", "no internal interface with a socks_port"}});
    return false;
  }
  for (const auto& s : specs) {
    if (!impl_->open_listener(s)) return false;
  }
  if (!impl_->open_control()) return false;
  if (!impl_->options.port_file.empty()) {
    const std::string tmp = impl_->options.port_file + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << impl_->bound.front().port << '\n';
      if (!f) {
        impl_->log.event(platform::LogLevel::Error, "port_file_error", {{"path", tmp}});
        return false;
      }
    }
    if (std::rename(tmp.c_str(), impl_->options.port_file.c_str()) != 0) return false;
  }
  return true;
}

std::vector<Endpoint> Server::bound() const { return impl_->bound; }

void Server::stop() {
  impl_->stop_requested = true;
  if (!impl_->workers.empty()) {
    net::post(impl_->workers.front()->io, [] {});  // wake the control loop
  }
}

int Server::run() {
  Impl& s = *impl_;
  s.hash_pool = std::make_unique<net::thread_pool>(2);
  for (auto& w : s.workers) {
    for (auto& [acc, iface] : w->acceptors) {
      net::co_spawn(w->io, s.accept_loop(*w, *acc, iface), net::detached);
    }
  }
  if (s.control) net::co_spawn(s.workers.front()->io, s.control_loop(), net::detached);
  std::string where;
  for (const auto& b : s.bound) where += (where.empty() ? "" : ",") + b.to_string();
  std::vector<std::pair<std::string, std::string>> fields{
      {"listen", where}, {"threads", std::to_string(s.workers.size())}};
  if (s.control) {
    fields.emplace_back("control", s.options.control_fd >= 0
                                       ? "fd:" + std::to_string(s.options.control_fd)
                                       : s.options.control_path);
  }

  {
    Worker& control = *s.workers.front();
    if (s.host_watch) s.host_watch->attach(control.io);
    net::signal_set signals(control.io, SIGHUP, SIGTERM, SIGINT);
    net::steady_timer drain(control.io);
    net::steady_timer watchdog(control.io);
    Clock::time_point drain_until{};
    const std::string status = "serving SOCKS on " + where;
    auto notify = [&](bool ok, const char* what) {
      if (!ok) s.log.event(platform::LogLevel::Warning, "notify_error", {{"state", what}});
    };

    // Stops accepting everywhere; sessions keep running until they end or
    // the drain time is over.
    auto begin_stop = [&] {
      if (s.stopping.exchange(true)) return;
      notify(platform::notify_stopping(), "stopping");
      s.log.event(platform::LogLevel::Notice, "stopping",
                  {{"sessions", std::to_string(s.active.load())}});
      for (auto& w : s.workers) {
        net::post(w->io, [wp = w.get()] {
          error_code ec;
          for (auto& [acc, iface] : wp->acceptors) acc->close(ec);
        });
      }
      drain_until = Clock::now() + s.options.drain_timeout;
    };
    std::function<void()> watch_drain;
    bool ending = false;
    watch_drain = [&] {
      s.log.report_suppressed(s.log_limit);
      if (s.stopping && s.active.load() == 0) {
        for (auto& w : s.workers) w->io.stop();
        return;
      }
      if (s.stopping && Clock::now() >= drain_until) {
        if (ending) {
          for (auto& w : s.workers) w->io.stop();  // the rest go unlogged
          return;
        }
        // Drain time is over: end every running session the way a peer's
        // reset would, so each still logs its line, and give them a second.
        ending = true;
        drain_until = Clock::now() + std::chrono::seconds{1};
        for (auto& w : s.workers) {
          net::post(w->io, [wp = w.get()] {
            for (int fd : wp->live_fds) ::shutdown(fd, SHUT_RDWR);
          });
        }
      }
      if (s.stop_requested && !s.stopping) begin_stop();
      drain.expires_after(std::chrono::milliseconds{50});
      drain.async_wait([&](error_code ec) {
        if (!ec) watch_drain();
      });
    };
    std::function<void()> watch_signals;
    watch_signals = [&] {
      signals.async_wait([&](error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          notify(platform::notify_reloading(), "reloading");
          s.reload();
          notify(platform::notify_ready(status), "ready");
        } else {
          begin_stop();
        }
        watch_signals();
      });
    };
    watch_signals();
    watch_drain();
    std::function<void()> pet_watchdog;
    const auto watchdog_every = platform::watchdog_interval().value_or(std::chrono::microseconds{0});
    pet_watchdog = [&] {
      notify(platform::notify_watchdog(), "watchdog");
      watchdog.expires_after(watchdog_every);
      watchdog.async_wait([&](error_code ec) {
        if (!ec) pet_watchdog();
      });
    };
    if (watchdog_every.count() > 0) pet_watchdog();
    // Announced once the signals are handled: a SIGHUP sent on seeing this
    // line reloads, it does not kill.
    s.log.event(platform::LogLevel::Notice, "started", fields);
    notify(platform::notify_ready(status), "ready");

    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < s.workers.size(); ++i) {
      threads.emplace_back([w = s.workers[i].get()] { w->io.run(); });
    }
    control.io.run();
    for (auto& w : s.workers) w->io.stop();
    for (auto& t : threads) t.join();
    s.host_watch.reset();  // its descriptor goes before the control io_context
  }  // the signal set and timers above go before their io_context
  s.log.report_suppressed(s.log_limit, true);
  s.log.event(platform::LogLevel::Notice, "stopped",
              {{"sessions_left", std::to_string(s.active.load())},
               {"accept_errors", std::to_string(s.accept_errors.load())},
               {"auth_hashes", std::to_string(s.verifier.hashes_run())},
               {"auth_cache_hits", std::to_string(s.verifier.cache_hits())}});
  // A hash still running posts its result to a stopped io_context: wait for
  // it before the io_contexts go. Sessions still running are destroyed with
  // their io_context.
  s.hash_pool->join();
  if (s.control_created) ::unlink(s.options.control_path.c_str());
  s.control.reset();  // before the io_context it was made on
  s.workers.clear();
  return 0;
}

int Server::run_inetd(int fd) {
  Impl& s = *impl_;
  s.hash_pool = std::make_unique<net::thread_pool>(2);
  s.workers.clear();
  Worker& w = s.add_worker();
  if (!s.start_host_watch()) return 1;  // one dump: a single session needs no updates
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
      (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
    s.log.event(platform::LogLevel::Error, "inetd_error",
                {{"error", "standard input is not a TCP socket"}});
    return 1;
  }
  tcp::socket sock(w.io);
  error_code ec;
  const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  sock.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), own, ec);
  if (ec) {
    ::close(own);
    s.log.event(platform::LogLevel::Error, "inetd_error", {{"error", ec.message()}});
    return 1;
  }
  // inetd's copies of the socket on 0 and 1 would keep it open after the
  // session: point them at /dev/null.
  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    ::dup2(devnull, STDIN_FILENO);
    if (::isatty(STDOUT_FILENO) == 0) ::dup2(devnull, STDOUT_FILENO);
    ::close(devnull);
  }
  const auto peer = sock.remote_endpoint(ec);
  if (ec) return 1;
  std::string why;
  auto pol = s.current_policy();
  auto slot = s.admit(from_asio(peer.address()), pol->settings, why);
  if (!slot) return 1;
  // An unspecified listener: the session asks the socket for its own address.
  net::co_spawn(
      w.io,
      s.session(w, std::move(sock), from_asio(peer), Endpoint{}, std::string{}, std::move(*slot), pol),
      net::detached);
  w.io.run();
  s.log.report_suppressed(s.log_limit, true);
  s.hash_pool->join();
  s.workers.clear();
  return 0;
}

}  // namespace diode::sockd

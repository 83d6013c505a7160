#pragma once
// sockd's daemon, private to its sources: the state one worker thread
// owns, Server::Impl (listeners, workers, limits, policy, logging), and the
// small socket helpers the TCP session, the connect race and the UDP
// association share. The decisions are the session plan's (plan.hpp).

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "diode/platform/asio.hpp"
#include "diode/platform/log_limit.hpp"
#include "diode/sockd/auth.hpp"
#include "diode/sockd/counters.hpp"
#include "diode/sockd/hooks.hpp"
#include "diode/sockd/host_addresses.hpp"
#include "diode/sockd/plan.hpp"
#include "diode/sockd/relay.hpp"
#include "diode/sockd/resolve.hpp"
#include "diode/sockd/server.hpp"
#include "diode/sockd/session.hpp"
#include "diode/sockd/socks_proto.hpp"
#include "reactor_wait.hpp"
#include "recycle.hpp"

namespace diode::sockd {

using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using platform::Endpoint;
using platform::IpAddress;
using proto::ReplyKind;

inline net::ip::address to_asio(const IpAddress& a) {
  if (a.family == platform::Family::V4) return net::ip::address_v4(a.v4_value());
  net::ip::address_v6::bytes_type b;
  std::copy(a.bytes.begin(), a.bytes.end(), b.begin());
  return net::ip::address_v6(b);
}

inline IpAddress from_asio(const net::ip::address& a) {
  if (a.is_v4()) return IpAddress::v4(a.to_v4().to_uint());
  IpAddress out;
  out.family = platform::Family::V6;
  const auto b = a.to_v6().to_bytes();
  std::copy(b.begin(), b.end(), out.bytes.begin());
  return out.unmapped();
}

inline Endpoint from_asio(const tcp::endpoint& ep) { return Endpoint{from_asio(ep.address()), ep.port()}; }

inline tcp::endpoint to_asio(const Endpoint& ep) { return {to_asio(ep.addr), ep.port}; }

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

inline void arm(const std::shared_ptr<SessionState>& s, std::chrono::milliseconds d, bool close_client) {
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

inline void disarm(const std::shared_ptr<SessionState>& s) {
  ++s->generation;
  s->timer.cancel();
}

// Ties a socket to an interface (sockd.route's interface lines); 0 or an errno.
inline int bind_to_device(int fd, const std::string& iface) {
  if (iface.empty()) return 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface.c_str(),
                   static_cast<socklen_t>(iface.size())) != 0) {
    return errno;
  }
  return 0;
}


// Tells Asio what it cannot see for a descriptor sockd made itself with
// accept4() or socket() and SOCK_NONBLOCK | SOCK_CLOEXEC, and then handed to
// assign(): that it is non-blocking already (else Asio's first operation
// sets O_NONBLOCK again with an ioctl), and that it is no duplicate of
// another descriptor (else Asio removes it from epoll before closing it,
// which close() does anyway). Asio has no public call for either.
inline void mark_adopted(tcp::socket& s) {
  auto& impl = SocketInternals::of(s);
  namespace ops = net::detail::socket_ops;
  impl.state_ = static_cast<ops::state_type>((impl.state_ | ops::internal_non_blocking) &
                                             ~ops::possible_dup);
}

// A descriptor made by accept4()/socket() with SOCK_NONBLOCK | SOCK_CLOEXEC,
// as an Asio socket: one epoll registration (EPOLL_CTL_ADD, here), no ioctl,
// no EPOLL_CTL_DEL when it is closed. Closes `fd` and returns false on error.
inline bool adopt_socket(tcp::socket& s, const tcp& protocol, int fd, error_code& ec) {
  s.assign(protocol, fd, ec);
  if (ec) {
    ::close(fd);
    return false;
  }
  mark_adopted(s);
  return true;
}

inline net::awaitable<bool> write_all(tcp::socket& s, std::span<const std::uint8_t> bytes) {
  error_code ec;
  co_await net::async_write(s, net::buffer(bytes.data(), bytes.size()),
                            net::redirect_error(net::use_awaitable, ec));
  co_return !ec;
}

// The reply for `kind` in the request's own protocol, into `out`; returns
// the code it carries (SOCKS4 CD or SOCKS5 REP). Both I/O paths send this.
inline int encode_reply(proto::Version v, ReplyKind kind, const proto::Address& bound,
                        proto::Encoded& out) {
  if (v == proto::Version::Socks5) {
    out = proto::encode_socks5_reply(kind, bound);
    return static_cast<int>(proto::to_socks5(kind));
  }
  const auto enc = proto::encode_socks4_reply(kind, bound);
  std::copy(enc.begin(), enc.end(), out.bytes.begin());
  out.size = enc.size();
  return static_cast<int>(proto::to_socks4(kind));
}

// Sends the reply for `kind` in the request's own protocol; returns the
// code sent (SOCKS4 CD or SOCKS5 REP).
inline net::awaitable<int> send_reply(tcp::socket& s, proto::Version v, ReplyKind kind,
                               proto::Address bound) {
  proto::Encoded enc;
  const int code = encode_reply(v, kind, bound, enc);
  co_await write_all(s, enc.view());
  co_return code;
}

// The request's part of the session's log line (version, cmd, dst, method, user).
// `detail`: also the fields only the log line shows (dst, user); the others
// also decide how the session is counted.
inline void describe_request(const proto::Request& req, SessionRecord& rec, bool detail = true) {
  rec.version = std::string(version_name(req.version));
  rec.cmd = std::string(command_name(req.command));
  if (req.version == proto::Version::Socks5) {
    rec.method = req.method == proto::kMethodUserPass ? "userpass" : "none";
  } else {
    rec.method = "none";
  }
  if (!detail) return;
  rec.dst = req.destination.to_string();
  rec.user = std::string(req.version == proto::Version::Socks5 ? req.username.view()
                                                                : req.userid.view());
}

// A session's handshake input buffer, state machine and parsed request. A
// session the io_uring path began and hands over (uring_loop.cpp) brings its
// own: the machine as the ring left it, the bytes read but not fed yet
// (`have` of them), and when the session was accepted.
struct HandshakeBuffers : Recycled<HandshakeBuffers> {
  static constexpr std::size_t kReadSize = 1024;
  /// `read_size`: the buffer to read into (0 for a loop that reads into
  /// buffers of its own; a hand-off then makes it kReadSize at least).
  explicit HandshakeBuffers(proto::HandshakeOptions o, std::size_t read_size = kReadSize)
      : in(read_size), hs(o) {}
  // What the Asio path reads into; a session handed over from a loop may
  // bring more (what its reads took in before the hand-off).
  std::vector<std::uint8_t> in;
  std::size_t have = 0;
  Clock::time_point started{};
  proto::ServerHandshake hs;
  proto::Request req;
};


struct UdpAssoc;

// One thread's share of the daemon.
struct RelayWorker {
  // One thread runs this context and alone touches its sockets and timers
  // (other threads only post to it): the reactor's per-descriptor locks can go.
  net::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  PipePool pool;
  std::unique_ptr<NameLookup> lookup;  // made on first use
  std::string lookup_error;
  bool lookup_tried = false;
  // Listening sockets, held as tcp::socket rather than tcp::acceptor: the
  // accept loop calls accept4() itself and waits on the reactor through
  // reactor_wait.hpp, which needs basic_socket's registration (the
  // acceptor keeps its own private).
  std::vector<std::pair<std::unique_ptr<tcp::socket>, std::string>> acceptors;
  std::unique_ptr<HookRunner> hooks;
  // Descriptors of this thread's running sessions (client and target), for
  // ending them at the end of a SIGTERM drain. Touched only on this thread.
  std::multiset<int> live_fds;
  // Written by this thread only; the control command reads them all.
  SessionCounters counters;
  // The wall clock as this worker's session loop last read it (once per
  // tick), for what keeps whole seconds (rule hits).
  std::chrono::system_clock::time_point loop_wall{};
  // Server::Impl::worker_policy's copy, and the policy_gen it was taken at.
  std::shared_ptr<const RelayPolicy> policy;
  std::uint64_t policy_gen = ~std::uint64_t{0};
};


// How a finished session's record reads as a counter (docs/sockd.md).
inline Outcome classify_session(const SessionRecord& rec) {
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


// Registers a session's descriptors with its worker for as long as it runs.
class LiveFds {
 public:
  explicit LiveFds(RelayWorker& w) : w_(w) {}
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
  RelayWorker& w_;
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
  std::vector<std::unique_ptr<RelayWorker>> workers;
  std::vector<Endpoint> bound;
  // After the workers: goes before the io_context it runs on.
  std::unique_ptr<net::local::stream_protocol::acceptor> control;
  // SIGHUP, SIGTERM and SIGINT, caught from open() on (before the port file
  // says the server is up), so a signal sent at any time after that stops
  // or reloads it and never kills it; served by run(). After the workers.
  std::unique_ptr<net::signal_set> signals;
  bool control_created = false;  // we made control_path: remove it at exit
  const Clock::time_point started_at = Clock::now();
  std::atomic<std::uint64_t> reloads{0};
  std::atomic<std::uint64_t> reload_failures{0};

  std::mutex policy_mu;
  std::shared_ptr<const RelayPolicy> policy;
  std::atomic<std::uint64_t> policy_gen{0};  // bumped (under policy_mu) with each policy
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
  ClientCounts per_client;  // under clients_mu
  std::atomic<unsigned> hooks_running{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> stop_requested{false};
  // The session loops' threads (uring_loop.cpp, epoll_loop.cpp) read these at each tick:
  // end every session as a peer's reset would; leave the loop.
  std::atomic<bool> rings_ending{false};
  std::atomic<bool> rings_stop{false};
  // Set before the rings start (uring_probe): their accepts are multishot,
  // each client's address read by a socket command.
  bool uring_socket_cmd = false;

  std::shared_ptr<const RelayPolicy> current_policy() {
    std::lock_guard lock(policy_mu);
    return policy;
  }

  // The policy in force, for a session loop's thread: its worker's copy,
  // taken again only after a reload (no lock per session). The copy has a
  // reference count of its own, which only this thread's sessions touch,
  // so the loops' threads do not pass one counter's cache line to and fro.
  const std::shared_ptr<const RelayPolicy>& worker_policy(RelayWorker& w);

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
    if (const char* refusal = per_client.add(
            a, [&](std::uint32_t n) { return limit_refusal(active.load(), n, s); })) {
      why = refusal;
      return std::nullopt;
    }
    ++active;
    return Slot(this, a);
  }

  void release(const IpAddress& a) {
    std::lock_guard lock(clients_mu);
    per_client.remove(a);
    --active;
  }

  RelayWorker& add_worker() {
    workers.push_back(std::make_unique<RelayWorker>());
    RelayWorker& w = *workers.back();
    HookLimits limits;
    limits.max_running = options.config.sockd.hook_max_running;
    limits.timeout = options.config.sockd.hook_timeout;
    w.hooks = std::make_unique<HookRunner>(w.io, limits, hooks_running, log);
    return w;
  }

  // Runs the hooks a decision asks for (the rule's command, identd's hook).
  void run_hooks(RelayWorker& w, const Check& c) {
    if (c.command && c.rule != nullptr) w.hooks->run(*c.command, rule_label(*c.rule));
    if (c.ident_command) w.hooks->run(*c.ident_command, c.ident_origin);
  }

  NameLookup* lookup_for(RelayWorker& w) {
    if (!w.lookup_tried) {
      w.lookup_tried = true;
      auto ns = platform::effective_nameserver(options.config);
      if (!ns) {
        w.lookup_error = "no nameserver configured";
      } else {
        w.lookup = NameLookup::create(w.io, *ns, w.lookup_error);
      }
    }
    return w.lookup.get();
  }

  // A remembered success is answered at once; otherwise the hash runs on
  // hash_pool and the session waits on its own thread, other sessions going on.
  // A client locked out by repeated failures, or a login beyond
  // auth_max_pending waiting hashes, is refused without one (`why` says so).
  net::awaitable<bool> verify_password(const RelayPolicy& p, std::string_view user,
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

  // `resumed`: a session handed over by the io_uring path, which counted
  // it as accepted and may have run part of its handshake.
  net::awaitable<void> session(RelayWorker& w, tcp::socket sock, Endpoint peer, Endpoint listener,
                               std::string iface, Slot slot, std::shared_ptr<const RelayPolicy> pol,
                               std::unique_ptr<HandshakeBuffers> resumed = nullptr);
  net::awaitable<Next> negotiate(RelayWorker& w, std::shared_ptr<SessionState> st, LiveFds& live,
                                 SessionRecord& rec, Endpoint client_ep, std::string iface,
                                 Clock::time_point started, std::shared_ptr<const RelayPolicy> pol,
                                 std::unique_ptr<HandshakeBuffers> resumed);
  net::awaitable<void> udp_associate(RelayWorker& w, std::shared_ptr<SessionState> st,
                                     std::shared_ptr<const RelayPolicy> pol, proto::Request req,
                                     RuleRequest q, SessionRecord& rec, Clock::time_point started);
  net::awaitable<void> udp_front_pump(RelayWorker& w, std::shared_ptr<UdpAssoc> a,
                                      std::shared_ptr<const RelayPolicy> pol, RuleRequest q);
  net::awaitable<void> accept_loop(RelayWorker& w, tcp::socket& acc, std::string iface);
  bool open_listener(const ListenSpec& spec);
  void reload();

  // Counts a finished session on its worker and logs it.
  void finish(RelayWorker& w, const SessionRecord& rec) {
    SessionCounters& c = w.counters;
    c.add_outcome(classify_session(rec));
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

inline const std::shared_ptr<const RelayPolicy>& Server::Impl::worker_policy(RelayWorker& w) {
  const std::uint64_t gen = policy_gen.load(std::memory_order_acquire);
  if (w.policy_gen != gen) {
    std::lock_guard lock(policy_mu);
    // An owner of the shared policy, with a control block of this worker's.
    auto holder = std::make_shared<std::shared_ptr<const RelayPolicy>>(policy);
    const RelayPolicy* p = holder->get();
    w.policy = std::shared_ptr<const RelayPolicy>(std::move(holder), p);
    w.policy_gen = policy_gen.load(std::memory_order_relaxed);
  }
  return w.policy;
}

}  // namespace diode::sockd

// The daemon: listeners and their accept loops, the worker threads,
// SIGHUP reload, SIGTERM drain, the control socket, inetd mode.
#include "diode/sockd/server.hpp"

#include "server_impl.hpp"
#include "epoll_loop.hpp"
#include "uring_loop.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
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

constexpr auto kAcceptBackoff = std::chrono::milliseconds{100};
constexpr int kAcceptBatch = 64;  // accepts in a row before the thread's other work runs

}  // namespace

// Accepts with accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) rather than Asio's
// accept(): the session's socket is non-blocking from birth (no ioctl) and
// Asio is told so. Tries first and waits only when nothing is queued, as
// Asio's own accept does; a burst is taken kAcceptBatch at a time, then the
// thread's other work runs.
net::awaitable<void> Server::Impl::accept_loop(RelayWorker& w, tcp::socket& acc, std::string iface) {
  net::steady_timer backoff(w.io);
  error_code lec;
  const Endpoint listener = from_asio(acc.local_endpoint(lec));
  // accept4() below must not block the thread: once per listener, as Asio's
  // own first accept would.
  acc.native_non_blocking(true, lec);
  int batch = 0;
  for (;;) {
    error_code ec;
    if (stopping.load() || !acc.is_open()) co_return;
    if (++batch > kAcceptBatch) {
      batch = 0;
      co_await net::post(w.io, net::use_awaitable);
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    // The peer's address from accept4() itself: no getpeername per session.
    const int fd = ::accept4(acc.native_handle(), reinterpret_cast<sockaddr*>(&ss), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        batch = 0;
        // Queued on the reactor for the next edge: no EPOLL_CTL_MOD (reactor_wait.hpp).
        co_await async_wait_readable(acc, net::redirect_error(net::use_awaitable, ec));
        if (ec && ec != net::error::operation_aborted) {
          ++accept_errors;
        }
        continue;  // closed or stopping: the top of the loop ends it
      }
      // A connection reset while queued: as Asio does, take the next one.
      if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
      if (stopping.load() || !acc.is_open()) co_return;
      ++accept_errors;
      // Out of descriptors (or memory): the pending connection stays queued,
      // so retrying at once would spin. Wait, then try again.
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        log.event(platform::LogLevel::Warning, "accept_error",
                  {{"error", std::strerror(e)}, {"count", std::to_string(accept_errors.load())}});
        backoff.expires_after(kAcceptBackoff);
        co_await backoff.async_wait(net::redirect_error(net::use_awaitable, ec));
      }
      continue;
    }
    if (stopping.load()) {
      ::close(fd);
      co_return;
    }
    tcp::endpoint peer;
    if (len <= peer.capacity()) {
      std::memcpy(peer.data(), &ss, len);
      peer.resize(len);
    }
    tcp::socket s(w.io);
    if (!adopt_socket(s, ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec)) {
      ++accept_errors;
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

namespace {

// A SOCKS client always speaks first: with TCP_DEFER_ACCEPT the kernel
// hands a connection over only once its first bytes are there, so the
// accept is followed by a read that finds them instead of a wait for them.
// A silent client is accepted after the kernel's first SYN-ACK
// retransmission (about a second) and then meets the handshake timeout.
void defer_accept(int fd) {
  const int seconds = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof seconds);
}

}  // namespace

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
      if (fd >= 0) defer_accept(fd);
      auto acc = std::make_unique<tcp::socket>(w->io);  // see RelayWorker::acceptors
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
    if (!ec) defer_accept(acc->native_handle());
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
    // Held as a tcp::socket (see RelayWorker::acceptors).
    auto listener = std::make_unique<tcp::socket>(w->io);
    const int fd = acc->release(ec);
    if (!ec) listener->assign(ep.protocol(), fd, ec);
    if (ec) {
      if (fd >= 0) ::close(fd);
      log.event(platform::LogLevel::Error, "listen_error",
                {{"listen", spec.endpoint.to_string()}, {"error", ec.message()}});
      return false;
    }
    w->acceptors.emplace_back(std::move(listener), spec.iface);
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
  std::shared_ptr<const RelayPolicy> fresh;
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
  differs(cfg->sockd.io != config_now.sockd.io, "io");
  differs(cfg->gateway != config_now.gateway, "user");
  {
    std::lock_guard lock(policy_mu);
    policy = std::move(fresh);
    ++policy_gen;
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
  ++impl_->policy_gen;
  return true;
}

bool Server::open() {
  if (!impl_->start_host_watch()) return false;
  const unsigned n = thread_count(impl_->options.config);
  for (unsigned i = 0; i < n; ++i) impl_->add_worker();
  // Queued until run() waits on them: a stop sent as soon as the port file
  // appears is a stop, not a death by SIGTERM.
  impl_->signals =
      std::make_unique<net::signal_set>(impl_->workers.front()->io, SIGHUP, SIGTERM, SIGINT);
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
  // The I/O path, chosen once (docs/sockd.md, "I/O paths"). Asked here,
  // after the privilege drop: kernel.io_uring_disabled = 1 allows root alone.
  const platform::IoPath io = s.options.config.sockd.io;
  bool use_ring = false;
  std::string io_reason = "configured";
  if (io != platform::IoPath::Epoll) {
    const UringProbe probe = uring_probe();
    const std::string& why = probe.why;
    if (why.empty()) {
      use_ring = true;
      s.uring_socket_cmd = probe.socket_cmd;
      if (io == platform::IoPath::Auto) io_reason = "io_uring available";
    } else if (io == platform::IoPath::Uring) {
      s.log.event(platform::LogLevel::Error, "io_error",
                  {{"path", "uring"}, {"error", why},
                   {"hint", "io = \"auto\" or \"epoll\" in [sockd] runs without io_uring"}});
      return 1;
    } else {
      io_reason = why;
    }
  }
  if (use_ring) {
    s.log.event(platform::LogLevel::Notice, "io",
                {{"path", "uring"},
                 {"reason", io_reason},
                 {"accept", s.uring_socket_cmd ? "multishot" : "single"}});
  } else {
    s.log.event(platform::LogLevel::Notice, "io", {{"path", "epoll"}, {"reason", io_reason}});
  }
  s.hash_pool = std::make_unique<net::thread_pool>(2);
  // Each worker's sessions run on a hand-written loop of its own thread
  // (the ring, or epoll without io_uring); the worker's io_context serves
  // what the loop hands over (and the control socket, signals, hooks), and
  // must not run out of work.
  std::vector<std::unique_ptr<UringLoop>> rings;
  std::vector<std::unique_ptr<EpollLoop>> epolls;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  for (auto& w : s.workers) {
    if (use_ring) {
      rings.push_back(std::make_unique<UringLoop>(s, *w));
    } else {
      epolls.push_back(std::make_unique<EpollLoop>(s, *w));
    }
    guards.push_back(net::make_work_guard(w->io));
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
    RelayWorker& control = *s.workers.front();
    if (s.host_watch) s.host_watch->attach(control.io);
    net::signal_set& signals = *s.signals;
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
        s.rings_stop = true;
        for (auto& w : s.workers) w->io.stop();
        return;
      }
      if (s.stopping && Clock::now() >= drain_until) {
        if (ending) {
          s.rings_stop = true;
          for (auto& w : s.workers) w->io.stop();  // the rest go unlogged
          return;
        }
        // Drain time is over: end every running session the way a peer's
        // reset would, so each still logs its line, and give them a second.
        ending = true;
        drain_until = Clock::now() + std::chrono::seconds{1};
        s.rings_ending = true;
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
    for (auto& r : rings) threads.emplace_back([r = r.get()] { r->run(); });
    for (auto& e : epolls) threads.emplace_back([e = e.get()] { e->run(); });
    control.io.run();
    s.rings_stop = true;
    for (auto& w : s.workers) w->io.stop();
    for (auto& t : threads) t.join();
    rings.clear();  // sessions still on a loop go unlogged, as on the Asio path
    epolls.clear();
    guards.clear();
    s.host_watch.reset();  // its descriptor goes before the control io_context
    s.signals.reset();
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
  RelayWorker& w = s.add_worker();
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

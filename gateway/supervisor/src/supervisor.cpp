#include "diode/gateway/supervisor.hpp"

#include <arpa/inet.h>
#include <grp.h>
#include <net/if.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "children.hpp"
#include "diode/gateway/plan.hpp"
#include "diode/gateway/prometheus.hpp"
#include "diode/platform/asio.hpp"
#include "diode/platform/config.hpp"
#include "diode/platform/control_client.hpp"
#include "diode/platform/listen_fds.hpp"
#include "diode/platform/log_text.hpp"
#include "diode/platform/notify.hpp"
#include "diode/platform/privileges.hpp"
#include "diode/platform/sockets.hpp"

namespace diode::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using net::awaitable;
using net::use_awaitable;
using Clock = std::chrono::steady_clock;
using platform::LogLevel;
using std::chrono::milliseconds;

namespace {

// What the supervisor keeps after start, and why (docs/gateway.md):
// CAP_SETUID and CAP_SETGID to start a restarted child (and the checkers of
// a reload) as the unprivileged user, CAP_SETPCAP so that such a child can
// clear its capability bounding set, CAP_KILL to signal children that no
// longer run as root.
const std::vector<std::string> kKeptCapabilities{"cap_setuid", "cap_setgid", "cap_setpcap",
                                                 "cap_kill"};

constexpr milliseconds kFirstBackoff{100};
constexpr milliseconds kMaxBackoff{30'000};
constexpr milliseconds kStableRun{60'000};      // a child up this long starts its back-off anew
constexpr milliseconds kAskTimeout{2'000};      // one control question to a child
constexpr milliseconds kKillGrace{5'000};       // after drain_timeout, before SIGKILL

std::optional<platform::GatewayConfig> load_config(const std::string& path,
                                                   platform::Diagnostics& diags) {
  if (path.empty()) {
    return platform::parse_gateway_config(platform::embedded_default_config(),
                                          "<built-in gateway.toml>", diags);
  }
  return platform::load_gateway_config(path, diags);
}

RunAs run_as_for(const platform::GatewayConfig& cfg) {
  return RunAs{cfg.gateway.user, cfg.gateway.group, ::geteuid() == 0};
}

std::vector<std::string> child_args(const SupervisorOptions& o, ChildKind kind,
                                    std::initializer_list<std::string> extra = {}) {
  std::vector<std::string> a{kind == ChildKind::Sockd ? o.sockd_path : o.resolver_path};
  a.insert(a.end(), extra.begin(), extra.end());
  if (!o.config_path.empty()) {
    a.push_back("--config");
    a.push_back(o.config_path);
  }
  return a;
}

// The checkers a configuration needs: each child's own (the code sockd-check
// and the daemons load with). The resolver's prints a summary line on
// success, which is not worth reporting.
struct CheckerSpec {
  std::vector<std::string> argv;
  bool report_success;
};

std::vector<CheckerSpec> checkers_for(const SupervisorOptions& o, const std::vector<ChildPlan>& plan) {
  bool need_sockd = false, need_resolver = false;
  for (const auto& c : plan) (c.kind == ChildKind::Sockd ? need_sockd : need_resolver) = true;
  std::vector<CheckerSpec> out;
  if (need_sockd) out.push_back({child_args(o, ChildKind::Sockd, {"--check"}), true});
  if (need_resolver) out.push_back({child_args(o, ChildKind::Resolver, {"--check-config"}), false});
  return out;
}

// Every file, through the children's checkers, as the user that will read
// them on SIGHUP; waits for them (at start and for --check, before any
// event loop runs; a reload runs them in the loop, start_reload).
bool validate_files(const SupervisorOptions& o, const platform::GatewayConfig& cfg,
                    const std::vector<ChildPlan>& plan, std::string& report) {
  bool ok = true;
  const RunAs as = run_as_for(cfg);
  for (const auto& spec : checkers_for(o, plan)) {
    const auto r = run_checker(spec.argv, as, cfg.gateway.check_timeout);
    ok = ok && r.ok;
    if (!r.ok || spec.report_success) report += r.output;
  }
  return ok;
}

std::string seconds_since(Clock::time_point t) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - t).count());
}

// `key=value` value of `key` in one line of such pairs, or "".
std::string field(std::string_view line, std::string_view key) {
  std::size_t pos = 0;
  while (pos < line.size()) {
    std::size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) end = line.size();
    const std::string_view pair = line.substr(pos, end - pos);
    if (pair.size() > key.size() && pair.substr(0, key.size()) == key && pair[key.size()] == '=') {
      return std::string{pair.substr(key.size() + 1)};
    }
    pos = end + 1;
  }
  return {};
}

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// The local address of a socket, to match an inherited one with the
// endpoint the configuration names.
std::optional<platform::Endpoint> local_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  char text[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    sockaddr_in sin{};
    std::memcpy(&sin, &ss, sizeof sin);
    ::inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text);
    port = ntohs(sin.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6{};
    std::memcpy(&sin6, &ss, sizeof sin6);
    ::inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof text);
    port = ntohs(sin6.sin6_port);
  } else {
    return std::nullopt;
  }
  auto addr = platform::IpAddress::parse(text);
  if (!addr) return std::nullopt;
  return platform::Endpoint{*addr, port};
}

// Takes from `pool` the inherited socket for `spec` (same name, same local
// address), or -1. Sockets come from systemd's socket activation.
int take_inherited(std::vector<platform::NamedSocket>& pool, const platform::SocketSpec& spec) {
  for (auto it = pool.begin(); it != pool.end(); ++it) {
    if (it->purpose != spec.purpose || it->iface != spec.iface) continue;
    if (local_endpoint(it->fd) != spec.endpoint) continue;
    const int fd = it->fd;
    pool.erase(it);
    return fd;
  }
  return -1;
}

// Ties a listener to its interface, unless it already is (a .socket unit's
// BindToDevice=): changing a device binding would need CAP_NET_RAW.
bool bind_to_device(int fd, const std::string& iface) {
  char now[IFNAMSIZ + 1] = {};
  socklen_t len = IFNAMSIZ;
  if (::getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, now, &len) == 0 &&
      std::string_view(now, ::strnlen(now, len)) == iface) {
    return true;
  }
  return ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface.c_str(),
                      static_cast<socklen_t>(iface.size())) == 0;
}

struct Child {
  ChildPlan plan;
  std::vector<platform::NamedSocket> sockets;  // listeners and the control socket; ours
  std::string control_path;
  pid_t pid = -1;
  std::string state = "stopped";  // starting, ready, reloading, restarting, stopped
  Clock::time_point started{};
  unsigned restarts = 0;
  std::deque<Clock::time_point> restart_times;
  milliseconds backoff = kFirstBackoff;
  std::string last_exit = "-";
  std::string status_text;
  std::unique_ptr<net::steady_timer> restart_timer;
};

// One reload in flight: the configuration read at its start, waiting for
// its checkers, which run as processes the event loop watches (their output
// read as it comes, their exit reaped with the children's), so that status,
// restarts and the watchdog go on while a slow check runs.
struct ReloadJob {
  struct Checker {
    std::string program;
    bool report_success = false;
    pid_t pid = -1;
    int status = 0;
    bool exited = false;
    bool eof = false;
    std::unique_ptr<net::posix::stream_descriptor> out;
    std::array<char, 4096> buf{};
    std::string output;
  };
  std::string by;  // signal or diodectl
  std::optional<platform::GatewayConfig> fresh;
  std::vector<ChildPlan> plan;
  std::string report;  // diagnostics of gateway.toml, start failures
  std::vector<std::unique_ptr<Checker>> checkers;
  std::unique_ptr<net::steady_timer> deadline;
  bool timed_out = false;
  bool finished = false;
  std::string result;  // the control reply, once finished
  std::unique_ptr<net::steady_timer> done;  // never expires; cancelled when finished
};

class Supervisor {
 public:
  Supervisor(SupervisorOptions options, platform::GatewayConfig cfg, platform::Logger& log)
      : options_(std::move(options)), cfg_(std::move(cfg)), log_(log), signals_(io_) {}

  int run();

 private:
  bool open_everything();
  bool spawn(Child& c);
  void reap();
  void schedule_restart(Child& c);
  std::shared_ptr<ReloadJob> start_reload(std::string by);
  void read_checker(std::shared_ptr<ReloadJob> job, ReloadJob::Checker& k);
  void reap_checkers();
  void try_finish_reload();
  void finish_reload(ReloadJob& job);
  void begin_stop();
  void maybe_finish();
  void note_ready();
  void watch_signals();
  awaitable<void> notify_loop();
  awaitable<void> control_loop();
  awaitable<void> control_session(net::local::stream_protocol::socket s);
  awaitable<std::string> answer(std::string line);
  awaitable<std::string> ask(const std::string& path, std::string line);
  awaitable<std::string> status();
  awaitable<std::string> hits();
  awaitable<std::string> metrics();
  awaitable<void> http_loop();
  awaitable<void> http_session(net::ip::tcp::socket s);
  void watchdog();
  Child* child_by_pid(pid_t pid);

  SupervisorOptions options_;
  platform::GatewayConfig cfg_;
  platform::Logger& log_;
  net::io_context io_;
  net::signal_set signals_;
  std::vector<std::unique_ptr<Child>> children_;
  std::string runtime_dir_;
  std::string notify_path_;
  std::string control_path_;
  std::unique_ptr<net::local::datagram_protocol::socket> notify_;
  std::unique_ptr<net::local::stream_protocol::acceptor> control_;
  std::unique_ptr<net::ip::tcp::acceptor> http_;
  std::unique_ptr<net::steady_timer> kill_timer_;
  std::unique_ptr<net::steady_timer> watchdog_timer_;
  Clock::time_point started_ = Clock::now();
  bool stopping_ = false;
  bool announced_ready_ = false;
  std::uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
  std::shared_ptr<ReloadJob> reload_;  // the reload in flight, if any
  bool reload_queued_ = false;         // a SIGHUP came while one ran: run again after it
  uid_t child_uid_ = 0;
  gid_t child_gid_ = 0;
};

Child* Supervisor::child_by_pid(pid_t pid) {
  for (auto& c : children_) {
    if (c->pid == pid) return c.get();
  }
  return nullptr;
}

bool Supervisor::open_everything() {
  runtime_dir_ = options_.runtime_dir.empty() ? cfg_.gateway.runtime_dir : options_.runtime_dir;
  std::error_code fec;
  std::filesystem::create_directories(runtime_dir_, fec);
  if (fec) {
    log_.event(LogLevel::Error, "start_failed",
               {{"runtime_dir", runtime_dir_}, {"error", fec.message()}});
    return false;
  }
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam(cfg_.gateway.user.c_str());
    const group* gr = ::getgrnam(cfg_.gateway.group.c_str());
    if (pw == nullptr || gr == nullptr) {
      log_.event(LogLevel::Error, "start_failed",
                 {{"error", pw == nullptr ? "no such user" : "no such group"},
                  {"user", cfg_.gateway.user},
                  {"group", cfg_.gateway.group}});
      return false;
    }
    child_uid_ = pw->pw_uid;
    child_gid_ = gr->gr_gid;
    // Run by hand as root (not by systemd, whose StateDirectory= makes it):
    // the folder of the resolver's cache file and of its trust anchor
    // state, if it is missing and its own parent exists, is made for the
    // unprivileged user, so that the cache and the RFC 5011 anchor state
    // survive a restart there too. An existing folder is left as it is.
    // The anchor state only when the resolver will keep one (it validates).
    const std::string no_state;
    for (const std::string* state_file : std::initializer_list<const std::string*>{
             &cfg_.resolver.cache_file,
             cfg_.resolver.dnssec ? &cfg_.files.trust_anchor_state : &no_state}) {
      if (state_file->empty()) continue;
      const std::filesystem::path dir = std::filesystem::path(*state_file).parent_path();
      std::error_code dec;
      if (!dir.empty() && !std::filesystem::exists(dir, dec) &&
          std::filesystem::is_directory(dir.parent_path(), dec)) {
        if (::mkdir(dir.c_str(), 0700) == 0 && ::chown(dir.c_str(), child_uid_, child_gid_) == 0) {
          log_.event(LogLevel::Info, "state_dir_created", {{"path", dir.string()}});
        } else {
          log_.event(LogLevel::Warning, "state_dir_failed",
                     {{"path", dir.string()}, {"error", std::strerror(errno)}});
        }
      }
    }
  } else {
    child_uid_ = ::geteuid();
    child_gid_ = ::getegid();
  }

  std::string error;
  // systemd's socket activation (diode.socket): sockets it opened, named as
  // ours are, replace the ones the supervisor would open itself.
  auto inherited = platform::take_listen_fds(error);
  if (!error.empty()) {
    log_.event(LogLevel::Error, "start_failed", {{"error", error}});
    return false;
  }
  for (auto& plan : plan_children(cfg_)) {
    auto c = std::make_unique<Child>();
    c->plan = std::move(plan);
    for (const auto& spec : c->plan.sockets) {
      int fd = take_inherited(inherited, spec);
      if (fd >= 0) {
        log_.event(LogLevel::Info, "socket_inherited",
                   {{"name", platform::socket_name(spec.purpose, spec.iface)},
                    {"listen", spec.endpoint.to_string()}});
      } else {
        fd = platform::open_socket(spec, error);
      }
      if (fd < 0) {
        log_.event(LogLevel::Error, "start_failed", {{"child", c->plan.name}, {"error", error}});
        return false;
      }
      // Only what arrives on the interface reaches its listener: Linux would
      // otherwise accept a packet from the internet for an internal address.
      if (!bind_to_device(fd, spec.iface)) {
        log_.event(LogLevel::Error, "start_failed",
                   {{"child", c->plan.name}, {"iface", spec.iface},
                    {"error", std::string{"SO_BINDTODEVICE: "} + std::strerror(errno)}});
        ::close(fd);
        return false;
      }
      if (spec.purpose == platform::SocketPurpose::DnsUdp) {
        // A burst of queries must not overflow the default buffer; only a
        // privileged process may go past rmem_max, so it is done here.
        const int want = 4 * 1024 * 1024;
        (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want);
      }
      c->sockets.push_back({fd, spec.purpose, spec.iface});
    }
    c->control_path = runtime_dir_ + "/" + c->plan.name + ".ctl";
    const int cfd = platform::open_control_socket(c->control_path, error);
    if (cfd < 0) {
      log_.event(LogLevel::Error, "start_failed", {{"child", c->plan.name}, {"error", error}});
      return false;
    }
    c->sockets.push_back({cfd, platform::SocketPurpose::Control, ""});
    c->restart_timer = std::make_unique<net::steady_timer>(io_);
    children_.push_back(std::move(c));
  }
  for (const auto& extra : inherited) {
    log_.event(LogLevel::Warning, "socket_ignored",
               {{"name", platform::socket_name(extra.purpose, extra.iface)},
                {"reason", "gateway.toml implies no such socket"}});
    ::close(extra.fd);
  }
  if (children_.empty()) {
    log_.event(LogLevel::Error, "start_failed",
               {{"error", "no internal interface has a socks_port or a dns_port"}});
    return false;
  }

  // The children's sd_notify(3) messages come here: readiness and reloads.
  notify_path_ = runtime_dir_ + "/notify";
  ::unlink(notify_path_.c_str());
  const int nfd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (nfd < 0 || notify_path_.size() >= sizeof sun.sun_path) {
    log_.event(LogLevel::Error, "start_failed", {{"error", "cannot make the notify socket"}});
    return false;
  }
  std::memcpy(sun.sun_path, notify_path_.c_str(), notify_path_.size() + 1);
  const int one = 1;
  if (::bind(nfd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0 ||
      ::setsockopt(nfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0 ||
      ::chmod(notify_path_.c_str(), 0600) != 0 ||
      ::chown(notify_path_.c_str(), child_uid_, child_gid_) != 0) {
    log_.event(LogLevel::Error, "start_failed",
               {{"path", notify_path_}, {"error", std::strerror(errno)}});
    ::close(nfd);
    return false;
  }
  notify_ = std::make_unique<net::local::datagram_protocol::socket>(io_);
  notify_->assign(net::local::datagram_protocol(), nfd);

  control_path_ = runtime_dir_ + "/control";
  const int ctl = platform::open_control_socket(control_path_, error);
  if (ctl < 0) {
    log_.event(LogLevel::Error, "start_failed", {{"error", error}});
    return false;
  }
  control_ = std::make_unique<net::local::stream_protocol::acceptor>(io_);
  error_code ec;
  control_->assign(net::local::stream_protocol(), ctl, ec);

  if (cfg_.gateway.metrics_listen) {
    const auto& ep = *cfg_.gateway.metrics_listen;
    http_ = std::make_unique<net::ip::tcp::acceptor>(io_);
    const net::ip::tcp::endpoint tep(net::ip::make_address(ep.addr.to_string()), ep.port);
    http_->open(tep.protocol(), ec);
    if (!ec) http_->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) http_->bind(tep, ec);
    if (!ec) http_->listen(64, ec);
    if (ec) {
      log_.event(LogLevel::Error, "start_failed",
                 {{"metrics_listen", ep.to_string()}, {"error", ec.message()}});
      return false;
    }
  }
  return true;
}

bool Supervisor::spawn(Child& c) {
  std::string error;
  const auto args = child_args(options_, c.plan.kind);
  const pid_t pid = spawn_child(args, c.sockets, notify_path_, run_as_for(cfg_), error);
  if (pid < 0) {
    log_.event(LogLevel::Error, "child_spawn_failed", {{"child", c.plan.name}, {"error", error}});
    return false;
  }
  c.pid = pid;
  c.state = "starting";
  c.started = Clock::now();
  c.status_text.clear();
  log_.event(LogLevel::Notice, "child_start",
             {{"child", c.plan.name}, {"pid", std::to_string(pid)}, {"exe", args[0]}});
  return true;
}

void Supervisor::schedule_restart(Child& c) {
  const auto now = Clock::now();
  if (now - c.started >= kStableRun) c.backoff = kFirstBackoff;
  milliseconds delay = c.backoff;
  c.backoff = std::min(c.backoff * 2, kMaxBackoff);
  while (!c.restart_times.empty() && now - c.restart_times.front() >= std::chrono::minutes{1}) {
    c.restart_times.pop_front();
  }
  if (c.restart_times.size() >= cfg_.gateway.restart_limit) {
    const auto until = c.restart_times.front() + std::chrono::minutes{1};
    delay = std::max(delay, std::chrono::duration_cast<milliseconds>(until - now));
  }
  c.state = "restarting";
  log_.event(LogLevel::Warning, "child_restart_scheduled",
             {{"child", c.plan.name}, {"delay_ms", std::to_string(delay.count())},
              {"restarts", std::to_string(c.restarts)}});
  c.restart_timer->expires_after(delay);
  c.restart_timer->async_wait([this, &c](error_code ec) {
    if (ec || stopping_) return;
    c.restarts++;
    c.restart_times.push_back(Clock::now());
    if (!spawn(c)) schedule_restart(c);
  });
}

void Supervisor::reap() {
  for (auto& cp : children_) {
    Child& c = *cp;
    if (c.pid <= 0) continue;
    int status = 0;
    const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
    if (r != c.pid) continue;
    c.last_exit = describe_wait_status(status);
    log_.event(stopping_ ? LogLevel::Notice : LogLevel::Warning, "child_exit",
               {{"child", c.plan.name}, {"pid", std::to_string(c.pid)}, {"status", c.last_exit},
                {"uptime", seconds_since(c.started)}});
    c.pid = -1;
    c.state = "stopped";
    if (!stopping_) schedule_restart(c);
  }
  reap_checkers();
  if (stopping_) maybe_finish();
}

void Supervisor::note_ready() {
  bool all = true;
  for (const auto& c : children_) all = all && c->state == "ready";
  if (!all) return;
  std::string status = std::to_string(children_.size()) + " children ready";
  if (!announced_ready_) {
    announced_ready_ = true;
    log_.event(LogLevel::Notice, "ready", {{"children", std::to_string(children_.size())}});
    if (!platform::notify_ready(status)) {
      log_.event(LogLevel::Error, "notify_failed", {{"what", "READY=1"}});
    }
  } else {
    (void)platform::notify_ready(status);
  }
}

awaitable<void> Supervisor::notify_loop() {
  for (;;) {
    error_code ec;
    co_await notify_->async_wait(net::socket_base::wait_read, net::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    for (;;) {
      char buf[4096];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
      iovec iov{buf, sizeof buf - 1};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(notify_->native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0) break;
      pid_t sender = -1;
      for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
          ucred cred{};
          std::memcpy(&cred, CMSG_DATA(cm), sizeof cred);
          sender = cred.pid;
        }
      }
      Child* c = child_by_pid(sender);
      if (c == nullptr) continue;  // not one of ours: ignored
      std::istringstream lines(std::string(buf, static_cast<std::size_t>(n)));
      std::string line;
      while (std::getline(lines, line)) {
        if (line == "READY=1") {
          const bool first = c->state == "starting";
          c->state = "ready";
          if (first) {
            log_.event(LogLevel::Notice, "child_ready",
                       {{"child", c->plan.name}, {"pid", std::to_string(c->pid)}});
          }
          note_ready();
        } else if (line == "RELOADING=1") {
          c->state = "reloading";
        } else if (line == "STOPPING=1") {
          c->state = "stopping";
        } else if (line.rfind("STATUS=", 0) == 0) {
          c->status_text = line.substr(7);
        }
      }
    }
  }
}

std::shared_ptr<ReloadJob> Supervisor::start_reload(std::string by) {
  auto job = std::make_shared<ReloadJob>();
  reload_ = job;
  job->by = std::move(by);
  job->done = std::make_unique<net::steady_timer>(io_, Clock::time_point::max());
  (void)platform::notify_reloading();
  platform::Diagnostics diags;
  job->fresh = load_config(options_.config_path, diags);
  job->report = diags.format();
  if (job->fresh) {
    job->plan = plan_children(*job->fresh);
    const RunAs as = run_as_for(*job->fresh);
    for (auto& spec : checkers_for(options_, job->plan)) {
      auto k = std::make_unique<ReloadJob::Checker>();
      k->program = spec.argv[0];
      k->report_success = spec.report_success;
      std::string error;
      const StartedChecker started = start_checker(spec.argv, as, error);
      if (started.pid < 0) {
        job->report += k->program + ": cannot run the checker: " + error + "\n";
        job->fresh.reset();  // the reload fails once the others are done
        continue;
      }
      k->pid = started.pid;
      k->out = std::make_unique<net::posix::stream_descriptor>(io_, started.output_fd);
      job->checkers.push_back(std::move(k));
    }
    for (auto& k : job->checkers) read_checker(job, *k);
    const auto limit = job->fresh ? job->fresh->gateway.check_timeout : cfg_.gateway.check_timeout;
    job->deadline = std::make_unique<net::steady_timer>(io_, limit);
    job->deadline->async_wait([this, job, limit](error_code ec) {
      if (ec || job->finished) return;
      job->timed_out = true;
      for (auto& k : job->checkers) {
        if (!k->exited) {
          ::kill(k->pid, SIGKILL);
          k->output += k->program + ": killed after " + platform::format_duration(limit) +
                       " (gateway.check_timeout)\n";
        }
        // A process it left behind may hold the pipe open: stop reading.
        if (!k->eof) {
          k->eof = true;
          error_code ignored;
          k->out->close(ignored);
        }
      }
      try_finish_reload();
    });
  }
  log_.event(LogLevel::Info, "reload_checking",
             {{"by", job->by}, {"checkers", std::to_string(job->checkers.size())}});
  try_finish_reload();
  return job;
}

void Supervisor::read_checker(std::shared_ptr<ReloadJob> job, ReloadJob::Checker& k) {
  k.out->async_read_some(net::buffer(k.buf), [this, job, &k](error_code ec, std::size_t n) {
    if (job->finished || k.eof) return;
    if (n > 0 && k.output.size() < 1024 * 1024) k.output.append(k.buf.data(), n);
    if (!ec) {
      read_checker(job, k);
      return;
    }
    k.eof = true;  // end of file: every writer has closed it
    error_code ignored;
    k.out->close(ignored);
    try_finish_reload();
  });
}

void Supervisor::reap_checkers() {
  if (!reload_) return;
  bool any = false;
  for (auto& k : reload_->checkers) {
    if (k->exited) continue;
    int status = 0;
    if (::waitpid(k->pid, &status, WNOHANG) != k->pid) continue;
    k->exited = true;
    k->status = status;
    any = true;
  }
  if (any) try_finish_reload();
}

void Supervisor::try_finish_reload() {
  if (!reload_ || reload_->finished) return;
  for (const auto& k : reload_->checkers) {
    if (!k->exited || !k->eof) return;
  }
  const auto job = reload_;
  reload_.reset();
  job->finished = true;
  if (job->deadline) job->deadline->cancel();
  finish_reload(*job);
  job->done->cancel();  // wakes the diodectl session waiting for job->result
  if (stopping_) {
    maybe_finish();
  } else if (reload_queued_) {
    reload_queued_ = false;
    (void)start_reload("queue");
  }
}

void Supervisor::finish_reload(ReloadJob& job) {
  std::string report = job.report;
  bool ok = job.fresh.has_value() && !job.timed_out;
  for (const auto& k : job.checkers) {
    const bool passed = WIFEXITED(k->status) && WEXITSTATUS(k->status) == 0;
    ok = ok && passed;
    if (!passed || k->report_success) report += k->output;
  }
  if (stopping_) {
    job.result = "reload failed\nthe supervisor is stopping\n";
    return;
  }
  if (!ok) {
    reloads_failed_++;
    log_.diagnostics(report);
    log_.event(LogLevel::Error, "reload_failed",
               {{"reason", job.timed_out ? "the check took longer than gateway.check_timeout; "
                                           "every process keeps the previous configuration"
                                         : "invalid configuration; every process keeps the "
                                           "previous one"}});
    (void)platform::notify_ready("reload failed; running on the previous configuration");
    job.result = "reload failed\n" + report;
    return;
  }
  const platform::GatewayConfig& fresh = *job.fresh;
  std::vector<ChildPlan> running;
  for (const auto& c : children_) running.push_back(c->plan);
  std::string restart_needed;
  if (!same_sockets(running, job.plan)) restart_needed += "sockets,";
  if (fresh.gateway.user != cfg_.gateway.user || fresh.gateway.group != cfg_.gateway.group) {
    restart_needed += "user,";
  }
  if (fresh.gateway.runtime_dir != cfg_.gateway.runtime_dir) restart_needed += "runtime_dir,";
  if (fresh.gateway.metrics_listen != cfg_.gateway.metrics_listen) {
    restart_needed += "metrics_listen,";
  }
  if (!restart_needed.empty()) restart_needed.pop_back();
  // What can change now does; what cannot keeps its old value.
  auto next = fresh;
  next.gateway.user = cfg_.gateway.user;
  next.gateway.group = cfg_.gateway.group;
  next.gateway.runtime_dir = cfg_.gateway.runtime_dir;
  next.gateway.metrics_listen = cfg_.gateway.metrics_listen;
  next.interfaces = cfg_.interfaces;
  cfg_ = std::move(next);
  log_.configure(cfg_.log);
  for (auto& c : children_) {
    if (c->pid > 0) ::kill(c->pid, SIGHUP);
  }
  reloads_ok_++;
  platform::LogFields f{{"children", std::to_string(children_.size())}};
  if (!restart_needed.empty()) f.emplace_back("restart_needed", restart_needed);
  log_.event(LogLevel::Notice, "reloaded", f);
  (void)platform::notify_ready(std::to_string(children_.size()) + " children, reloaded");
  job.result = "reloaded" + (restart_needed.empty() ? "" : " restart_needed=" + restart_needed) + "\n";
}

void Supervisor::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  (void)platform::notify_stopping();
  log_.event(LogLevel::Notice, "stopping",
             {{"drain_timeout", platform::format_duration(cfg_.gateway.drain_timeout)}});
  error_code ec;
  if (control_) control_->close(ec);
  if (http_) http_->close(ec);
  if (watchdog_timer_) watchdog_timer_->cancel();
  reload_queued_ = false;
  if (reload_) {
    for (auto& k : reload_->checkers) {
      if (!k->exited) ::kill(k->pid, SIGKILL);
    }
  }
  for (auto& c : children_) {
    c->restart_timer->cancel();
    // Our copies of the listeners go, so that nothing queues where no child
    // will accept any more.
    for (auto& s : c->sockets) {
      if (s.fd >= 0) ::close(s.fd);
      s.fd = -1;
    }
    if (c->pid > 0) ::kill(c->pid, SIGTERM);
  }
  kill_timer_ = std::make_unique<net::steady_timer>(io_);
  kill_timer_->expires_after(cfg_.gateway.drain_timeout + kKillGrace);
  kill_timer_->async_wait([this](error_code e) {
    if (e) return;
    for (auto& c : children_) {
      if (c->pid > 0) {
        log_.event(LogLevel::Warning, "child_kill", {{"child", c->plan.name},
                                                     {"pid", std::to_string(c->pid)}});
        ::kill(c->pid, SIGKILL);
      }
    }
  });
  maybe_finish();
}

void Supervisor::maybe_finish() {
  for (const auto& c : children_) {
    if (c->pid > 0) return;
  }
  if (reload_) return;  // its killed checkers are not reaped yet
  io_.stop();
}

void Supervisor::watch_signals() {
  signals_.async_wait([this](error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGCHLD) {
      reap();
    } else if (sig == SIGHUP) {
      if (stopping_) {
        // nothing to reload any more
      } else if (reload_) {
        // A signal has no one to answer: the files may have changed after
        // this reload's check began, so they are checked again after it.
        if (!reload_queued_) {
          log_.event(LogLevel::Notice, "reload_queued", {{"reason", "a reload is in progress"}});
        }
        reload_queued_ = true;
      } else {
        (void)start_reload("signal");
      }
    } else {
      begin_stop();
    }
    watch_signals();
  });
}

void Supervisor::watchdog() {
  const auto every = platform::watchdog_interval();
  if (!every) return;
  if (!watchdog_timer_) watchdog_timer_ = std::make_unique<net::steady_timer>(io_);
  (void)platform::notify_watchdog();
  watchdog_timer_->expires_after(*every);
  watchdog_timer_->async_wait([this](error_code ec) {
    if (!ec && !stopping_) watchdog();
  });
}

awaitable<std::string> Supervisor::ask(const std::string& path, std::string line) {
  const auto ex = co_await net::this_coro::executor;
  net::local::stream_protocol::socket s(ex);
  net::steady_timer deadline(ex);
  deadline.expires_after(kAskTimeout);
  deadline.async_wait([&s](error_code e) {
    if (!e) {
      error_code ignored;
      s.close(ignored);
    }
  });
  error_code ec;
  co_await s.async_connect(net::local::stream_protocol::endpoint(path),
                           net::redirect_error(use_awaitable, ec));
  std::string reply;
  if (!ec) {
    line += '\n';
    co_await net::async_write(s, net::buffer(line), net::redirect_error(use_awaitable, ec));
  }
  if (!ec) {
    co_await net::async_read(s, net::dynamic_buffer(reply, 8 * 1024 * 1024),
                             net::redirect_error(use_awaitable, ec));
  }
  deadline.cancel();
  co_return reply;
}

awaitable<std::string> Supervisor::status() {
  std::string out = "supervisor pid=" + std::to_string(::getpid()) +
                    " uptime=" + seconds_since(started_) +
                    " children=" + std::to_string(children_.size()) +
                    " reloads=" + std::to_string(reloads_ok_) +
                    " reloads_failed=" + std::to_string(reloads_failed_) +
                    " config=" + (options_.config_path.empty() ? "built-in" : options_.config_path) +
                    " version=" DIODE_VERSION "\n";
  for (const auto& cp : children_) {
    const Child& c = *cp;
    out += "child=" + c.plan.name + " pid=" + (c.pid > 0 ? std::to_string(c.pid) : "-") +
           " state=" + c.state + " uptime=" + (c.pid > 0 ? seconds_since(c.started) : "-") +
           " restarts=" + std::to_string(c.restarts) + " last_exit=" +
           platform::quote_value(c.last_exit);
    if (c.pid > 0) {
      if (auto rss = resident_kib(c.pid)) out += " rss_kib=" + std::to_string(*rss);
      const std::string stats = trim_newline(co_await ask(c.control_path, "stats"));
      if (!stats.empty() && stats.rfind("error", 0) != 0) out += " " + stats;
      if (c.plan.kind == ChildKind::Resolver) {
        const double hit = std::strtod(field(stats, "cache_hits").c_str(), nullptr);
        const double miss = std::strtod(field(stats, "cache_misses").c_str(), nullptr);
        if (hit + miss > 0) {
          char rate[32];
          std::snprintf(rate, sizeof rate, "%.3f", hit / (hit + miss));
          out += std::string{" hit_rate="} + rate;
        }
      }
    }
    out += '\n';
  }
  co_return out;
}

awaitable<std::string> Supervisor::hits() {
  // Summed over every relay: the same rule file decides on each interface.
  std::vector<std::string> order;
  std::map<std::string, std::pair<std::uint64_t, std::string>> sum;
  // Each relay counts since its own start or reload: the sum holds for
  // certain only since the latest of them.
  constexpr std::string_view kSince = "# hits since ";
  std::string since;
  for (const auto& c : children_) {
    if (c->plan.kind != ChildKind::Sockd || c->pid <= 0) continue;
    std::istringstream in(co_await ask(c->control_path, "hits"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(kSince, 0) == 0) {
        since = std::max(since, line.substr(kSince.size()));
        continue;
      }
      const std::string key = line.substr(0, line.find(' '));
      if (key.empty() || key == "error") continue;
      const std::string h = field(line, "hits");
      const std::string last = field(line, "last");
      if (h.empty()) continue;
      if (sum.count(key) == 0) order.push_back(key);
      auto& [n, l] = sum[key];
      n += std::strtoull(h.c_str(), nullptr, 10);
      if (l.empty() || (last != "-" && (l == "-" || last > l))) l = last;
    }
  }
  std::string out = since.empty() ? std::string{} : std::string{kSince} + since + "\n";
  for (const auto& k : order) {
    out += k + " hits=" + std::to_string(sum[k].first) + " last=" + sum[k].second + "\n";
  }
  co_return out;
}

awaitable<std::string> Supervisor::metrics() {
  std::vector<std::pair<std::string, std::string>> pages;
  std::string own =
      "# HELP diode_gateway_child_up Whether the child process is running (1) or not (0).\n"
      "# TYPE diode_gateway_child_up gauge\n";
  for (const auto& c : children_) {
    own += "diode_gateway_child_up{child=\"" + c->plan.name + "\"} " + (c->pid > 0 ? "1" : "0") + "\n";
  }
  own += "# HELP diode_gateway_child_restarts_total Restarts of the child since the supervisor started.\n"
         "# TYPE diode_gateway_child_restarts_total counter\n";
  for (const auto& c : children_) {
    own += "diode_gateway_child_restarts_total{child=\"" + c->plan.name + "\"} " +
           std::to_string(c->restarts) + "\n";
  }
  own += "# HELP diode_gateway_reloads_total Reloads (SIGHUP or diodectl reload) by result.\n"
         "# TYPE diode_gateway_reloads_total counter\n"
         "diode_gateway_reloads_total{result=\"ok\"} " + std::to_string(reloads_ok_) + "\n"
         "diode_gateway_reloads_total{result=\"failed\"} " + std::to_string(reloads_failed_) + "\n"
         "# HELP diode_gateway_uptime_seconds Seconds since the supervisor started.\n"
         "# TYPE diode_gateway_uptime_seconds gauge\n"
         "diode_gateway_uptime_seconds " + seconds_since(started_) + "\n";
  for (const auto& c : children_) {
    if (c->pid <= 0) continue;
    std::string page = co_await ask(c->control_path, "metrics");
    if (page.rfind("error", 0) == 0) continue;
    pages.emplace_back(c->plan.name, std::move(page));
  }
  co_return own + merge_metrics(pages);
}

awaitable<std::string> Supervisor::answer(std::string line) {
  if (line == "status") co_return co_await status();
  if (line == "reload") {
    if (stopping_) co_return std::string{"error the supervisor is stopping\n"};
    if (reload_) co_return std::string{"error reload in progress\n"};
    const auto job = start_reload("diodectl");
    if (!job->finished) {
      error_code ec;
      co_await job->done->async_wait(net::redirect_error(use_awaitable, ec));
    }
    co_return job->result;
  }
  if (line == "hits") co_return co_await hits();
  if (line == "metrics") co_return co_await metrics();
  if (line == "flush" || line.rfind("flush ", 0) == 0) {
    for (const auto& c : children_) {
      if (c->plan.kind == ChildKind::Resolver && c->pid > 0) {
        std::string r = co_await ask(c->control_path, line);
        co_return r.empty() ? std::string{"error the resolver did not answer\n"} : r;
      }
    }
    co_return std::string{"error no resolver is running\n"};
  }
  co_return std::string{"error unknown command (status, reload, flush [NAME], hits, metrics)\n"};
}

awaitable<void> Supervisor::control_session(net::local::stream_protocol::socket s) {
  std::string line;
  error_code ec;
  co_await net::async_read_until(s, net::dynamic_buffer(line, 1024), '\n',
                                 net::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  line.resize(line.find('\n'));
  const std::string reply = co_await answer(line);
  co_await net::async_write(s, net::buffer(reply), net::redirect_error(use_awaitable, ec));
}

awaitable<void> Supervisor::control_loop() {
  for (;;) {
    error_code ec;
    auto s = co_await control_->async_accept(net::redirect_error(use_awaitable, ec));
    if (!control_->is_open()) co_return;
    if (ec) continue;
    net::co_spawn(io_, control_session(std::move(s)), net::detached);
  }
}

awaitable<void> Supervisor::http_session(net::ip::tcp::socket s) {
  beast::flat_buffer buffer;
  net::steady_timer idle(s.get_executor());
  for (;;) {
    idle.expires_after(std::chrono::seconds{30});
    idle.async_wait([&s](error_code e) {
      if (!e) {
        error_code ignored;
        s.close(ignored);
      }
    });
    http::request_parser<http::empty_body> parser;
    parser.header_limit(8192);
    parser.body_limit(0);
    error_code ec;
    co_await http::async_read(s, buffer, parser, net::redirect_error(use_awaitable, ec));
    idle.cancel();
    if (ec) break;
    const auto& req = parser.get();
    http::response<http::string_body> res;
    res.version(req.version());
    res.set(http::field::server, "diode-gateway/" DIODE_VERSION);
    if (req.target() != "/metrics") {
      res.result(http::status::not_found);
      res.set(http::field::content_type, "text/plain");
      res.body() = "not found; try /metrics\n";
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "GET, HEAD");
    } else {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = co_await metrics();
      if (req.method() == http::verb::head) {
        const auto size = res.body().size();
        res.body().clear();
        res.content_length(size);
      }
    }
    res.keep_alive(req.keep_alive());
    if (req.method() != http::verb::head) res.prepare_payload();
    co_await http::async_write(s, res, net::redirect_error(use_awaitable, ec));
    if (ec || !req.keep_alive()) break;
  }
  error_code ignored;
  s.shutdown(net::ip::tcp::socket::shutdown_send, ignored);
}

awaitable<void> Supervisor::http_loop() {
  for (;;) {
    error_code ec;
    auto s = co_await http_->async_accept(net::redirect_error(use_awaitable, ec));
    if (!http_->is_open()) co_return;
    if (ec) continue;
    net::co_spawn(io_, http_session(std::move(s)), net::detached);
  }
}

int Supervisor::run() {
  // Signals first: a child that dies at once must be reaped and restarted.
  signals_.add(SIGHUP);
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGCHLD);
  std::signal(SIGPIPE, SIG_IGN);
  if (!open_everything()) return 1;
  watch_signals();
  for (auto& c : children_) {
    if (!spawn(*c)) schedule_restart(*c);
  }
  if (::geteuid() == 0) {
    std::string error;
    if (!platform::limit_capabilities(kKeptCapabilities, error)) {
      log_.event(LogLevel::Error, "start_failed", {{"error", error}});
      begin_stop();
    }
  }
  net::co_spawn(io_, notify_loop(), net::detached);
  net::co_spawn(io_, control_loop(), net::detached);
  if (http_) net::co_spawn(io_, http_loop(), net::detached);
  std::string sockets;
  for (const auto& c : children_) {
    for (const auto& s : c->plan.sockets) {
      sockets += (sockets.empty() ? "" : ",") + platform::socket_name(s.purpose, s.iface) + "@" +
                 s.endpoint.to_string();
    }
  }
  log_.event(LogLevel::Notice, "started",
             {{"children", std::to_string(children_.size())},
              {"sockets", sockets},
              {"control", control_path_},
              {"metrics", cfg_.gateway.metrics_listen ? cfg_.gateway.metrics_listen->to_string() : "-"},
              {"user", ::geteuid() == 0 ? cfg_.gateway.user : "(unchanged, not root)"}});
  watchdog();
  io_.run();
  for (auto& c : children_) {
    for (auto& s : c->sockets) {
      if (s.fd >= 0) ::close(s.fd);
    }
    ::unlink(c->control_path.c_str());
  }
  ::unlink(notify_path_.c_str());
  ::unlink(control_path_.c_str());
  log_.event(LogLevel::Notice, "stopped");
  return 0;
}

}  // namespace

std::string default_child_path(const std::string& self_dir, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string tree_dir = name == "sockd" ? "sockd" : "resolver";
  for (const fs::path& p : {fs::path(self_dir) / name, fs::path(self_dir) / ".." / tree_dir / name,
                           fs::path("/usr/sbin") / name}) {
    std::error_code ec;
    if (fs::exists(p, ec)) return fs::weakly_canonical(p, ec).string();
  }
  return (fs::path("/usr/sbin") / name).string();
}

int check_configuration(const SupervisorOptions& options) {
  platform::Diagnostics diags;
  auto cfg = load_config(options.config_path, diags);
  std::string report = diags.format();
  bool ok = cfg.has_value();
  std::size_t children = 0;
  if (ok) {
    const auto plan = plan_children(*cfg);
    children = plan.size();
    if (plan.empty()) {
      report += (options.config_path.empty() ? "<built-in gateway.toml>" : options.config_path) +
                ": error: no internal interface has a socks_port or a dns_port\n";
      ok = false;
    } else {
      ok = validate_files(options, *cfg, plan, report);
    }
    if (::geteuid() == 0 && (::getpwnam(cfg->gateway.user.c_str()) == nullptr ||
                             ::getgrnam(cfg->gateway.group.c_str()) == nullptr)) {
      report += "gateway.user/group: no such user or group: " + cfg->gateway.user + ":" +
                cfg->gateway.group + "\n";
      ok = false;
    }
  }
  std::cerr << report;
  if (ok) std::cout << "configuration OK: " << children << " children\n";
  return ok ? 0 : 1;
}

int run_supervisor(const SupervisorOptions& options) {
  platform::Diagnostics diags;
  auto cfg = load_config(options.config_path, diags);
  platform::Logger log("diode-gateway", cfg ? cfg->log : platform::LogSettings{});
  if (!cfg) {
    log.diagnostics(diags.format());
    return 1;
  }
  std::string report;
  const auto plan = plan_children(*cfg);
  if (!validate_files(options, *cfg, plan, report)) {
    log.diagnostics(report);
    log.event(LogLevel::Error, "start_failed", {{"reason", "invalid configuration"}});
    return 1;
  }
  Supervisor s(options, std::move(*cfg), log);
  return s.run();
}

int control_client(const std::string& path, const std::string& command) {
  return platform::run_control_client("diodectl", path, command);
}

}  // namespace diode::gateway

// The process contract: socket names and the sockets a configuration
// implies, LISTEN_FDS both ways, the privilege drop, sd_notify and the
// logger. Whatever changes the process itself (ids, fds 3.., environment)
// runs in a forked child that reports through its exit status.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "diode/platform/config.hpp"
#include "diode/platform/listen_fds.hpp"
#include "diode/platform/logger.hpp"
#include "diode/platform/notify.hpp"
#include "diode/platform/privileges.hpp"
#include "diode/platform/sockets.hpp"

using namespace diode::platform;

namespace {

// Runs `body` in a forked child; its return value is the child's exit
// status (0 = every check held, else the number of the failed check).
int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

std::uint16_t port_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

int int_option(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  return ::getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

bool cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

SocketSpec spec(SocketPurpose p, const char* ep) {
  return SocketSpec{p, "lo", *Endpoint::parse(ep)};
}

std::map<std::string, std::string> proc_status() {
  std::map<std::string, std::string> out;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t") + 1);
    out[line.substr(0, colon)] = v;
  }
  return out;
}

}  // namespace

TEST_CASE("socket names round-trip", "[sockets]") {
  for (auto p : {SocketPurpose::Socks, SocketPurpose::DnsUdp, SocketPurpose::DnsTcp}) {
    const std::string name = socket_name(p, "eth1");
    const auto back = parse_socket_name(name);
    REQUIRE(back);
    CHECK(back->first == p);
    CHECK(back->second == "eth1");
  }
  CHECK(socket_name(SocketPurpose::Socks, "eth1") == "socks.eth1");
  CHECK(socket_name(SocketPurpose::DnsUdp, "eth1.100") == "dns-udp.eth1.100");
  CHECK(socket_name(SocketPurpose::Control, "") == "control");
  const auto c = parse_socket_name("control");
  REQUIRE(c);
  CHECK(c->first == SocketPurpose::Control);
  CHECK(c->second.empty());
  CHECK_FALSE(parse_socket_name("http:eth1"));
  CHECK_FALSE(parse_socket_name("socks"));
  CHECK_FALSE(parse_socket_name("socks."));
  CHECK_FALSE(parse_socket_name("socks:eth1"));  // systemd's FileDescriptorName= refuses ':'
  const auto vlan = parse_socket_name("dns-udp.eth1.100");
  REQUIRE(vlan);
  CHECK(vlan->second == "eth1.100");
  CHECK_FALSE(parse_socket_name(""));
}

TEST_CASE("implied_sockets: two internal interfaces and an external one", "[sockets]") {
  Diagnostics d;
  const auto cfg = parse_gateway_config(R"(
[[interface]]
name = "eth1"
role = "internal"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "eth2"
role = "internal"
addresses = ["198.51.100.1/24"]
socks_port = 1081
dns_port = 0

[[interface]]
name = "eth0"
role = "external"
addresses = ["203.0.113.1/24"]
)",
                                        "t.toml", d);
  INFO(d.format());
  REQUIRE(cfg);
  const std::vector<SocketSpec> want{
      {SocketPurpose::Socks, "eth1", *Endpoint::parse("192.0.2.1:1080")},
      {SocketPurpose::Socks, "eth1", *Endpoint::parse("[2001:db8:1::1]:1080")},
      {SocketPurpose::DnsUdp, "eth1", *Endpoint::parse("192.0.2.1:53")},
      {SocketPurpose::DnsTcp, "eth1", *Endpoint::parse("192.0.2.1:53")},
      {SocketPurpose::DnsUdp, "eth1", *Endpoint::parse("[2001:db8:1::1]:53")},
      {SocketPurpose::DnsTcp, "eth1", *Endpoint::parse("[2001:db8:1::1]:53")},
      {SocketPurpose::Socks, "eth2", *Endpoint::parse("198.51.100.1:1081")},
  };
  CHECK(implied_sockets(*cfg) == want);
}

TEST_CASE("open_socket: TCP listening, UDP bound, v4 and v6 on port 0", "[sockets]") {
  for (const char* ep : {"127.0.0.1:0", "[::1]:0"}) {
    INFO(ep);
    std::string err;
    const int t = open_socket(spec(SocketPurpose::Socks, ep), err);
    REQUIRE(t >= 0);
    CHECK(err.empty());
    CHECK(int_option(t, SOL_SOCKET, SO_ACCEPTCONN) == 1);
    CHECK(int_option(t, SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
    CHECK(int_option(t, SOL_SOCKET, SO_REUSEADDR) == 1);
    CHECK(port_of(t) != 0);
    CHECK(cloexec(t));
    CHECK((::fcntl(t, F_GETFL) & O_NONBLOCK) != 0);
    const int u = open_socket(spec(SocketPurpose::DnsUdp, ep), err);
    REQUIRE(u >= 0);
    CHECK(int_option(u, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM);
    CHECK(port_of(u) != 0);
    if (ep[0] == '[') CHECK(int_option(u, IPPROTO_IPV6, IPV6_V6ONLY) == 1);
    const int tt = open_socket(spec(SocketPurpose::DnsTcp, ep), err);
    REQUIRE(tt >= 0);
    CHECK(int_option(tt, SOL_SOCKET, SO_ACCEPTCONN) == 1);
    ::close(t);
    ::close(u);
    ::close(tt);
  }
  // A port in use (by a listening TCP socket: SO_REUSEADDR lets UDP
  // sockets share a port): -1 and a sentence naming the endpoint.
  std::string err;
  const int a = open_socket(spec(SocketPurpose::Socks, "127.0.0.1:0"), err);
  REQUIRE(a >= 0);
  const std::string taken = "127.0.0.1:" + std::to_string(port_of(a));
  CHECK(open_socket(spec(SocketPurpose::DnsTcp, taken.c_str()), err) == -1);
  CHECK(err.find(taken) != std::string::npos);
  CHECK(err.find("in use") != std::string::npos);
  ::close(a);
}

TEST_CASE("open_control_socket: a listening AF_UNIX socket, mode 0600, replacing an old one", "[sockets]") {
  const std::string dir = std::filesystem::temp_directory_path() / ("diode-ctl-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/control";
  std::string err;
  const int a = open_control_socket(path, err);
  REQUIRE(a >= 0);
  ::close(a);  // the file stays behind, as after a crash
  const int b = open_control_socket(path, err);
  REQUIRE(b >= 0);
  CHECK(int_option(b, SOL_SOCKET, SO_ACCEPTCONN) == 1);
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  ::close(b);
  std::filesystem::remove_all(dir);
}

TEST_CASE("pass_listen_fds_in_child then take_listen_fds, with fds that collide with 3..", "[listen_fds]") {
  std::string err;
  const int tcp = open_socket(spec(SocketPurpose::Socks, "127.0.0.1:0"), err);
  const int udp = open_socket(spec(SocketPurpose::DnsUdp, "127.0.0.1:0"), err);
  const int tcp2 = open_socket(spec(SocketPurpose::DnsTcp, "127.0.0.1:0"), err);
  REQUIRE((tcp >= 0 && udp >= 0 && tcp2 >= 0));
  const std::uint16_t p_tcp = port_of(tcp), p_udp = port_of(udp), p_tcp2 = port_of(tcp2);
  const int rc = in_child([&]() -> int {
    // The parent's sockets sit exactly where the children's must go, in the
    // wrong order: the socks socket on 5, the UDP one on 3, the TCP one on 4.
    for (int fd = 3; fd < 6; ++fd) {
      if (fd != tcp && fd != udp && fd != tcp2) ::close(fd);
    }
    const int s5 = ::fcntl(tcp, F_DUPFD_CLOEXEC, 20), s3 = ::fcntl(udp, F_DUPFD_CLOEXEC, 20),
              s4 = ::fcntl(tcp2, F_DUPFD_CLOEXEC, 20);
    if (::dup2(s5, 5) != 5 || ::dup2(s3, 3) != 3 || ::dup2(s4, 4) != 4) return 2;
    const std::vector<NamedSocket> give{{5, SocketPurpose::Socks, "ifx"},
                                        {3, SocketPurpose::DnsUdp, "eth1"},
                                        {4, SocketPurpose::DnsTcp, "eth1"}};
    if (!pass_listen_fds_in_child(give)) return 3;
    if (port_of(3) != p_tcp || port_of(4) != p_udp || port_of(5) != p_tcp2) return 4;
    if (cloexec(3) || cloexec(4) || cloexec(5)) return 5;
    if (std::string(std::getenv("LISTEN_FDNAMES")) != "socks.ifx:dns-udp.eth1:dns-tcp.eth1") return 6;
    if (std::string(std::getenv("LISTEN_FDS")) != "3") return 7;
    if (std::string(std::getenv("LISTEN_PID")) != std::to_string(::getpid())) return 8;
    std::string e;
    const auto got = take_listen_fds(e);
    if (!e.empty() || got.size() != 3) return 9;
    if (got[0].fd != 3 || got[0].purpose != SocketPurpose::Socks || got[0].iface != "ifx") return 10;
    if (got[1].fd != 4 || got[1].purpose != SocketPurpose::DnsUdp || got[1].iface != "eth1") return 11;
    if (got[2].fd != 5 || got[2].purpose != SocketPurpose::DnsTcp || got[2].iface != "eth1") return 12;
    if (!cloexec(3) || !cloexec(4) || !cloexec(5)) return 13;
    if (std::getenv("LISTEN_PID") || std::getenv("LISTEN_FDS") || std::getenv("LISTEN_FDNAMES")) return 14;
    // Taken once: a second call finds nothing.
    if (!take_listen_fds(e).empty() || !e.empty()) return 15;
    return 0;
  });
  CHECK(rc == 0);
  ::close(tcp);
  ::close(udp);
  ::close(tcp2);
}

TEST_CASE("take_listen_fds: control alone, another pid, bad names, no LISTEN_*", "[listen_fds]") {
  std::string err;
  const int tcp = open_socket(spec(SocketPurpose::Socks, "127.0.0.1:0"), err);
  REQUIRE(tcp >= 0);
  const int rc = in_child([&]() -> int {
    if (::dup2(tcp, 3) != 3) return 2;
    std::string e;
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!take_listen_fds(e).empty() || !e.empty()) return 3;
    const std::string me = std::to_string(::getpid());
    ::setenv("LISTEN_PID", me.c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_FDNAMES", "control", 1);
    auto got = take_listen_fds(e);
    if (got.size() != 1 || got[0].purpose != SocketPurpose::Control || got[0].fd != 3) return 4;
    // Meant for our parent: not ours, no error, and gone from the environment.
    ::setenv("LISTEN_PID", std::to_string(::getppid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_FDNAMES", "control", 1);
    if (!take_listen_fds(e).empty() || !e.empty() || std::getenv("LISTEN_FDS")) return 5;
    ::setenv("LISTEN_PID", me.c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_FDNAMES", "http:eth1", 1);
    if (!take_listen_fds(e).empty() || e.find("http") == std::string::npos) return 6;
    e.clear();
    ::setenv("LISTEN_PID", me.c_str(), 1);
    ::setenv("LISTEN_FDS", "2", 1);
    ::setenv("LISTEN_FDNAMES", "socks.eth1", 1);
    if (!take_listen_fds(e).empty() || e.empty()) return 7;
    e.clear();
    ::setenv("LISTEN_PID", me.c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::unsetenv("LISTEN_FDNAMES");
    if (!take_listen_fds(e).empty() || e.empty()) return 8;
    // Not a socket.
    e.clear();
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (::dup2(devnull, 3) != 3) return 9;
    ::setenv("LISTEN_PID", me.c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    ::setenv("LISTEN_FDNAMES", "socks.eth1", 1);
    if (!take_listen_fds(e).empty() || e.find("not an open socket") == std::string::npos) return 10;
    return 0;
  });
  CHECK(rc == 0);
  ::close(tcp);
}

TEST_CASE("drop_privileges as root: nobody/nogroup, no capabilities, no_new_privs", "[privileges]") {
  REQUIRE(::geteuid() == 0);  // the suite runs as root; this test must not skip
  const int rc = in_child([]() -> int {
    std::string err;
    if (!drop_privileges(DropOptions{"nobody", "nogroup", "/"}, err)) {
      std::fprintf(stderr, "drop_privileges: %s\n", err.c_str());
      return 2;
    }
    auto st = proc_status();
    const std::string id = "65534\t65534\t65534\t65534";
    if (st["Uid"] != id) return 3;
    if (st["Gid"] != id) return 4;
    if (st["Groups"] != "65534") return 5;
    for (const char* k : {"CapInh", "CapEff", "CapPrm", "CapBnd", "CapAmb"}) {
      if (st[k] != "0000000000000000") {
        std::fprintf(stderr, "%s: %s\n", k, st[k].c_str());
        return 6;
      }
    }
    if (st["NoNewPrivs"] != "1") return 7;
    if (::setuid(0) == 0 || ::setgid(0) == 0) return 8;
    char cwd[64] = {};
    if (::getcwd(cwd, sizeof cwd) == nullptr || std::string(cwd) != "/") return 9;
    const PrivilegeState ps = current_privileges();
    if (ps.uid != 65534 || ps.euid != 65534 || ps.gid != 65534 || ps.any_capability || !ps.no_new_privs) return 10;
    // Again, now unprivileged: nothing left to drop, and nothing fails.
    if (!drop_privileges(DropOptions{"nobody", "nogroup", "/"}, err)) return 11;
    return 0;
  });
  CHECK(rc == 0);
}

TEST_CASE("drop_privileges refuses an unknown user or root itself", "[privileges]") {
  REQUIRE(::geteuid() == 0);
  const int rc = in_child([]() -> int {
    std::string err;
    if (drop_privileges(DropOptions{"no-such-user-diode", "nogroup", ""}, err)) return 2;
    if (err.find("no-such-user-diode") == std::string::npos) return 3;
    err.clear();
    if (drop_privileges(DropOptions{"nobody", "no-such-group-diode", ""}, err)) return 4;
    if (err.find("no-such-group-diode") == std::string::npos) return 5;
    if (drop_privileges(DropOptions{"root", "root", ""}, err)) return 6;
    return 0;
  });
  CHECK(rc == 0);
}

TEST_CASE("limit_capabilities keeps only the named ones", "[privileges]") {
  REQUIRE(::geteuid() == 0);
  const int rc = in_child([]() -> int {
    std::string err;
    if (!limit_capabilities({"cap_kill"}, err)) return 2;
    auto st = proc_status();
    const std::string kill_only = "0000000000000020";  // CAP_KILL is bit 5
    if (st["CapEff"] != kill_only || st["CapPrm"] != kill_only || st["CapBnd"] != kill_only) return 3;
    if (st["CapInh"] != "0000000000000000" || st["CapAmb"] != "0000000000000000") return 4;
    if (limit_capabilities({"cap_no_such_thing"}, err)) return 5;
    return 0;
  });
  CHECK(rc == 0);
}

TEST_CASE("notify_*: datagrams on NOTIFY_SOCKET, no-ops without it", "[notify]") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("diode-notify-" + std::to_string(::getpid()))).string();
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
  ::unlink(path.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
  auto read_back = [&] {
    char buf[512];
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? std::string("<nothing>") : std::string(buf, static_cast<std::size_t>(n));
  };
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  CHECK(notify_ready("serving 2 sockets"));
  CHECK(read_back() == "READY=1\nSTATUS=serving 2 sockets");
  CHECK(notify_ready());
  CHECK(read_back() == "READY=1");
  CHECK(notify_reloading());
  const std::string r = read_back();
  CHECK(r.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  CHECK(r.size() > std::strlen("RELOADING=1\nMONOTONIC_USEC="));
  CHECK(notify_stopping());
  CHECK(read_back() == "STOPPING=1");
  CHECK(notify_status("reloaded"));
  CHECK(read_back() == "STATUS=reloaded");
  CHECK(notify_watchdog());
  CHECK(read_back() == "WATCHDOG=1");
  // A socket that is not there: the call says so.
  ::setenv("NOTIFY_SOCKET", (path + ".gone").c_str(), 1);
  CHECK_FALSE(notify_ready());
  ::unsetenv("NOTIFY_SOCKET");
  CHECK(notify_ready("x"));
  CHECK(notify_stopping());
  CHECK(read_back() == "<nothing>");
  ::close(fd);
  ::unlink(path.c_str());

  ::unsetenv("WATCHDOG_USEC");
  CHECK_FALSE(watchdog_interval());
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  const auto w = watchdog_interval();
  REQUIRE(w);
  CHECK(w->count() == 1500000);
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
}

namespace {

// What `body` writes to stderr, through a pipe.
std::string capture_stderr(const std::function<void()>& body) {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(p[1], STDERR_FILENO);
  ::close(p[1]);
  body();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  return out;
}

}  // namespace

TEST_CASE("Logger: text and JSON lines, levels, diagnostics, configure", "[logger]") {
  const std::string out = capture_stderr([] {
    Logger log("test", LogSettings{});
    log.event(LogLevel::Info, "reload", {{"status", "ok"}, {"error", "a b"}});
    log.event(LogLevel::Debug, "hidden");
    log.diagnostics("t.toml:1:2: error: bad\nt.toml:3:4: error: worse\n");
    log.configure(LogSettings{LogFormat::Json, LogTarget::Stderr, LogLevel::Warning});
    log.event(LogLevel::Info, "hidden_too");
    log.event(LogLevel::Error, "fail", {{"why", "x\"y"}});
    log.diagnostics("t.toml:1:2: error: bad");
    log.write(LogLevel::Warning, "raw line");
    CHECK(log.format() == LogFormat::Json);
  });
  std::vector<std::string> lines;
  for (std::size_t s = 0, e; (e = out.find('\n', s)) != std::string::npos; s = e + 1) lines.push_back(out.substr(s, e - s));
  REQUIRE(lines.size() == 6);
  CHECK(lines[0].rfind("time=", 0) == 0);
  CHECK(lines[0].find(" event=reload status=ok error=\"a b\"") != std::string::npos);
  CHECK(lines[1] == "t.toml:1:2: error: bad");
  CHECK(lines[2] == "t.toml:3:4: error: worse");
  CHECK(lines[3].rfind("{\"time\":\"", 0) == 0);
  CHECK(lines[3].find(",\"event\":\"fail\",\"why\":\"x\\\"y\"}") != std::string::npos);
  CHECK(lines[4] == "{\"event\":\"config_error\",\"message\":\"t.toml:1:2: error: bad\"}");
  CHECK(lines[5] == "raw line");
}

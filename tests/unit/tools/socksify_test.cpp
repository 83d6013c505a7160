// diode-socksify's decisions (tools/socksify/policy.hpp) and the wrapper's
// program checks (inspect.hpp); the I/O is tested by socksify.netbed.

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "diode/sockd/parse.hpp"
#include "diode/socksify/inspect.hpp"
#include "diode/socksify/policy.hpp"

using diode::platform::Diagnostics;
using diode::platform::IpAddress;
using namespace diode::socksify;

namespace {

std::string write_temp(const std::string& text) {
  char path[] = "/tmp/diode-socksify-test-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fd);
  return path;
}

std::optional<Settings> load(std::map<std::string, std::string> env, Diagnostics& d) {
  return load_settings(
      [env](const char* n) -> const char* {
        const auto it = env.find(n);
        return it == env.end() ? nullptr : it->second.c_str();
      },
      d);
}

const char* kConf =
    "direct 192.0.2.0/24\n"
    "direct .lan.example.test\n"
    "deny   denied.a.test\n"
    "deny   *=guest 0.0.0.0/0\n"
    "sockd  cmd=udp @=192.0.2.1 203.0.113.30/32 eq 53\n"
    "sockd  @=[2001:db8:1::1]:1081 2001:db8:2::/48\n"
    "direct 198.51.100.0/24 eq 22\n"
    "sockd  0.0.0.0/0\n";

}  // namespace

TEST_CASE("socksify: SOCKS_SERVER and @= server syntax", "[socksify]") {
  CHECK(parse_server("fw1")->to_string() == "fw1:1080");
  CHECK(parse_server("192.0.2.1:1081")->to_string() == "192.0.2.1:1081");
  CHECK(parse_server("2001:db8::1")->to_string() == "[2001:db8::1]:1080");
  CHECK(parse_server("[2001:db8::1]:99")->to_string() == "[2001:db8::1]:99");
  CHECK_FALSE(parse_server(""));
  CHECK_FALSE(parse_server("fw1:0"));
  CHECK_FALSE(parse_server("fw1:65536"));
  CHECK_FALSE(parse_server("[2001:db8::1"));
  CHECK_FALSE(parse_server("1.2.3"));
}

TEST_CASE("socksify: settings from the environment, errors as $VAR and file:line:col",
          "[socksify]") {
  const std::string conf = write_temp(kConf);
  Diagnostics d;
  auto s = load({{"SOCKS_CONF", conf},
                 {"SOCKS_SERVER", "192.0.2.1,fw2:1081"},
                 {"SOCKS_NS", "192.0.2.53"},
                 {"SOCKS_USER", "alice"},
                 {"SOCKS_PASSWORD", "pw"},
                 {"SOCKS_DEBUG", "1"}},
                d);
  REQUIRE(s);
  CHECK(d.empty());
  CHECK(s->conf_present);
  CHECK(s->rules.rules.size() == 8);
  REQUIRE(s->default_servers.size() == 2);
  CHECK(s->default_servers[1].to_string() == "fw2:1081");
  CHECK(s->nameserver->to_string() == "192.0.2.53");
  CHECK(s->debug);

  Diagnostics e;
  CHECK_FALSE(load({{"SOCKS_CONF", conf},
                    {"SOCKS_SERVER", "fw1:0"},
                    {"SOCKS_NS", "ns.example"},
                    {"SOCKS_PASSWORD", "pw"}},
                   e));
  CHECK(e.format() ==
        "$SOCKS_SERVER: error: invalid server 'fw1:0' (name or address, optional :port, IPv6 as "
        "[addr]:port)\n"
        "$SOCKS_NS: error: invalid nameserver 'ns.example' (an IPv4 address)\n"
        "$SOCKS_USER: error: a password is given but SOCKS_USER is not set\n" +
            conf + ":8:1: error: this sockd line has no @= and SOCKS_SERVER is not set\n");

  const std::string bad = write_temp("sockd @=fw1 0.0.0.0/0 frob\n");
  Diagnostics f;
  CHECK_FALSE(load({{"SOCKS_CONF", bad}}, f));
  CHECK(f.format() == bad + ":1:23: error: unexpected 'frob' (too many fields)\n");

  Diagnostics g;
  auto absent = load({{"SOCKS_CONF", "/nonexistent/diode/socks.conf"}, {"SOCKS_SERVER", "fw1"}}, g);
  REQUIRE(absent);
  CHECK_FALSE(absent->conf_present);
  const auto dflt = decide_address(*absent, *IpAddress::parse("198.51.100.7"), 80, "bob");
  CHECK(dflt.route == Route::Sockd);
  CHECK(dflt.where() == "SOCKS_SERVER");
  CHECK(decide_address(*absent, *IpAddress::parse("198.51.100.7"), 53, "bob",
                       diode::sockd::RuleCommand::Udp)
            .route == Route::Direct);
  std::remove(conf.c_str());
  std::remove(bad.c_str());
}

TEST_CASE("socksify: routes for addresses, names, users, ports and commands", "[socksify]") {
  const std::string conf = write_temp(kConf);
  Diagnostics d;
  auto s = load({{"SOCKS_CONF", conf}, {"SOCKS_SERVER", "192.0.2.1"}}, d);
  REQUIRE(s);
  using diode::sockd::RuleCommand;
  const auto addr = [&](const char* a, std::uint16_t port, const char* user = "bob",
                        RuleCommand cmd = RuleCommand::Connect) {
    return decide_address(*s, *IpAddress::parse(a), port, user, cmd);
  };
  CHECK(addr("192.0.2.7", 80).route == Route::Direct);
  CHECK(addr("198.51.100.7", 80).route == Route::Sockd);
  CHECK(addr("198.51.100.7", 80).servers->front().to_string() == "192.0.2.1:1080");  // SOCKS_SERVER
  CHECK(addr("198.51.100.7", 22).route == Route::Direct);
  CHECK(addr("198.51.100.7", 80, "guest").route == Route::Deny);
  CHECK(addr("2001:db8:2::80", 80).servers->front().to_string() == "[2001:db8:1::1]:1081");
  // UDP: only the cmd=udp line carries it; the rest is direct.
  CHECK(addr("203.0.113.30", 53, "bob", RuleCommand::Udp).route == Route::Sockd);
  CHECK(addr("203.0.113.30", 53, "bob", RuleCommand::Udp).where() == conf + ":5");
  CHECK(addr("198.51.100.7", 53, "bob", RuleCommand::Udp).route == Route::Direct);
  CHECK(addr("198.51.100.7", 53, "guest", RuleCommand::Udp).route == Route::Deny);  // deny covers UDP
  CHECK(addr("203.0.113.30", 53).route == Route::Sockd);  // TCP: the catch-all, not line 5
  CHECK(addr("203.0.113.30", 53).where() == conf + ":8");

  // Names: by name and zone lines and by the every-address line, never by a
  // narrower network (that would need a lookup).
  CHECK(decide_name(*s, "www.a.test", 80, "bob").route == Route::Sockd);
  CHECK(decide_name(*s, "WWW.A.TEST.", 80, "bob").route == Route::Sockd);
  CHECK(decide_name(*s, "denied.a.test", 80, "bob").route == Route::Deny);
  CHECK(decide_name(*s, "x.denied.a.test", 80, "bob").route == Route::Sockd);  // a host, not a zone
  CHECK(decide_name(*s, "host.lan.example.test", 80, "bob").route == Route::Direct);
  CHECK(decide_name(*s, "lan.example.test", std::nullopt, "bob").route == Route::Direct);
  CHECK(decide_name(*s, "www.a.test", 22, "bob").route == Route::Sockd);  // line 7 is for addresses
  CHECK(decide_name(*s, "www.a.test", std::nullopt, "guest").route == Route::Deny);
  std::remove(conf.c_str());
}

TEST_CASE("socksify: fake addresses, one per name, from 240.0.0.0/4", "[socksify]") {
  auto names = std::make_unique<FakeNames>();
  const auto a = names->intern("www.a.test");
  const auto b = names->intern("echo.a.test");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a != *b);
  CHECK(names->intern("WWW.A.test.") == a);
  CHECK(FakeNames::is_fake(*a));
  CHECK((*a >> 28) == 0xF);
  CHECK(std::string(names->lookup(*a)) == "www.a.test");
  CHECK(names->lookup(*a + 1000) == nullptr);
  CHECK(names->lookup(0xF0000000u) == nullptr);
  CHECK(names->lookup(0xC0000201u) == nullptr);  // 192.0.2.1
}

TEST_CASE("socksify: errno for SOCKS5 replies", "[socksify]") {
  CHECK(errno_for_reply(2) == ECONNREFUSED);
  CHECK(errno_for_reply(3) == ENETUNREACH);
  CHECK(errno_for_reply(4) == EHOSTUNREACH);
  CHECK(errno_for_reply(5) == ECONNREFUSED);
  CHECK(errno_for_reply(6) == ETIMEDOUT);
  CHECK(errno_for_reply(0x42) == ECONNREFUSED);
}

TEST_CASE("socksify: the wrapper's program checks", "[socksify]") {
  CHECK(inspect_program("sh", "/usr/bin:/bin").kind == ProgramKind::Dynamic);
  CHECK(inspect_program("/nonexistent/prog", "").kind == ProgramKind::NotFound);
  CHECK(inspect_program("no-such-program-here", "/usr/bin").kind == ProgramKind::NotFound);
  const std::string script = write_temp("#!/bin/sh\necho hi\n");
  chmod(script.c_str(), 0755);
  const auto s = inspect_program(script, "");
  CHECK(s.kind == ProgramKind::Dynamic);
  CHECK(s.path == "/bin/sh");
  chmod(script.c_str(), 04755);
  CHECK(inspect_program(script, "").kind == ProgramKind::SetId);
  chmod(script.c_str(), 0644);
  CHECK(inspect_program(script, "").kind == ProgramKind::NotExecutable);
  std::remove(script.c_str());
  // busybox-static (scripts/setup.sh) is the statically linked example.
  const auto bb = inspect_program("/bin/busybox", "");
  CHECK(bb.kind == ProgramKind::Static);
  bool is_elf = false;
  CHECK_FALSE(elf_is_static("/bin/sh", &is_elf, nullptr));
  CHECK(is_elf);
}

TEST_CASE("socksify: docs/socksify.md names every variable, and its socks.conf examples parse",
          "[socksify][docs]") {
  std::ifstream in(std::string(DIODE_SOURCE_DIR) + "/docs/socksify.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  for (const char* v : {"SOCKS_CONF", "SOCKS_SERVER", "SOCKS_NS", "SOCKS_USER", "SOCKS_PASSWORD",
                        "SOCKS_PASSWORD_FILE", "SOCKS_DEBUG"}) {
    CHECK(doc.find(std::string("| `") + v + "` |") != std::string::npos);
  }
  std::size_t pos = 0;
  int blocks = 0;
  while ((pos = doc.find("```socks.conf\n", pos)) != std::string::npos) {
    pos += 14;
    const auto end = doc.find("```", pos);
    Diagnostics d;
    CHECK(diode::sockd::parse_socks_conf(doc.substr(pos, end - pos), "socksify.md", d).has_value());
    CHECK(d.format() == "");
    ++blocks;
  }
  CHECK(blocks >= 1);
}

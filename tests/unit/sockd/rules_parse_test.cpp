// The sockd.conf / sockd.route / socks.conf grammar: every token kind, every
// operator, every error with its column.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

#include "diode/sockd/parse.hpp"

using namespace diode::sockd;
using diode::platform::Diagnostics;
using diode::platform::Family;
using diode::platform::IpAddress;

namespace {

struct Parsed {
  std::optional<RuleSet> rs;
  Diagnostics diags;
  std::string errors() const { return diags.format(); }
};

Parsed conf(std::string_view text, ParseOptions opts = {}) {
  Parsed p;
  p.rs = parse_sockd_conf(text, "t.conf", p.diags, opts);
  return p;
}

const Rule& only_rule(const Parsed& p) {
  REQUIRE(p.rs.has_value());
  REQUIRE(p.rs->rules.size() == 1);
  return p.rs->rules[0];
}

/// The single error of a bad one-line file, formatted.
std::string error_of(std::string_view text) {
  const auto p = conf(text);
  CHECK_FALSE(p.rs.has_value());
  CHECK(p.diags.count(diode::platform::Severity::Error) == 1);
  return p.errors();
}

IpAddress v4(const char* s) { return *IpAddress::parse_v4(s); }
IpAddress v6(const char* s) { return *IpAddress::parse_v6(s); }

}  // namespace

TEST_CASE("NEC line: action, address pairs, port, command", "[sockd][parse]") {
  const auto p = conf("permit 192.0.2.0 255.255.255.0 198.51.100.7 255.255.255.255 eq 443 : /bin/true %u\n");
  const Rule& r = only_rule(p);
  CHECK(r.action == Action::Permit);
  CHECK(r.ident == IdentMode::Default);
  CHECK(r.users.any);
  REQUIRE(r.src.kind == AddressMatch::Kind::Masked);
  CHECK(r.src.masked.addr == v4("192.0.2.0"));
  CHECK(r.src.masked.mask == v4("255.255.255.0"));
  CHECK(r.src.pos.column == 8);
  CHECK(r.src.pos.line == 1);
  REQUIRE(r.dst.kind == AddressMatch::Kind::Masked);
  CHECK(r.dst.masked.addr == v4("198.51.100.7"));
  CHECK(r.dst.pos.column == 32);
  CHECK(r.port.op == PortOp::Eq);
  CHECK(r.port.lo == 443);
  CHECK(r.port.pos.column == 61);
  REQUIRE(r.shell_cmd.has_value());
  CHECK(*r.shell_cmd == "/bin/true %u");
  CHECK(r.shell_cmd_pos.column == 70);
  CHECK(r.text == "permit 192.0.2.0 255.255.255.0 198.51.100.7 255.255.255.255 eq 443 : /bin/true %u");
}

TEST_CASE("omitted destination is any; 0.0.0.0 0.0.0.0 is any", "[sockd][parse]") {
  const auto p = conf("deny 0.0.0.0 0.0.0.0\npermit 192.0.2.1 255.255.255.255 eq 23\n");
  REQUIRE(p.rs);
  REQUIRE(p.rs->rules.size() == 2);
  CHECK(p.rs->rules[0].src.kind == AddressMatch::Kind::Any);
  CHECK(p.rs->rules[0].dst.kind == AddressMatch::Kind::Any);
  CHECK(p.rs->rules[1].dst.kind == AddressMatch::Kind::Any);
  CHECK(p.rs->rules[1].port.op == PortOp::Eq);
  CHECK(p.rs->rules[1].port.lo == 23);
  // An all-zero mask makes the address irrelevant, whatever it is.
  CHECK(only_rule(conf("permit 192.0.2.1 0.0.0.0\n")).src.kind == AddressMatch::Kind::Any);
}

TEST_CASE("every port operator, in any case, numbers and services", "[sockd][parse]") {
  const std::pair<const char*, PortOp> ops[] = {{"eq", PortOp::Eq}, {"NEQ", PortOp::Neq},
                                                {"lt", PortOp::Lt}, {"Gt", PortOp::Gt},
                                                {"le", PortOp::Le}, {"ge", PortOp::Ge}};
  for (const auto& [word, op] : ops) {
    const auto r = only_rule(conf(std::string("permit 192.0.2.0 255.255.255.0 ") + word + " 1024\n"));
    CHECK(r.port.op == op);
    CHECK(r.port.lo == 1024);
  }
  const auto svc = only_rule(conf("deny 192.0.2.0 255.255.255.0 eq telnet\n"));
  CHECK(svc.port.lo == 23);
  const auto range = only_rule(conf("permit 192.0.2.0/24 range 1024-65535\n"));
  CHECK(range.port.op == PortOp::Range);
  CHECK(range.port.lo == 1024);
  CHECK(range.port.hi == 65535);
  CHECK(only_rule(conf("permit 192.0.2.0/24 eq 0\n")).port.lo == 0);
  CHECK(only_rule(conf("permit 192.0.2.0/24 eq 65535\n")).port.lo == 65535);
}

TEST_CASE("?= values and *= lists", "[sockd][parse]") {
  CHECK(only_rule(conf("permit ?=I 192.0.2.0/24\n")).ident == IdentMode::Strict);
  CHECK(only_rule(conf("permit ?=i 192.0.2.0/24\n")).ident == IdentMode::Lenient);
  CHECK(only_rule(conf("permit ?=n 192.0.2.0/24\n")).ident == IdentMode::Off);
  CHECK(only_rule(conf("permit ?= 192.0.2.0/24\n")).ident == IdentMode::Off);

  const auto r = only_rule(conf("deny *=bonnie,clyde 192.0.2.0 255.255.255.0\n"));
  CHECK_FALSE(r.users.any);
  CHECK(r.users.names == std::vector<std::string>{"bonnie", "clyde"});
  CHECK(r.users.pos.column == 6);
  CHECK(r.users.contains("clyde"));
  CHECK_FALSE(r.users.contains("jane"));
  CHECK(only_rule(conf("permit *= 192.0.2.0/24\n")).users.any);

  // Options come in any order before the source.
  const auto o = only_rule(conf("permit cmd=connect,BIND *=alice ?=I auth=userpass iface=eth1,eth2 192.0.2.0/24\n"));
  CHECK(o.commands == (static_cast<std::uint8_t>(RuleCommand::Connect) | static_cast<std::uint8_t>(RuleCommand::Bind)));
  CHECK(o.methods == static_cast<std::uint8_t>(AuthMethod::UserPass));
  CHECK(o.interfaces == std::vector<std::string>{"eth1", "eth2"});
  CHECK(o.ident == IdentMode::Strict);
  CHECK(o.users.names == std::vector<std::string>{"alice"});
  CHECK(only_rule(conf("permit cmd=udp auth=none 192.0.2.0/24\n")).commands ==
        static_cast<std::uint8_t>(RuleCommand::Udp));
}

TEST_CASE("*= user files are read at parse time, or not", "[sockd][parse]") {
  char path[] = "/tmp/diode-users-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string body = "alice bob,\tcarol # the admins\n# whole-line comment\ndave\n";
  REQUIRE(write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size()));
  close(fd);
  const std::string line = std::string("permit *=erin,") + path + " 192.0.2.0/24\n";
  const auto r = only_rule(conf(line));
  CHECK(r.users.names == std::vector<std::string>{"erin"});
  CHECK(r.users.files == std::vector<std::string>{path});
  CHECK(r.users.file_users == std::vector<std::string>{"alice", "bob", "carol", "dave"});
  CHECK(r.users.contains("dave"));
  const auto unread = only_rule(conf(line, ParseOptions{false}));
  CHECK(unread.users.file_users.empty());
  std::remove(path);
  // Missing file: an error at the item's column.
  const auto missing = conf("permit *=erin,/nonexistent/diode-users 192.0.2.0/24\n");
  CHECK_FALSE(missing.rs);
  CHECK(missing.errors().rfind("t.conf:1:15: error: cannot read user file '/nonexistent/diode-users'", 0) == 0);
  CHECK(conf("permit *=/nonexistent/x 192.0.2.0/24\n", ParseOptions{false}).rs.has_value());
}

TEST_CASE("CIDR, IPv6, names and zones", "[sockd][parse]") {
  const auto cidr = only_rule(conf("permit 192.0.2.0/24 198.51.100.0/25\n"));
  CHECK(cidr.src.masked.mask == v4("255.255.255.0"));
  CHECK(cidr.dst.masked.mask == v4("255.255.255.128"));
  CHECK(only_rule(conf("permit 0.0.0.0/0 ::/0\n")).dst.kind == AddressMatch::Kind::Any);

  const auto six = only_rule(conf("permit 2001:db8:1::/48 2001:db8::1 eq 80\n"));
  REQUIRE(six.src.kind == AddressMatch::Kind::Masked);
  CHECK(six.src.masked.addr.family == Family::V6);
  CHECK(six.src.masked.prefix_length() == 48u);
  CHECK(six.dst.masked.prefix_length() == 128u);
  CHECK(six.dst.masked.addr == v6("2001:db8::1"));

  // IPv4-mapped rules become IPv4, as the relay unmaps clients.
  const auto mapped = only_rule(conf("permit ::ffff:192.0.2.0/120\n"));
  CHECK(mapped.src.masked.addr == v4("192.0.2.0"));
  CHECK(mapped.src.masked.mask == v4("255.255.255.0"));

  const auto name = only_rule(conf("permit 192.0.2.0/24 Host.Example.TEST 0.0.0.0 eq 80\n"));
  CHECK(name.dst.kind == AddressMatch::Kind::Domain);
  CHECK(name.dst.domain == "host.example.test");
  CHECK_FALSE(name.dst.zone);
  CHECK(name.port.op == PortOp::Eq);
  const auto zone = only_rule(conf("deny 192.0.2.0/24 .example.test\n"));
  CHECK(zone.dst.zone);
  CHECK(zone.dst.domain == "example.test");
  const auto src_name = only_rule(conf("permit .lan.example.test 0.0.0.0 .example.test 0.0.0.0\n"));
  CHECK(src_name.src.kind == AddressMatch::Kind::Domain);
  CHECK(src_name.src.zone);
}

TEST_CASE("':' inside IPv6 stays in the address; elsewhere it starts the command", "[sockd][parse]") {
  const auto a = only_rule(conf("permit 192.0.2.0 255.255.255.0: /bin/echo x\n"));
  CHECK(a.src.masked.mask == v4("255.255.255.0"));
  CHECK(*a.shell_cmd == "/bin/echo x");
  const auto b = only_rule(conf("permit 2001:db8::/32 2001:db8::1: /bin/echo y\n"));
  CHECK(b.dst.masked.addr == v6("2001:db8::1"));
  CHECK(*b.shell_cmd == "/bin/echo y");
  const auto b2 = only_rule(conf("permit 2001:db8::1:/bin/echo z\n"));
  CHECK(b2.src.masked.addr == v6("2001:db8::1"));
  CHECK(*b2.shell_cmd == "/bin/echo z");
  CHECK(only_rule(conf("permit ::ffff:192.0.2.0/120:/bin/echo\n")).src.masked.addr == v4("192.0.2.0"));
  const auto c = only_rule(conf("deny 2001:db8::/32 : mail -s 'x # not a comment' root\n"));
  CHECK(*c.shell_cmd == "mail -s 'x # not a comment' root");
  // '#' before ':' makes the rest a comment, colon included.
  const auto d = only_rule(conf("deny 192.0.2.0/24 # comment: not a command\n"));
  CHECK_FALSE(d.shell_cmd.has_value());
  CHECK_FALSE(only_rule(conf("deny 192.0.2.0/24 :   \n")).shell_cmd.has_value());
}

TEST_CASE("#NO_IDENTD and #BAD_ID: the first of each is used", "[sockd][parse]") {
  const auto p = conf(
      "#NO_IDENTD: /bin/one %A\n"
      "# a comment\n"
      "#BAD_ID: /bin/bad %U %u\n"
      "#NO_IDENTD: /bin/two\n"
      "permit 0.0.0.0 0.0.0.0\n");
  REQUIRE(p.rs);
  REQUIRE(p.rs->no_identd);
  CHECK(p.rs->no_identd->shell_cmd == "/bin/one %A");
  CHECK(p.rs->no_identd->pos.line == 1);
  REQUIRE(p.rs->bad_id);
  CHECK(p.rs->bad_id->shell_cmd == "/bin/bad %U %u");
  CHECK(p.rs->rules.size() == 1);
}

TEST_CASE("blank lines, comments, tabs and CRLF", "[sockd][parse]") {
  const auto p = conf("\r\n  # comment\r\n\tpermit\t192.0.2.0\t255.255.255.0\teq\t80\r\n\n");
  REQUIRE(p.rs);
  REQUIRE(p.rs->rules.size() == 1);
  CHECK(p.rs->rules[0].pos.line == 3);
  CHECK(p.rs->rules[0].port.lo == 80);
  CHECK(conf("").rs->rules.empty());
}

TEST_CASE("errors name the line and the column of the offending token", "[sockd][parse]") {
  CHECK(error_of("allow 192.0.2.0/24\n") ==
        "t.conf:1:1: error: unknown action 'allow' (permit or deny)\n");
  CHECK(error_of("permit ?=x 192.0.2.0/24\n") == "t.conf:1:10: error: invalid ?= value 'x' (I, i or n)\n");
  CHECK(error_of("permit 192.0.2.0 eq 80\n") ==
        "t.conf:1:17: error: missing mask after address '192.0.2.0' (write a dotted-quad mask, or 192.0.2.0/len)\n");
  CHECK(error_of("permit 192.0.2.0\n").find("t.conf:1:17: error: missing mask") == 0);
  CHECK(error_of("permit 192.0.2.300 255.255.255.0\n") ==
        "t.conf:1:8: error: invalid IPv4 address '192.0.2.300'\n");
  CHECK(error_of("permit 192.0.2.0 255.255.256.0\n") == "t.conf:1:18: error: invalid mask '255.255.256.0'\n");
  CHECK(error_of("permit 192.0.2.0/33\n") == "t.conf:1:8: error: invalid prefix '192.0.2.0/33'\n");
  CHECK(error_of("permit 2001:db8::12345\n") == "t.conf:1:8: error: invalid IPv6 address '2001:db8::12345'\n");
  CHECK(error_of("permit 192.0.2.0/24 eq 65536\n") ==
        "t.conf:1:24: error: port 65536 out of range (must be below 65536)\n");
  CHECK(error_of("permit 192.0.2.0/24 eq no-such-service-x\n") ==
        "t.conf:1:24: error: unknown service 'no-such-service-x' (not a tcp service in /etc/services)\n");
  CHECK(error_of("permit 192.0.2.0/24 eq\n") == "t.conf:1:23: error: missing port after 'eq'\n");
  CHECK(error_of("permit 192.0.2.0/24 range 20-10\n") ==
        "t.conf:1:27: error: empty port range '20-10' (LO is above HI)\n");
  CHECK(error_of("permit 192.0.2.0/24 range 10\n").find("t.conf:1:27: error: invalid port range") == 0);
  CHECK(error_of("permit 192.0.2.0/24 198.51.100.0/24 eq 80 extra\n") ==
        "t.conf:1:43: error: unexpected 'extra' (too many fields)\n");
  CHECK(error_of("permit\n") == "t.conf:1:7: error: missing source address\n");
  CHECK(error_of("permit eq 80\n") == "t.conf:1:8: error: missing source address\n");
  CHECK(error_of("permit ?=I ?=i 192.0.2.0/24\n") == "t.conf:1:12: error: duplicate ?= field\n");
  CHECK(error_of("permit cmd=connect cmd=bind 192.0.2.0/24\n") == "t.conf:1:20: error: duplicate cmd= field\n");
  CHECK(error_of("permit cmd=connect,fly 192.0.2.0/24\n") ==
        "t.conf:1:20: error: unknown command 'fly' in cmd= (connect, bind, udp)\n");
  CHECK(error_of("permit auth=gssapi 192.0.2.0/24\n") ==
        "t.conf:1:13: error: unknown method 'gssapi' in auth= (none, userpass)\n");
  CHECK(error_of("permit iface=a/b 192.0.2.0/24\n") == "t.conf:1:14: error: invalid interface name 'a/b'\n");
  CHECK(error_of("permit *=a,,b 192.0.2.0/24\n") == "t.conf:1:12: error: empty item in *= list\n");
  CHECK(error_of("permit 192.0.2.0/24 cmd=connect\n") ==
        "t.conf:1:21: error: 'cmd=connect' must come before the address\n");
  CHECK(error_of("permit bad_name! 0.0.0.0\n") == "t.conf:1:8: error: invalid address or name 'bad_name!'\n");
  CHECK(error_of("permit .. 0.0.0.0\n") == "t.conf:1:8: error: invalid zone '..'\n");
  CHECK(error_of(": /bin/true\n") == "t.conf:1:1: error: shell command without a rule\n");
  CHECK(error_of("permit @=fw 192.0.2.0/24\n") == "t.conf:1:8: error: '@=' belongs in socks.conf, not sockd.conf\n");
}

TEST_CASE("line limits and binary data", "[sockd][parse]") {
  std::string ok = "permit 192.0.2.0/24 #";
  ok.resize(1023, 'x');
  CHECK(conf(ok + "\n").rs.has_value());
  std::string too_long = ok + "x";
  CHECK(error_of(too_long + "\n") ==
        "t.conf:1:1024: error: line is 1024 characters long; NEC SOCKS's limit of 1023 applies\n");
  CHECK(error_of(std::string("permit 192.0.2.0/24\0\n", 21)) ==
        "t.conf:1:20: error: binary data: control character 0x00 (is this a text file?)\n");
  CHECK(error_of("permit\x01 192.0.2.0/24\n").find("t.conf:1:7: error: binary data: control character 0x01") == 0);
}

TEST_CASE("every error of the file, then a cap at 100", "[sockd][parse]") {
  const auto two = conf("allow 192.0.2.0/24\npermit 192.0.2.0/24\ndeny 192.0.2.0 eq 1\n");
  CHECK_FALSE(two.rs);
  CHECK(two.diags.count(diode::platform::Severity::Error) == 2);
  CHECK(two.errors().find("t.conf:3:15:") != std::string::npos);
  std::string many;
  for (int i = 0; i < 150; ++i) many += "bogus\n";
  const auto p = conf(many);
  CHECK_FALSE(p.rs);
  REQUIRE(p.diags.items().size() == 101);
  CHECK(p.diags.items().back().message.find("too many errors") == 0);
  CHECK(p.diags.items().back().pos.line == 101);
  // One bad address with a mask is one error, not two.
  CHECK(conf("permit 192.0.2.256 255.255.255.0 198.51.100.0/24\n").diags.items().size() == 1);
}

TEST_CASE("parse_address_field and parse_port_operand for tools", "[sockd][parse]") {
  auto a = parse_address_field("192.0.2.0 255.255.255.0");
  REQUIRE(a);
  CHECK(a->masked.mask == v4("255.255.255.0"));
  CHECK(parse_address_field("2001:db8::/32")->masked.prefix_length() == 32u);
  CHECK(parse_address_field(".example.test")->zone);
  CHECK(parse_address_field("0.0.0.0 0.0.0.0")->kind == AddressMatch::Kind::Any);
  std::string err;
  CHECK_FALSE(parse_address_field("192.0.2.0", &err));
  CHECK(err.find("missing mask") == 0);
  CHECK_FALSE(parse_address_field("192.0.2.0/24 x", &err));
  CHECK(err == "unexpected 'x' after the address");
  CHECK(parse_port_operand("ftp") == std::uint16_t{21});
  CHECK(parse_port_operand("8080") == std::uint16_t{8080});
  CHECK_FALSE(parse_port_operand("70000"));
  CHECK_FALSE(parse_port_operand("nonexistent-svc"));
}

TEST_CASE("sockd.route: NEC lines, extensions, errors", "[sockd][parse][route]") {
  Diagnostics d;
  const auto rt = parse_sockd_route(
      "192.0.2.1      192.0.2.0   255.255.255.0\n"
      "198.51.100.1   203.0.113.0/24   # extension: CIDR\n"
      "eth1           2001:db8::/32\n"
      "2001:db8:2::1  .example.test 0.0.0.0\n"
      "198.51.100.1   0.0.0.0 0.0.0.0   # default\n",
      "r.route", d);
  INFO(d.format());
  REQUIRE(rt);
  REQUIRE(rt->routes.size() == 5);
  CHECK(rt->routes[0].egress_addr == v4("192.0.2.1"));
  CHECK(rt->routes[0].dst.masked.mask == v4("255.255.255.0"));
  CHECK(rt->routes[2].egress_iface == "eth1");
  CHECK_FALSE(rt->routes[2].egress_addr);
  CHECK(rt->routes[3].egress_addr == v6("2001:db8:2::1"));
  CHECK(rt->routes[3].dst.zone);
  CHECK(rt->routes[4].dst.kind == AddressMatch::Kind::Any);

  Diagnostics e;
  CHECK_FALSE(parse_sockd_route("192.0.2.1 192.0.2.0\n192.0.2.1\nbad/egress 0.0.0.0 0.0.0.0\n"
                                "192.0.2.1 0.0.0.0 0.0.0.0 extra\n",
                                "r.route", e));
  CHECK(e.format() ==
        "r.route:1:20: error: missing mask after address '192.0.2.0' (write a dotted-quad mask, or 192.0.2.0/len)\n"
        "r.route:2:10: error: missing destination address\n"
        "r.route:3:1: error: invalid egress 'bad/egress' (an interface address or an interface name)\n"
        "r.route:4:27: error: unexpected 'extra' (too many fields)\n");
}

TEST_CASE("socks.conf: NEC lines, server lists, errors", "[sockd][parse][client]") {
  Diagnostics d;
  const auto cs = parse_socks_conf(
      "deny   *=guest 203.0.113.0 255.255.255.0\n"
      "direct 192.0.2.0 255.255.255.0\n"
      "sockd @=fw1,192.0.2.1:1080,[2001:db8::1]:1080,2001:db8::2,fw2.example.test:1081 0.0.0.0 0.0.0.0 eq 80 : /bin/log %u\n"
      "sockd 0.0.0.0/0\n",
      "s.conf", d);
  INFO(d.format());
  REQUIRE(cs);
  REQUIRE(cs->rules.size() == 4);
  CHECK(cs->rules[0].action == ClientAction::Deny);
  CHECK(cs->rules[0].users.names == std::vector<std::string>{"guest"});
  CHECK(cs->rules[1].action == ClientAction::Direct);
  CHECK(cs->rules[2].action == ClientAction::Sockd);
  CHECK(cs->rules[2].servers ==
        std::vector<std::string>{"fw1", "192.0.2.1:1080", "[2001:db8::1]:1080", "2001:db8::2", "fw2.example.test:1081"});
  CHECK(cs->rules[2].port.lo == 80);
  CHECK(*cs->rules[2].shell_cmd == "/bin/log %u");
  CHECK(cs->rules[3].servers.empty());
  CHECK(cs->rules[3].dst.kind == AddressMatch::Kind::Any);

  Diagnostics e;
  CHECK_FALSE(parse_socks_conf("proxy 0.0.0.0 0.0.0.0\n"
                               "direct @=fw1 0.0.0.0 0.0.0.0\n"
                               "sockd @=fw1:99999 0.0.0.0 0.0.0.0\n"
                               "sockd ?=I 0.0.0.0 0.0.0.0\n"
                               "sockd\n",
                               "s.conf", e));
  CHECK(e.format() ==
        "s.conf:1:1: error: unknown action 'proxy' (deny, direct or sockd)\n"
        "s.conf:2:8: error: @= is only valid on sockd lines\n"
        "s.conf:3:9: error: invalid server 'fw1:99999' (name or address, optional :port, IPv6 as [addr]:port)\n"
        "s.conf:4:7: error: '?=' belongs in sockd.conf, not socks.conf\n"
        "s.conf:5:6: error: missing destination address\n");
}

TEST_CASE("socks.conf: cmd= (which requests a line applies to)", "[sockd][parse][client]") {
  Diagnostics d;
  const auto cs = parse_socks_conf("sockd cmd=udp,connect @=fw 0.0.0.0/0\n"
                                   "deny 203.0.113.0/24\n",
                                   "s.conf", d);
  REQUIRE(cs);
  CHECK(d.empty());
  CHECK(cs->rules[0].commands_given);
  CHECK(cs->rules[0].commands ==
        (static_cast<std::uint8_t>(RuleCommand::Udp) | static_cast<std::uint8_t>(RuleCommand::Connect)));
  CHECK_FALSE(cs->rules[1].commands_given);
  CHECK(cs->rules[1].commands == kAllCommands);
  Diagnostics e;
  CHECK_FALSE(parse_socks_conf("sockd cmd=fly 0.0.0.0/0\nsockd cmd=udp cmd=bind 0.0.0.0/0\n", "s.conf", e));
  CHECK(e.format() ==
        "s.conf:1:11: error: unknown command 'fly' in cmd= (connect, bind, udp)\n"
        "s.conf:2:15: error: duplicate cmd= field\n");
}

TEST_CASE("load_*: missing, directory and readable files", "[sockd][parse]") {
  Diagnostics d;
  CHECK_FALSE(load_sockd_conf("/nonexistent/diode/sockd.conf", d));
  CHECK(d.format() == "/nonexistent/diode/sockd.conf: error: cannot open: No such file or directory\n");
  Diagnostics e;
  CHECK_FALSE(load_sockd_route("/tmp", e));
  CHECK(e.format() == "/tmp: error: is a directory, not a file\n");
  char path[] = "/tmp/diode-conf-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string body = "permit 192.0.2.0/24\n";
  REQUIRE(write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size()));
  close(fd);
  Diagnostics f;
  const auto rs = load_sockd_conf(path, f);
  REQUIRE(rs);
  CHECK(rs->file == path);
  CHECK(rs->rules.at(0).pos.file == path);
  CHECK(load_socks_conf(path, f).has_value() == false);  // `permit` is not a socks.conf action
  std::remove(path);
}

TEST_CASE("load_*: a file over 64 MiB is one error", "[sockd][parse]") {
  char path[] = "/tmp/diode-big-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, 64LL * 1024 * 1024 + 1) == 0);  // sparse: no disk used
  close(fd);
  Diagnostics d;
  CHECK_FALSE(load_socks_conf(path, d));
  CHECK(d.items().size() == 1);
  CHECK(d.format().find("file too large") != std::string::npos);
  std::remove(path);
}

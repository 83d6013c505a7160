// Every ```sockd.conf, ```sockd.route and ```socks.conf example in the docs
// must parse clean, and the documented gateway example must decide as its
// comments say.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "diode/sockd/engine.hpp"
#include "diode/sockd/parse.hpp"

using namespace diode::sockd;
using diode::platform::Diagnostics;

namespace {

std::string read_doc(const std::string& name) {
  std::ifstream in(std::string(DIODE_SOURCE_DIR) + "/docs/" + name);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The bodies of the fenced blocks tagged `tag` in a Markdown text.
std::vector<std::string> blocks(const std::string& md, const std::string& tag) {
  std::vector<std::string> out;
  const std::string open = "```" + tag + "\n";
  std::size_t pos = 0;
  while ((pos = md.find(open, pos)) != std::string::npos) {
    const std::size_t start = pos + open.size();
    const std::size_t end = md.find("\n```", start - 1);
    REQUIRE(end != std::string::npos);
    out.push_back(md.substr(start, end + 1 - start));
    pos = end + 4;
  }
  return out;
}

}  // namespace

TEST_CASE("docs: every sockd.conf example parses clean", "[sockd][docs]") {
  const auto bs = blocks(read_doc("sockd.conf.md"), "sockd.conf");
  REQUIRE(bs.size() >= 2);
  for (const auto& b : bs) {
    Diagnostics d;
    const auto rs = parse_sockd_conf(b, "sockd.conf.md", d, ParseOptions{false});
    INFO(b << d.format());
    CHECK(rs.has_value());
    CHECK(d.empty());
  }
}

TEST_CASE("docs: the gateway example decides as documented", "[sockd][docs]") {
  const auto bs = blocks(read_doc("sockd.conf.md"), "sockd.conf");
  REQUIRE(bs.size() >= 2);
  Diagnostics d;
  auto rs = parse_sockd_conf(bs[1], "sockd.conf.md", d, ParseOptions{false});
  REQUIRE(rs);
  const Engine engine(std::make_shared<const RuleSet>(std::move(*rs)));
  const auto ip = [](const char* s) { return *diode::platform::IpAddress::parse(s); };
  RuleRequest q;
  q.src_addr = ip("192.0.2.10");
  q.user = "carol";
  q.dst_addr = ip("198.51.100.5");
  q.dst_port = 80;
  CHECK(engine.decide(q).verdict == Verdict::Permit);  // web for everyone
  q.dst_port = 8080;
  auto dec = engine.decide(q);
  CHECK(dec.verdict == Verdict::Deny);  // the final logged deny
  REQUIRE(dec.command);
  CHECK(*dec.command == "/usr/bin/logger -t sockd 'refused carol@192.0.2.10 to 198.51.100.5:8080'");
  q.dst_addr = ip("192.0.2.20");
  q.dst_port = 80;
  CHECK(engine.decide(q).rule_index == std::size_t{0});  // nobody reaches the LAN
  q.user = "alice";
  q.command = RuleCommand::Bind;
  q.dst_addr = ip("203.0.113.9");
  q.dst_port = 20;
  dec = engine.decide(q);  // staff BIND with identd
  CHECK(dec.verdict == Verdict::Permit);
  CHECK(dec.ident_required);
  q.ident = IdentResult::Unreachable;
  CHECK(engine.decide(q).reason == DenyReason::IdentUnreachable);
  RuleRequest web6;
  web6.src_addr = ip("2001:db8:1::10");
  web6.dst_addr = ip("2001:db8:2::80");
  web6.dst_port = 443;
  CHECK(engine.decide(web6).verdict == Verdict::Permit);
  RuleRequest named;
  named.src_addr = ip("192.0.2.10");
  named.dst_name = "www.example.test";
  named.dst_port = 443;
  CHECK(engine.decide(named).verdict == Verdict::Permit);
  RuleRequest mail;
  mail.src_addr = ip("192.0.2.17");  // .17 & .15 == .1 & .15
  mail.dst_addr = ip("198.51.100.25");
  mail.dst_port = 25;
  CHECK(engine.decide(mail).verdict == Verdict::Permit);
  mail.src_addr = ip("192.0.2.18");
  CHECK(engine.decide(mail).verdict == Verdict::Deny);
}

TEST_CASE("docs: every sockd.route example parses clean", "[sockd][docs]") {
  const auto bs = blocks(read_doc("sockd.route.md"), "sockd.route");
  REQUIRE(bs.size() >= 2);
  for (const auto& b : bs) {
    Diagnostics d;
    INFO(b);
    CHECK(parse_sockd_route(b, "sockd.route.md", d).has_value());
    CHECK(d.empty());
  }
}

TEST_CASE("docs: every socks.conf example parses clean", "[sockd][docs]") {
  const auto bs = blocks(read_doc("socks.conf.md"), "socks.conf");
  REQUIRE(bs.size() >= 2);
  for (const auto& b : bs) {
    Diagnostics d;
    INFO(b << d.format());
    CHECK(parse_socks_conf(b, "socks.conf.md", d, ParseOptions{false}).has_value());
    CHECK(d.empty());
  }
}

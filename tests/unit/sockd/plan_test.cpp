// The session plan without sockets: facts and outcomes in, steps out. This
// test links diode::sockd_plan only (no Asio, no c-ares): the plan is the
// one place sockd and sockd-check simulate decide.
#include <catch2/catch.hpp>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "diode/platform/config.hpp"
#include "diode/sockd/log.hpp"
#include "diode/sockd/parse.hpp"
#include "diode/sockd/plan.hpp"

using namespace diode;
using namespace diode::sockd;
using platform::IpAddress;

namespace {

IpAddress ip(const char* text) {
  auto a = IpAddress::parse(text);
  REQUIRE(a);
  return *a;
}

platform::GatewayConfig default_config() {
  platform::Diagnostics d;
  auto c = platform::parse_gateway_config(platform::embedded_default_config(), "test.toml", d);
  REQUIRE(c);
  return *c;
}

std::shared_ptr<RelayPolicy> policy_from(std::string_view conf, std::string_view route = {},
                                    platform::IdentdMode global = platform::IdentdMode::Off) {
  platform::Diagnostics d;
  auto rules = parse_sockd_conf(conf, "sockd.conf", d);
  INFO(d.format());
  REQUIRE(rules);
  std::shared_ptr<const RouteTable> rt;
  if (!route.empty()) {
    auto r = parse_sockd_route(route, "sockd.route", d);
    INFO(d.format());
    REQUIRE(r);
    rt = std::make_shared<const RouteTable>(std::move(*r));
  }
  auto p = std::make_shared<RelayPolicy>();
  p->engine = std::make_shared<const Engine>(std::make_shared<const RuleSet>(std::move(*rules)), rt);
  const auto cfg = default_config();
  p->protect = protected_destinations(cfg);
  p->settings = cfg.sockd;
  p->global_ident = global == platform::IdentdMode::Strict ? IdentMode::Strict : IdentMode::Off;
  return p;
}

RuleRequest request(const char* src, std::uint16_t port, RuleCommand cmd = RuleCommand::Connect) {
  RuleRequest q;
  q.src_addr = ip(src);
  q.src_port = 40000;
  q.dst_port = port;
  q.command = cmd;
  return q;
}

}  // namespace

TEST_CASE("plan: an address is decided at once; the winner is connected", "[sockd][plan]") {
  const auto p = policy_from(
      "deny 0.0.0.0 0.0.0.0 198.51.100.9 255.255.255.255\n"
      "permit 192.0.2.0 255.255.255.0 : /bin/echo %u to %z\n",
      "198.51.100.1 198.51.100.0 255.255.255.0\n");
  RuleRequest q = request("192.0.2.10", 443);
  q.user = "alice";
  q.dst_addr = ip("198.51.100.7");
  SessionPlan plan(*p, q);
  REQUIRE(plan.step() == PlanStep::Connect);
  REQUIRE(plan.candidates().size() == 1);
  CHECK(plan.candidates()[0].check.route->egress_addr == ip("198.51.100.1"));
  plan.connected(0);
  REQUIRE(plan.step() == PlanStep::Relay);
  REQUIRE(plan.decided() != nullptr);
  const auto hooks = hooks_of(*plan.decided());
  REQUIRE(hooks.size() == 1);
  CHECK(hooks[0].first == "/bin/echo alice to 198.51.100.7");
  CHECK(hooks[0].second == "sockd.conf:2");
  SessionRecord rec;
  plan.describe(rec);
  CHECK(rec.verdict == "permit");
  CHECK(rec.rule == "sockd.conf:2");
  CHECK(rec.addr == "198.51.100.7:443");

  q.dst_addr = ip("198.51.100.9");
  SessionPlan denied(*p, q);
  REQUIRE(denied.step() == PlanStep::Deny);
  CHECK(denied.reply() == proto::ReplyKind::NotAllowed);
  CHECK(denied.reason() == "denied by rule");
  denied.describe(rec);
  CHECK(rec.verdict == "deny");
  CHECK(rec.rule == "sockd.conf:1");
  CHECK(rec.addr == "198.51.100.9:443");
}

TEST_CASE("plan: names are looked up; a refused address does not stop a permitted one",
          "[sockd][plan]") {
  const auto p = policy_from(
      "deny 0.0.0.0 0.0.0.0 198.51.100.9 255.255.255.255\n"
      "permit 192.0.2.0 255.255.255.0 198.51.100.0 255.255.255.0 : /bin/echo v4 %z\n"
      "permit 192.0.2.0 255.255.255.0 2001:db8:2::/48 : /bin/echo v6 %z\n");
  RuleRequest q = request("192.0.2.10", 80);
  q.dst_name = "www.example.test";
  SessionPlan plan(*p, q);
  REQUIRE(plan.step() == PlanStep::Resolve);
  CHECK(plan.name() == "www.example.test");
  plan.resolved({ip("198.51.100.9"), ip("198.51.100.7"), ip("198.51.100.8"), ip("2001:db8:2::7")});
  REQUIRE(plan.step() == PlanStep::Connect);
  // Happy eyeballs: IPv6 first, families interleaved, DNS order kept per family.
  REQUIRE(plan.candidates().size() == 3);
  CHECK(plan.candidates()[0].addr == ip("2001:db8:2::7"));
  CHECK(plan.candidates()[1].addr == ip("198.51.100.7"));
  CHECK(plan.candidates()[2].addr == ip("198.51.100.8"));
  // The IPv4 address wins the race: its rule is logged and its hook runs,
  // not the hook of the first permitted address.
  plan.connected(1);
  REQUIRE(plan.step() == PlanStep::Relay);
  CHECK(plan.decided()->rule->pos.line == 2);
  CHECK(hooks_of(*plan.decided()).at(0).first == "/bin/echo v4 198.51.100.7");
  SessionRecord rec;
  plan.describe(rec);
  CHECK(rec.rule == "sockd.conf:2");
  CHECK(rec.addr == "198.51.100.7:80");

  SessionPlan none(*p, q);
  none.resolved({}, "Domain name not found");
  REQUIRE(none.step() == PlanStep::Deny);
  CHECK(none.reply() == proto::ReplyKind::HostUnreachable);
  CHECK(none.reason() == "cannot resolve: Domain name not found");
  CHECK(none.decided() == nullptr);
  SessionRecord r2;
  none.describe(r2);
  CHECK(r2.verdict.empty());  // not a verdict of the rules: counted as unresolved
}

TEST_CASE("plan: every connection fails", "[sockd][plan]") {
  const auto p = policy_from("permit 192.0.2.0 255.255.255.0\n");
  RuleRequest q = request("192.0.2.10", 80);
  q.dst_addr = ip("198.51.100.7");
  SessionPlan plan(*p, q);
  REQUIRE(plan.step() == PlanStep::Connect);
  plan.connect_failed(0, ECONNREFUSED, false);
  REQUIRE(plan.step() == PlanStep::Failed);
  CHECK(plan.reply() == proto::ReplyKind::Refused);
  SessionRecord rec;
  plan.describe(rec);
  CHECK(rec.event == "failed");
  CHECK(rec.verdict == "permit");
  CHECK(rec.rule == "sockd.conf:1");
  SessionPlan late(*p, q);
  late.connect_failed(0, ECONNREFUSED, true);
  CHECK(late.reply() == proto::ReplyKind::TtlExpired);
}

TEST_CASE("plan: identd is asked once, only for a permit that needs it", "[sockd][plan]") {
  const auto p = policy_from(
      "#NO_IDENTD: /bin/echo no identd on %a\n"
      "#BAD_ID: /bin/echo %U is not %u\n"
      "permit ?=I 192.0.2.0 255.255.255.0\n");
  RuleRequest q = request("192.0.2.10", 80);
  q.user = "alice";
  q.dst_name = "www.example.test";
  SessionPlan plan(*p, q);
  plan.resolved({ip("198.51.100.7"), ip("198.51.100.8")});
  REQUIRE(plan.step() == PlanStep::AskIdent);
  CHECK(plan.user() == "alice");
  plan.ident(IdentResult::Ok, "alice");
  REQUIRE(plan.step() == PlanStep::Connect);  // not asked again for the second address
  CHECK(plan.candidates().size() == 2);

  SessionPlan bad(*p, q);
  bad.resolved({ip("198.51.100.7")});
  bad.ident(IdentResult::Mismatch, "mallory");
  REQUIRE(bad.step() == PlanStep::Deny);
  CHECK(bad.reply() == proto::ReplyKind::IdentMismatch);
  CHECK(hooks_of(*bad.decided()).at(0).first == "/bin/echo mallory is not alice");

  SessionPlan gone(*p, q);
  gone.resolved({ip("198.51.100.7")});
  gone.ident(IdentResult::Unreachable, "");
  REQUIRE(gone.step() == PlanStep::Deny);
  CHECK(gone.reply() == proto::ReplyKind::IdentUnreachable);
  CHECK(proto::to_socks4(gone.reply()) == proto::Socks4Reply::IdentUnreachable);
}

TEST_CASE("plan: protect_internal takes the host's addresses as an input", "[sockd][plan]") {
  auto p = policy_from("permit 192.0.2.0 255.255.255.0\n");
  auto host = std::make_shared<HostAddresses>();
  host->publish({ip("203.0.113.77")});
  p->protect.host = host;
  RuleRequest q = request("192.0.2.10", 22);
  q.dst_addr = ip("203.0.113.77");
  SessionPlan plan(*p, q);
  REQUIRE(plan.step() == PlanStep::Deny);
  CHECK(plan.reason() == "protected destination");
  host->publish({});
  SessionPlan now(*p, q);
  CHECK(now.step() == PlanStep::Connect);
}

TEST_CASE("plan: routes by address family; no route is network unreachable", "[sockd][plan]") {
  const auto p = policy_from("permit 192.0.2.0 255.255.255.0\n",
                             "198.51.100.1 198.51.100.0 255.255.255.0\n"
                             "eth9 2001:db8:2::/48\n");
  RuleRequest q = request("192.0.2.10", 80);
  q.dst_name = "dual.example.test";
  SessionPlan plan(*p, q);
  plan.resolved({ip("2001:db8:2::7"), ip("198.51.100.7"), ip("203.0.113.9")});
  REQUIRE(plan.step() == PlanStep::Connect);
  REQUIRE(plan.candidates().size() == 2);
  CHECK(plan.candidates()[0].check.route->egress_iface == "eth9");
  CHECK(plan.candidates()[1].check.route->egress_addr == ip("198.51.100.1"));
  RuleRequest lone = request("192.0.2.10", 80);
  lone.dst_addr = ip("203.0.113.9");
  SessionPlan nr(*p, lone);
  REQUIRE(nr.step() == PlanStep::Deny);
  CHECK(nr.reply() == proto::ReplyKind::NetUnreachable);
}

TEST_CASE("plan: BIND accepts only the expected peer", "[sockd][plan]") {
  const auto p = policy_from("permit 192.0.2.0 255.255.255.0\n");
  RuleRequest q = request("192.0.2.10", 0, RuleCommand::Bind);
  q.dst_addr = ip("198.51.100.7");
  SessionPlan plan(*p, q);
  REQUIRE(plan.step() == PlanStep::Bind);
  CHECK_FALSE(plan.bind_peer_ok(ip("198.51.100.8")));
  CHECK(plan.bind_peer_ok(ip("::ffff:198.51.100.7")));
  plan.bind_accepted(ip("198.51.100.8"));
  CHECK(plan.step() == PlanStep::Bind);
  plan.bind_accepted(ip("198.51.100.7"));
  CHECK(plan.step() == PlanStep::Relay);
  SessionPlan late(*p, q);
  late.failed(proto::ReplyKind::TtlExpired, "bind: no connection in time");
  SessionRecord rec;
  late.describe(rec);
  CHECK(rec.event == "failed");
  CHECK(rec.reason == "bind: no connection in time");
  CHECK(rec.rule == "sockd.conf:1");
}

TEST_CASE("plan: UDP association and its datagrams", "[sockd][plan]") {
  const auto p = policy_from(
      "permit cmd=udp 192.0.2.0 255.255.255.0 198.51.100.0 255.255.255.0\n"
      "permit 192.0.2.0 255.255.255.0\n");
  RuleRequest q = request("192.0.2.10", 0, RuleCommand::Udp);
  q.dst_addr = ip("0.0.0.0");
  SessionPlan assoc(*p, q);
  CHECK(assoc.step() == PlanStep::Associate);
  RuleRequest d = request("192.0.2.10", 53, RuleCommand::Udp);
  d.dst_addr = ip("198.51.100.7");
  SessionPlan dg(*p, d, SessionPlan::Mode::Datagram);
  REQUIRE(dg.step() == PlanStep::Send);
  CHECK(dg.target() == ip("198.51.100.7"));
  CHECK(dg.decided()->rule->pos.line == 1);
  d.dst_addr = ip("203.0.113.7");
  SessionPlan other(*p, d, SessionPlan::Mode::Datagram);
  REQUIRE(other.step() == PlanStep::Deny);
  CHECK(other.reason() == "udp needs a rule with cmd=udp");
  const auto tcp_only = policy_from("permit 192.0.2.0 255.255.255.0\n");
  SessionPlan refused(*tcp_only, q);
  REQUIRE(refused.step() == PlanStep::Deny);
  SessionRecord rec;
  refused.describe(rec);
  CHECK(rec.verdict == "deny");
  CHECK(rec.rule.empty());
}

TEST_CASE("plan: methods, SOCKS4 and the limits", "[sockd][plan]") {
  platform::SockdSettings s;
  s.methods = {platform::SocksMethod::UserPass};
  auto o = handshake_options(s, true);
  CHECK_FALSE(o.allow_no_auth);  // SOCKS4 refused
  CHECK(o.allow_user_pass);
  CHECK_FALSE(handshake_options(s, false).allow_user_pass);  // no users file
  s.methods = {platform::SocksMethod::None, platform::SocksMethod::UserPass};
  o = handshake_options(s, true);
  CHECK(o.allow_no_auth);
  CHECK_FALSE(o.prefer_user_pass);
  s.methods = {platform::SocksMethod::UserPass, platform::SocksMethod::None};
  CHECK(handshake_options(s, true).prefer_user_pass);
  CHECK(handshake_denied(proto::Failure::Socks4NeedsNoAuth));
  CHECK_FALSE(handshake_denied(proto::Failure::WrongVersion));
  s.max_sessions = 10;
  s.max_sessions_per_client = 2;
  CHECK(limit_refusal(3, 1, s) == nullptr);
  CHECK(std::string(limit_refusal(3, 2, s)) == "per-client session limit");
  CHECK(std::string(limit_refusal(10, 0, s)) == "session limit");
}

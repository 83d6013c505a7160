// Deciding requests: NEC's regression examples, each field's test, identd,
// routes, and the compiled Engine against the linear reference on random
// rule sets.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <string>

#include "diode/sockd/engine.hpp"
#include "diode/sockd/parse.hpp"
#include "diode/sockd/rule_hits.hpp"

using namespace diode::sockd;
using diode::platform::Diagnostics;
using diode::platform::IpAddress;

namespace {

RuleSet parse_ok(std::string_view text) {
  Diagnostics d;
  auto rs = parse_sockd_conf(text, "t.conf", d, ParseOptions{false});
  INFO(d.format());
  REQUIRE(rs.has_value());
  return *rs;
}

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

RuleRequest req(const char* user, const char* src, const char* dst, std::uint16_t port) {
  RuleRequest q;
  q.user = user;
  q.src_addr = ip(src);
  q.dst_addr = ip(dst);
  q.dst_port = port;
  return q;
}

// NEC's own regression file (socks-anchors.md §1.2), addresses as NEC wrote
// them: this is data for the matcher only, no packet is ever sent.
constexpr const char* kNecConf =
    "deny    *=bonnie,clyde 128.12.6.0 255.255.255.0 : /usr/ucb/mail -s 'Rejected SOCKS access by %u' $USER\n"
    "permit  *=ylee 128.12.6.4 255.255.255.255 137.12.0.0 255.255.0.0\n"
    "deny    128.12.0.0 255.255.0.0 eq telnet\n"
    "permit  128.12.0.0 255.255.0.0\n"
    "#NO_IDENTD: /usr/ucb/mail -s 'please run identd on %A' $USER\n"
    "#BAD_ID: /usr/ucb/mail -s '%U pretends to be %u on %A' $USER\n";

constexpr const char* kNecRoute =
    "129.10.1.2      10.0.0.0   255.0.0.0\n"
    "129.10.7.10     137.12.0.0 255.255.0.0\n"
    "129.10.254.1    0.0.0.0    0.0.0.0        # default interface\n";

}  // namespace

TEST_CASE("NEC regression examples decide as NEC did", "[sockd][engine][nec]") {
  auto rs = std::make_shared<const RuleSet>(parse_ok(kNecConf));
  Diagnostics d;
  auto rt = parse_sockd_route(kNecRoute, "t.route", d);
  REQUIRE(rt);
  const Engine engine(rs, std::make_shared<const RouteTable>(*rt));

  // clyde → ftp: line 1, denied, the mail command expanded with %u.
  auto q = req("clyde", "128.12.6.34", "112.3.24.1", 21);
  auto dec = engine.decide(q);
  CHECK(dec.verdict == Verdict::Deny);
  CHECK(dec.reason == DenyReason::Rule);
  CHECK(dec.rule_index == std::size_t{0});
  REQUIRE(dec.command);
  CHECK(*dec.command == "/usr/ucb/mail -s 'Rejected SOCKS access by clyde' $USER");

  // ylee → telnet at 137.12.4.15: line 2, permitted, routed by route line 2.
  dec = engine.decide(req("ylee", "128.12.6.4", "137.12.4.15", 23));
  CHECK(dec.verdict == Verdict::Permit);
  CHECK(dec.rule_index == std::size_t{1});
  REQUIRE(dec.route);
  CHECK(dec.route->pos.line == 2);
  CHECK_FALSE(dec.ident_required);

  // jane → telnet: line 3.
  dec = engine.decide(req("jane", "128.12.2.13", "137.12.4.15", 23));
  CHECK(dec.verdict == Verdict::Deny);
  CHECK(dec.rule_index == std::size_t{2});

  // don from outside: no line matches.
  dec = engine.decide(req("don", "23.2.6.127", "137.12.4.15", 23));
  CHECK(dec.verdict == Verdict::Deny);
  CHECK(dec.reason == DenyReason::NoMatch);
  CHECK(dec.rule == nullptr);

  // -I with identd unreachable: line 4, then #NO_IDENTD, denied.
  q = req("jane", "128.12.2.13", "137.12.4.15", 21);
  q.ident = IdentResult::Unreachable;
  dec = engine.decide(q, IdentMode::Strict);
  CHECK(dec.verdict == Verdict::Deny);
  CHECK(dec.reason == DenyReason::IdentUnreachable);
  CHECK(dec.rule_index == std::size_t{3});
  REQUIRE(dec.ident_hook);
  CHECK(dec.ident_hook->pos.line == 5);

  // -i (lenient) with identd unreachable: permitted, the hook still fires.
  dec = engine.decide(q, IdentMode::Lenient);
  CHECK(dec.verdict == Verdict::Permit);
  REQUIRE(dec.ident_hook);
  CHECK(dec.ident_hook->pos.line == 5);
  CHECK(dec.ident_required);

  // -B (bad id): #BAD_ID, denied under either mode.
  q.ident = IdentResult::Mismatch;
  q.ident_user = "mallory";
  for (const IdentMode m : {IdentMode::Strict, IdentMode::Lenient}) {
    dec = engine.decide(q, m);
    CHECK(dec.verdict == Verdict::Deny);
    CHECK(dec.reason == DenyReason::IdentMismatch);
    REQUIRE(dec.ident_hook);
    CHECK(dec.ident_hook->pos.line == 6);
  }
  // identd off: the identd result does not matter.
  dec = engine.decide(q, IdentMode::Off);
  CHECK(dec.verdict == Verdict::Permit);
  CHECK(dec.ident_hook == nullptr);

  // Not asked yet under -I: permitted, but the relay must ask first.
  q.ident = IdentResult::NotAsked;
  dec = engine.decide(q, IdentMode::Strict);
  CHECK(dec.verdict == Verdict::Permit);
  CHECK(dec.ident_required);
}

TEST_CASE("a rule's ?= overrides the global identd mode", "[sockd][engine]") {
  const Engine engine(std::make_shared<const RuleSet>(parse_ok(
      "permit ?=n 192.0.2.0/25\npermit ?=I 192.0.2.128/25\n#NO_IDENTD: /bin/hook\n")));
  auto q = req("u", "192.0.2.10", "198.51.100.1", 80);
  q.ident = IdentResult::Unreachable;
  CHECK(engine.decide(q, IdentMode::Strict).verdict == Verdict::Permit);
  q.src_addr = ip("192.0.2.200");
  const auto dec = engine.decide(q, IdentMode::Off);
  CHECK(dec.reason == DenyReason::IdentUnreachable);
  REQUIRE(dec.ident_hook);
  CHECK(dec.ident_hook->shell_cmd == "/bin/hook");
}

TEST_CASE("no route for a permitted request denies it", "[sockd][engine][route]") {
  Diagnostics d;
  const auto rt = parse_sockd_route("192.0.2.1 198.51.100.0/24\neth2 .example.test\n", "t.route", d);
  REQUIRE(rt);
  const Engine engine(std::make_shared<const RuleSet>(parse_ok("permit 0.0.0.0/0\n")),
                      std::make_shared<const RouteTable>(*rt));
  auto dec = engine.decide(req("u", "192.0.2.10", "203.0.113.5", 80));
  CHECK(dec.verdict == Verdict::Deny);
  CHECK(dec.reason == DenyReason::NoRoute);
  CHECK(dec.rule_index == std::size_t{0});
  dec = engine.decide(req("u", "192.0.2.10", "198.51.100.5", 80));
  CHECK(dec.verdict == Verdict::Permit);
  REQUIRE(dec.route);
  CHECK(dec.route->egress_addr == ip("192.0.2.1"));
  RuleRequest named;
  named.src_addr = ip("192.0.2.10");
  named.dst_name = "www.Example.test.";
  dec = engine.decide(named);
  REQUIRE(dec.route);
  CHECK(dec.route->egress_iface == "eth2");
}

TEST_CASE("rule_matches names the first field that fails", "[sockd][engine]") {
  const auto rs = parse_ok(
      "permit iface=eth1 cmd=bind auth=userpass *=alice 192.0.2.0/24 198.51.100.0/24 eq 80\n");
  const Rule& r = rs.rules[0];
  RuleRequest q = req("alice", "192.0.2.7", "198.51.100.9", 80);
  q.iface = "eth1";
  q.command = RuleCommand::Bind;
  q.method = AuthMethod::UserPass;
  Field f = Field::Iface;
  CHECK(rule_matches(r, q, &f));
  CHECK(f == Field::None);
  const auto fails_at = [&](RuleRequest x) {
    Field g = Field::None;
    CHECK_FALSE(rule_matches(r, x, &g));
    return g;
  };
  RuleRequest x = q;
  x.iface = "eth0";
  CHECK(fails_at(x) == Field::Iface);
  x = q;
  x.command = RuleCommand::Connect;
  CHECK(fails_at(x) == Field::Command);
  x = q;
  x.method = AuthMethod::None;
  CHECK(fails_at(x) == Field::Method);
  x = q;
  x.user = "bob";
  CHECK(fails_at(x) == Field::User);
  x = q;
  x.src_addr = ip("203.0.113.1");
  CHECK(fails_at(x) == Field::Src);
  x = q;
  x.dst_addr = ip("203.0.113.1");
  CHECK(fails_at(x) == Field::Dst);
  x = q;
  x.dst_port = 81;
  CHECK(fails_at(x) == Field::Port);
  // The order is fixed: a request failing several fields reports the first.
  x.user = "bob";
  x.iface = "eth9";
  CHECK(fails_at(x) == Field::Iface);

  const auto trace = explain(parse_ok("deny 203.0.113.0/24\npermit *=bob 0.0.0.0/0\npermit 192.0.2.0/24\n"
                                      "deny 0.0.0.0/0\n"),
                             q);
  REQUIRE(trace.size() == 3);
  CHECK(trace[0].stopped_by == Field::Src);
  CHECK(trace[1].stopped_by == Field::User);
  CHECK(trace[2].matched);
  CHECK(trace[2].rule_index == 2);
}

TEST_CASE("address kinds: masks, families, names, zones", "[sockd][engine]") {
  const auto rs = parse_ok(
      "permit 0.0.0.0 0.0.0.0 192.0.2.0 255.255.0.255 eq 1\n"  // non-contiguous: 192.0.*.0
      "permit 0.0.0.0/0 2001:db8::/32 eq 2\n"
      "permit 0.0.0.0/0 host.example.test eq 3\n"
      "permit 0.0.0.0/0 .example.test eq 4\n"
      "permit 0.0.0.0/0 eq 5\n"
      "permit 192.0.2.0 255.255.255.0 eq 6\n"
      "permit .lan.example.test 0.0.0.0 eq 7\n");
  const auto first = [&](RuleRequest q) { return first_match_linear(rs, q); };
  RuleRequest q;
  q.src_addr = ip("192.0.2.9");
  q.dst_port = 1;
  q.dst_addr = ip("192.0.77.0");
  CHECK(first(q) == std::size_t{0});
  q.dst_addr = ip("192.0.77.1");
  CHECK(first(q) == std::nullopt);
  q.dst_port = 2;
  q.dst_addr = ip("2001:db8:5::1");
  CHECK(first(q) == std::size_t{1});
  q.dst_addr = ip("2001:db9::1");
  CHECK(first(q) == std::nullopt);
  // Names: exact, case-insensitive, trailing dot; zones match themselves and below.
  q.dst_addr.reset();
  q.dst_port = 3;
  q.dst_name = "HOST.example.test.";
  CHECK(first(q) == std::size_t{2});
  q.dst_name = "other.example.test";
  CHECK(first(q) == std::nullopt);
  q.dst_port = 4;
  CHECK(first(q) == std::size_t{3});
  q.dst_name = "example.test";
  CHECK(first(q) == std::size_t{3});
  q.dst_name = "badexample.test";
  CHECK(first(q) == std::nullopt);
  // A name-only request matches an any-destination rule but no address rule.
  q.dst_port = 5;
  CHECK(first(q) == std::size_t{4});
  q.dst_port = 1;
  CHECK(first(q) == std::nullopt);
  // An address-only request never matches a name rule.
  q.dst_name.reset();
  q.dst_addr = ip("198.51.100.3");
  q.dst_port = 3;
  CHECK(first(q) == std::nullopt);
  // IPv4-mapped clients are matched as IPv4.
  q.dst_port = 6;
  q.src_addr = ip("::ffff:192.0.2.44");
  CHECK(first(q) == std::size_t{5});
  q.src_addr = ip("2001:db8::44");
  CHECK(first(q) == std::nullopt);
  // Source names, when the relay knows them.
  q.dst_port = 7;
  CHECK(first(q) == std::nullopt);
  q.src_name = "pc1.LAN.example.test";
  CHECK(first(q) == std::size_t{6});
  Engine e(std::make_shared<const RuleSet>(rs));
  CHECK(e.first_match(q) == std::size_t{6});
}

namespace {

// Small pools so random rules and requests meet often.
struct Gen {
  std::mt19937_64 rng;
  explicit Gen(std::uint64_t seed) : rng(seed) {}
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
  bool coin(unsigned percent) { return pick(100) < percent; }

  IpAddress v4() {
    static const char* const nets[] = {"192.0.2.", "198.51.100.", "203.0.113."};
    static const int hosts[] = {0, 1, 7, 128, 129, 200, 255};
    return ip((std::string(nets[pick(3)]) + std::to_string(hosts[pick(7)])).c_str());
  }
  IpAddress v6() {
    static const char* const addrs[] = {"2001:db8::1", "2001:db8::2", "2001:db8:1::1", "2001:db8:1:2::7",
                                        "2001:db8:ffff::1", "2001:db9::1"};
    return ip(addrs[pick(6)]);
  }
  std::string name() {
    static const char* const names[] = {"example.test", "a.example.test", "b.example.test",
                                        "x.a.example.test", "other.test", "test"};
    return names[pick(6)];
  }
  IpAddress v4_mask() {
    static const char* const masks[] = {"255.255.255.255", "255.255.255.0", "255.255.0.0", "255.0.0.0",
                                        "255.255.255.128", "255.0.255.0", "0.255.255.255",
                                        "255.255.0.255", "0.0.0.255", "128.0.0.1"};
    if (coin(15)) return IpAddress::v4(static_cast<std::uint32_t>(rng()));  // arbitrary bits
    return ip(masks[pick(10)]);
  }
  AddressMatch side(bool allow_names) {
    AddressMatch m;
    const std::size_t k = pick(allow_names ? 10 : 8);
    if (k < 2) return m;  // Any
    if (k < 6) {
      m.kind = AddressMatch::Kind::Masked;
      m.masked = {v4(), v4_mask()};
      if (m.masked.mask.is_unspecified()) m.kind = AddressMatch::Kind::Any;
    } else if (k < 8) {
      m.kind = AddressMatch::Kind::Masked;
      const unsigned len = static_cast<unsigned>(pick(129));
      m.masked = {v6(), diode::platform::mask_of_length(diode::platform::Family::V6, len)};
    } else {
      m.kind = AddressMatch::Kind::Domain;
      m.domain = name();
      m.zone = coin(50);
    }
    return m;
  }
  PortTest port() {
    static const std::uint16_t ports[] = {21, 22, 23, 80, 443, 1024, 8080};
    PortTest p;
    p.op = static_cast<PortOp>(pick(8));
    p.lo = ports[pick(7)];
    p.hi = static_cast<std::uint16_t>(p.lo + pick(2000));
    return p;
  }
  Rule rule() {
    static const char* const users[] = {"alice", "bob", "carol"};
    Rule r;
    r.action = coin(50) ? Action::Permit : Action::Deny;
    r.src = side(true);
    r.dst = coin(20) ? AddressMatch{} : side(true);
    if (coin(50)) r.port = port();
    if (coin(25)) {
      r.users.any = false;
      r.users.names.push_back(users[pick(3)]);
      if (coin(50)) r.users.file_users.push_back(users[pick(3)]);
    }
    if (coin(20)) r.commands = static_cast<std::uint8_t>(1 + pick(7));
    if (coin(15)) r.methods = static_cast<std::uint8_t>(1 + pick(3));
    if (coin(10)) r.interfaces.push_back(coin(50) ? "eth0" : "eth1");
    return r;
  }
  RuleRequest request() {
    static const char* const users[] = {"alice", "bob", "carol", "dave"};
    static const std::uint16_t ports[] = {21, 22, 23, 80, 443, 1024, 1500, 8080, 9000};
    RuleRequest q;
    q.src_addr = coin(75) ? v4() : v6();
    if (coin(10) && q.src_addr.family == diode::platform::Family::V4) {
      q.src_addr = ip(("::ffff:" + q.src_addr.to_string()).c_str());
    }
    if (coin(20)) q.src_name = coin(50) ? name() : "PC." + name() + ".";
    const std::size_t k = pick(3);
    if (k != 1) q.dst_addr = coin(70) ? v4() : v6();
    if (k != 0) q.dst_name = coin(80) ? name() : "Y." + name();
    q.dst_port = ports[pick(9)];
    q.user = users[pick(4)];
    q.command = static_cast<RuleCommand>(1U << pick(3));
    q.method = coin(50) ? AuthMethod::None : AuthMethod::UserPass;
    q.iface = coin(50) ? "eth0" : "eth1";
    return q;
  }
};

void compare_on_seed(std::uint64_t seed, std::size_t rule_sets, std::size_t requests) {
  Gen g(seed);
  std::size_t matched = 0;
  std::size_t late = 0;  // first match past the first rule: the index had to skip something
  for (std::size_t s = 0; s < rule_sets; ++s) {
    auto rs = std::make_shared<RuleSet>();
    const std::size_t n = 1 + g.pick(s % 10 == 0 ? 200 : 40);
    for (std::size_t i = 0; i < n; ++i) rs->rules.push_back(g.rule());
    const Engine engine(rs);
    for (std::size_t r = 0; r < requests; ++r) {
      const RuleRequest q = g.request();
      const auto fast = engine.first_match(q);
      const auto slow = first_match_linear(*rs, q);
      if (fast != slow) {
        FAIL("seed " << seed << " rule set " << s << " request " << r << ": engine "
                     << (fast ? std::to_string(*fast) : "none") << ", linear "
                     << (slow ? std::to_string(*slow) : "none"));
      }
      matched += slow.has_value() ? 1U : 0U;
      late += slow.value_or(0) > 0 ? 1U : 0U;
    }
  }
  // The pools are small on purpose: a property test where nothing matches proves little.
  INFO("seed " << seed << ": " << matched << " matched, " << late << " after rule 0");
  CHECK(matched > rule_sets * requests / 5);
  CHECK(matched < rule_sets * requests);
  CHECK(late > rule_sets * requests / 10);
}

}  // namespace

TEST_CASE("Engine::first_match equals the linear scan on random rule sets", "[sockd][engine][property]") {
  // A fixed seed for reproducible coverage, and a fresh one each run that the
  // failure message prints.
  compare_on_seed(20261127, 1500, 40);
  const auto fresh = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  compare_on_seed(fresh, 1500, 40);
}

TEST_CASE("Engine on an empty rule set denies everything", "[sockd][engine]") {
  const Engine engine(std::make_shared<const RuleSet>());
  CHECK_FALSE(engine.first_match(req("u", "192.0.2.1", "198.51.100.1", 80)));
  CHECK(engine.decide(req("u", "192.0.2.1", "198.51.100.1", 80)).reason == DenyReason::NoMatch);
}

TEST_CASE("one Engine shared by threads gives every thread the linear answer", "[sockd][engine]") {
  Gen g(4242);
  auto rs = std::make_shared<RuleSet>();
  for (int i = 0; i < 300; ++i) rs->rules.push_back(g.rule());
  std::vector<RuleRequest> qs;
  for (int i = 0; i < 400; ++i) qs.push_back(g.request());
  std::vector<std::optional<std::size_t>> expected;
  for (const RuleRequest& q : qs) expected.push_back(first_match_linear(*rs, q));
  Engine engine(rs);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 5; ++round) {
        for (std::size_t i = 0; i < qs.size(); ++i) {
          if (engine.first_match(qs[i]) != expected[i]) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches.load() == 0);
  // Engine is movable; the moved-to engine answers the same.
  Engine moved(std::move(engine));
  CHECK(moved.first_match(qs[0]) == expected[0]);
  CHECK(&moved.rules() == rs.get());
}

TEST_CASE("socks.conf: the first matching client line", "[sockd][engine][client]") {
  Diagnostics d;
  const auto cs = parse_socks_conf(
      "deny   *=guest 203.0.113.0 255.255.255.0\n"
      "direct 192.0.2.0 255.255.255.0\n"
      "direct .lan.example.test\n"
      "sockd  @=fw1 198.51.100.0/24 eq 80\n"
      "sockd  @=fw2 0.0.0.0 0.0.0.0\n",
      "s.conf", d, ParseOptions{false});
  REQUIRE(cs);
  RuleRequest q = req("guest", "192.0.2.10", "203.0.113.5", 80);
  CHECK(first_client_match(*cs, q) == std::size_t{0});
  q.user = "alice";
  CHECK(first_client_match(*cs, q) == std::size_t{4});
  q.dst_addr = ip("192.0.2.77");
  CHECK(first_client_match(*cs, q) == std::size_t{1});
  q.dst_addr = ip("198.51.100.7");
  CHECK(first_client_match(*cs, q) == std::size_t{3});
  q.dst_port = 443;
  CHECK(first_client_match(*cs, q) == std::size_t{4});
  RuleRequest named;
  named.dst_name = "Files.LAN.example.test";
  CHECK(first_client_match(*cs, named) == std::size_t{2});
  CHECK_FALSE(first_client_match(ClientRuleSet{}, named));
}

TEST_CASE("rule hits: the hits report and its parser agree", "[hits]") {
  diode::platform::Diagnostics d;
  const auto rs = parse_sockd_conf("permit 192.0.2.0/24\n# c\ndeny 0.0.0.0 0.0.0.0\n", "/etc/s.conf", d);
  REQUIRE(rs);
  const auto t0 = std::chrono::system_clock::time_point{} + std::chrono::seconds{1714550400};
  RuleHits hits(rs->rules.size(), t0);
  hits.record(0, t0 + std::chrono::seconds{5});
  hits.record(0, t0 + std::chrono::seconds{65});
  hits.record(std::nullopt, t0 + std::chrono::seconds{1});
  const std::string text = format_hits(*rs, hits);
  CHECK(text ==
        "# hits since 2024-05-01T08:00:00Z\n"
        "/etc/s.conf:1 hits=2 last=2024-05-01T08:01:05Z\n"
        "/etc/s.conf:3 hits=0 last=-\n"
        "default hits=1 last=2024-05-01T08:00:01Z\n");
  diode::platform::Diagnostics pd;
  const auto rep = parse_hits(text + text, "h", pd);
  REQUIRE(rep);
  CHECK(pd.empty());
  CHECK(rep->since == 1714550400);
  CHECK(rep->rules.at({"/etc/s.conf", 1}).hits == 4);
  CHECK(rep->rules.at({"/etc/s.conf", 1}).last == 1714550400 + 65);
  CHECK(rep->rules.at({"/etc/s.conf", 3}).hits == 0);
  CHECK(rep->fallback->hits == 2);
}

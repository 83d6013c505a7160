#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>

#include "fake_net.hpp"

using namespace diode::resolver;
using namespace diode::resolver::test;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

TEST_CASE("iterator: primes, follows referrals with glue, then answers from cache") {
  FakeNet net = standard_net();
  Driver d(net);
  auto r = d.resolve("www.a.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.80"});
  CHECK(r.work.primes == 1);
  // Priming ". NS" went to the hinted root first.
  REQUIRE(!net.log.empty());
  CHECK(net.log.front().qname == ".");
  CHECK(net.log.front().qtype == rrtype::kNS);
  CHECK(r.work.referrals == 2);  // . -> test. -> a.test.
  CHECK(net.queries_to("203.0.113.30") == 1);

  const std::size_t sent = net.log.size();
  auto again = d.resolve("www.a.test.", rrtype::kA);
  CHECK(again.outcome.rcode == rcode::kNoError);
  CHECK(net.log.size() == sent);  // nothing new upstream
  CHECK(again.work.upstream_queries == 0);
  // A sibling name needs only the a.test. server now.
  auto sibling = d.resolve("v4only.a.test.", rrtype::kA);
  CHECK(sibling.work.upstream_queries == 1);
}

TEST_CASE("iterator: QNAME minimisation shows each server only one more label") {
  FakeNet net = standard_net();
  Driver d(net);
  auto r = d.resolve("www.a.test.", rrtype::kA);
  REQUIRE(r.outcome.rcode == rcode::kNoError);
  // After priming: root sees "test.", test. sees "a.test.", a.test. the full name.
  std::vector<std::string> to_root, to_tld;
  for (const auto& s : net.log) {
    if (s.server == ip("198.51.100.53")) to_root.push_back(lower(s.qname));
    if (s.server == ip("203.0.113.10")) to_tld.push_back(lower(s.qname));
  }
  CHECK(to_root == std::vector<std::string>{".", "test."});
  CHECK(to_tld == std::vector<std::string>{"a.test."});

  FakeNet net2 = standard_net();
  Driver plain(net2);
  plain.settings.qname_minimisation = false;
  REQUIRE(plain.resolve("www.a.test.", rrtype::kA).outcome.rcode == rcode::kNoError);
  CHECK(lower(net2.log[1].qname) == "www.a.test.");
}

TEST_CASE("iterator: 0x20 case randomisation, and a reply with another case is refused") {
  FakeNet net = standard_net();
  Driver d(net);
  REQUIRE(d.resolve("www.a.test.", rrtype::kA).outcome.rcode == rcode::kNoError);
  bool mixed = false;
  for (const auto& s : net.log) mixed = mixed || s.qname != lower(s.qname);
  CHECK(mixed);

  Outgoing o;
  o.qname = name("wWw.A.test.");
  o.qtype = rrtype::kA;
  std::vector<std::uint8_t> buf(512);
  auto reply = [&](std::string_view qn, std::uint16_t qtype, bool qr) {
    MessageBuilder b(buf);
    Header h;
    h.qr = qr;
    b.set_header(h);
    (void)b.add_question(name(qn), qtype, rrclass::kIN);
    auto w = b.finish();
    std::vector<std::uint8_t> copy(w.begin(), w.end());
    Message m;
    REQUIRE(m.parse(copy).ok());
    return response_matches(m, o);
  };
  CHECK(reply("wWw.A.test.", rrtype::kA, true));
  CHECK_FALSE(reply("www.a.test.", rrtype::kA, true));   // case not echoed
  CHECK_FALSE(reply("wWw.A.test.", rrtype::kAAAA, true)); // other type
  CHECK_FALSE(reply("wWw.A.test.", rrtype::kA, false));   // not a response
}

TEST_CASE("iterator: a glueless NS name in another TLD is resolved on its own") {
  FakeNet net = standard_net();
  Driver d(net);
  auto r = d.resolve("www.c.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.82"});
  CHECK(r.work.ns_names_resolved == 1);
  CHECK(net.queries_to("203.0.113.20") >= 1);  // example. was asked for ns1.b.example.
}

TEST_CASE("iterator: CNAME across zones and TLDs") {
  FakeNet net = standard_net();
  Driver d(net);
  auto r = d.resolve("alias.a.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  REQUIRE(r.outcome.answer.size() == 2);
  CHECK(r.outcome.answer[0].type == rrtype::kCNAME);
  CHECK(r.outcome.answer[0].owner == name("alias.a.test."));
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.81"});
  CHECK(r.work.cnames == 1);
  // The chain is cached: no upstream query the second time.
  auto again = d.resolve("alias.a.test.", rrtype::kA);
  CHECK(again.work.upstream_queries == 0);
  CHECK(again.outcome.answer.size() == 2);
}

TEST_CASE("iterator: NXDOMAIN and NODATA, negatively cached (RFC 2308)") {
  FakeNet net = standard_net();
  Driver d(net);
  auto nx = d.resolve("nope.a.test.", rrtype::kA);
  CHECK(nx.outcome.rcode == rcode::kNxDomain);
  REQUIRE(nx.outcome.authority.size() == 1);
  CHECK(nx.outcome.authority[0].type == rrtype::kSOA);
  CHECK(nx.outcome.authority[0].ttl == 300);  // the SOA's MINIMUM, not its TTL of 3600
  CHECK(outcome_ttl(nx.outcome) == 300);
  auto nodata = d.resolve("v4only.a.test.", rrtype::kAAAA);
  CHECK(nodata.outcome.rcode == rcode::kNoError);
  CHECK(nodata.outcome.answer.empty());
  REQUIRE(nodata.outcome.authority.size() == 1);

  const std::size_t sent = net.log.size();
  CHECK(d.resolve("nope.a.test.", rrtype::kAAAA).outcome.rcode == rcode::kNxDomain);  // any type
  CHECK(d.resolve("v4only.a.test.", rrtype::kAAAA).outcome.rcode == rcode::kNoError);
  CHECK(net.log.size() == sent);
  // The negative TTL is the SOA MINIMUM (300) here, and it runs out.
  d.now += std::chrono::seconds{301};
  CHECK(d.resolve("nope.a.test.", rrtype::kA).work.upstream_queries == 1);
}

TEST_CASE("iterator: out-of-bailiwick records are not cached (scrubbing)") {
  FakeNet net = standard_net();
  // ns1.a.test. answers for www.a.test. and slips in an address for a name
  // in b.example., a zone it has no authority for.
  net.hook("203.0.113.30", [](const Question& q, bool) -> std::optional<Reply> {
    if (!(q.qname == name("www.a.test."))) return std::nullopt;
    Reply r;
    r.aa = true;
    r.answer = {a_set("www.a.test.", "198.51.100.80"), a_set("www.b.example.", "192.0.2.66")};
    r.additional = {a_set("ns1.b.example.", "192.0.2.67")};
    return r;
  });
  Driver d(net);
  auto r = d.resolve("www.a.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  CHECK(r.work.scrubbed == 2);
  CHECK_FALSE(d.cache.find_rrset(name("www.b.example."), rrtype::kA, rrclass::kIN, d.now));
  auto b = d.resolve("www.b.example.", rrtype::kA);
  CHECK(addresses_of(b.outcome) == std::vector<std::string>{"198.51.100.81"});
}

TEST_CASE("iterator: a lame server is skipped and remembered") {
  FakeNet net = standard_net();
  Driver d(net);
  auto r = d.resolve("www.lame.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kServFail);
  CHECK(d.infra.is_lame(ip("203.0.113.30"), name("lame.test."), d.now));
  CHECK_FALSE(d.infra.is_lame(ip("203.0.113.30"), name("a.test."), d.now));

  // With a second, working server the lame one is not asked again.
  FakeNet net2 = standard_net();
  Driver d2(net2);
  d2.infra.mark_lame(ip("203.0.113.30"), name("lame.test."), d2.now);
  CHECK(d2.resolve("www.lame.test.", rrtype::kA).outcome.rcode == rcode::kServFail);
  CHECK(net2.queries_to("203.0.113.30") == 0);
}

TEST_CASE("iterator: a silent server times out, with back-off, and the next server answers") {
  FakeNet net = standard_net();
  // silent.test. is served by the silent server only; add a second, working
  // server to the delegation.
  net.hook("203.0.113.10", [](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("silent.test."))) return std::nullopt;
    Reply r;
    r.authority = {ns_set("silent.test.", {"ns.silent.test.", "ns2.silent.test."})};
    r.additional = {a_set("ns.silent.test.", "203.0.113.99"),
                    a_set("ns2.silent.test.", "203.0.113.98")};
    return r;
  });
  net.serve("203.0.113.98", Zone{name("silent.test."),
                                 {soa_set("silent.test."),
                                  ns_set("silent.test.", {"ns.silent.test.", "ns2.silent.test."}),
                                  a_set("www.silent.test.", "198.51.100.99")}});
  Driver d(net);
  d.settings.qname_minimisation = false;
  // Make the silent server look fastest, so it is asked first.
  d.infra.on_response(ip("203.0.113.99"), std::chrono::milliseconds{1});
  auto r = d.resolve("www.silent.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  CHECK(r.work.timeouts == 1);
  CHECK(d.infra.srtt(ip("203.0.113.99")) > d.infra.srtt(ip("203.0.113.98")));
  // Back-off: consecutive timeouts double the next timeout, up to the cap.
  const auto cap = std::chrono::milliseconds{1500};
  const auto t1 = d.infra.timeout_for(ip("203.0.113.99"), cap);
  d.infra.on_response(ip("203.0.113.97"), std::chrono::milliseconds{20});
  const auto fast = d.infra.timeout_for(ip("203.0.113.97"), cap);
  d.infra.on_timeout(ip("203.0.113.97"), fast);
  CHECK(d.infra.timeout_for(ip("203.0.113.97"), cap) > fast);
  CHECK(t1 <= cap);

  // Only silent servers: SERVFAIL after timeouts, within the budget.
  FakeNet net2 = standard_net();
  Driver d2(net2);
  auto s = d2.resolve("www.silent.test.", rrtype::kA);
  CHECK(s.outcome.rcode == rcode::kServFail);
  // Asked twice (the second time with the doubled timeout), then given up.
  CHECK(s.work.timeouts == kMaxTimeoutsPerServer);
  CHECK(net2.queries_to("203.0.113.99") == kMaxTimeoutsPerServer);
}

TEST_CASE("iterator: TC over UDP is retried over TCP at the same server") {
  FakeNet net = standard_net();
  std::vector<std::vector<std::uint8_t>> txt;
  for (int i = 0; i < 40; ++i) {
    std::string s = "record " + std::to_string(i) + " padding padding padding padding padding";
    std::vector<std::uint8_t> rd;
    rd.push_back(static_cast<std::uint8_t>(s.size()));
    for (const char ch : s) rd.push_back(static_cast<std::uint8_t>(ch));
    txt.push_back(rd);
  }
  net.serve("203.0.113.30", Zone{name("big.a.test."),
                                 {soa_set("big.a.test."), rrset("big.a.test.", rrtype::kTXT, 60, txt)}});
  net.hook("203.0.113.30", [](const Question& q, bool tcp) -> std::optional<Reply> {
    if (!(q.qname == name("big.a.test.")) || tcp) return std::nullopt;
    Reply r;
    r.aa = true;
    r.tc = true;
    return r;
  });
  Driver d(net);
  auto r = d.resolve("big.a.test.", rrtype::kTXT);
  CHECK(r.outcome.rcode == rcode::kNoError);
  REQUIRE(r.outcome.answer.size() == 1);
  CHECK(r.outcome.answer[0].size() == 40);
  REQUIRE(net.log.size() >= 2);
  CHECK_FALSE(net.log[net.log.size() - 2].tcp);
  CHECK(net.log.back().tcp);
  CHECK(net.log.back().server == net.log[net.log.size() - 2].server);
}

TEST_CASE("iterator: a CNAME loop ends in SERVFAIL within the chain budget") {
  FakeNet net = standard_net();
  Driver d(net);
  auto r = d.resolve("loop1.a.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kServFail);
  CHECK(r.work.cnames <= d.settings.max_cname_chain);
  CHECK(r.work.upstream_queries < 10);
}

TEST_CASE("iterator: the work budget stops NXNS-style fan-out") {
  FakeNet net = standard_net();
  // fan.test. is delegated to 30 glueless names under a zone that answers
  // nothing but more of the same.
  std::vector<std::string> names;
  for (int i = 0; i < 30; ++i) names.push_back("ns" + std::to_string(i) + ".fan.example.");
  std::vector<std::string_view> views(names.begin(), names.end());
  const RRset fan = ns_set("fan.test.", views);
  net.hook("203.0.113.10", [fan](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("fan.test."))) return std::nullopt;
    Reply r;
    r.authority = {fan};
    return r;
  });
  net.hook("203.0.113.20", [fan](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("fan.example."))) return std::nullopt;
    Reply r;
    std::vector<std::string> more;
    for (int i = 0; i < 30; ++i) more.push_back("x" + std::to_string(i) + ".fan.test.");
    std::vector<std::string_view> v(more.begin(), more.end());
    r.authority = {ns_set("fan.example.", v)};
    return r;
  });
  Driver d(net);
  d.settings.qname_minimisation = false;
  auto r = d.resolve("www.fan.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kServFail);
  CHECK(r.work.upstream_queries <= d.settings.max_upstream_queries);
  // NS names resolved per cut and nesting are bounded.
  CHECK(r.work.ns_names_resolved <=
        d.settings.max_ns_names_resolved * (d.settings.max_nesting + 1));

  Driver tight(net);
  tight.settings.max_upstream_queries = 5;
  auto t = tight.resolve("www.fan.test.", rrtype::kA);
  CHECK(t.outcome.rcode == rcode::kServFail);
  CHECK(t.work.upstream_queries <= 5);
}

TEST_CASE("iterator: DNAME rewrites the name's suffix (RFC 6672)") {
  FakeNet net = standard_net();
  net.hook("203.0.113.30", [](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("old.a.test.")) || q.qname == name("old.a.test.")) {
      return std::nullopt;
    }
    Reply r;
    r.aa = true;
    r.answer = {rrset("old.a.test.", rrtype::kDNAME, 300, {name_rdata("b.example.")})};
    return r;
  });
  Driver d(net);
  d.settings.qname_minimisation = false;
  auto r = d.resolve("www.old.a.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  REQUIRE(r.outcome.answer.size() == 3);
  CHECK(r.outcome.answer[0].type == rrtype::kDNAME);
  CHECK(r.outcome.answer[1].type == rrtype::kCNAME);
  CHECK(r.outcome.answer[1].owner == name("www.old.a.test."));
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.81"});
}

TEST_CASE("iterator: documentation addresses are not queried unless allowed") {
  FakeNet net = standard_net();
  Driver d(net);
  d.settings.query_documentation_addresses = false;
  auto r = d.resolve("www.a.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kServFail);
  CHECK(net.log.empty());
  CHECK(is_documentation_address(ip("2001:db8::1")));
  CHECK(is_documentation_address(ip("203.0.113.255")));
  CHECK_FALSE(is_documentation_address(ip("203.0.114.1")));
}

TEST_CASE("iterator: a glueless NS name with only an IPv6 address") {
  FakeNet net = standard_net();
  net.hook("203.0.113.10", [](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("v6.test."))) return std::nullopt;
    Reply r;
    r.authority = {ns_set("v6.test.", {"ns6.b.example."})};
    return r;
  });
  net.hook("203.0.113.40", [](const Question& q, bool) -> std::optional<Reply> {
    if (!(q.qname == name("ns6.b.example."))) return std::nullopt;
    Reply r;
    r.aa = true;
    if (q.qtype == rrtype::kAAAA) {
      r.answer = {rrset("ns6.b.example.", rrtype::kAAAA, 3600, {a_rdata("2001:db8:3::77")})};
    } else {
      r.authority = {soa_set("b.example.")};
    }
    return r;
  });
  net.serve("2001:db8:3::77", Zone{name("v6.test."),
                                   {soa_set("v6.test."), ns_set("v6.test.", {"ns6.b.example."}),
                                    a_set("www.v6.test.", "198.51.100.77")}});
  Driver d(net);
  auto r = d.resolve("www.v6.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.77"});
  CHECK(r.work.ns_names_resolved == 2);  // its A (NODATA), then its AAAA
  CHECK(net.queries_to("2001:db8:3::77") == 1);
}

TEST_CASE("iterator: NXDOMAIN for a minimised name ends the resolution (RFC 8020)") {
  FakeNet net = standard_net();
  Driver d(net);
  auto r = d.resolve("www.deep.nope.a.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNxDomain);
  std::vector<std::string> to_a;
  for (const auto& s : net.log) {
    if (s.server == ip("203.0.113.30")) to_a.push_back(lower(s.qname));
  }
  CHECK(to_a == std::vector<std::string>{"nope.a.test."});
  // And cached: the same question asks nobody.
  CHECK(d.resolve("www.deep.nope.a.test.", rrtype::kA).work.upstream_queries == 0);
}

TEST_CASE("iterator: the referral depth budget") {
  FakeNet net = standard_net();
  Driver d(net);
  d.settings.max_referral_depth = 1;
  d.settings.qname_minimisation = false;
  auto r = d.resolve("www.a.test.", rrtype::kA);  // . -> test. -> a.test.: two referrals
  CHECK(r.outcome.rcode == rcode::kServFail);
  CHECK(r.outcome.reason.find("max_referral_depth") != std::string::npos);
}

// ------------------------------------------------ answers as the authorities meant them

namespace {

// a.test.'s server also serves dn.a.test., whose apex is a DNAME to b.example.
FakeNet dname_net() {
  FakeNet net = standard_net();
  net.serve("203.0.113.30", Zone{name("dn.a.test."),
                                 {soa_set("dn.a.test."), ns_set("dn.a.test.", {"ns1.a.test."}),
                                  dname_set("dn.a.test.", "b.example.", 600)}});
  return net;
}

std::vector<std::uint16_t> types_of(const Outcome& o) {
  std::vector<std::uint16_t> out;
  for (const auto& s : o.answer) out.push_back(s.type);
  return out;
}

const std::vector<std::uint16_t> kDnameChain{rrtype::kDNAME, rrtype::kCNAME, rrtype::kA};

}  // namespace

TEST_CASE("iterator: a DNAME answer carries the DNAME, and the cached DNAME synthesises") {
  FakeNet net = dname_net();
  Driver d(net);
  // The server sends the DNAME and the CNAME it synthesised (RFC 6672 §3.4).
  auto r = d.resolve("www.dn.a.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  REQUIRE(types_of(r.outcome) == kDnameChain);
  CHECK(r.outcome.answer[0].owner == name("dn.a.test."));
  CHECK(r.outcome.answer[1].owner == name("www.dn.a.test."));
  CHECK(r.outcome.answer[1].ttl == 600);  // the DNAME's TTL (RFC 6672 §3.3)
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.81"});

  // The same question again: from the cache, still with the DNAME.
  auto again = d.resolve("www.dn.a.test.", rrtype::kA);
  CHECK(again.work.upstream_queries == 0);
  CHECK(types_of(again.outcome) == kDnameChain);

  // Another name below the DNAME: synthesised from the cached DNAME, the
  // DNAME's server is not asked; only the target's server is.
  const std::size_t at_a = net.queries_to("203.0.113.30");
  auto other = d.resolve("ns1.dn.a.test.", rrtype::kA);
  CHECK(other.outcome.rcode == rcode::kNoError);
  REQUIRE(types_of(other.outcome) == kDnameChain);
  CHECK(other.outcome.answer[1].owner == name("ns1.dn.a.test."));
  CHECK(addresses_of(other.outcome) == std::vector<std::string>{"203.0.113.40"});
  CHECK(net.queries_to("203.0.113.30") == at_a);
}

TEST_CASE("iterator: a DNAME substitution too long is YXDOMAIN, with the DNAME (RFC 6672 §2.2)") {
  FakeNet net = standard_net();
  const std::string l63(63, 'x');
  const std::string target = l63 + "." + l63 + "." + l63 + ".b.example.";  // 203 octets
  net.serve("203.0.113.30", Zone{name("long.a.test."),
                                 {soa_set("long.a.test."), ns_set("long.a.test.", {"ns1.a.test."}),
                                  dname_set("long.a.test.", target)}});
  Driver d(net);
  const std::string label(60, 'q');
  auto r = d.resolve(label + ".long.a.test.", rrtype::kA);  // 61 + 203 octets: too long
  CHECK(r.outcome.rcode == rcode::kYxDomain);
  REQUIRE(r.outcome.answer.size() == 1);
  CHECK(r.outcome.answer[0].type == rrtype::kDNAME);
  CHECK(r.outcome.answer[0].owner == name("long.a.test."));
  // Another name too long below it: from the cached DNAME, no query.
  auto again = d.resolve("w" + label + ".long.a.test.", rrtype::kA);
  CHECK(again.outcome.rcode == rcode::kYxDomain);
  CHECK(again.work.upstream_queries == 0);
  // A name short enough is rewritten as usual.
  auto fits = d.resolve("a.long.a.test.", rrtype::kA);
  CHECK(fits.outcome.rcode == rcode::kNxDomain);  // at the target, b.example.
}


TEST_CASE("iterator: the answer carries TTLs clamped as the cache clamps them") {
  FakeNet net = standard_net();
  CacheSettings cs;
  cs.max_ttl = 600;
  cs.max_negative_ttl = 60;
  Driver d(net, cs);
  auto r = d.resolve("www.a.test.", rrtype::kA);  // TTL 3600 at the server
  REQUIRE(r.outcome.rcode == rcode::kNoError);
  CHECK(r.outcome.answer.back().ttl == 600);
  CHECK(outcome_ttl(r.outcome) == 600);  // what the message cache keeps it for
  auto alias = d.resolve("alias.a.test.", rrtype::kA);  // CNAME 3600, then A 3600
  REQUIRE(alias.outcome.answer.size() == 2);
  CHECK(alias.outcome.answer[0].ttl == 600);
  CHECK(alias.outcome.answer[1].ttl == 600);
  auto nx = d.resolve("nope.a.test.", rrtype::kA);  // SOA MINIMUM 300
  REQUIRE(nx.outcome.authority.size() == 1);
  CHECK(nx.outcome.authority[0].ttl == 60);

  FakeNet net2 = standard_net();
  CacheSettings raise;
  raise.min_ttl = 7200;
  Driver d2(net2, raise);
  auto low = d2.resolve("www.a.test.", rrtype::kA);
  CHECK(low.outcome.answer.back().ttl == 7200);
}


TEST_CASE("iterator: an authoritative upward referral is a lame server, not NODATA") {
  FakeNet net = standard_net();
  // up.test. has two servers; the first answers with AA, no records and
  // the root's NS set (an upward referral).
  net.hook("203.0.113.10", [](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("up.test."))) return std::nullopt;
    Reply r;
    r.authority = {ns_set("up.test.", {"ns1.up.test.", "ns2.up.test."})};
    r.additional = {a_set("ns1.up.test.", "203.0.113.31"), a_set("ns2.up.test.", "203.0.113.32")};
    return r;
  });
  const auto upward = [](const Question&, bool) -> std::optional<Reply> {
    Reply r;
    r.aa = true;
    r.authority = {ns_set(".", {"a.root-servers.test."})};
    r.additional = {a_set("a.root-servers.test.", "198.51.100.53")};
    return r;
  };
  net.hook("203.0.113.31", upward);
  net.serve("203.0.113.32", Zone{name("up.test."),
                                 {soa_set("up.test."),
                                  ns_set("up.test.", {"ns1.up.test.", "ns2.up.test."}),
                                  a_set("www.up.test.", "198.51.100.31")}});
  Driver d(net);
  d.infra.on_response(ip("203.0.113.31"), std::chrono::milliseconds{1});  // asked first
  auto r = d.resolve("www.up.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.31"});
  CHECK(net.queries_to("203.0.113.31") == 1);
  CHECK(d.infra.is_lame(ip("203.0.113.31"), name("up.test."), d.now));

  // Only upward referrals: SERVFAIL, and nothing negative cached.
  FakeNet net2 = standard_net();
  net2.hook("203.0.113.10", [](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("up.test."))) return std::nullopt;
    Reply ref;
    ref.authority = {ns_set("up.test.", {"ns1.up.test."})};
    ref.additional = {a_set("ns1.up.test.", "203.0.113.31")};
    return ref;
  });
  net2.hook("203.0.113.31", upward);
  Driver d2(net2);
  auto s = d2.resolve("www.up.test.", rrtype::kA);
  CHECK(s.outcome.rcode == rcode::kServFail);
  CHECK_FALSE(d2.cache.find_negative(name("www.up.test."), rrtype::kA, rrclass::kIN, d2.now));
}


namespace {

// d.test. is delegated by test. to ns1.d.test. with glue 203.0.113.50, the
// server that answers for it.
void delegate_d_test(FakeNet& net) {
  net.hook("203.0.113.10", [](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("d.test."))) return std::nullopt;
    Reply r;
    r.authority = {ns_set("d.test.", {"ns1.d.test."})};
    r.additional = {a_set("ns1.d.test.", "203.0.113.50")};
    return r;
  });
}

}  // namespace

TEST_CASE("iterator: the parent's glue is the last resort when the child's address fails") {
  FakeNet net = standard_net();
  delegate_d_test(net);
  // The child zone says ns1.d.test. is 203.0.113.51, which never answers.
  net.serve("203.0.113.50", Zone{name("d.test."),
                                 {soa_set("d.test."), ns_set("d.test.", {"ns1.d.test."}),
                                  a_set("ns1.d.test.", "203.0.113.51"),
                                  a_set("www.d.test.", "198.51.100.50")}});
  net.silent("203.0.113.51");
  Driver d(net);
  // Asking for the NS name's address caches the child's (authoritative)
  // record in place of the parent's glue.
  auto ns = d.resolve("ns1.d.test.", rrtype::kA);
  REQUIRE(addresses_of(ns.outcome) == std::vector<std::string>{"203.0.113.51"});
  auto r = d.resolve("www.d.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.50"});
  CHECK(net.queries_to("203.0.113.51") >= 1);  // the child's address first
}

TEST_CASE("iterator: the parent's glue when the NS name's resolution goes down a broken delegation") {
  FakeNet net = standard_net();
  delegate_d_test(net);
  // The child's own NS set names ns.sub.d.test. instead, inside sub.d.test.,
  // a delegation to a server that never answers.
  net.serve("203.0.113.50", Zone{name("d.test."),
                                 {soa_set("d.test."), ns_set("d.test.", {"ns.sub.d.test."}),
                                  ns_set("sub.d.test.", {"ns.sub.d.test."}),
                                  a_set("ns.sub.d.test.", "203.0.113.52"),
                                  a_set("www.d.test.", "198.51.100.50")}});
  net.silent("203.0.113.52");
  Driver d(net);
  auto ns = d.resolve("d.test.", rrtype::kNS);  // the child's NS set replaces the parent's
  REQUIRE(ns.outcome.rcode == rcode::kNoError);
  auto r = d.resolve("www.d.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kNoError);
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.50"});
  CHECK(net.queries_to("203.0.113.52") >= 1);  // the broken delegation was tried first
  CHECK(r.work.upstream_queries <= d.settings.max_upstream_queries);
}

namespace {

// x.test. is delegated by test. to ns.x.test. with the glue given; a server
// at each glue address answers for x.test., so that only the resolver's
// policy keeps it from being asked.
FakeNet net_with_glue(std::vector<RRset> glue) {
  FakeNet net = standard_net();
  net.hook("203.0.113.10", [glue](const Question& q, bool) -> std::optional<Reply> {
    if (!q.qname.is_subdomain_of(name("x.test."))) return std::nullopt;
    Reply r;
    r.authority = {ns_set("x.test.", {"ns.x.test."})};
    r.additional = glue;
    return r;
  });
  for (const RRset& g : glue) {
    for (const auto rd : g) {
      IpAddress a;
      a.family = rd.size() == 4 ? diode::platform::Family::V4 : diode::platform::Family::V6;
      std::copy(rd.begin(), rd.end(), a.bytes.begin());
      net.serve(a.to_string(), Zone{name("x.test."),
                                    {soa_set("x.test."), ns_set("x.test.", {"ns.x.test."}),
                                     a_set("www.x.test.", "198.51.100.90")}});
    }
  }
  return net;
}

}  // namespace

TEST_CASE("iterator: name servers at link-local or mapped loopback addresses are not queried") {
  FakeNet net = net_with_glue(
      {a_set("ns.x.test.", "169.254.0.53"),
       rrset("ns.x.test.", rrtype::kAAAA, 3600, {a_rdata("fe80::53"), a_rdata("::ffff:127.0.0.1")})});
  Driver d(net);
  auto r = d.resolve("www.x.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kServFail);
  CHECK(net.queries_to("169.254.0.53") == 0);
  CHECK(net.queries_to("fe80::53") == 0);
  CHECK(net.queries_to("::ffff:127.0.0.1") == 0);
}

TEST_CASE("iterator: name servers in the internal networks or at the gateway are not queried") {
  using diode::platform::InterfaceConfig;
  using diode::platform::InterfaceRole;
  using diode::platform::Prefix;
  diode::platform::GatewayConfig cfg;
  cfg.interfaces = {InterfaceConfig{"lan0", InterfaceRole::Internal, {*Prefix::parse("192.0.2.1/24")}},
                    InterfaceConfig{"wan0", InterfaceRole::External,
                                    {*Prefix::parse("198.51.100.1/24"),
                                     *Prefix::parse("2001:db8:2::1/64")}}};
  const auto refused = refused_server_networks(cfg);
  for (const auto* text : {"192.0.2.0/24", "198.51.100.1/32", "2001:db8:2::1/128"}) {
    CHECK(std::find(refused.begin(), refused.end(), *Prefix::parse(text)) != refused.end());
  }

  FakeNet net = net_with_glue({a_set("ns.x.test.", "192.0.2.10"), a_set("ns.x.test.", "198.51.100.1"),
                               rrset("ns.x.test.", rrtype::kAAAA, 3600, {a_rdata("2001:db8:2::1")})});
  Driver d(net);
  d.settings.refused_networks = std::make_shared<const std::vector<Prefix>>(refused);
  auto r = d.resolve("www.x.test.", rrtype::kA);
  CHECK(r.outcome.rcode == rcode::kServFail);
  CHECK(net.queries_to("192.0.2.10") == 0);
  CHECK(net.queries_to("198.51.100.1") == 0);
  CHECK(net.queries_to("2001:db8:2::1") == 0);
  // The rest of the documentation networks are queried as before.
  CHECK(d.resolve("www.a.test.", rrtype::kA).outcome.rcode == rcode::kNoError);

  IteratorSettings s;
  s.refused_networks = d.settings.refused_networks;
  s.query_documentation_addresses = true;
  CHECK(may_query_server(ip("203.0.113.1"), s));
  CHECK_FALSE(may_query_server(ip("192.0.2.77"), s));
  CHECK_FALSE(may_query_server(ip("::ffff:192.0.2.77"), s));
  CHECK_FALSE(may_query_server(ip("169.254.169.254"), s));
  CHECK_FALSE(may_query_server(ip("fe80::1"), s));
  CHECK_FALSE(may_query_server(ip("224.0.0.251"), s));
  CHECK_FALSE(may_query_server(ip("ff02::fb"), s));
  CHECK_FALSE(may_query_server(ip("255.255.255.255"), s));
  CHECK_FALSE(may_query_server(ip("127.0.0.53"), s));
  CHECK_FALSE(may_query_server(ip("::"), s));
}

TEST_CASE("iterator: with dnssec, the answer's records go to the validator and an unchecked "
          "RRset does not answer the question") {
  FakeNet net = standard_net();
  Driver d(net);
  d.settings.dnssec = true;
  auto r = d.resolve("www.a.test.", rrtype::kA);
  REQUIRE(r.outcome.rcode == rcode::kNoError);
  CHECK(addresses_of(r.outcome) == std::vector<std::string>{"198.51.100.80"});
  REQUIRE(r.outcome.sec_answer.size() == 1);  // the zone is unsigned: no RRSIG set beside it
  CHECK(r.outcome.sec_answer.front().type == rrtype::kA);
  CHECK(r.outcome.security == Outcome::Security::Unchecked);
  // Asked again: the a.test. server once more (its RRSIGs are not cached),
  // but nothing above it (the cut is).
  const std::size_t sent = net.log.size();
  auto again = d.resolve("www.a.test.", rrtype::kA);
  CHECK(again.outcome.rcode == rcode::kNoError);
  CHECK(again.work.upstream_queries == 1);
  CHECK(net.log.size() == sent + 1);
  CHECK(again.outcome.sec_answer.size() == 1);
  // A denial keeps its authority section (the SOA; NSEC/NSEC3 when signed).
  auto nx = d.resolve("nothere.a.test.", rrtype::kA);
  CHECK(nx.outcome.rcode == rcode::kNxDomain);
  CHECK(std::any_of(nx.outcome.sec_authority.begin(), nx.outcome.sec_authority.end(),
                    [](const RRset& s) { return s.type == rrtype::kSOA; }));
}

TEST_CASE("iterator: with dnssec, RRsets of known security answer without upstream queries") {
  FakeNet net = standard_net();
  Driver d(net);
  d.settings.dnssec = true;
  auto r = d.resolve("alias.a.test.", rrtype::kA);
  REQUIRE(r.outcome.rcode == rcode::kNoError);
  REQUIRE(r.outcome.answer.size() == 2);
  // The validator's verdict on the chain's two RRsets.
  CHECK(d.cache.set_security(r.outcome.answer[0], RRsetSecurity::Secure, 3600, d.now));
  CHECK(d.cache.set_security(r.outcome.answer[1], RRsetSecurity::Secure, 3600, d.now));
  const std::size_t sent = net.log.size();
  auto again = d.resolve("alias.a.test.", rrtype::kA);
  CHECK(again.work.upstream_queries == 0);
  CHECK(net.log.size() == sent);
  CHECK(again.outcome.rcode == rcode::kNoError);
  CHECK(again.outcome.answer.size() == 2);
  CHECK(again.outcome.security == Outcome::Security::Secure);
  // The cached links go to sec_answer too (the form for clients with DO).
  CHECK(again.outcome.sec_answer.size() == 2);
  // The target alone, another question, is answered from the same RRset.
  auto target = d.resolve(r.outcome.answer[1].owner.to_text(), rrtype::kA);
  CHECK(target.work.upstream_queries == 0);
  CHECK(target.outcome.security == Outcome::Security::Secure);
  // One insecure link makes the answer insecure.
  CHECK(d.cache.set_security(r.outcome.answer[1], RRsetSecurity::Insecure, 3600, d.now));
  again = d.resolve("alias.a.test.", rrtype::kA);
  CHECK(again.work.upstream_queries == 0);
  CHECK(again.outcome.security == Outcome::Security::Insecure);
  // Bogus data does not answer a checking question: upstream again, unchecked.
  CHECK(d.cache.set_security(r.outcome.answer[1], RRsetSecurity::Bogus, 60, d.now));
  again = d.resolve("alias.a.test.", rrtype::kA);
  CHECK(again.work.upstream_queries == 1);
  CHECK(again.outcome.security == Outcome::Security::Unchecked);
  CHECK(again.outcome.answer.size() == 2);
  // The refetched target is unchecked now; CD takes it as it is.
  d.settings.checking_disabled = true;
  again = d.resolve("alias.a.test.", rrtype::kA);
  CHECK(again.work.upstream_queries == 0);
  CHECK(again.outcome.security == Outcome::Security::Unchecked);
  d.settings.checking_disabled = false;
  // Without CD, the cached (secure) CNAME is used and the unchecked target
  // is fetched: the outcome goes to the validator with both links.
  again = d.resolve("alias.a.test.", rrtype::kA);
  CHECK(again.work.upstream_queries == 1);
  CHECK(again.outcome.security == Outcome::Security::Unchecked);
  CHECK(again.outcome.sec_answer.size() == 2);
  // A cached negative answer keeps no proof: asked upstream.
  REQUIRE(d.resolve("nothere.a.test.", rrtype::kA).outcome.rcode == rcode::kNxDomain);
  CHECK(d.resolve("nothere.a.test.", rrtype::kA).work.upstream_queries == 1);
}

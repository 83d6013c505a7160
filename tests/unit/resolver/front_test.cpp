// The resolver's front end without sockets: query bytes, a client address
// and a transport in, a decision out; a resolution's outcome in, every
// waiting client's answer out. Time is injected.
#include "diode/resolver/front.hpp"

#include <catch2/catch.hpp>

#include "diode/resolver/builder.hpp"
#include "fake_net.hpp"

using namespace diode::resolver;
using namespace diode::resolver::test;
using diode::platform::IpAddress;
using diode::platform::Prefix;
using std::chrono::seconds;
using Action = Front::Action;

namespace {

std::vector<std::uint8_t> query(std::string_view qname, std::uint16_t qtype, std::uint16_t id,
                                bool edns = false) {
  std::vector<std::uint8_t> buf(512);
  MessageBuilder b(buf);
  Header h;
  h.id = id;
  h.rd = true;
  b.set_header(h);
  REQUIRE(b.add_question(name(qname), qtype, rrclass::kIN) == AddResult::Ok);
  if (edns) REQUIRE(b.set_edns(EdnsSpec{}));
  const auto w = b.finish();
  return {w.begin(), w.end()};
}

struct Parsed {
  std::vector<std::uint8_t> wire;
  Message m;
  explicit Parsed(std::vector<std::uint8_t> w) : wire(std::move(w)) { REQUIRE(m.parse(wire).ok()); }
  std::uint8_t rcode() const { return m.header().rcode; }
  std::uint32_t first_ttl() const {
    return m.count(Section::Answer) > 0 ? m.record(Section::Answer, 0).ttl : 0;
  }
};

struct Bed {
  CacheSettings cs;
  Stats stats;
  std::unique_ptr<Cache> cache;
  std::unique_ptr<Front> front;
  explicit Bed(FrontSettings fs = {}, bool serve_stale = false) {
    cs.serve_stale = serve_stale;
    cs.max_stale = 3600;
    cs.stale_answer_ttl = 30;
    cache = std::make_unique<Cache>(cs);
    if (fs.allow.empty())
      fs.allow = {*Prefix::parse("192.0.2.0/24"), *Prefix::parse("2001:db8:1::/64")};
    front = std::make_unique<Front>(*cache, stats, fs);
  }
  Front::Decision ask(const std::vector<std::uint8_t>& wire, std::vector<std::uint8_t>& out,
                      Time now = Time{0}, std::string_view from = "192.0.2.10",
                      Transport t = Transport::Udp, ClientHandle c = 1) {
    return front->on_query(wire, ip(from), t, c, now, out);
  }
};

Outcome www_outcome(std::uint32_t ttl = 3600) {
  return Outcome{rcode::kNoError, {a_set("www.a.test.", "198.51.100.80", ttl)}, {}, {}};
}

}  // namespace

TEST_CASE("front: outsiders are refused, broken input dropped or answered FORMERR") {
  Bed bed;
  std::vector<std::uint8_t> out;
  auto d = bed.ask(query("www.a.test.", rrtype::kA, 7), out, Time{0}, "198.51.100.9");
  REQUIRE(d.action == Action::Answer);
  CHECK(Parsed(out).rcode() == rcode::kRefused);
  CHECK(bed.stats.refused == 1);
  // IPv4-mapped IPv6 counts as IPv4; the /64 is allowed.
  CHECK(bed.front->allowed(ip("::ffff:192.0.2.10")));
  CHECK(bed.front->allowed(ip("2001:db8:1::99")));
  CHECK_FALSE(bed.front->allowed(ip("2001:db8:2::99")));
  // Shorter than a header, and a response: nothing at all.
  const std::vector<std::uint8_t> tiny{1, 2, 3};
  CHECK(bed.ask(tiny, out).action == Action::Drop);
  auto response = query("www.a.test.", rrtype::kA, 8);
  response[2] |= 0x80;
  CHECK(bed.ask(response, out).action == Action::Drop);
  CHECK(bed.stats.dropped == 2);
  // Counts that promise more than is there: FORMERR.
  auto broken = query("www.a.test.", rrtype::kA, 9);
  broken[7] = 1;  // ANCOUNT 1, no record
  d = bed.ask(broken, out);
  REQUIRE(d.action == Action::Answer);
  CHECK(out[3] == rcode::kFormErr);
  CHECK(bed.stats.formerr == 1);
  CHECK(bed.stats.queries == 4);
  CHECK(bed.front->inflight() == 0);
}

TEST_CASE("front: local zones and ANY are answered at once") {
  Bed bed;
  std::vector<std::uint8_t> out;
  auto d = bed.ask(query("localhost.", rrtype::kA, 1), out);
  REQUIRE(d.action == Action::Answer);
  Parsed p(out);
  CHECK(p.rcode() == rcode::kNoError);
  CHECK(p.m.header().id == 1);
  d = bed.ask(query("x.invalid.", rrtype::kA, 2), out);
  REQUIRE(d.action == Action::Answer);
  CHECK(Parsed(out).rcode() == rcode::kNxDomain);
  d = bed.ask(query("www.a.test.", rrtype::kANY, 3), out);
  REQUIRE(d.action == Action::Answer);
  CHECK(Parsed(out).m.header().ancount == 1);  // RFC 8482 HINFO
  CHECK(bed.stats.local_answers == 3);
  // Off: test. goes to the iterator like any name.
  FrontSettings fs;
  fs.builtin_local_zones = false;
  Bed bed2(fs);
  CHECK(bed2.ask(query("www.a.test.", rrtype::kA, 4), out).action == Action::Resolve);
}

TEST_CASE("front: identical questions join one resolution; each client gets its own answer") {
  FrontSettings fs;
  fs.builtin_local_zones = false;
  Bed bed(fs);
  std::vector<std::uint8_t> out;
  const auto d1 = bed.ask(query("www.a.test.", rrtype::kA, 0x1111, true), out, Time{0},
                          "192.0.2.10", Transport::Udp, 101);
  REQUIRE(d1.action == Action::Resolve);
  CHECK(d1.question.qname == name("www.a.test."));
  CHECK(d1.question.qtype == rrtype::kA);
  const auto d2 = bed.ask(query("WWW.a.TEST.", rrtype::kA, 0x2222), out, Time{0}, "192.0.2.11",
                          Transport::Tcp, 102);
  CHECK(d2.action == Action::Wait);
  // Another type is another question.
  const auto d3 = bed.ask(query("www.a.test.", rrtype::kAAAA, 0x3333), out, Time{0}, "192.0.2.10",
                          Transport::Udp, 103);
  REQUIRE(d3.action == Action::Resolve);
  CHECK(d3.ticket != d1.ticket);
  CHECK(bed.front->inflight() == 2);
  CHECK(bed.front->waiting() == 3);
  CHECK(bed.stats.joined == 1);
  CHECK(bed.stats.cache_misses == 3);

  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d1.ticket, www_outcome(), Time{0} + seconds{1}, replies);
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].client == 101);
  CHECK(replies[1].client == 102);
  Parsed a(replies[0].wire), b(replies[1].wire);
  CHECK(a.m.header().id == 0x1111);
  CHECK(b.m.header().id == 0x2222);
  CHECK(a.m.edns().has_value());  // EDNS echoed to the client that sent it
  CHECK_FALSE(b.m.edns().has_value());
  CHECK(a.m.question()->qname.equals_exact(name("www.a.test.")));
  CHECK(b.m.question()->qname.equals_exact(name("WWW.a.TEST.")));  // 0x20 kept
  CHECK(a.first_ttl() == 3600);
  CHECK(bed.front->inflight() == 1);
  CHECK(bed.front->waiting() == 1);
  // An unknown (or finished) ticket adds nothing.
  replies.clear();
  bed.front->on_resolved(d1.ticket, www_outcome(), Time{0}, replies);
  CHECK(replies.empty());

  // Now from the cache, the TTL aged.
  const auto d4 = bed.ask(query("www.a.test.", rrtype::kA, 0x4444), out, Time{0} + seconds{11});
  REQUIRE(d4.action == Action::Answer);
  CHECK_FALSE(d4.prefetch);
  Parsed c(out);
  CHECK(c.m.header().id == 0x4444);
  CHECK(c.first_ttl() == 3590);
  CHECK(bed.stats.cache_hits == 1);
}

TEST_CASE("front: a failure is answered SERVFAIL to all, and remembered for failure_ttl") {
  FrontSettings fs;
  fs.builtin_local_zones = false;
  Bed bed(fs);
  std::vector<std::uint8_t> out;
  const auto d = bed.ask(query("www.lame.test.", rrtype::kA, 1), out, Time{0}, "192.0.2.10",
                         Transport::Udp, 1);
  REQUIRE(d.action == Action::Resolve);
  REQUIRE(
      bed.ask(query("www.lame.test.", rrtype::kA, 2), out, Time{0}, "192.0.2.10", Transport::Udp, 2)
          .action == Action::Wait);
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d.ticket, Outcome{}, Time{0}, replies);
  REQUIRE(replies.size() == 2);
  for (const auto& r : replies) CHECK(Parsed(r.wire).rcode() == rcode::kServFail);
  CHECK(bed.stats.servfail == 1);
  // RFC 9520: asked again at once, the cached failure answers.
  auto again = bed.ask(query("www.lame.test.", rrtype::kA, 3), out, Time{0} + seconds{4});
  REQUIRE(again.action == Action::Answer);
  CHECK(Parsed(out).rcode() == rcode::kServFail);
  // After failure_ttl, resolved again.
  CHECK(bed.ask(query("www.lame.test.", rrtype::kA, 4), out, Time{0} + seconds{6}).action ==
        Action::Resolve);
}

TEST_CASE("front: serve-stale answers an expired answer when the resolution fails") {
  FrontSettings fs;
  fs.builtin_local_zones = false;
  Bed bed(fs, true);
  std::vector<std::uint8_t> out;
  auto d = bed.ask(query("www.a.test.", rrtype::kA, 1), out);
  REQUIRE(d.action == Action::Resolve);
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d.ticket, www_outcome(60), Time{0}, replies);
  // Expired: resolved again; every server fails; the stale answer with TTL 30.
  d = bed.ask(query("www.a.test.", rrtype::kA, 2), out, Time{0} + seconds{100});
  REQUIRE(d.action == Action::Resolve);
  replies.clear();
  bed.front->on_resolved(d.ticket, Outcome{}, Time{0} + seconds{101}, replies);
  REQUIRE(replies.size() == 1);
  Parsed p(replies[0].wire);
  CHECK(p.rcode() == rcode::kNoError);
  CHECK(p.m.header().id == 2);
  CHECK(p.first_ttl() == 30);
  CHECK(bed.stats.stale_answers == 1);
  CHECK(bed.stats.servfail == 0);
}

TEST_CASE("front: bounds on waiting clients and on resolutions under way") {
  FrontSettings fs;
  fs.builtin_local_zones = false;
  fs.max_joiners = 2;
  fs.max_inflight = 2;
  Bed bed(fs);
  std::vector<std::uint8_t> out;
  const auto d1 = bed.ask(query("www.a.test.", rrtype::kA, 1), out);
  REQUIRE(d1.action == Action::Resolve);
  CHECK(bed.ask(query("www.a.test.", rrtype::kA, 2), out).action == Action::Wait);
  // The resolution holds two clients: a third resolves on its own.
  const auto d3 = bed.ask(query("www.a.test.", rrtype::kA, 3), out);
  REQUIRE(d3.action == Action::Resolve);
  // Two resolutions under way: any other miss is dropped.
  CHECK(bed.ask(query("www.b.test.", rrtype::kA, 4), out).action == Action::Drop);
  CHECK(bed.stats.dropped == 1);
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d3.ticket, www_outcome(), Time{0}, replies);
  CHECK(replies.size() == 1);
  // The first is still joinable until it ends.
  CHECK(bed.ask(query("www.b.test.", rrtype::kA, 5), out).action == Action::Resolve);
  bed.front->on_resolved(d1.ticket, www_outcome(), Time{0}, replies);
  CHECK(replies.size() == 3);
}

TEST_CASE("front: prefetch when under 10 % of the TTL is left, once") {
  FrontSettings fs;
  fs.builtin_local_zones = false;
  Bed bed(fs);
  std::vector<std::uint8_t> out;
  const auto d = bed.ask(query("www.a.test.", rrtype::kA, 1), out);
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d.ticket, www_outcome(100), Time{0}, replies);
  auto hit = bed.ask(query("www.a.test.", rrtype::kA, 2), out, Time{0} + seconds{95});
  REQUIRE(hit.action == Action::Answer);
  REQUIRE(hit.prefetch);
  CHECK(hit.question.qname == name("www.a.test."));
  CHECK(bed.front->inflight() == 1);
  CHECK(bed.stats.prefetches == 1);
  CHECK_FALSE(bed.ask(query("www.a.test.", rrtype::kA, 3), out, Time{0} + seconds{96}).prefetch);
  // The refresh replaces the cached answer: a full TTL again.
  bed.front->on_refreshed(hit.question, www_outcome(100), Time{0} + seconds{96});
  CHECK(bed.front->inflight() == 0);
  REQUIRE(bed.ask(query("www.a.test.", rrtype::kA, 4), out, Time{0} + seconds{150}).action ==
          Action::Answer);
  CHECK(Parsed(out).first_ttl() == 46);
  // Prefetch off: never.
  FrontSettings off = fs;
  off.prefetch = false;
  bed.front->set_settings(off);
  CHECK_FALSE(bed.ask(query("www.a.test.", rrtype::kA, 5), out, Time{0} + seconds{192}).prefetch);
}

TEST_CASE("front: each waiting client gets an answer that fits its transport") {
  FrontSettings fs;
  fs.builtin_local_zones = false;
  Bed bed(fs);
  std::vector<std::uint8_t> out;
  const auto d =
      bed.ask(query("big.a.test.", rrtype::kTXT, 1), out, Time{0}, "192.0.2.10", Transport::Udp, 1);
  REQUIRE(d.action == Action::Resolve);
  REQUIRE(
      bed.ask(query("big.a.test.", rrtype::kTXT, 2), out, Time{0}, "192.0.2.10", Transport::Tcp, 2)
          .action == Action::Wait);
  RRset big;
  big.owner = name("big.a.test.");
  big.type = rrtype::kTXT;
  big.ttl = 300;
  for (int i = 0; i < 40; ++i) {
    std::vector<std::uint8_t> txt(61, static_cast<std::uint8_t>('a' + i % 26));
    txt[0] = 60;
    txt[1] = static_cast<std::uint8_t>(i);
    REQUIRE(big.add_rdata(txt));
  }
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d.ticket, Outcome{rcode::kNoError, {big}, {}, {}}, Time{0}, replies);
  REQUIRE(replies.size() == 2);
  Parsed udp(replies[0].wire), tcp(replies[1].wire);
  CHECK(udp.m.header().tc);  // 512 octets without EDNS
  CHECK(udp.m.header().ancount == 0);
  CHECK_FALSE(tcp.m.header().tc);
  CHECK(tcp.m.header().ancount == 40);
  CHECK(bed.stats.truncated == 1);
}

// ---------------------------------------------------------------- DNSSEC

namespace {

// A query with EDNS, and DO / AD / CD as asked.
std::vector<std::uint8_t> dnssec_query(std::string_view qname, std::uint16_t id, bool do_bit,
                                       bool ad, bool cd) {
  std::vector<std::uint8_t> buf(512);
  MessageBuilder b(buf);
  Header h;
  h.id = id;
  h.rd = true;
  h.ad = ad;
  h.cd = cd;
  b.set_header(h);
  REQUIRE(b.add_question(name(qname), rrtype::kA, rrclass::kIN) == AddResult::Ok);
  EdnsSpec e;
  e.dnssec_ok = do_bit;
  REQUIRE(b.set_edns(e));
  const auto w = b.finish();
  return {w.begin(), w.end()};
}

// www.a.test A with an (opaque) RRSIG set beside it, as the iterator hands
// it to the validator, with the verdict `s`.
Outcome signed_outcome(Outcome::Security s) {
  Outcome o = www_outcome();
  o.sec_answer.push_back(o.answer.front());
  o.sec_answer.push_back(rrset("www.a.test.", rrtype::kRRSIG, 3600, {{1, 2, 3, 4}}));
  o.security = s;
  return o;
}

std::size_t count_type(const Parsed& p, Section s, std::uint16_t type) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < p.m.count(s); ++i) n += p.m.record(s, i).type == type ? 1U : 0U;
  return n;
}

std::optional<std::uint16_t> ede_of(const Parsed& p) {
  if (!p.m.edns()) return std::nullopt;
  const auto o = p.m.edns()->find(15);
  if (!o || o->data.size() < 2) return std::nullopt;
  return static_cast<std::uint16_t>((o->data[0] << 8) | o->data[1]);
}

}  // namespace

TEST_CASE("front: secure answers carry AD for DO or AD clients, RRSIGs for DO only") {
  FrontSettings fs;
  fs.dnssec = true;
  fs.builtin_local_zones = false;
  Bed bed(fs);
  std::vector<std::uint8_t> out;
  auto d = bed.ask(dnssec_query("www.a.test.", 1, true, false, false), out);
  REQUIRE(d.action == Action::Resolve);
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d.ticket, signed_outcome(Outcome::Security::Secure), Time{0}, replies);
  REQUIRE(replies.size() == 1);
  {
    Parsed p(replies[0].wire);
    CHECK(p.m.header().ad);
    CHECK(count_type(p, Section::Answer, rrtype::kRRSIG) == 1);
    REQUIRE(p.m.edns());
    CHECK(p.m.edns()->dnssec_ok);
  }
  // From the cache now: the DO form, the plain form with AD, without AD.
  REQUIRE(bed.ask(dnssec_query("www.a.test.", 2, true, false, false), out).action == Action::Answer);
  CHECK(Parsed(out).m.header().ad);
  CHECK(count_type(Parsed(out), Section::Answer, rrtype::kRRSIG) == 1);
  REQUIRE(bed.ask(dnssec_query("www.a.test.", 3, false, true, false), out).action == Action::Answer);
  CHECK(Parsed(out).m.header().ad);
  CHECK(count_type(Parsed(out), Section::Answer, rrtype::kRRSIG) == 0);
  REQUIRE(bed.ask(dnssec_query("www.a.test.", 4, false, false, false), out).action == Action::Answer);
  CHECK_FALSE(Parsed(out).m.header().ad);
  CHECK(count_type(Parsed(out), Section::Answer, rrtype::kA) == 1);
  CHECK(count_type(Parsed(out), Section::Answer, rrtype::kRRSIG) == 0);
}

TEST_CASE("front: insecure answers never carry AD") {
  FrontSettings fs;
  fs.dnssec = true;
  fs.builtin_local_zones = false;
  Bed bed(fs);
  std::vector<std::uint8_t> out;
  auto d = bed.ask(dnssec_query("www.a.test.", 1, true, true, false), out);
  REQUIRE(d.action == Action::Resolve);
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d.ticket, signed_outcome(Outcome::Security::Insecure), Time{0}, replies);
  REQUIRE(replies.size() == 1);
  CHECK_FALSE(Parsed(replies[0].wire).m.header().ad);
  REQUIRE(bed.ask(dnssec_query("www.a.test.", 2, false, true, false), out).action == Action::Answer);
  CHECK_FALSE(Parsed(out).m.header().ad);
}

TEST_CASE("front: bogus is SERVFAIL with its EDE, remembered; CD gets the data unchecked") {
  FrontSettings fs;
  fs.dnssec = true;
  fs.builtin_local_zones = false;
  fs.bogus_ttl = 60;
  Bed bed(fs);
  std::vector<std::uint8_t> out;
  auto d = bed.ask(dnssec_query("www.a.test.", 1, true, false, false), out);
  REQUIRE(d.action == Action::Resolve);
  CHECK_FALSE(d.checking_disabled);
  Outcome bogus = signed_outcome(Outcome::Security::Bogus);
  bogus.ede = 7;
  bogus.ede_text = "signature expired";
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d.ticket, bogus, Time{0}, replies);
  REQUIRE(replies.size() == 1);
  {
    Parsed p(replies[0].wire);
    CHECK(p.rcode() == rcode::kServFail);
    CHECK(p.m.count(Section::Answer) == 0);
    CHECK(ede_of(p) == std::optional<std::uint16_t>{7});
  }
  // Asked again within bogus_ttl: answered at once, the same way.
  d = bed.ask(dnssec_query("www.a.test.", 2, false, false, false), out, Time{0} + seconds{59});
  REQUIRE(d.action == Action::Answer);
  CHECK(Parsed(out).rcode() == rcode::kServFail);
  CHECK(ede_of(Parsed(out)) == std::optional<std::uint16_t>{7});
  // CD: resolved apart, without validation; the data comes back, uncached.
  d = bed.ask(dnssec_query("www.a.test.", 3, false, false, true), out, Time{0} + seconds{1});
  REQUIRE(d.action == Action::Resolve);
  CHECK(d.checking_disabled);
  replies.clear();
  bed.front->on_resolved(d.ticket, www_outcome(), Time{0} + seconds{1}, replies);
  REQUIRE(replies.size() == 1);
  CHECK(Parsed(replies[0].wire).rcode() == rcode::kNoError);
  CHECK(Parsed(replies[0].wire).m.header().cd);
  CHECK_FALSE(Parsed(replies[0].wire).m.header().ad);
  CHECK(bed.ask(dnssec_query("www.a.test.", 4, false, false, true), out, Time{0} + seconds{2})
            .action == Action::Resolve);
  // After bogus_ttl it is resolved (and validated) again.
  d = bed.ask(dnssec_query("www.a.test.", 5, false, false, false), out, Time{0} + seconds{61});
  CHECK(d.action == Action::Resolve);
}

TEST_CASE("front: what waits is bounded in bytes, and given back when a resolution ends") {
  FrontSettings fs;
  fs.builtin_local_zones = false;
  Bed probe(fs);
  std::vector<std::uint8_t> out;
  // The cost of one resolution with its first client, measured.
  const auto d0 = probe.ask(query("www.a.test.", rrtype::kA, 1), out);
  REQUIRE(d0.action == Action::Resolve);
  const std::size_t one = probe.front->held_bytes();
  REQUIRE(one > 0);
  REQUIRE(probe.ask(query("www.a.test.", rrtype::kA, 2), out).action == Action::Wait);
  const std::size_t joiner = probe.front->held_bytes() - one;
  REQUIRE(joiner > 0);
  REQUIRE(joiner < one);

  // Room for one resolution and one joined client, not more.
  fs.max_held_bytes = one + joiner;
  Bed bed(fs);
  const auto d1 = bed.ask(query("www.a.test.", rrtype::kA, 1), out);
  REQUIRE(d1.action == Action::Resolve);
  CHECK(bed.ask(query("www.a.test.", rrtype::kA, 2), out).action == Action::Wait);
  CHECK(bed.front->held_bytes() == one + joiner);
  // A third client of the same question, and another question: both past the bound.
  CHECK(bed.ask(query("www.a.test.", rrtype::kA, 3), out).action == Action::Drop);
  CHECK(bed.ask(query("www.b.test.", rrtype::kA, 4), out).action == Action::Drop);
  CHECK(bed.stats.dropped == 2);
  CHECK(bed.front->waiting() == 2);
  // The resolution ends: its two clients are answered and every byte is given back.
  std::vector<Front::Reply> replies;
  bed.front->on_resolved(d1.ticket, www_outcome(), Time{0}, replies);
  CHECK(replies.size() == 2);
  CHECK(bed.front->held_bytes() == 0);
  CHECK(bed.ask(query("www.b.test.", rrtype::kA, 5), out).action == Action::Resolve);
}

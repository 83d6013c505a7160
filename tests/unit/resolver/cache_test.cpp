#include <catch2/catch.hpp>

#include "diode/resolver/builder.hpp"
#include "diode/resolver/cache.hpp"
#include "fake_net.hpp"

using namespace diode::resolver;
using namespace diode::resolver::test;
using std::chrono::seconds;

namespace {

std::uint32_t read32(std::span<const std::uint8_t> m, std::size_t at) {
  return (std::uint32_t{m[at]} << 24) | (std::uint32_t{m[at + 1]} << 16) |
         (std::uint32_t{m[at + 2]} << 8) | m[at + 3];
}

}  // namespace

TEST_CASE("cache: RRsets by name, type and class; TTL counts down; expiry") {
  Cache c;
  const Time t0{5000};
  REQUIRE(c.insert_rrset(a_set("www.a.test.", "198.51.100.80", 100), Trust::Answer, t0));
  auto hit = c.find_rrset(name("WWW.A.Test."), rrtype::kA, rrclass::kIN, t0 + seconds{40});
  REQUIRE(hit);
  CHECK(hit->ttl == 60);
  CHECK(hit->trust == Trust::Answer);
  CHECK_FALSE(c.find_rrset(name("www.a.test."), rrtype::kAAAA, rrclass::kIN, t0));
  CHECK_FALSE(c.find_rrset(name("www.a.test."), rrtype::kA, rrclass::kCH, t0));
  CHECK_FALSE(c.find_rrset(name("www.a.test."), rrtype::kA, rrclass::kIN, t0 + seconds{100}));
  CHECK(c.entries() == 0);  // removed once found expired (serve_stale off)
  CHECK(c.counters().expired == 1);
}

TEST_CASE("cache: credibility ranks (RFC 2181 §5.4.1)") {
  Cache c;
  const Time t0{0};
  REQUIRE(c.insert_rrset(a_set("ns1.a.test.", "203.0.113.30"), Trust::Answer, t0));
  CHECK_FALSE(c.insert_rrset(a_set("ns1.a.test.", "192.0.2.66"), Trust::Glue, t0));
  auto hit = c.find_rrset(name("ns1.a.test."), rrtype::kA, rrclass::kIN, t0);
  REQUIRE(hit);
  CHECK(hit->trust == Trust::Answer);
  CHECK(addresses_of(Outcome{0, {*hit->rrset}, {}, {}}) == std::vector<std::string>{"203.0.113.30"});
  // Glue first, then an answer: the answer wins.
  REQUIRE(c.insert_rrset(a_set("ns2.a.test.", "192.0.2.66"), Trust::Glue, t0));
  REQUIRE(c.insert_rrset(a_set("ns2.a.test.", "203.0.113.31"), Trust::Answer, t0));
  CHECK(c.find_rrset(name("ns2.a.test."), rrtype::kA, rrclass::kIN, t0)->trust == Trust::Answer);
  // Expired data of any rank is replaced.
  REQUIRE(c.insert_rrset(a_set("ns3.a.test.", "203.0.113.32", 10), Trust::Answer, t0));
  CHECK(c.insert_rrset(a_set("ns3.a.test.", "203.0.113.33"), Trust::Glue, t0 + seconds{11}));
}

TEST_CASE("cache: TTL clamps") {
  CacheSettings s;
  s.min_ttl = 60;
  s.max_ttl = 3600;
  Cache c(s);
  const Time t0{0};
  c.insert_rrset(a_set("low.test.", "192.0.2.1", 5), Trust::Answer, t0);
  c.insert_rrset(a_set("high.test.", "192.0.2.2", 999999), Trust::Answer, t0);
  CHECK(c.find_rrset(name("low.test."), rrtype::kA, rrclass::kIN, t0)->ttl == 60);
  CHECK(c.find_rrset(name("high.test."), rrtype::kA, rrclass::kIN, t0)->ttl == 3600);
}

TEST_CASE("cache: negative answers (RFC 2308)") {
  CacheSettings s;
  s.max_negative_ttl = 600;
  Cache c(s);
  const Time t0{0};
  // SOA TTL 3600, MINIMUM 300: the negative TTL is 300.
  REQUIRE(c.insert_negative(name("nope.a.test."), rrtype::kA, rrclass::kIN,
                            NegativeKind::NxDomain, soa_set("a.test.", 3600, 300), t0));
  auto nx = c.find_negative(name("nope.a.test."), rrtype::kMX, rrclass::kIN, t0 + seconds{100});
  REQUIRE(nx);  // NXDOMAIN covers every type
  CHECK(nx->kind == NegativeKind::NxDomain);
  CHECK(nx->ttl == 200);
  CHECK(nx->soa->type == rrtype::kSOA);
  CHECK_FALSE(c.find_negative(name("nope.a.test."), rrtype::kA, rrclass::kIN, t0 + seconds{300}));

  REQUIRE(c.insert_negative(name("v4only.a.test."), rrtype::kAAAA, rrclass::kIN,
                            NegativeKind::NoData, soa_set("a.test.", 3600, 7200), t0));
  auto nd = c.find_negative(name("v4only.a.test."), rrtype::kAAAA, rrclass::kIN, t0);
  REQUIRE(nd);
  CHECK(nd->ttl == 600);  // max_negative_ttl
  CHECK_FALSE(c.find_negative(name("v4only.a.test."), rrtype::kA, rrclass::kIN, t0));
  // Without a SOA nothing is cached.
  CHECK_FALSE(c.insert_negative(name("x.test."), rrtype::kA, rrclass::kIN, NegativeKind::NoData,
                                a_set("x.test.", "192.0.2.1"), t0));
  CHECK(soa_minimum(*soa_set("a.test.", 1, 4242).begin()) == 4242U);
  CHECK_FALSE(soa_minimum(a_rdata("192.0.2.1")));
}

TEST_CASE("cache: a message hit is a copy with new ID, aged TTLs and the client's case") {
  CacheSettings s;
  s.serve_stale = true;
  s.stale_answer_ttl = 30;
  s.max_stale = 3600;
  Cache c(s);
  std::vector<std::uint8_t> buf(512);
  MessageBuilder b(buf);
  Header h;
  h.id = 7;
  h.qr = true;
  h.ra = true;
  b.set_header(h);
  REQUIRE(b.add_question(name("www.a.test."), rrtype::kA, rrclass::kIN) == AddResult::Ok);
  REQUIRE(b.add_rrset(Section::Answer, a_set("www.a.test.", "198.51.100.80", 100)) ==
          AddResult::Ok);
  const auto wire = b.finish();
  const std::vector<std::uint16_t> ttls(b.ttl_offsets().begin(), b.ttl_offsets().end());
  REQUIRE(ttls.size() == 1);
  const Time t0{0};
  c.insert_message(Question{name("www.a.test."), rrtype::kA, rrclass::kIN}, wire, ttls, 100, t0);

  std::vector<std::uint8_t> out;
  const Question client{name("WwW.a.TEST."), rrtype::kA, rrclass::kIN};
  auto hit = c.copy_message(client, 0xbeef, t0 + seconds{30}, out);
  REQUIRE(hit);
  CHECK(out.size() == wire.size());
  CHECK(out[0] == 0xbe);
  CHECK(out[1] == 0xef);
  CHECK(read32(out, ttls[0]) == 70);
  CHECK(out[13] == 'W');  // the question echoes the client's case
  CHECK_FALSE(hit->stale);
  CHECK_FALSE(hit->prefetch_due);
  // Under 10 % left: prefetch is due, and said only once.
  CHECK(c.copy_message(client, 1, t0 + seconds{95}, out)->prefetch_due);
  CHECK_FALSE(c.copy_message(client, 1, t0 + seconds{96}, out)->prefetch_due);
  // Expired: only with allow_stale, and then with the stale TTL.
  CHECK_FALSE(c.copy_message(client, 1, t0 + seconds{200}, out));
  auto stale = c.copy_message(client, 1, t0 + seconds{200}, out, true);
  REQUIRE(stale);
  CHECK(stale->stale);
  CHECK(read32(out, ttls[0]) == 30);
  // Past max_stale it is gone.
  CHECK_FALSE(c.copy_message(client, 1, t0 + seconds{100 + 3601}, out, true));
}

TEST_CASE("cache: a stored message obeys max_ttl too, in its lifetime and its TTL fields") {
  CacheSettings s;
  s.max_ttl = 600;
  Cache c(s);
  std::vector<std::uint8_t> buf(512);
  MessageBuilder b(buf);
  Header h;
  h.qr = true;
  b.set_header(h);
  REQUIRE(b.add_question(name("www.a.test."), rrtype::kA, rrclass::kIN) == AddResult::Ok);
  REQUIRE(b.add_rrset(Section::Answer, a_set("www.a.test.", "198.51.100.80", 3600)) ==
          AddResult::Ok);
  const auto wire = b.finish();
  const std::vector<std::uint16_t> ttls(b.ttl_offsets().begin(), b.ttl_offsets().end());
  const Question q{name("www.a.test."), rrtype::kA, rrclass::kIN};
  const Time t0{0};
  c.insert_message(q, wire, ttls, 3600, t0);
  std::vector<std::uint8_t> out;
  REQUIRE(c.copy_message(q, 1, t0, out));
  CHECK(read32(out, ttls[0]) == 600);
  CHECK(c.copy_message(q, 1, t0 + seconds{599}, out));
  CHECK_FALSE(c.copy_message(q, 1, t0 + seconds{601}, out));
}

TEST_CASE("cache: the byte limit evicts the least recently used entries") {
  CacheSettings s;
  s.max_bytes = 4096;
  Cache c(s);
  const Time t0{0};
  for (int i = 0; i < 100; ++i) {
    c.insert_rrset(a_set("h" + std::to_string(i) + ".test.", "192.0.2.1"), Trust::Answer, t0);
    // Keep h0 in use: it must survive.
    CHECK(c.find_rrset(name("h0.test."), rrtype::kA, rrclass::kIN, t0));
    CHECK(c.bytes() <= s.max_bytes);
  }
  CHECK(c.counters().evictions > 0);
  CHECK(c.entries() < 100);
  CHECK(c.find_rrset(name("h99.test."), rrtype::kA, rrclass::kIN, t0));
  CHECK_FALSE(c.find_rrset(name("h1.test."), rrtype::kA, rrclass::kIN, t0));
}

TEST_CASE("cache: flush all, or one name and what lies below it") {
  Cache c;
  const Time t0{0};
  c.insert_rrset(a_set("www.a.test.", "198.51.100.80"), Trust::Answer, t0);
  c.insert_rrset(a_set("deep.www.a.test.", "198.51.100.81"), Trust::Answer, t0);
  c.insert_rrset(a_set("www.b.example.", "198.51.100.82"), Trust::Answer, t0);
  c.insert_negative(name("www.a.test."), rrtype::kAAAA, rrclass::kIN, NegativeKind::NoData,
                    soa_set("a.test."), t0);
  CHECK(c.flush_name(name("WWW.a.test.")) == 3);
  CHECK_FALSE(c.find_rrset(name("www.a.test."), rrtype::kA, rrclass::kIN, t0));
  CHECK(c.find_rrset(name("www.b.example."), rrtype::kA, rrclass::kIN, t0));
  CHECK(c.flush() == 1);
  CHECK(c.entries() == 0);
  CHECK(c.bytes() == 0);
}

TEST_CASE("cache: the index against a reference model, through growth, removal and expiry") {
  // Many entries (the index grows from 64 slots several times), with
  // removals by flush_name and by expiry in between, so that the
  // backward-shift deletion runs on long probe sequences. Every name must
  // be found exactly when the model says it is there.
  Cache c;
  const Time t0{0};
  std::vector<bool> present(3000, false);
  auto host = [](int i) { return "h" + std::to_string(i) + ".z" + std::to_string(i % 7) + ".test."; };
  for (int i = 0; i < 3000; ++i) {
    // Every third entry lives 10 s, the rest an hour.
    REQUIRE(c.insert_rrset(a_set(host(i), "192.0.2.1", i % 3 == 0 ? 10 : 3600), Trust::Answer, t0));
    present[static_cast<std::size_t>(i)] = true;
  }
  CHECK(c.entries() == 3000);
  // Remove one zone's names at once.
  CHECK(c.flush_name(name("z3.test.")) == 3000 / 7 + (3000 % 7 > 3 ? 1 : 0));
  for (int i = 3; i < 3000; i += 7) present[static_cast<std::size_t>(i)] = false;
  // Past the short TTL: every lookup of a short-lived entry removes it.
  const Time later = t0 + seconds{60};
  std::size_t live = 0;
  for (int i = 0; i < 3000; ++i) {
    const bool want = present[static_cast<std::size_t>(i)] && i % 3 != 0;
    const bool got = c.find_rrset(name(host(i)), rrtype::kA, rrclass::kIN, later).has_value();
    CHECK(got == want);
    if (want) ++live;
  }
  CHECK(c.entries() == live);
  // And each survivor is still there on a second pass, after all removals.
  for (int i = 0; i < 3000; ++i) {
    const bool want = present[static_cast<std::size_t>(i)] && i % 3 != 0;
    CHECK(c.find_rrset(name(host(i)), rrtype::kA, rrclass::kIN, later).has_value() == want);
  }
  CHECK(c.flush() == live);
  CHECK(c.entries() == 0);
  CHECK(c.bytes() == 0);
}

TEST_CASE("cache: an RRset's security, set by the validator, and the RRSIGs kept beside it") {
  Cache c;
  const Time t0{5000};
  // Two RRSIGs of the owner: one over A (kept), one over AAAA (not this set's).
  RRset sigs;
  sigs.owner = name("www.a.test.");
  sigs.type = rrtype::kRRSIG;
  sigs.ttl = 100;
  std::vector<std::uint8_t> over_a{0, 1, 13, 3, 0, 0, 0, 100, 0, 0, 0, 2, 0, 0, 0, 1, 0, 7, 0, 0xaa};
  std::vector<std::uint8_t> over_aaaa = over_a;
  over_aaaa[1] = 28;
  REQUIRE(sigs.add_rdata(over_a));
  REQUIRE(sigs.add_rdata(over_aaaa));
  const RRset a = a_set("www.a.test.", "198.51.100.80", 100);
  REQUIRE(c.insert_rrset(a, Trust::Answer, t0, &sigs));
  auto hit = c.find_rrset(name("www.a.test."), rrtype::kA, rrclass::kIN, t0);
  REQUIRE(hit);
  CHECK(hit->security == RRsetSecurity::Unchecked);
  REQUIRE(hit->sigs != nullptr);
  CHECK(hit->sigs->size() == 1);
  CHECK(hit->sigs->type == rrtype::kRRSIG);
  // Other data than what is held: nothing changes.
  CHECK_FALSE(c.set_security(a_set("www.a.test.", "198.51.100.81", 100), RRsetSecurity::Secure,
                             100, t0));
  CHECK(c.find_rrset(name("www.a.test."), rrtype::kA, rrclass::kIN, t0)->security ==
        RRsetSecurity::Unchecked);
  // The same data: secure, and no longer kept than the validated TTL.
  CHECK(c.set_security(a, RRsetSecurity::Secure, 30, t0 + seconds{10}));
  hit = c.find_rrset(name("www.a.test."), rrtype::kA, rrclass::kIN, t0 + seconds{10});
  REQUIRE(hit);
  CHECK(hit->security == RRsetSecurity::Secure);
  CHECK(hit->ttl == 30);
  CHECK_FALSE(c.find_rrset(name("www.a.test."), rrtype::kA, rrclass::kIN, t0 + seconds{40}));
  // A fresh insertion (a refetch) is unchecked again.
  REQUIRE(c.insert_rrset(a, Trust::Answer, t0 + seconds{50}));
  hit = c.find_rrset(name("www.a.test."), rrtype::kA, rrclass::kIN, t0 + seconds{50});
  REQUIRE(hit);
  CHECK(hit->security == RRsetSecurity::Unchecked);
  CHECK(hit->sigs->empty());
  // Nothing to mark once it is gone.
  CHECK_FALSE(c.set_security(a, RRsetSecurity::Secure, 30, t0 + seconds{500}));
}

// The aggressive denial cache (RFC 8198) over the NSEC chain of RFC 4035
// Appendix A's zone "example." and the NSEC3 chain of RFC 5155 Appendix A:
// which names and types the kept records deny, which they must not (names
// below a delegation, names a wildcard answers, opt-out spans, iterations
// above the cap), the TTLs (RFC 9077) and the bounds.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "diode/resolver/aggressive.hpp"
#include "diode/resolver/zone_text.hpp"

using namespace diode::resolver;
using namespace diode::resolver::dnssec;

namespace {

std::vector<RRset> zone(std::string_view text) {
  ZoneText z = parse_zone_text(text);
  for (const auto& e : z.errors) FAIL_CHECK(e.line << ":" << e.column << ": " << e.message);
  REQUIRE(z.errors.empty());
  return group_rrsets(z.records);
}

Name name(std::string_view t) {
  return *Name::from_text(t);
}

// RFC 4035 Appendix A: the SOA and the NSEC chain of "example.".
constexpr std::string_view kExampleNsec = R"(
$ORIGIN example.
@       3600 IN SOA ns1.example. bugs.x.w.example. 1081539377 3600 300 3600000 3600
@       3600 NSEC a.example. NS SOA MX RRSIG NSEC DNSKEY
a       3600 NSEC ai.example. NS DS RRSIG NSEC
ai      3600 NSEC b.example. A HINFO AAAA RRSIG NSEC
b       3600 NSEC ns1.example. NS RRSIG NSEC
ns1     3600 NSEC ns2.example. A RRSIG NSEC
ns2     3600 NSEC *.w.example. A RRSIG NSEC
*.w     3600 NSEC x.w.example. MX RRSIG NSEC
x.w     3600 NSEC x.y.w.example. MX RRSIG NSEC
x.y.w   3600 NSEC xx.example. MX RRSIG NSEC
xx      3600 NSEC example. A HINFO AAAA RRSIG NSEC
)";

// An RRSIG over b.example's NSEC (its signature bytes do not matter here:
// what goes in was verified by the validator).
constexpr std::string_view kSig = R"(
b.example. 3600 IN RRSIG NSEC 5 2 3600 20040509183619 20040409183619 38519 example. AAECAw==
)";

bool has(const DenialCache::Answer& a, std::string_view owner, std::uint16_t type) {
  for (const RRset& r : a.records)
    if (r.owner == name(owner) && r.type == type) return true;
  return false;
}

}  // namespace

TEST_CASE("aggressive NSEC: the RFC 4035 example zone's denials, from kept records",
          "[dnssec][aggressive]") {
  const auto sets = zone(kExampleNsec);
  const auto sigs = zone(kSig);
  DenialCache dc;
  Nsec3Limits limits;
  Budget budget(0, 10000);
  const Name ex = name("example.");
  dc.add(ex, sets, sigs, 0xffffffffU, 1000);
  CHECK(dc.zones() == 1);
  CHECK(dc.records() == 10);
  // B.2 Name Error (ml.example), and another name in the same gap.
  for (const char* n : {"ml.example.", "mz.example.", "c.example."}) {
    INFO(n);
    auto a = dc.lookup(name(n), rrtype::kA, 1000, limits, budget);
    REQUIRE(a);
    CHECK(a->rcode == rcode::kNxDomain);
    REQUIRE(a->soa.size() == 1);
    CHECK(a->soa.front().owner == ex);
    CHECK(has(*a, "b.example.", rrtype::kNSEC));
    CHECK(has(*a, "example.", rrtype::kNSEC));     // covers *.example
    CHECK(has(*a, "b.example.", rrtype::kRRSIG));  // its signature, for DO clients
  }
  // B.3 No Data: ns1.example MX, but not A (it exists).
  auto nd = dc.lookup(name("ns1.example."), rrtype::kMX, 1000, limits, budget);
  REQUIRE(nd);
  CHECK(nd->rcode == rcode::kNoError);
  CHECK_FALSE(dc.lookup(name("ns1.example."), rrtype::kA, 1000, limits, budget));
  // An empty non-terminal (y.w.example: x.y.w.example exists below it).
  nd = dc.lookup(name("y.w.example."), rrtype::kA, 1000, limits, budget);
  REQUIRE(nd);
  CHECK(nd->rcode == rcode::kNoError);
  // B.7 Wildcard No Data: a.z.w.example AAAA is denied; MX is what the
  // wildcard answers, so it is not denied (and not synthesised either).
  nd = dc.lookup(name("a.z.w.example."), rrtype::kAAAA, 1000, limits, budget);
  REQUIRE(nd);
  CHECK(nd->rcode == rcode::kNoError);
  CHECK_FALSE(dc.lookup(name("a.z.w.example."), rrtype::kMX, 1000, limits, budget));
  // Names below delegations (a.example signed, b.example unsigned) are the
  // children's: the parent's NSEC denies nothing there (RFC 6840 §4.1).
  CHECK_FALSE(dc.lookup(name("x.b.example."), rrtype::kA, 1000, limits, budget));
  CHECK_FALSE(dc.lookup(name("x.a.example."), rrtype::kA, 1000, limits, budget));
  CHECK_FALSE(dc.lookup(name("b.example."), rrtype::kA, 1000, limits, budget));
  // DS questions belong to the parent's side of a cut: never answered.
  CHECK_FALSE(dc.lookup(name("c.example."), rrtype::kDS, 1000, limits, budget));
  // Names outside every kept zone.
  CHECK_FALSE(dc.lookup(name("ml.example.net."), rrtype::kA, 1000, limits, budget));
  CHECK_FALSE(dc.lookup(name("."), rrtype::kA, 1000, limits, budget));
}

TEST_CASE("aggressive NSEC: only what the kept records prove", "[dnssec][aggressive]") {
  const auto sets = zone(kExampleNsec);
  Nsec3Limits limits;
  Budget budget(0, 10000);
  const Name ex = name("example.");
  // Only b.example's NSEC (as after a NODATA for b.example DS): ml.example is
  // covered, but the wildcard *.example is not proven absent.
  std::vector<RRset> some;
  for (const RRset& r : sets)
    if (r.type == rrtype::kSOA || r.owner == name("b.example.")) some.push_back(r);
  DenialCache dc;
  dc.add(ex, some, {}, 0xffffffffU, 1000);
  CHECK(dc.records() == 1);
  CHECK_FALSE(dc.lookup(name("ml.example."), rrtype::kA, 1000, limits, budget));
  // Without the zone's SOA nothing is kept (no negative answer can be made).
  DenialCache none;
  std::vector<RRset> no_soa;
  for (const RRset& r : sets)
    if (r.type != rrtype::kSOA) no_soa.push_back(r);
  none.add(ex, no_soa, {}, 0xffffffffU, 1000);
  CHECK(none.records() == 0);
  // Records outside the zone named are not kept under it.
  DenialCache other;
  other.add(name("w.example."), sets, {}, 0xffffffffU, 1000);
  CHECK(other.records() == 0);
}

TEST_CASE("aggressive NSEC: TTL is min(record TTL, SOA TTL, SOA MINIMUM, validated TTL)",
          "[dnssec][aggressive]") {
  Nsec3Limits limits;
  Budget budget(0, 10000);
  // SOA MINIMUM 300 below the records' 3600 (RFC 9077 §3).
  auto sets = zone(R"(
$ORIGIN example.
@    3600 IN SOA ns1.example. bugs.x.w.example. 1 3600 300 3600000 300
@    3600 NSEC a.example. NS SOA MX RRSIG NSEC DNSKEY
b    3600 NSEC ns1.example. NS RRSIG NSEC
)");
  DenialCache dc;
  dc.add(name("example."), sets, {}, 0xffffffffU, 1000);
  auto a = dc.lookup(name("ml.example."), rrtype::kA, 1000, limits, budget);
  REQUIRE(a);
  CHECK(a->soa.front().ttl == 300);
  for (const RRset& r : a->records) CHECK(r.ttl == 300);
  a = dc.lookup(name("ml.example."), rrtype::kA, 1299, limits, budget);
  REQUIRE(a);
  CHECK(a->soa.front().ttl == 1);
  CHECK_FALSE(dc.lookup(name("ml.example."), rrtype::kA, 1300, limits, budget));
  // The validated TTL (RRSIG original TTL, expiration) caps it further.
  DenialCache capped;
  capped.add(name("example."), sets, {}, 100, 1000);
  a = capped.lookup(name("ml.example."), rrtype::kA, 1000, limits, budget);
  REQUIRE(a);
  CHECK(a->soa.front().ttl == 100);
  CHECK_FALSE(capped.lookup(name("ml.example."), rrtype::kA, 1100, limits, budget));
}

TEST_CASE("aggressive NSEC: bounded per zone and in bytes", "[dnssec][aggressive]") {
  const auto sets = zone(kExampleNsec);
  DenialCacheLimits lim;
  lim.max_records_per_zone = 3;
  DenialCache dc(lim);
  dc.add(name("example."), sets, {}, 0xffffffffU, 1000);
  CHECK(dc.records() == 3);
  DenialCacheLimits tiny;
  tiny.max_bytes = 1000;
  DenialCache small(tiny);
  small.add(name("example."), sets, {}, 0xffffffffU, 1000);
  CHECK(small.bytes() <= 1000);
  small.clear();
  CHECK(small.records() == 0);
  CHECK(small.bytes() == 0);
}

namespace {

// RFC 5155 Appendix A: SOA and NSEC3 chain of "example." (opt-out set on
// every record, as the RFC signed it).
constexpr std::string_view kExampleNsec3 = R"(
$ORIGIN example.
@ 3600 IN SOA ns1.example. bugs.x.w.example. 1 3600 300 3600000 3600
0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr MX DNSKEY NS SOA NSEC3PARAM RRSIG
2t7b4g4vsa5smi47k61mv5bv1a22bojr NSEC3 1 1 12 aabbccdd 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG
2vptu5timamqttgl4luu9kg21e0aor3s NSEC3 1 1 12 aabbccdd 35mthgpgcu1qg68fab165klnsnk3dpvl MX RRSIG
35mthgpgcu1qg68fab165klnsnk3dpvl NSEC3 1 1 12 aabbccdd b4um86eghhds6nea196smvmlo4ors995 NS DS RRSIG
b4um86eghhds6nea196smvmlo4ors995 NSEC3 1 1 12 aabbccdd gjeqe526plbf1g8mklp59enfd789njgi MX RRSIG
gjeqe526plbf1g8mklp59enfd789njgi NSEC3 1 1 12 aabbccdd ji6neoaepv8b5o6k4ev33abha8ht9fgc A HINFO AAAA RRSIG
ji6neoaepv8b5o6k4ev33abha8ht9fgc NSEC3 1 1 12 aabbccdd k8udemvp1j2f7eg6jebps17vp3n8i58h
k8udemvp1j2f7eg6jebps17vp3n8i58h NSEC3 1 1 12 aabbccdd kohar7mbb8dc2ce8a9qvl8hon4k53uhi
kohar7mbb8dc2ce8a9qvl8hon4k53uhi NSEC3 1 1 12 aabbccdd q04jkcevqvmu85r014c7dkba38o0ji5r A RRSIG
q04jkcevqvmu85r014c7dkba38o0ji5r NSEC3 1 1 12 aabbccdd r53bq7cc2uvmubfu5ocmm6pers9tk9en A RRSIG
r53bq7cc2uvmubfu5ocmm6pers9tk9en NSEC3 1 1 12 aabbccdd t644ebqk9bibcna874givr6joj62mlhv MX RRSIG
t644ebqk9bibcna874givr6joj62mlhv NSEC3 1 1 12 aabbccdd 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A HINFO AAAA RRSIG
)";

std::string without_opt_out(std::string_view text) {
  std::string s(text);
  for (std::size_t at = 0; (at = s.find("NSEC3 1 1 12", at)) != std::string::npos; at += 12)
    s[at + 8] = '0';
  return s;
}

}  // namespace

TEST_CASE("aggressive NSEC3: RFC 5155 Appendix B, and opt-out spans never deny",
          "[dnssec][aggressive][nsec3]") {
  const Name ex = name("example.");
  Nsec3Limits limits;
  Budget budget(0, 100000);
  // As signed in the RFC (opt-out everywhere): B.1's name error a.c.x.w.example
  // lies in an opt-out span, which proves only that no signed name is there.
  DenialCache opt_out;
  opt_out.add(ex, zone(kExampleNsec3), {}, 0xffffffffU, 1000);
  CHECK(opt_out.records() == 12);
  CHECK_FALSE(opt_out.lookup(name("a.c.x.w.example."), rrtype::kA, 1000, limits, budget));
  // B.2 No Data (ns1.example MX) is a matching record's bitmap: denied.
  auto nd = opt_out.lookup(name("ns1.example."), rrtype::kMX, 1000, limits, budget);
  REQUIRE(nd);
  CHECK(nd->rcode == rcode::kNoError);
  CHECK_FALSE(opt_out.lookup(name("ns1.example."), rrtype::kA, 1000, limits, budget));
  // B.2.1 the empty non-terminal y.w.example.
  nd = opt_out.lookup(name("y.w.example."), rrtype::kA, 1000, limits, budget);
  REQUIRE(nd);
  CHECK(nd->rcode == rcode::kNoError);

  // The same chain without opt-out: B.1 is a proven name error, and so is
  // another name whose next closer name falls in the same span.
  DenialCache dc;
  dc.add(ex, zone(without_opt_out(kExampleNsec3)), {}, 0xffffffffU, 1000);
  auto nx = dc.lookup(name("a.c.x.w.example."), rrtype::kA, 1000, limits, budget);
  REQUIRE(nx);
  CHECK(nx->rcode == rcode::kNxDomain);
  CHECK(has(*nx, "b4um86eghhds6nea196smvmlo4ors995.example.", rrtype::kNSEC3));  // x.w (encloser)
  CHECK(has(*nx, "35mthgpgcu1qg68fab165klnsnk3dpvl.example.", rrtype::kNSEC3));  // covers c.x.w
  CHECK(has(*nx, "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example.", rrtype::kNSEC3));  // covers *.x.w
  nx = dc.lookup(name("b.c.x.w.example."), rrtype::kAAAA, 1000, limits, budget);
  REQUIRE(nx);
  CHECK(nx->rcode == rcode::kNxDomain);
  // An existing name is never denied; a wildcard's names are not either (B.4).
  CHECK_FALSE(dc.lookup(name("x.w.example."), rrtype::kMX, 1000, limits, budget));
  CHECK_FALSE(dc.lookup(name("a.z.w.example."), rrtype::kMX, 1000, limits, budget));
  // B.5 Wildcard No Data.
  nd = dc.lookup(name("a.z.w.example."), rrtype::kAAAA, 1000, limits, budget);
  REQUIRE(nd);
  CHECK(nd->rcode == rcode::kNoError);
  // Iterations above the cap: not used, and nothing hashed.
  Budget counted(0, 100000);
  CHECK_FALSE(dc.lookup(name("a.c.x.w.example."), rrtype::kA, 1000, Nsec3Limits{11}, counted));
  CHECK(counted.hashes_left() == 100000);
  // A spent budget: no answer (the question goes upstream).
  Budget tiny(0, 20);
  CHECK_FALSE(dc.lookup(name("a.c.x.w.example."), rrtype::kA, 1000, limits, tiny));
}

// The DNSSEC primitives against the RFCs' own examples, typed in from the
// RFC texts: RFC 4035 Appendix B (the signed zone "example." of Appendix
// A, RSA/SHA-1 with 1024-bit keys, signed in April 2004: checked at an
// injected time inside the validity period), RFC 5155 Appendix A/B (NSEC3
// hashes and proofs), RFC 6605 §6 (ECDSA) and RFC 8080 §6 with its
// erratum 4935 (Ed25519, Ed448).

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "diode/resolver/dnssec.hpp"
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

const RRset& find(const std::vector<RRset>& sets, std::string_view owner, std::uint16_t type) {
  const Name n = *Name::from_text(owner);
  for (const RRset& s : sets)
    if (s.owner == n && s.type == type) return s;
  FAIL("no RRset " << owner << " type " << type);
  return sets.front();
}

std::vector<std::span<const std::uint8_t>> sigs_of(const std::vector<RRset>& sets,
                                                   std::string_view owner) {
  std::vector<std::span<const std::uint8_t>> out;
  const Name n = *Name::from_text(owner);
  for (const RRset& s : sets)
    if (s.owner == n && s.type == rrtype::kRRSIG)
      for (auto rd : s) out.push_back(rd);
  return out;
}

Name name(std::string_view t) {
  return *Name::from_text(t);
}

std::uint64_t at(std::string_view t) {
  return *parse_dnssec_time(t);
}

// RFC 4035 Appendix A: the zone keys of "example." (RSA/SHA-1, 1024 bits).
constexpr std::string_view kExampleKeys = R"(
example. 3600 IN DNSKEY 256 3 5 (
    AQOy1bZVvpPqhg4j7EJoM9rI3ZmyEx2OzDBVrZy/
    lvI5CQePxXHZS4i8dANH4DX3tbHol61ek8EFMcsG
    XxKciJFHyhl94C+NwILQdzsUlSFovBZsyl/NX6yE
    btw/xN9ZNcrbYvgjjZ/UVPZIySFNsgEYvh0z2542
    lzMKR4Dh8uZffQ== )
example. 3600 IN DNSKEY 257 3 5 (
    AQOeX7+baTmvpVHb2CcLnL1dMRWbuscRvHXlLnXw
    Dzvqp4tZVKp1sZMepFb8MvxhhW3y/0QZsyCjczGJ
    1qk8vJe52iOhInKROVLRwxGpMfzPRLMlGybr51bO
    V/1se0ODacj3DomyB4QB5gKTYot/K9alk5/j8vfd
    4jWCWD+E1Sze0Q== )
)";

// RFC 4035 Appendix B: records of the example responses.
constexpr std::string_view kRfc4035Answers = R"(
$ORIGIN example.
x.w     3600 IN MX 1 xx.example.
x.w     3600 RRSIG MX 5 3 3600 20040509183619 (
            20040409183619 38519 example.
            Il2WTZ+Bkv+OytBx4LItNW5mjB4RCwhOO8y1
            XzPHZmZUTVYL7LaA63f6T9ysVBzJRI3KRjAP
            H3U1qaYnDoN1DrWqmi9RJe4FoObkbcdm7P3I
            kx70ePCoFgRz1Yq+bVVXCvGuAU4xALv3W/Y1
            jNSlwZ2mSWKHfxFQxPtLj8s32+k= )
@       3600 NS ns1.example.
@       3600 NS ns2.example.
@       3600 RRSIG NS 5 1 3600 20040509183619 (
            20040409183619 38519 example.
            gl13F00f2U0R+SWiXXLHwsMY+qStYy5k6zfd
            EuivWc+wd1fmbNCyql0Tk7lHTX6UOxc8AgNf
            4ISFve8XqF4q+o9qlnqIzmppU3LiNeKT4FZ8
            RO5urFOvoMRTbQxW3U0hXWuggE4g3ZpsHv48
            0HjMeRaZB/FRPGfJPajngcq6Kwg= )
xx      3600 IN A 192.0.2.10
xx      3600 RRSIG A 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            kBF4YxMGWF0D8r0cztL+2fWWOvN1U/GYSpYP
            7SoKoNQ4fZKyk+weWGlKLIUM+uE1zjVTPXoa
            0Z6WG0oZp46rkl1EzMcdMgoaeUzzAJ2BMq+Y
            VdxG9IK1yZkYGY9AgbTOGPoAgbJyO9EPULsx
            kbIDV6GPPSZVusnZU6OMgdgzHV4= )
xx      3600 AAAA 2001:db8::f00:baaa
xx      3600 RRSIG AAAA 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            Zzj0yodDxcBLnnOIwDsuKo5WqiaK24DlKg9C
            aGaxDFiKgKobUj2jilYQHpGFn2poFRetZd4z
            ulyQkssz2QHrVrPuTMS22knudCiwP4LWpVTr
            U4zfeA+rDz9stmSBP/4PekH/x2IoAYnwctd/
            xS9cL2QgW7FChw16mzlkH6/vsfs= )
ns1     3600 IN A 192.0.2.1
ns1     3600 RRSIG A 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            F1C9HVhIcs10cZU09G5yIVfKJy5yRQQ3qVet
            5pGhp82pzhAOMZ3K22JnmK4c+IjUeFp/to06
            im5FVpHtbFisdjyPq84bhTv8vrXt5AB1wNB+
            +iAqvIfdgW4sFNC6oADb1hK8QNauw9VePJhK
            v/iVXSYC0b7mPSU+EOlknFpVECs= )
ns2     3600 IN A 192.0.2.2
ns2     3600 RRSIG A 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            V7cQRw1TR+knlaL1z/psxlS1PcD37JJDaCMq
            Qo6/u1qFQu6x+wuDHRH22Ap9ulJPQjFwMKOu
            yfPGQPC8KzGdE3vt5snFEAoE1Vn3mQqtu7SO
            6amIjk13Kj/jyJ4nGmdRIc/3cM3ipXFhNTKq
            rdhx8SZ0yy4ObIRzIzvBFLiSS8o= )
@       3600 IN SOA ns1.example. bugs.x.w.example. (
            1081539377 3600 300 3600000 3600 )
@       3600 RRSIG SOA 5 1 3600 20040509183619 (
            20040409183619 38519 example.
            ONx0k36rcjaxYtcNgq6iQnpNV5+drqYAsC9h
            7TSJaHCqbhE67Sr6aH2xDUGcqQWu/n0UVzrF
            vkgO9ebarZ0GWDKcuwlM6eNB5SiX2K74l5LW
            DA7S/Un/IbtDq4Ay8NMNLQI7Dw7n4p8/rjkB
            jV7j86HyQgM5e7+miRAz8V01b0I= )
b       3600 IN NSEC ns1.example. NS RRSIG NSEC
b       3600 RRSIG NSEC 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            GNuxHn844wfmUhPzGWKJCPY5ttEX/RfjDoOx
            9ueK1PtYkOWKOOdiJ/PJKCYB3hYX+858dDWS
            xb2qnV/LSTCNVBnkm6owOpysY97MVj5VQEWs
            0lm9tFoqjcptQkmQKYPrwUnCSNwvvclSF1xZ
            vhRXgWT7OuFXldoCG6TfVFMs9xE= )
@       3600 NSEC a.example. NS SOA MX RRSIG NSEC DNSKEY
@       3600 RRSIG NSEC 5 1 3600 20040509183619 (
            20040409183619 38519 example.
            O0k558jHhyrC97ISHnislm4kLMW48C7U7cBm
            FTfhke5iVqNRVTB1STLMpgpbDIC9hcryoO0V
            Z9ME5xPzUEhbvGnHd5sfzgFVeGxr5Nyyq4tW
            SDBgIBiLQUv1ivy29vhXy7WgR62dPrZ0PWvm
            jfFJ5arXf4nPxp/kEowGgBRzY/U= )
ns1     3600 IN NSEC ns2.example. A RRSIG NSEC
ns1     3600 RRSIG NSEC 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            I4hj+Kt6+8rCcHcUdolks2S+Wzri9h3fHas8
            1rGN/eILdJHN7JpV6lLGPIh/8fIBkfvdyWnB
            jjf1q3O7JgYO1UdI7FvBNWqaaEPJK3UkddBq
            ZIaLi8Qr2XHkjq38BeQsbp8X0+6h4ETWSGT8
            IZaIGBLryQWGLw6Y6X8dqhlnxJM= )
a       3600 IN DS 57855 5 1 (
            B6DCD485719ADCA18E5F3D48A2331627FDD3636B )
a       3600 RRSIG DS 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            oXIKit/QtdG64J/CB+Gi8dOvnwRvqrto1AdQ
            oRkAN15FP3iZ7suB7gvTBmXzCjL7XUgQVcoH
            kdhyCuzp8W9qJHgRUSwKKkczSyuL64nhgjuD
            EML8l9wlWVsl7PR2VnZduM9bLyBhaaPmRKX/
            Fm+v6ccF2EGNLRiY08kdkz+XHHo= )
a.z.w   3600 IN MX 1 ai.example.
a.z.w   3600 RRSIG MX 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            OMK8rAZlepfzLWW75Dxd63jy2wswESzxDKG2
            f9AMN1CytCd10cYISAxfAdvXSZ7xujKAtPbc
            tvOQ2ofO7AZJ+d01EeeQTVBPq4/6KCWhqe2X
            TjnkVLNvvhnc0u28aoSsG0+4InvkkOHknKxw
            4kX18MMR34i8lC36SR5xBni8vHI= )
x.y.w   3600 IN NSEC xx.example. MX RRSIG NSEC
x.y.w   3600 RRSIG NSEC 5 4 3600 20040509183619 (
            20040409183619 38519 example.
            OvE6WUzN2ziieJcvKPWbCAyXyP6ef8cr6Csp
            ArVSTzKSquNwbezZmkU7E34o5lmb6CWSSSpg
            xw098kNUFnHcQf/LzY2zqRomubrNQhJTiDTX
            a0ArunJQCzPjOYq5t0SLjm6qp6McJI1AP5Vr
            QoKqJDCLnoAlcPOPKAm/jJkn3jk= )
*.w     3600 IN NSEC x.w.example. MX RRSIG NSEC
*.w     3600 RRSIG NSEC 5 2 3600 20040509183619 (
            20040409183619 38519 example.
            r/mZnRC3I/VIcrelgIcteSxDhtsdlTDt8ng9
            HSBlABOlzLxQtfgTnn8f+aOwJIAFe1Ee5RvU
            5cVhQJNP5XpXMJHfyps8tVvfxSAXfahpYqtx
            91gsmcV/1V9/bZAG55CefP9cM4Z9Y9NT9XQ8
            s1InQ2UoIv6tJEaaKkP701j8OLA= )
)";

AlgorithmPolicy rfc4035_policy() {
  return AlgorithmPolicy{};  // RSA/SHA-1 is accepted by default
}

}  // namespace

TEST_CASE("RFC 4035 Appendix A keys have the tags Appendix B uses", "[dnssec][vectors]") {
  const auto keys = zone(kExampleKeys);
  REQUIRE(keys.size() == 1);
  std::vector<std::uint16_t> tags;
  for (auto rd : keys[0]) tags.push_back(key_tag(rd));
  CHECK(tags == std::vector<std::uint16_t>{38519, 9465});
}

TEST_CASE("RFC 4035 Appendix B signatures verify at a time inside their validity",
          "[dnssec][vectors]") {
  const auto keys = zone(kExampleKeys)[0];
  const auto sets = zone(kRfc4035Answers);
  Clock clock{at("20040501120000")};
  Budget budget(1000, 0);
  const Name signer = name("example.");
  struct Case {
    const char* owner;
    std::uint16_t type;
  };
  const Case cases[] = {
      {"x.w.example.", rrtype::kMX},   {"example.", rrtype::kNS},
      {"xx.example.", rrtype::kA},     {"xx.example.", rrtype::kAAAA},
      {"ns1.example.", rrtype::kA},    {"ns2.example.", rrtype::kA},
      {"example.", rrtype::kSOA},      {"b.example.", rrtype::kNSEC},
      {"example.", rrtype::kNSEC},     {"ns1.example.", rrtype::kNSEC},
      {"a.example.", rrtype::kDS},     {"x.y.w.example.", rrtype::kNSEC},
      {"*.w.example.", rrtype::kNSEC},
  };
  for (const Case& c : cases) {
    INFO(c.owner << " type " << c.type);
    const RRset& set = find(sets, c.owner, c.type);
    const auto sigs = sigs_of(sets, c.owner);
    const RrsetCheck r = check_rrset(set, sigs, signer, keys, clock, rfc4035_policy(), budget);
    CHECK(r.status == SigStatus::Valid);
    CHECK(r.key_tag == 38519);
    CHECK(!r.wildcard_parent);
    CHECK(r.ttl == 3600);
  }
}

TEST_CASE("RFC 4035 B.6: a wildcard expansion verifies and names its closest encloser",
          "[dnssec][vectors]") {
  const auto keys = zone(kExampleKeys)[0];
  const auto sets = zone(kRfc4035Answers);
  Budget budget(10, 0);
  const RRset& mx = find(sets, "a.z.w.example.", rrtype::kMX);
  const RrsetCheck r = check_rrset(mx, sigs_of(sets, "a.z.w.example."), name("example."), keys,
                                   Clock{at("20040501120000")}, rfc4035_policy(), budget);
  REQUIRE(r.status == SigStatus::Valid);
  REQUIRE(r.wildcard_parent);
  CHECK(*r.wildcard_parent == name("w.example."));
  // The proof that a.z.w.example itself does not exist: x.y.w's NSEC covers it.
  std::vector<NsecRecord> nsecs;
  REQUIRE(collect_nsec(sets, nsecs));
  CHECK(nsec_wildcard_answer(name("a.z.w.example."), name("w.example."), nsecs) ==
        DenialResult::Proven);
  // Claiming a wildcard one level lower is not proven by the same records.
  CHECK(nsec_wildcard_answer(name("a.z.w.example."), name("z.w.example."), nsecs) ==
        DenialResult::NotProven);
}

TEST_CASE("RFC 4035 signatures outside their validity period, or altered, fail",
          "[dnssec][vectors]") {
  const auto keys = zone(kExampleKeys)[0];
  const auto sets = zone(kRfc4035Answers);
  const RRset& mx = find(sets, "x.w.example.", rrtype::kMX);
  const auto sigs = sigs_of(sets, "x.w.example.");
  Budget budget(100, 0);
  const auto policy = rfc4035_policy();
  // Validity 30 days: the skew allowance is 3 days (a tenth), at most one day.
  CHECK(check_rrset(mx, sigs, name("example."), keys, Clock{at("20040510183619")}, policy, budget)
            .status == SigStatus::Valid);  // expired 1 day ago: inside the allowance
  CHECK(check_rrset(mx, sigs, name("example."), keys, Clock{at("20040511183620")}, policy, budget)
            .status == SigStatus::Expired);
  CHECK(check_rrset(mx, sigs, name("example."), keys, Clock{at("20040407183619")}, policy, budget)
            .status == SigStatus::NotYetValid);
  // Today (2026): long expired; and the serial arithmetic of RFC 1982
  // wraps every 136 years, so far future is "before" again.
  CHECK(check_rrset(mx, sigs, name("example."), keys, Clock{at("20261207000000")}, policy, budget)
            .status == SigStatus::Expired);
  // A different MX target: the signature no longer matches.
  auto other = zone("x.w.example. 3600 IN MX 1 xy.example.");
  CHECK(check_rrset(other[0], sigs, name("example."), keys, Clock{at("20040501120000")}, policy,
                    budget)
            .status == SigStatus::BadSignature);
  // Case does not matter: canonical form lowercases owner and RDATA names.
  auto upper = zone("X.W.EXAMPLE. 3600 IN MX 1 XX.Example.");
  CHECK(check_rrset(upper[0], sigs, name("example."), keys, Clock{at("20040501120000")}, policy,
                    budget)
            .status == SigStatus::Valid);
  // The received TTL does not enter the signature; the original TTL caps it.
  auto longer = zone("x.w.example. 86400 IN MX 1 xx.example.");
  const auto r = check_rrset(longer[0], sigs, name("example."), keys, Clock{at("20040501120000")},
                             policy, budget);
  CHECK(r.status == SigStatus::Valid);
  CHECK(r.ttl == 3600);
  // A policy that wants RSA keys of 2048 bits or more finds these unsupported.
  AlgorithmPolicy big_rsa;
  big_rsa.rsa_min_bits = 2048;
  CHECK(check_rrset(mx, sigs, name("example."), keys, Clock{at("20040501120000")}, big_rsa, budget)
            .status == SigStatus::Unsupported);
  // Without SHA-1, algorithm 5 is unsupported as well.
  AlgorithmPolicy no_sha1 = policy;
  no_sha1.accept_rsa_sha1 = false;
  CHECK(check_rrset(mx, sigs, name("example."), keys, Clock{at("20040501120000")}, no_sha1, budget)
            .status == SigStatus::Unsupported);
  // Only the KSK: no key with the RRSIG's tag.
  auto ksk_only = zone(kExampleKeys)[0];
  RRset just_ksk;
  just_ksk.owner = ksk_only.owner;
  just_ksk.type = rrtype::kDNSKEY;
  for (auto rd : ksk_only)
    if (key_tag(rd) == 9465) just_ksk.add_rdata(rd);
  CHECK(
      check_rrset(mx, sigs, name("example."), just_ksk, Clock{at("20040501120000")}, policy, budget)
          .status == SigStatus::NoMatchingKey);
  // Signed by another zone than the one asked about: not considered.
  CHECK(check_rrset(mx, sigs, name("w.example."), keys, Clock{at("20040501120000")}, policy, budget)
            .status == SigStatus::NoSignatures);
}

TEST_CASE("RFC 4035 B.2/B.3/B.5/B.7/B.8: NSEC denial proofs", "[dnssec][vectors][nsec]") {
  const auto sets = zone(kRfc4035Answers);
  std::vector<NsecRecord> all;
  REQUIRE(collect_nsec(sets, all));
  auto pick = [&](std::initializer_list<const char*> owners) {
    std::vector<NsecRecord> out;
    for (const char* o : owners)
      for (const auto& r : all)
        if (r.owner == name(o)) out.push_back(r);
    return out;
  };
  const Name ex = name("example.");
  // B.2 Name Error: ml.example.
  const auto b2 = pick({"b.example.", "example."});
  CHECK(nsec_nxdomain(name("ml.example."), ex, b2) == DenialResult::Proven);
  // Without the apex NSEC, the wildcard *.example is not proven absent.
  CHECK(nsec_nxdomain(name("ml.example."), ex, pick({"b.example."})) == DenialResult::NotProven);
  // A name that exists is never proven absent.
  CHECK(nsec_nxdomain(name("ns1.example."), ex, pick({"b.example.", "example.", "ns1.example."})) ==
        DenialResult::NotProven);
  // b.example is a delegation: its NSEC does not deny names below it (RFC 6840 §4.1).
  CHECK(nsec_nxdomain(name("x.b.example."), ex, b2) == DenialResult::NotProven);
  // B.3 No Data: ns1.example MX.
  CHECK(nsec_nodata(name("ns1.example."), rrtype::kMX, ex, pick({"ns1.example."})) ==
        DenialResult::Proven);
  CHECK(nsec_nodata(name("ns1.example."), rrtype::kA, ex, pick({"ns1.example."})) ==
        DenialResult::NotProven);
  // B.5 (referral to an unsigned zone): b.example has NS and no DS.
  CHECK(nsec_nodata(name("b.example."), rrtype::kDS, ex, pick({"b.example."})) ==
        DenialResult::Proven);
  // ...but the delegation's NSEC says nothing of the child's own data.
  CHECK(nsec_nodata(name("b.example."), rrtype::kA, ex, pick({"b.example."})) ==
        DenialResult::NotProven);
  // B.7 Wildcard No Data: a.z.w.example AAAA.
  const auto b7 = pick({"x.y.w.example.", "*.w.example."});
  CHECK(nsec_nodata(name("a.z.w.example."), rrtype::kAAAA, ex, b7) == DenialResult::Proven);
  CHECK(nsec_nodata(name("a.z.w.example."), rrtype::kMX, ex, b7) == DenialResult::NotProven);
  CHECK(nsec_nodata(name("a.z.w.example."), rrtype::kAAAA, ex, pick({"x.y.w.example."})) ==
        DenialResult::NotProven);
  // B.8 DS Child Zone No Data Error: the child's apex NSEC (with SOA) cannot
  // prove the parent holds no DS; the DS question belongs to the parent.
  CHECK(nsec_nodata(ex, rrtype::kDS, ex, pick({"example."})) == DenialResult::NotProven);
  // An empty non-terminal: w.example has names below it but no data.
  CHECK(nsec_nodata(name("y.w.example."), rrtype::kA, ex, pick({"x.w.example.", "*.w.example."})) ==
        DenialResult::NotProven);
  const auto ent = zone("x.w.example. 3600 IN NSEC x.y.w.example. MX RRSIG NSEC");
  std::vector<NsecRecord> ent_nsec;
  REQUIRE(collect_nsec(ent, ent_nsec));
  CHECK(nsec_nodata(name("y.w.example."), rrtype::kA, ex, ent_nsec) == DenialResult::Proven);
  // ...and an empty non-terminal exists: no NXDOMAIN for it, even with a
  // record covering its wildcard (the same x.w.example NSEC covers *.y.w).
  CHECK(nsec_nxdomain(name("y.w.example."), ex, ent_nsec) == DenialResult::NotProven);
}

TEST_CASE("NSEC covering handles the wrap to the apex", "[dnssec][nsec]") {
  CHECK(nsec_covers(name("b.example."), name("ns1.example."), name("ml.example.")));
  CHECK(!nsec_covers(name("b.example."), name("ns1.example."), name("b.example.")));
  CHECK(!nsec_covers(name("b.example."), name("ns1.example."), name("ns1.example.")));
  CHECK(nsec_covers(name("xx.example."), name("example."), name("z.example.")));
  CHECK(!nsec_covers(name("xx.example."), name("example."), name("a.example.")));
}

// ---------------------------------------------------------------------------
// RFC 5155

TEST_CASE("RFC 5155 Appendix A: NSEC3 hashes of the example names", "[dnssec][vectors][nsec3]") {
  const std::vector<std::uint8_t> salt{0xaa, 0xbb, 0xcc, 0xdd};
  const std::pair<const char*, const char*> cases[] = {
      {"example.", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"},
      {"a.example.", "35mthgpgcu1qg68fab165klnsnk3dpvl"},
      {"ai.example.", "gjeqe526plbf1g8mklp59enfd789njgi"},
      {"ns1.example.", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"},
      {"ns2.example.", "q04jkcevqvmu85r014c7dkba38o0ji5r"},
      {"w.example.", "k8udemvp1j2f7eg6jebps17vp3n8i58h"},
      {"*.w.example.", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"},
      {"x.w.example.", "b4um86eghhds6nea196smvmlo4ors995"},
      {"y.w.example.", "ji6neoaepv8b5o6k4ev33abha8ht9fgc"},
      {"x.y.w.example.", "2vptu5timamqttgl4luu9kg21e0aor3s"},
      {"xx.example.", "t644ebqk9bibcna874givr6joj62mlhv"},
      {"2t7b4g4vsa5smi47k61mv5bv1a22bojr.example.", "kohar7mbb8dc2ce8a9qvl8hon4k53uhi"},
      {"X.W.Example.", "b4um86eghhds6nea196smvmlo4ors995"},  // case-insensitive
  };
  Budget budget(0, 1000);
  for (const auto& [n, want] : cases) {
    auto h = nsec3_hash(name(n), 1, 12, salt, &budget);
    REQUIRE(h);
    CHECK(base32hex_encode(*h) == want);
    CHECK(base32hex_decode(want) == std::vector<std::uint8_t>(h->begin(), h->end()));
  }
  CHECK(budget.hashes_left() == 1000 - 13 * 13);
  // The budget is charged up front: 13 operations do not fit in 12.
  Budget small(0, 12);
  CHECK(!nsec3_hash(name("example."), 1, 12, salt, &small));
  CHECK(small.hashes_left() == 12);
  CHECK(!nsec3_hash(name("example."), 2, 0, salt, nullptr));  // only SHA-1 is defined
}

namespace {

// RFC 5155 Appendix A: the NSEC3 chain of the example zone (all with the
// opt-out flag set, as the RFC signed it).
constexpr std::string_view kRfc5155Chain = R"(
$ORIGIN example.
0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 1 1 12 aabbccdd (
    2t7b4g4vsa5smi47k61mv5bv1a22bojr MX DNSKEY NS SOA NSEC3PARAM RRSIG )
2t7b4g4vsa5smi47k61mv5bv1a22bojr NSEC3 1 1 12 aabbccdd (
    2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG )
2vptu5timamqttgl4luu9kg21e0aor3s NSEC3 1 1 12 aabbccdd (
    35mthgpgcu1qg68fab165klnsnk3dpvl MX RRSIG )
35mthgpgcu1qg68fab165klnsnk3dpvl NSEC3 1 1 12 aabbccdd (
    b4um86eghhds6nea196smvmlo4ors995 NS DS RRSIG )
b4um86eghhds6nea196smvmlo4ors995 NSEC3 1 1 12 aabbccdd (
    gjeqe526plbf1g8mklp59enfd789njgi MX RRSIG )
gjeqe526plbf1g8mklp59enfd789njgi NSEC3 1 1 12 aabbccdd (
    ji6neoaepv8b5o6k4ev33abha8ht9fgc A HINFO AAAA RRSIG )
ji6neoaepv8b5o6k4ev33abha8ht9fgc NSEC3 1 1 12 aabbccdd (
    k8udemvp1j2f7eg6jebps17vp3n8i58h )
k8udemvp1j2f7eg6jebps17vp3n8i58h NSEC3 1 1 12 aabbccdd (
    kohar7mbb8dc2ce8a9qvl8hon4k53uhi )
kohar7mbb8dc2ce8a9qvl8hon4k53uhi NSEC3 1 1 12 aabbccdd (
    q04jkcevqvmu85r014c7dkba38o0ji5r A RRSIG )
q04jkcevqvmu85r014c7dkba38o0ji5r NSEC3 1 1 12 aabbccdd (
    r53bq7cc2uvmubfu5ocmm6pers9tk9en A RRSIG )
r53bq7cc2uvmubfu5ocmm6pers9tk9en NSEC3 1 1 12 aabbccdd (
    t644ebqk9bibcna874givr6joj62mlhv MX RRSIG )
t644ebqk9bibcna874givr6joj62mlhv NSEC3 1 1 12 aabbccdd (
    0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A HINFO AAAA RRSIG )
)";

std::vector<Nsec3Record> nsec3_subset(const std::vector<RRset>& sets,
                                      std::initializer_list<const char*> hashes) {
  std::vector<Nsec3Record> all;
  REQUIRE(collect_nsec3(sets, all));
  std::vector<Nsec3Record> out;
  for (const char* h : hashes)
    for (const auto& r : all)
      if (r.owner == name(std::string(h) + ".example.")) out.push_back(r);
  REQUIRE(out.size() == hashes.size());
  return out;
}

}  // namespace

TEST_CASE("RFC 5155 Appendix B: NSEC3 proofs", "[dnssec][vectors][nsec3]") {
  const auto sets = zone(kRfc5155Chain);
  const Name ex = name("example.");
  Nsec3Limits limits;
  Budget budget(0, 100000);
  // B.1 Name Error, a.c.x.w.example: closest encloser x.w.example, next
  // closer c.x.w.example covered by 35mt.., wildcard *.x.w covered by 0p9m..
  // The RFC's chain has opt-out set everywhere, so the covered span may hold
  // an unsigned delegation: the answer is insecure, not proven (as Unbound).
  const auto b1 =
      nsec3_subset(sets, {"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom", "b4um86eghhds6nea196smvmlo4ors995",
                          "35mthgpgcu1qg68fab165klnsnk3dpvl"});
  CHECK(nsec3_nxdomain(name("a.c.x.w.example."), ex, b1, limits, budget) == DenialResult::OptOut);
  // Without the wildcard's cover, nothing is proven.
  CHECK(nsec3_nxdomain(name("a.c.x.w.example."), ex,
                       nsec3_subset(sets, {"b4um86eghhds6nea196smvmlo4ors995",
                                           "35mthgpgcu1qg68fab165klnsnk3dpvl"}),
                       limits, budget) == DenialResult::NotProven);
  // B.2 No Data, ns1.example MX.
  const auto b2 = nsec3_subset(sets, {"2t7b4g4vsa5smi47k61mv5bv1a22bojr"});
  CHECK(nsec3_nodata(name("ns1.example."), rrtype::kMX, ex, b2, limits, budget) ==
        DenialResult::Proven);
  CHECK(nsec3_nodata(name("ns1.example."), rrtype::kA, ex, b2, limits, budget) ==
        DenialResult::NotProven);
  // B.2.1 No Data for an empty non-terminal, y.w.example A.
  const auto b21 = nsec3_subset(sets, {"ji6neoaepv8b5o6k4ev33abha8ht9fgc"});
  CHECK(nsec3_nodata(name("y.w.example."), rrtype::kA, ex, b21, limits, budget) ==
        DenialResult::Proven);
  // B.3 Referral to an opt-out unsigned zone, c.example: no DS, opt-out span.
  const auto b3 =
      nsec3_subset(sets, {"35mthgpgcu1qg68fab165klnsnk3dpvl", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"});
  CHECK(nsec3_nodata(name("c.example."), rrtype::kDS, ex, b3, limits, budget) ==
        DenialResult::OptOut);
  // B.4 Wildcard expansion, a.z.w.example MX: z.w.example covered by q04j..
  // That NSEC3 has opt-out set: z.w.example could be an unsigned delegation,
  // so the expansion is insecure (as Unbound has it); proven without the flag.
  const auto b4 = nsec3_subset(sets, {"q04jkcevqvmu85r014c7dkba38o0ji5r"});
  CHECK(nsec3_wildcard_answer(name("a.z.w.example."), name("w.example."), ex, b4, limits, budget) ==
        DenialResult::OptOut);
  const auto b4_no_opt_out = zone(
      "q04jkcevqvmu85r014c7dkba38o0ji5r.example. NSEC3 1 0 12 aabbccdd "
      "r53bq7cc2uvmubfu5ocmm6pers9tk9en A RRSIG");
  std::vector<Nsec3Record> b4n;
  REQUIRE(collect_nsec3(b4_no_opt_out, b4n));
  CHECK(nsec3_wildcard_answer(name("a.z.w.example."), name("w.example."), ex, b4n, limits,
                              budget) == DenialResult::Proven);
  CHECK(nsec3_wildcard_answer(name("a.z.w.example."), name("example."), ex, b4, limits, budget) ==
        DenialResult::NotProven);
  // B.5 Wildcard No Data, a.z.w.example AAAA.
  const auto b5 =
      nsec3_subset(sets, {"k8udemvp1j2f7eg6jebps17vp3n8i58h", "q04jkcevqvmu85r014c7dkba38o0ji5r",
                          "r53bq7cc2uvmubfu5ocmm6pers9tk9en"});
  CHECK(nsec3_nodata(name("a.z.w.example."), rrtype::kAAAA, ex, b5, limits, budget) ==
        DenialResult::Proven);
  CHECK(nsec3_nodata(name("a.z.w.example."), rrtype::kMX, ex, b5, limits, budget) ==
        DenialResult::NotProven);
  // B.6 DS Child Zone No Data: the apex NSEC3 (SOA) is the child's and
  // cannot prove the parent's absence of DS.
  CHECK(nsec3_nodata(ex, rrtype::kDS, ex, nsec3_subset(sets, {"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"}),
                     limits, budget) == DenialResult::NotProven);
}

TEST_CASE("NSEC3 without opt-out proves NXDOMAIN, and the iteration cap and budget hold",
          "[dnssec][nsec3]") {
  // The B.1 records with the opt-out flag cleared.
  const auto sets = zone(R"(
$ORIGIN example.
0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 1 0 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr MX DNSKEY NS SOA NSEC3PARAM RRSIG
b4um86eghhds6nea196smvmlo4ors995 NSEC3 1 0 12 aabbccdd gjeqe526plbf1g8mklp59enfd789njgi MX RRSIG
35mthgpgcu1qg68fab165klnsnk3dpvl NSEC3 1 0 12 aabbccdd b4um86eghhds6nea196smvmlo4ors995 NS DS RRSIG
)");
  std::vector<Nsec3Record> recs;
  REQUIRE(collect_nsec3(sets, recs));
  Budget budget(0, 100000);
  CHECK(nsec3_nxdomain(name("a.c.x.w.example."), name("example."), recs, Nsec3Limits{}, budget) ==
        DenialResult::Proven);
  // An existing name (x.w.example matches b4um..) is not NXDOMAIN.
  CHECK(nsec3_nxdomain(name("x.w.example."), name("example."), recs, Nsec3Limits{}, budget) ==
        DenialResult::NotProven);
  // Above the cap: insecure, decided before hashing anything.
  Budget counted(0, 100000);
  CHECK(nsec3_nxdomain(name("a.c.x.w.example."), name("example."), recs, Nsec3Limits{11},
                       counted) == DenialResult::IterationsCap);
  CHECK(counted.hashes_left() == 100000);
  // A budget too small for the proof stops it.
  Budget tiny(0, 30);
  CHECK(nsec3_nxdomain(name("a.c.x.w.example."), name("example."), recs, Nsec3Limits{}, tiny) ==
        DenialResult::BudgetExhausted);
  // NSEC3 of another zone are ignored.
  CHECK(nsec3_nxdomain(name("a.c.x.w.example."), name("w.example."), recs, Nsec3Limits{}, budget) ==
        DenialResult::NotProven);
}

// ---------------------------------------------------------------------------
// RFC 6605 (ECDSA) and RFC 8080 (EdDSA, with erratum 4935)

TEST_CASE("RFC 6605 §6: ECDSA P-256 and P-384 examples", "[dnssec][vectors]") {
  const auto sets = zone(R"(
example.net. 3600 IN DNSKEY 257 3 13 (
    GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb
    krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA== )
www.example.net. 3600 IN A 192.0.2.1
www.example.net. 3600 IN RRSIG A 13 3 3600 (
    20100909100439 20100812100439 55648 example.net.
    qx6wLYqmh+l9oCKTN6qIc+bw6ya+KJ8oMz0YP107epXA
    yGmt+3SNruPFKG7tZoLBLlUzGGus7ZwmwWep666VCw== )
)");
  const auto sets384 = zone(R"(
example.net. 3600 IN DNSKEY 257 3 14 (
    xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1
    w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8
    /uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40 )
www.example.net. 3600 IN A 192.0.2.1
www.example.net. 3600 IN RRSIG A 14 3 3600 (
    20100909102025 20100812102025 10771 example.net.
    /L5hDKIvGDyI1fcARX3z65qrmPsVz73QD1Mr5CEqOiLP
    95hxQouuroGCeZOvzFaxsT8Glr74hbavRKayJNuydCuz
    WTSSPdz7wnqXL5bdcJzusdnI0RSMROxxwGipWcJm )
)");
  Budget budget(10, 0);
  for (const auto* s : {&sets, &sets384}) {
    const RRset& keys = find(*s, "example.net.", rrtype::kDNSKEY);
    const RRset& a = find(*s, "www.example.net.", rrtype::kA);
    const auto r = check_rrset(a, sigs_of(*s, "www.example.net."), name("example.net."), keys,
                               Clock{at("20100820000000")}, AlgorithmPolicy{}, budget);
    CHECK(r.status == SigStatus::Valid);
  }
  CHECK(key_tag(*find(sets, "example.net.", rrtype::kDNSKEY).begin()) == 55648);
  CHECK(key_tag(*find(sets384, "example.net.", rrtype::kDNSKEY).begin()) == 10771);
  // The DS records of RFC 6605 §6.1 and §6.2.
  const auto d256 = ds_digest(
      name("example.net."), *find(sets, "example.net.", rrtype::kDNSKEY).begin(), digest::kSha256);
  REQUIRE(d256);
  const auto want256 = zone(
      "example.net. DS 55648 13 2 b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17")
      [0];
  const auto ds256 = parse_ds(*want256.begin());
  REQUIRE(ds256);
  CHECK(std::vector<std::uint8_t>(ds256->digest.begin(), ds256->digest.end()) == *d256);
  const auto d384 =
      ds_digest(name("example.net."), *find(sets384, "example.net.", rrtype::kDNSKEY).begin(),
                digest::kSha384);
  REQUIRE(d384);
  const auto want384 = zone(
      "example.net. DS 10771 14 4 72d7b62976ce06438e9c0bf319013cf801f09ecc84b8d7e9495f27e305c6a9b0"
      "563a9b5f4d288405c3008a946df983d6")[0];
  const auto ds = parse_ds(*want384.begin());
  REQUIRE(ds);
  CHECK(std::vector<std::uint8_t>(ds->digest.begin(), ds->digest.end()) == *d384);
}

TEST_CASE("RFC 8080 §6 (erratum 4935): Ed25519 and Ed448 examples", "[dnssec][vectors]") {
  const auto sets = zone(R"(
$ORIGIN example.com.
@ 3600 IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=
@ 3600 IN DNSKEY 257 3 15 zPnZ/QwEe7S8C5SPz2OfS5RR40ATk2/rYnE9xHIEijs=
@ 3600 IN DNSKEY 257 3 16 (
    3kgROaDjrh0H2iuixWBrc8g2EpBBLCdGzHmn+G2MpTPh
    pj/OiBVHHSfPodx1FYYUcJKm1MDpJtIA )
@ 3600 IN DNSKEY 257 3 16 (
    kkreGWoccSDmUBGAe7+zsbG6ZAFQp+syPmYUurBRQc3t
    DjeMCJcVMRDmgcNLp5HlHAMy12VoISsA )
@ 3600 IN MX 10 mail.example.com.
)");
  const std::pair<const char*, std::uint16_t> sigs[] = {
      {"RRSIG MX 15 2 3600 1440021600 1438207200 3613 example.com. "
       "oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg==",
       3613},
      {"RRSIG MX 15 2 3600 1440021600 1438207200 35217 example.com. "
       "zXQ0bkYgQTEFyfLyi9QoiY6D8ZdYo4wyUhVioYZXFdT410QPRITQSqJSnzQoSm5poJ7gD7AQR0O7KuI5k2pcBg==",
       35217},
      {"RRSIG MX 16 2 3600 1440021600 1438207200 9713 example.com. "
       "3cPAHkmlnxcDHMyg7vFC34l0blBhuG1qpwLmjInI8w1CMB29FkEAIJUA0amxWndkmnBZ6SKiwZSAxGILn/"
       "NBtOXft0+Gj7FSvOKxE/07+4RQvE581N3Aj/JtIyaiYVdnYtyMWbSNyGEY2213WKsJlwEA",
       9713},
      {"RRSIG MX 16 2 3600 1440021600 1438207200 38353 example.com. "
       "E1/oLjSGIbmLny/4fcgM1z4oL6aqo+izT3urCyHyvEp4Sp8Syg1eI+lJ57CSnZqjJP41O/9l4m0AsQ4f7qI1gVnM"
       "L8vWWiyW2KXhT9kuAICUSxv5OWbf81Rq7Yu60npabODB0QFPb/rkW3kUZmQ0YQUA",
       38353},
  };
  const RRset& keys = find(sets, "example.com.", rrtype::kDNSKEY);
  std::vector<std::uint16_t> tags;
  for (auto rd : keys) tags.push_back(key_tag(rd));
  CHECK(tags == std::vector<std::uint16_t>{3613, 35217, 9713, 38353});
  const RRset& mx = find(sets, "example.com.", rrtype::kMX);
  for (const auto& [text, tag] : sigs) {
    INFO("key tag " << tag);
    const auto s = zone(std::string("example.com. 3600 IN ") + text);
    std::vector<std::span<const std::uint8_t>> rd{*s[0].begin()};
    Budget budget(4, 0);
    const auto r = check_rrset(mx, rd, name("example.com."), keys, Clock{at("20150801000000")},
                               AlgorithmPolicy{}, budget);
    CHECK(r.status == SigStatus::Valid);
    CHECK(r.key_tag == tag);
    CHECK(budget.signatures_used() == 1);
  }
  // The DS of the first Ed25519 key (RFC 8080 §6.1).
  const auto d = ds_digest(name("example.com."), *keys.begin(), digest::kSha256);
  REQUIRE(d);
  const auto want = zone(
      "example.com. DS 3613 15 2 "
      "3aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79a304b")[0];
  const auto ds = parse_ds(*want.begin());
  REQUIRE(ds);
  CHECK(std::vector<std::uint8_t>(ds->digest.begin(), ds->digest.end()) == *d);
}

// The validator over a DNS tree signed at test time by ldns-signzone
// (tests/dnssec/make_zones.sh): a fake network answers each question and
// each "need DNSKEY / need DS" step from the signed zone files, the way an
// authoritative server would, and each case of DIR/cases must come out as
// expected. Run through tests/dnssec/run_signed_zones.sh, which makes the
// zones in a temporary directory (DIODE_DNSSEC_ZONES) and removes it.

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "diode/resolver/validator.hpp"
#include "diode/resolver/zone_text.hpp"

using namespace diode::resolver;
using namespace diode::resolver::dnssec;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Name name(std::string_view t) {
  return *Name::from_text(t);
}

// An authoritative view of every signed zone file.
class FakeNet {
 public:
  explicit FakeNet(const std::filesystem::path& dir) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() != ".signed") continue;
      ZoneText z = parse_zone_text(read_file(e.path()));
      for (const auto& err : z.errors)
        FAIL_CHECK(e.path().filename().string()
                   << ":" << err.line << ":" << err.column << ": " << err.message);
      REQUIRE(z.errors.empty());
      std::vector<RRset> sets = group_rrsets(z.records);
      Name apex;
      for (const RRset& s : sets)
        if (s.type == rrtype::kSOA) apex = s.owner;
      zones_.push_back({apex, std::move(sets)});
    }
    REQUIRE(zones_.size() >= 14);
  }

  // What the servers of the right zone would answer: for DS, the parent's.
  Response ask(const Name& qname, std::uint16_t qtype, int depth = 0) const {
    const Zone* z = nullptr;
    for (const Zone& c : zones_) {
      if (!qname.is_subdomain_of(c.apex)) continue;
      if (qtype == rrtype::kDS && qname == c.apex && !qname.is_root()) continue;
      if (z == nullptr || c.apex.label_count() > z->apex.label_count()) z = &c;
    }
    Response r;
    if (z == nullptr) {
      r.rcode = rcode::kRefused;
      return r;
    }
    if (const RRset* s = find(*z, qname, qtype)) {
      r.answer.push_back(*s);
      add_sigs(*z, qname, qtype, r.answer, nullptr);
      return r;
    }
    // A DNAME above qname: the DNAME, its signatures and a synthesized,
    // unsigned CNAME (RFC 6672 §3.2), then the target's answer.
    for (Name up = qname.parent();
         qtype != rrtype::kDNAME && up.is_subdomain_of(z->apex) && !(up == qname);
         up = up.parent()) {
      const RRset* d = find(*z, up, rrtype::kDNAME);
      if (d != nullptr && depth < 8) {
        r.answer.push_back(*d);
        add_sigs(*z, up, rrtype::kDNAME, r.answer, nullptr);
        Name target;
        std::size_t next = 0;
        REQUIRE(read_uncompressed_name(*d->begin(), 0, &target, &next) == WireError::Ok);
        std::vector<std::span<const std::uint8_t>> prefix;
        for (auto label : qname.labels()) {
          if (prefix.size() == qname.label_count() - up.label_count()) break;
          prefix.push_back(label);
        }
        for (auto it = prefix.rbegin(); it != prefix.rend(); ++it)
          REQUIRE(target.prepend_label(*it));
        RRset cname;
        cname.owner = qname;
        cname.type = rrtype::kCNAME;
        cname.ttl = d->ttl;
        cname.add_rdata(target.wire());
        r.answer.push_back(cname);
        Response rest = ask(target, qtype, depth + 1);
        r.rcode = rest.rcode;
        r.answer.insert(r.answer.end(), rest.answer.begin(), rest.answer.end());
        r.authority = rest.authority;
        return r;
      }
      if (up == z->apex) break;
    }
    if (const RRset* c = find(*z, qname, rrtype::kCNAME); c && depth < 8) {
      r.answer.push_back(*c);
      add_sigs(*z, qname, rrtype::kCNAME, r.answer, nullptr);
      Name target;
      std::size_t next = 0;
      REQUIRE(read_uncompressed_name(*c->begin(), 0, &target, &next) == WireError::Ok);
      Response rest = ask(target, qtype, depth + 1);
      r.rcode = rest.rcode;
      r.answer.insert(r.answer.end(), rest.answer.begin(), rest.answer.end());
      r.authority = rest.authority;
      return r;
    }
    if (!exists(*z, qname)) {
      // Closest encloser, then a wildcard below it (RFC 4592).
      Name ce = qname;
      while (!exists(*z, ce) && !(ce == z->apex)) ce = ce.parent();
      Name wild = ce;
      const std::uint8_t star = '*';
      if (wild.prepend_label(std::span<const std::uint8_t>(&star, 1)) && exists(*z, wild)) {
        if (const RRset* w = find(*z, wild, qtype)) {
          RRset copy = *w;
          copy.owner = qname;
          r.answer.push_back(copy);
          add_sigs(*z, wild, qtype, r.answer, &qname);
        }
        add_denial(*z, r);
        return r;
      }
      r.rcode = rcode::kNxDomain;
    }
    add_denial(*z, r);
    return r;
  }

 private:
  struct Zone {
    Name apex;
    std::vector<RRset> sets;
  };

  static const RRset* find(const Zone& z, const Name& owner, std::uint16_t type) {
    for (const RRset& s : z.sets)
      if (s.type == type && s.owner == owner) return &s;
    return nullptr;
  }
  static bool exists(const Zone& z, const Name& n) {
    for (const RRset& s : z.sets)
      if (s.owner.is_subdomain_of(n) && s.type != rrtype::kNSEC3) return true;
    return false;
  }
  // The RRSIGs at `owner` covering `type`, renamed to `as` for a wildcard expansion.
  static void add_sigs(const Zone& z, const Name& owner, std::uint16_t type,
                       std::vector<RRset>& out, const Name* as) {
    const RRset* sigs = find(z, owner, rrtype::kRRSIG);
    if (sigs == nullptr) return;
    RRset s;
    s.owner = as != nullptr ? *as : owner;
    s.type = rrtype::kRRSIG;
    s.ttl = sigs->ttl;
    for (auto rd : *sigs) {
      auto v = parse_rrsig(rd);
      if (v && v->type_covered == type) s.add_rdata(rd);
    }
    if (!s.empty()) out.push_back(std::move(s));
  }
  // SOA and every NSEC/NSEC3 of the zone with their signatures: more than a
  // server sends, so the proofs must pick the right records themselves.
  static void add_denial(const Zone& z, Response& r) {
    if (const RRset* soa = find(z, z.apex, rrtype::kSOA)) {
      r.authority.push_back(*soa);
      add_sigs(z, z.apex, rrtype::kSOA, r.authority, nullptr);
    }
    for (const RRset& s : z.sets) {
      if (s.type != rrtype::kNSEC && s.type != rrtype::kNSEC3) continue;
      r.authority.push_back(s);
      add_sigs(z, s.owner, s.type, r.authority, nullptr);
    }
  }

  std::vector<Zone> zones_;
};

struct Outcome {
  Verdict verdict;
  unsigned steps = 0;
  unsigned signatures = 0;
};

Outcome validate(const FakeNet& net, const TrustAnchors& anchors, const Name& qname,
                 std::uint16_t qtype, std::uint64_t now, Budget& budget,
                 const Response* replaced = nullptr, ZoneCache* cache = nullptr) {
  ValidatorSettings settings;
  Validator v(anchors, settings, budget, Clock{now}, cache);
  Outcome o;
  const unsigned before = budget.signatures_used();
  auto step = v.start(qname, qtype, replaced != nullptr ? *replaced : net.ask(qname, qtype));
  while (step.kind != Validator::Step::Kind::Done && o.steps < 100) {
    ++o.steps;
    step = v.provide(net.ask(
        step.name, step.kind == Validator::Step::Kind::NeedDnskey ? rrtype::kDNSKEY : rrtype::kDS));
  }
  REQUIRE(step.kind == Validator::Step::Kind::Done);
  o.verdict = step.verdict;
  o.signatures = budget.signatures_used() - before;
  return o;
}

struct Fixture {
  std::filesystem::path dir;
  std::uint64_t now = 0;
  std::optional<TrustAnchors> anchors;
  std::optional<FakeNet> net;

  Fixture() {
    const char* d = std::getenv("DIODE_DNSSEC_ZONES");
    REQUIRE(d != nullptr);  // run through tests/dnssec/run_signed_zones.sh
    dir = d;
    now = std::stoull(read_file(dir / "now"));
    std::vector<TextError> errors;
    anchors = TrustAnchors::parse(read_file(dir / "root.key"), errors);
    REQUIRE(errors.empty());
    REQUIRE(anchors);
    net.emplace(dir);
  }
};

}  // namespace

TEST_CASE("every case of the signed test tree validates as expected", "[dnssec][zones]") {
  Fixture f;
  std::ifstream cases(f.dir / "cases");
  std::string qname, qtype, expect;
  unsigned n = 0;
  while (cases >> qname >> qtype >> expect) {
    ++n;
    INFO(qname << " " << qtype << " expected " << expect);
    Budget budget(60, 20000);
    const Outcome o =
        validate(*f.net, *f.anchors, name(qname), *type_from_text(qtype), f.now, budget);
    INFO("got " << to_string(o.verdict.security) << " ede " << static_cast<int>(o.verdict.ede)
                << " (" << o.verdict.reason << ") after " << o.steps << " fetches, " << o.signatures
                << " signature checks");
    const std::string kind = expect.substr(0, expect.find('-'));
    if (kind == "secure") {
      CHECK(o.verdict.security == Security::Secure);
      CHECK(o.verdict.ttl_cap <= 3600);
    } else if (kind == "insecure") {
      CHECK(o.verdict.security == Security::Insecure);
      if (expect == "insecure-iterations") CHECK(o.verdict.ede == Ede::UnsupportedNsec3Iterations);
    } else if (expect == "bogus-expired") {
      CHECK(o.verdict.security == Security::Bogus);
      CHECK(o.verdict.ede == Ede::SignatureExpired);
    } else if (expect == "bogus-dnskey-missing") {
      CHECK(o.verdict.security == Security::Bogus);
      CHECK(o.verdict.ede == Ede::DnskeyMissing);
    } else if (expect == "bogus-budget") {
      // KeyTrap: 40 colliding keys x 40 signatures would be 1600 checks;
      // the per-question budget of 60 stops it.
      CHECK(o.verdict.security == Security::Indeterminate);
      CHECK(o.verdict.ede == Ede::DnssecIndeterminate);
      CHECK(o.signatures <= 60);
    } else {
      FAIL("unknown expectation " << expect);
    }
  }
  CHECK(n == 25);
}

TEST_CASE("a global budget bounds many KeyTrap questions together", "[dnssec][zones]") {
  Fixture f;
  Budget global(200, 1000000);
  unsigned stopped = 0;
  for (int i = 0; i < 10; ++i) {
    Budget per_query(60, 20000, &global);
    const Outcome o =
        validate(*f.net, *f.anchors, name("www.keytrap.test."), rrtype::kA, f.now, per_query);
    if (o.verdict.security == Security::Indeterminate) ++stopped;
  }
  CHECK(stopped == 10);
  CHECK(global.signatures_used() <= 200);
  CHECK(global.signatures_left() == 200 - global.signatures_used());
}

TEST_CASE("altered or stripped data in a signed zone is bogus", "[dnssec][zones]") {
  Fixture f;
  Budget budget(100, 20000);
  // A changed address under an intact signature.
  Response r = f.net->ask(name("www.secure.test."), rrtype::kA);
  REQUIRE(r.answer.size() == 2);
  RRset forged;
  forged.owner = r.answer[0].owner;
  forged.type = rrtype::kA;
  forged.ttl = r.answer[0].ttl;
  const std::uint8_t addr[4] = {203, 0, 113, 66};
  forged.add_rdata(addr);
  r.answer[0] = forged;
  auto o = validate(*f.net, *f.anchors, name("www.secure.test."), rrtype::kA, f.now, budget, &r);
  CHECK(o.verdict.security == Security::Bogus);
  CHECK(o.verdict.ede == Ede::DnssecBogus);
  // The signature stripped: RRSIGs missing.
  Response s = f.net->ask(name("www.secure.test."), rrtype::kA);
  s.answer.resize(1);
  o = validate(*f.net, *f.anchors, name("www.secure.test."), rrtype::kA, f.now, budget, &s);
  CHECK(o.verdict.security == Security::Bogus);
  CHECK(o.verdict.ede == Ede::RrsigsMissing);
  // A forged NXDOMAIN for a name that exists: the proof fails.
  Response nx = f.net->ask(name("nothere.secure.test."), rrtype::kA);
  REQUIRE(nx.rcode == rcode::kNxDomain);
  o = validate(*f.net, *f.anchors, name("www.secure.test."), rrtype::kA, f.now, budget, &nx);
  CHECK(o.verdict.security == Security::Bogus);
  CHECK(o.verdict.ede == Ede::NsecMissing);
  // The same with NSEC3: nsec3.test's denial of a name replayed for www.
  Response nx3 = f.net->ask(name("www.nsec3.test."), rrtype::kTXT);
  o = validate(*f.net, *f.anchors, name("www.nsec3.test."), rrtype::kA, f.now, budget, &nx3);
  CHECK(o.verdict.security == Security::Bogus);
  CHECK(o.verdict.ede == Ede::NsecMissing);
  // Stripped NSEC records: no proof at all.
  Response bare = f.net->ask(name("nothere.secure.test."), rrtype::kA);
  std::erase_if(bare.authority, [](const RRset& x) {
    return x.type != rrtype::kSOA && !(x.type == rrtype::kRRSIG && x.owner == name("secure.test."));
  });
  o = validate(*f.net, *f.anchors, name("nothere.secure.test."), rrtype::kA, f.now, budget, &bare);
  CHECK(o.verdict.security == Security::Bogus);
  // Days after the signatures expired, the secure zone is bogus too.
  o = validate(*f.net, *f.anchors, name("www.secure.test."), rrtype::kA, f.now + 40 * 86400,
               budget);
  CHECK(o.verdict.security == Security::Bogus);
  CHECK(o.verdict.ede == Ede::SignatureExpired);
}

TEST_CASE("trust anchors parse Debian's root.key and root.ds formats and reject the rest",
          "[dnssec][anchors]") {
  std::vector<TextError> errors;
  // The shapes of /usr/share/dns/root.key and root.ds (dns-root-data).
  auto a = TrustAnchors::parse(
      ". IN DNSKEY 257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRix"
      "HlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrj"
      "yBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc"
      "1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkU"
      "TV74bU= ; keytag 20326\n"
      ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n",
      errors);
  REQUIRE(a);
  CHECK(errors.empty());
  REQUIRE(a->anchors().size() == 1);
  CHECK(a->anchors()[0].dnskey.size() == 1);
  CHECK(a->anchors()[0].ds.size() == 1);
  CHECK(key_tag(*a->anchors()[0].dnskey.begin()) == 20326);
  CHECK(a->closest(name("www.example.com.")) == &a->anchors()[0]);
  // The installed file (dns-root-data, installed by scripts/setup.sh).
  REQUIRE(std::filesystem::exists("/usr/share/dns/root.key"));
  auto sys = TrustAnchors::parse(read_file("/usr/share/dns/root.key"), errors);
  REQUIRE(sys);
  CHECK(errors.empty());
  CHECK(sys->anchors().size() == 1);
  CHECK(sys->anchors()[0].zone.is_root());
  CHECK(sys->anchors()[0].dnskey.size() >= 1);
  // Anything else: every error with its line, and nothing loaded.
  errors.clear();
  CHECK(!TrustAnchors::parse(". IN A 192.0.2.1\n. IN DS 1 8 2 zz\n", errors));
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].line == 1);
  CHECK(errors[1].line == 2);
  errors.clear();
  CHECK(!TrustAnchors::parse("; nothing here\n", errors));
  CHECK(errors.size() == 1);
}

TEST_CASE("a zone cache spares the chain's fetches and checks until the TTLs run out",
          "[dnssec][zones]") {
  Fixture f;
  ZoneCache cache;
  Budget budget(1000, 100000);
  auto run = [&](const char* q, std::uint16_t t, std::uint64_t now) {
    return validate(*f.net, *f.anchors, name(q), t, now, budget, nullptr, &cache);
  };
  // The first question walks the whole chain: root, test., secure.test.
  auto o = run("www.secure.test.", rrtype::kA, f.now);
  CHECK(o.verdict.security == Security::Secure);
  CHECK(o.steps == 5);
  CHECK(o.signatures == 6);
  // Another question in the same zone: no fetch, one signature (the data's).
  o = run("www.secure.test.", rrtype::kAAAA, f.now + 10);
  CHECK(o.verdict.security == Security::Secure);
  CHECK(o.steps == 0);
  CHECK(o.signatures == 1);
  // A sibling zone: only its own DS and DNSKEY.
  o = run("www.rsa.test.", rrtype::kA, f.now + 10);
  CHECK(o.verdict.security == Security::Secure);
  CHECK(o.steps == 2);
  CHECK(o.signatures == 3);
  // An insecure delegation, once proved, is remembered too.
  o = run("www.insecure.test.", rrtype::kA, f.now + 10);
  CHECK(o.verdict.security == Security::Insecure);
  CHECK(o.steps == 1);
  o = run("www.insecure.test.", rrtype::kA, f.now + 20);
  CHECK(o.verdict.security == Security::Insecure);
  CHECK(o.steps == 0);
  CHECK(o.signatures == 0);
  // A bogus zone is remembered for a minute only.
  o = run("www.mismatch.test.", rrtype::kA, f.now + 10);
  CHECK(o.verdict.security == Security::Bogus);
  CHECK(o.steps == 2);
  o = run("www.mismatch.test.", rrtype::kA, f.now + 30);
  CHECK(o.verdict.security == Security::Bogus);
  CHECK(o.verdict.ede == Ede::DnskeyMissing);
  CHECK(o.steps == 0);
  CHECK(o.signatures == 0);
  o = run("www.mismatch.test.", rrtype::kA, f.now + 75);
  CHECK(o.verdict.security == Security::Bogus);
  CHECK(o.steps == 2);
  // Past the zones' TTL (300 s for the NSEC proofs, 3600 s for the keys):
  // the chain is walked again.
  o = run("www.secure.test.", rrtype::kA, f.now + 3700);
  CHECK(o.verdict.security == Security::Secure);
  CHECK(o.steps == 5);
  CHECK(cache.size() > 0);
  cache.clear();
  CHECK(cache.size() == 0);
}

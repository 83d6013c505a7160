// Answers captured from NSD 4.6 (data/capture_nsd.sh): bytes from a real,
// independent server, with its own compression choices.
#include <catch2/catch.hpp>
#include <string_view>
#include <vector>

#include "diode/resolver/builder.hpp"
#include "diode/resolver/message.hpp"
#include "diode/resolver/rrset.hpp"
#include "test_util.hpp"

using namespace diode::resolver;
using diode::resolver::test::bytes;
using diode::resolver::test::hex;
using diode::resolver::test::name;

namespace {
#include "data/nsd_samples.inc"

std::vector<std::uint8_t> expanded(const Message& m, Section s, std::size_t i) {
  std::vector<std::uint8_t> out;
  m.append_expanded_rdata(m.record(s, i), out);
  return out;
}

std::vector<std::uint8_t> nw(std::string_view text) {
  return bytes(name(text).wire());
}

}  // namespace

TEST_CASE("NSD: CNAME answer with glue and EDNS", "[resolver][nsd]") {
  const auto wire = hex(kNsdCnameAnswer);
  Message m;
  REQUIRE(m.parse(wire).ok());
  CHECK(m.header().id == 0x1001);
  CHECK(m.header().aa);
  // NSD echoes the question's case (0x20) ...
  CHECK(m.question()->qname.equals_exact(name("www.Example.TEST")));
  REQUIRE(m.count(Section::Answer) == 3);
  CHECK(m.record(Section::Answer, 0).type == rrtype::kCNAME);
  CHECK(m.owner(Section::Answer, 0).equals_exact(name("www.Example.TEST")));
  // ... and its compressed names take that case.
  CHECK(expanded(m, Section::Answer, 0) == nw("web.Example.TEST"));
  CHECK(bytes(m.record(Section::Answer, 1).rdata) == hex("cb007150"));
  CHECK(bytes(m.record(Section::Answer, 2).rdata) == hex("cb007151"));
  REQUIRE(m.count(Section::Authority) == 2);
  CHECK(expanded(m, Section::Authority, 1) == nw("ns2.other.TEST"));
  REQUIRE(m.count(Section::Additional) == 2);
  REQUIRE(m.edns());
  CHECK(m.edns()->udp_payload_size == 1232);
  CHECK(m.edns()->dnssec_ok);  // NSD copies DO back
}

TEST_CASE("NSD: referral, NXDOMAIN, DNAME, SRV, MX and an unknown type", "[resolver][nsd]") {
  Message m;
  const auto referral = hex(kNsdReferral);
  REQUIRE(m.parse(referral).ok());
  CHECK_FALSE(m.header().aa);
  CHECK(m.count(Section::Answer) == 0);
  REQUIRE(m.count(Section::Authority) == 1);
  CHECK(m.owner(Section::Authority, 0) == name("sub.example.test"));
  CHECK(expanded(m, Section::Authority, 0) == nw("ns.sub.example.test"));
  REQUIRE(m.count(Section::Additional) == 1);
  CHECK(m.record(Section::Additional, 0).type == rrtype::kA);

  const auto nx = hex(kNsdNxdomain);
  REQUIRE(m.parse(nx).ok());
  CHECK(m.rcode() == rcode::kNxDomain);
  REQUIRE(m.count(Section::Authority) == 1);
  CHECK(m.record(Section::Authority, 0).type == rrtype::kSOA);
  CHECK(m.record(Section::Authority, 0).ttl == 300);  // RFC 2308: the SOA minimum

  const auto dname = hex(kNsdDname);
  REQUIRE(m.parse(dname).ok());
  REQUIRE(m.count(Section::Answer) == 2);
  CHECK(m.record(Section::Answer, 0).type == rrtype::kDNAME);
  CHECK(m.record(Section::Answer, 0).rdata_length == 18);  // NSD does not compress it
  CHECK(expanded(m, Section::Answer, 0) == nw("new.example.test"));
  CHECK(m.record(Section::Answer, 1).type == rrtype::kCNAME);  // synthesised
  CHECK(expanded(m, Section::Answer, 1) == nw("a.new.example.test"));

  const auto srv = hex(kNsdSrv);
  REQUIRE(m.parse(srv).ok());
  auto want = hex("0000 0005 13c4");
  const auto sip = nw("sip.example.test");
  want.insert(want.end(), sip.begin(), sip.end());
  CHECK(expanded(m, Section::Answer, 0) == want);

  const auto mx = hex(kNsdMx);
  REQUIRE(m.parse(mx).ok());
  auto mx_want = hex("000a");
  const auto mail = nw("mail.example.test");
  mx_want.insert(mx_want.end(), mail.begin(), mail.end());
  CHECK(expanded(m, Section::Answer, 0) == mx_want);

  const auto unk = hex(kNsdUnknownType);
  REQUIRE(m.parse(unk).ok());
  CHECK(m.question()->qtype == 65280);
  CHECK(bytes(m.record(Section::Answer, 0).rdata) == hex("deadbeef"));
}

TEST_CASE("NSD answers rebuild into equivalent messages", "[resolver][nsd]") {
  for (std::string_view sample :
       {kNsdCnameAnswer, kNsdReferral, kNsdNxdomain, kNsdMx, kNsdDname, kNsdUnknownType, kNsdSrv}) {
    const auto wire = hex(sample);
    Message m;
    REQUIRE(m.parse(wire).ok());
    std::vector<std::uint8_t> buf(kMaxMessageSize);
    MessageBuilder b(buf);
    b.set_header(m.header());
    if (m.edns()) {
      EdnsSpec e;
      e.dnssec_ok = m.edns()->dnssec_ok;
      e.udp_payload_size = m.edns()->udp_payload_size;
      REQUIRE(b.set_edns(e));
    }
    REQUIRE(b.add_question(m.question()->qname, m.question()->qtype, m.question()->qclass) ==
            AddResult::Ok);
    std::vector<RRset> before[4];
    for (Section s : {Section::Answer, Section::Authority, Section::Additional}) {
      REQUIRE(collect_rrsets(m, s, before[static_cast<int>(s)]));
      for (const RRset& r : before[static_cast<int>(s)])
        REQUIRE(b.add_rrset(s, r) == AddResult::Ok);
    }
    const auto out = b.finish();
    // The same compression rules as NSD's, bar the order NSD picks for
    // additional data: never longer than what NSD sent.
    CHECK(out.size() <= wire.size());
    Message again;
    REQUIRE(again.parse(out).ok());
    CHECK(again.header() == m.header());
    for (Section s : {Section::Answer, Section::Authority, Section::Additional}) {
      std::vector<RRset> after;
      REQUIRE(collect_rrsets(again, s, after));
      const auto& want = before[static_cast<int>(s)];
      REQUIRE(after.size() == want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        CHECK(after[i].owner.equals_exact(want[i].owner));
        CHECK(after[i].type == want[i].type);
        CHECK(after[i].ttl == want[i].ttl);
        CHECK(bytes(after[i].storage()) == bytes(want[i].storage()));
      }
    }
  }
}

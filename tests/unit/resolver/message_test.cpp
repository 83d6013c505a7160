#include "diode/resolver/message.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "diode/resolver/rrset.hpp"
#include "test_util.hpp"

using namespace diode::resolver;
using diode::resolver::test::bytes;
using diode::resolver::test::hex;
using diode::resolver::test::name;

namespace {
#include "data/wire_samples.inc"

std::vector<std::uint8_t> expanded(const Message& m, const RecordView& r) {
  std::vector<std::uint8_t> out;
  m.append_expanded_rdata(r, out);
  return out;
}

std::vector<std::uint8_t> wire_of(std::string_view text) {
  return bytes(name(text).wire());
}

std::uint32_t read32(std::span<const std::uint8_t> m, std::size_t at) {
  return (std::uint32_t{m[at]} << 24) | (std::uint32_t{m[at + 1]} << 16) |
         (std::uint32_t{m[at + 2]} << 8) | m[at + 3];
}

// A query for `qname` A IN with the given ARCOUNT and trailing records.
std::vector<std::uint8_t> query_with(std::uint16_t arcount, std::string_view tail_hex,
                                     std::uint16_t ancount = 0) {
  auto m = hex("abcd0100000100000000000003777777076578616d706c65047465737400000100 01");
  m[7] = static_cast<std::uint8_t>(ancount);
  m[11] = static_cast<std::uint8_t>(arcount);
  const auto tail = hex(tail_hex);
  m.insert(m.end(), tail.begin(), tail.end());
  return m;
}

}  // namespace

TEST_CASE("an answer with CNAME, glue, an unknown type and EDNS parses", "[resolver][message]") {
  const auto wire = hex(kAnswerWithGlue);
  Message m;
  const ParseStatus st = m.parse(wire);
  REQUIRE(st.ok());
  const Header& h = m.header();
  CHECK(h.id == 0xBEEF);
  CHECK(h.qr);
  CHECK(h.rd);
  CHECK(h.ra);
  CHECK_FALSE(h.aa);
  CHECK_FALSE(h.tc);
  CHECK(h.rcode == 0);
  CHECK(h.arcount == 4);
  REQUIRE(m.question());
  CHECK(m.question()->qname.equals_exact(name("www.Example.test")));
  CHECK(m.question()->qtype == rrtype::kA);
  CHECK(m.question()->qclass == rrclass::kIN);
  REQUIRE(m.count(Section::Question) == 1);
  REQUIRE(m.count(Section::Answer) == 4);
  REQUIRE(m.count(Section::Authority) == 2);
  REQUIRE(m.count(Section::Additional) == 3);  // OPT is reported through edns()

  const RecordView cname = m.record(Section::Answer, 0);
  CHECK(cname.type == rrtype::kCNAME);
  // A compressed owner takes the case of the octets it points to: here the
  // question's, as every real server's compression does.
  CHECK(cname.owner.equals_exact(name("www.Example.test")));
  CHECK(cname.ttl == 300);
  CHECK(read32(wire, cname.ttl_offset) == 300);
  CHECK(cname.rdata_length == 6);  // "web" + pointer
  CHECK(expanded(m, cname) == wire_of("web.Example.test"));

  const RecordView a = m.record(Section::Answer, 1);
  CHECK(a.type == rrtype::kA);
  CHECK(a.owner.equals_exact(name("web.Example.test")));  // owner is a pointer into CNAME RDATA
  CHECK(bytes(a.rdata) == hex("c0000250"));
  CHECK(m.owner(Section::Answer, 3) == name("web.example.test"));
  CHECK(m.record(Section::Answer, 3).type == rrtype::kAAAA);
  CHECK(bytes(m.record(Section::Answer, 3).rdata) == hex("20010db8000000000000000000000080"));

  const RecordView ns = m.record(Section::Authority, 1);
  CHECK(ns.section == Section::Authority);
  CHECK(ns.type == rrtype::kNS);
  CHECK(ns.ttl == 3600);
  CHECK(expanded(m, ns) == wire_of("ns2.Example.test"));

  const RecordView unknown = m.record(Section::Additional, 2);
  CHECK(unknown.type == 65280);
  CHECK(bytes(unknown.rdata) == hex("deadbeef"));
  CHECK(expanded(m, unknown) == hex("deadbeef"));

  REQUIRE(m.edns());
  const Edns& e = *m.edns();
  CHECK(e.udp_payload_size == 1232);
  CHECK(e.dnssec_ok);
  CHECK(e.version == 0);
  CHECK(e.extended_rcode == 0);
  const auto cookie = e.find(10);
  REQUIRE(cookie);
  CHECK(bytes(cookie->data) == hex("0102030405060708"));
  CHECK_FALSE(e.find(12));
  CHECK(m.rcode() == 0);
}

TEST_CASE("NXDOMAIN with SOA and a record of every known layout parse", "[resolver][message]") {
  Message m;
  auto nx = hex(kNxdomain);
  REQUIRE(m.parse(nx).ok());
  CHECK(m.rcode() == rcode::kNxDomain);
  CHECK(m.header().rd);
  CHECK_FALSE(m.header().aa);
  CHECK_FALSE(m.edns());
  REQUIRE(m.count(Section::Authority) == 1);
  const RecordView soa = m.record(Section::Authority, 0);
  CHECK(soa.type == rrtype::kSOA);
  auto want = wire_of("ns1.example.test");
  const auto rname = wire_of("hostmaster.example.test");
  want.insert(want.end(), rname.begin(), rname.end());
  const auto fixed = hex("78c406bd 00001c20 00000384 00127500 0000012c");
  want.insert(want.end(), fixed.begin(), fixed.end());
  CHECK(expanded(m, soa) == want);

  auto many = hex(kManyTypes);
  REQUIRE(m.parse(many).ok());  // the same Message object, reused
  REQUIRE(m.count(Section::Answer) == 6);
  CHECK(m.question()->qtype == rrtype::kANY);
  auto mx = hex("000a");
  const auto mail = wire_of("mail.example.test");
  mx.insert(mx.end(), mail.begin(), mail.end());
  CHECK(expanded(m, m.record(Section::Answer, 0)) == mx);
  CHECK(bytes(m.record(Section::Answer, 1).rdata).size() == 26);  // TXT: opaque
  auto srv = hex("0000 0005 13c4");
  const auto sip = wire_of("sip.example.test");
  srv.insert(srv.end(), sip.begin(), sip.end());
  CHECK(expanded(m, m.record(Section::Answer, 2)) == srv);
  CHECK(m.owner(Section::Answer, 2).equals_exact(name("_sip._udp.example.test")));
  CHECK(m.owner(Section::Answer, 3).equals_exact(name("80.2.0.192.in-addr.arpa")));
  CHECK(expanded(m, m.record(Section::Answer, 3)) == wire_of("web.example.test"));
  CHECK(m.record(Section::Answer, 4).type == rrtype::kDNAME);
  CHECK(expanded(m, m.record(Section::Answer, 4)) == wire_of("new.example.test"));
  CHECK(m.record(Section::Answer, 5).rdata.empty());
}

TEST_CASE("every strict prefix of a valid message is rejected cleanly", "[resolver][message]") {
  for (std::string_view sample : {kAnswerWithGlue, kNxdomain, kManyTypes}) {
    const auto wire = hex(sample);
    Message m;
    REQUIRE(m.parse(wire).ok());
    for (std::size_t len = 0; len < wire.size(); ++len) {
      // A copy of exactly `len` octets, so ASan sees any read past the end.
      const std::vector<std::uint8_t> prefix(wire.begin(),
                                             wire.begin() + static_cast<std::ptrdiff_t>(len));
      const ParseStatus st = m.parse(prefix);
      INFO("length " << len);
      CHECK_FALSE(st.ok());
      CHECK(st.header_intact == (len >= 12));
      CHECK(st.offset <= len);
      CHECK(m.count(Section::Answer) == 0);
      if (st.header_intact) CHECK(m.header().id == read_header(wire)->id);
    }
  }
}

TEST_CASE("every count mismatch is rejected", "[resolver][message]") {
  for (std::string_view sample : {kAnswerWithGlue, kNxdomain, kManyTypes}) {
    const auto wire = hex(sample);
    for (std::size_t field = 4; field < 12; field += 2) {
      for (int delta : {-1, +1}) {
        auto bad = wire;
        const int count = (bad[field] << 8) | bad[field + 1];
        if (count + delta < 0) continue;
        const int v = count + delta;
        bad[field] = static_cast<std::uint8_t>(v >> 8);
        bad[field + 1] = static_cast<std::uint8_t>(v);
        Message m;
        const ParseStatus st = m.parse(bad);
        INFO("count at " << field << " changed by " << delta);
        CHECK_FALSE(st.ok());
        CHECK(st.header_intact);
      }
    }
  }
  // The precise reasons at the end of the message.
  const auto wire = hex(kAnswerWithGlue);
  auto more = wire;
  ++more[11];
  Message m;
  CHECK(m.parse(more).error == WireError::CountMismatch);
  auto fewer = wire;
  --fewer[11];
  CHECK(m.parse(fewer).error == WireError::TrailingData);
  auto two_questions = wire;
  two_questions[5] = 2;
  CHECK(m.parse(two_questions).error == WireError::MultipleQuestions);
}

TEST_CASE("trailing data is rejected unless allowed", "[resolver][message]") {
  auto wire = hex(kNxdomain);
  wire.push_back(0);
  Message m;
  const ParseStatus st = m.parse(wire);
  CHECK(st.error == WireError::TrailingData);
  CHECK(st.offset == wire.size() - 1);
  ParseOptions lenient;
  lenient.allow_trailing_data = true;
  CHECK(m.parse(wire, lenient).ok());
  CHECK(m.count(Section::Authority) == 1);
}

TEST_CASE("malformed records are rejected with a reason", "[resolver][message]") {
  Message m;
  // A with 5 octets of RDATA.
  CHECK(m.parse(query_with(0, "c00c 0001 0001 0000000a 0005 c000020102", 1)).error ==
        WireError::BadRdata);
  // A with 3 octets.
  CHECK(m.parse(query_with(0, "c00c 0001 0001 0000000a 0003 c00002", 1)).error ==
        WireError::BadRdata);
  // NS whose name runs past RDLENGTH (into the next field).
  CHECK(m.parse(query_with(0, "c00c 0002 0001 0000000a 0002 0161 00", 1)).error ==
        WireError::BadRdata);
  // MX without its name.
  CHECK(m.parse(query_with(0, "c00c 000f 0001 0000000a 0002 000a", 1)).error ==
        WireError::BadRdata);
  // RDLENGTH past the end.
  CHECK(m.parse(query_with(0, "c00c 0001 0001 0000000a 0009 c0000201", 1)).error ==
        WireError::RdataOverrun);
  // A record owner with a forward pointer.
  CHECK(m.parse(query_with(0, "c02a 0001 0001 0000000a 0004 c0000201", 1)).error ==
        WireError::PointerForward);
  // CNAME RDATA with a pointer loop.
  CHECK(m.parse(query_with(0, "c00c 0005 0001 0000000a 0004 0161 c02e", 1)).error ==
        WireError::PointerLoop);
  // Unknown types are opaque: any RDATA goes (RFC 3597).
  CHECK(m.parse(query_with(0, "c00c ff00 0001 0000000a 0003 c0ffee", 1)).ok());
  // A question of type OPT.
  auto q = query_with(0, "");
  q[q.size() - 3] = 41;
  CHECK(m.parse(q).error == WireError::OptNotInAdditional);
  // Too large to be a message.
  std::vector<std::uint8_t> huge(kMaxMessageSize + 1, 0);
  const ParseStatus st = m.parse(huge);
  CHECK(st.error == WireError::TooLarge);
  CHECK(st.header_intact);
  // Every reason has a text.
  CHECK(to_string(WireError::PointerLoop) == "compression pointer loop");
}

TEST_CASE("OPT is validated (RFC 6891 §6.1)", "[resolver][message]") {
  Message m;
  // OPT: root owner, size 4096, ext-rcode 1, version 0, DO, options
  // {10, 2 octets} and {12, 0 octets}.
  const auto good = query_with(1, "00 0029 1000 01008000 000a 000a 0002 abcd 000c 0000");
  REQUIRE(m.parse(good).ok());
  REQUIRE(m.edns());
  CHECK(m.edns()->udp_payload_size == 4096);
  CHECK(m.edns()->dnssec_ok);
  CHECK(m.edns()->flags == 0x8000);
  CHECK(m.edns()->extended_rcode == 1);
  CHECK(m.rcode() == rcode::kBadVers);  // (1 << 4) | 0
  std::vector<std::uint16_t> codes;
  for (EdnsOption o : *m.edns()) codes.push_back(o.code);
  CHECK(codes == std::vector<std::uint16_t>{10, 12});
  CHECK(m.edns()->find(12)->data.empty());
  CHECK(m.count(Section::Additional) == 0);
  CHECK(read_header(m.wire())->arcount == 1);

  // Version 1 is reported, not rejected: answering BADVERS is the server's job.
  REQUIRE(m.parse(query_with(1, "00 0029 04d0 00010000 0000")).ok());
  CHECK(m.edns()->version == 1);
  CHECK_FALSE(m.edns()->dnssec_ok);

  // Two OPT records: FORMERR.
  CHECK(m.parse(query_with(2, "00 0029 04d0 00000000 0000 00 0029 04d0 00000000 0000")).error ==
        WireError::MultipleOpt);
  // OPT in the answer section.
  CHECK(m.parse(query_with(0, "00 0029 04d0 00000000 0000", 1)).error ==
        WireError::OptNotInAdditional);
  // OPT with a non-root owner (here a pointer to the question name).
  CHECK(m.parse(query_with(1, "c00c 0029 04d0 00000000 0000")).error == WireError::OptBadOwner);
  // An option longer than the RDATA, and a dangling partial option header.
  CHECK(m.parse(query_with(1, "00 0029 04d0 00000000 0006 000a 0004 abcd")).error ==
        WireError::BadOptOption);
  CHECK(m.parse(query_with(1, "00 0029 04d0 00000000 0002 000a")).error == WireError::BadOptOption);
}

TEST_CASE("records group into canonical RRsets with expanded RDATA", "[resolver][rrset]") {
  Message m;
  const auto wire = hex(kAnswerWithGlue);
  REQUIRE(m.parse(wire).ok());
  std::vector<RRset> answer;
  collect_rrsets(m, Section::Answer, answer);
  REQUIRE(answer.size() == 3);  // CNAME, A (two RDATAs), AAAA
  CHECK(answer[0].type == rrtype::kCNAME);
  CHECK(answer[1].type == rrtype::kA);
  CHECK(answer[1].size() == 2);
  CHECK(answer[1].ttl == 60);
  std::vector<std::vector<std::uint8_t>> rdatas;
  for (auto r : answer[1]) rdatas.push_back(bytes(r));
  CHECK(rdatas == std::vector<std::vector<std::uint8_t>>{hex("c0000250"), hex("c0000251")});
  CHECK(bytes(*answer[0].begin()) == wire_of("web.Example.test"));

  // Duplicates collapse, the smallest TTL wins, TTLs >= 2^31 count as 0.
  RRset s;
  s.type = rrtype::kA;
  CHECK(s.add_rdata(hex("c0000201")));
  CHECK(s.add_rdata(hex("c0000201")));
  CHECK(s.size() == 1);
  CHECK_FALSE(s.add_rdata(hex("c00002")));  // an A of 3 octets
  const auto msg = query_with(0,
                              "c00c 0001 0001 00000064 0004 c0000201"
                              "c00c 0001 0001 0000000a 0004 c0000202"
                              "c00c 0001 0001 00000064 0004 c0000201"
                              "c00c 001c 0001 80000000 0010 20010db8000000000000000000000001",
                              4);
  REQUIRE(m.parse(msg).ok());
  std::vector<RRset> sets;
  collect_rrsets(m, Section::Answer, sets);
  REQUIRE(sets.size() == 2);
  CHECK(sets[0].size() == 2);
  CHECK(sets[0].ttl == 10);
  CHECK(sets[1].ttl == 0);
}

TEST_CASE("big sections group correctly, duplicates and case included", "[resolver][rrset]") {
  // 3000 A records: owners alternate between two spellings of one name and
  // a second name; every address appears twice.
  std::string tail;
  const std::uint16_t records = 3000;
  for (std::uint16_t i = 0; i < records; ++i) {
    // Owner: the question name (offset 12), or "x" + pointer to it.
    tail += (i % 3 == 2) ? "0178c00c" : "c00c";
    char rdata[32];
    std::snprintf(rdata, sizeof rdata, "000100010000003c0004cb00%04x", (i / 2) % 1000);
    tail += rdata;
  }
  auto msg = query_with(0, tail, 0);
  msg[6] = static_cast<std::uint8_t>(records >> 8);
  msg[7] = static_cast<std::uint8_t>(records & 0xFF);
  Message m;
  REQUIRE(m.parse(msg).ok());
  REQUIRE(m.count(Section::Answer) == records);
  std::vector<RRset> sets;
  REQUIRE(collect_rrsets(m, Section::Answer, sets));
  REQUIRE(sets.size() == 2);
  CHECK(sets[0].owner == name("www.example.test"));
  CHECK(sets[1].owner == name("x.www.example.test"));
  // Distinct addresses per owner, counted independently.
  std::set<std::uint16_t> want0;
  std::set<std::uint16_t> want1;
  for (std::uint16_t i = 0; i < records; ++i) ((i % 3 == 2) ? want1 : want0).insert((i / 2) % 1000);
  CHECK(sets[0].size() == want0.size());
  CHECK(sets[1].size() == want1.size());
  std::set<std::uint16_t> got0;
  for (auto r : sets[0]) got0.insert(static_cast<std::uint16_t>((r[2] << 8) | r[3]));
  CHECK(got0 == want0);

  // Owners that differ only in case are one RRset (RFC 4343).
  const auto mixed =
      query_with(0,
                 "03575757074558414d504c4504544553540000010001 0000003c 0004 c0000201"
                 "c00c 0001 0001 0000003c 0004 c0000202",
                 2);
  REQUIRE(m.parse(mixed).ok());
  sets.clear();
  REQUIRE(collect_rrsets(m, Section::Answer, sets));
  REQUIRE(sets.size() == 1);
  CHECK(sets[0].owner.equals_exact(name("WWW.EXAMPLE.TEST")));  // the first spelling wins
  CHECK(sets[0].size() == 2);
}

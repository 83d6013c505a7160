#include "diode/resolver/builder.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "diode/resolver/message.hpp"
#include "diode/resolver/rrset.hpp"
#include "test_util.hpp"

using namespace diode::resolver;
using diode::resolver::test::bytes;
using diode::resolver::test::hex;
using diode::resolver::test::name;

namespace {
#include "data/wire_samples.inc"

std::vector<std::uint8_t> cat(std::initializer_list<std::vector<std::uint8_t>> parts) {
  std::vector<std::uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<std::uint8_t> nw(std::string_view text) {
  return bytes(name(text).wire());
}

RRset make(std::string_view owner, std::uint16_t type, std::uint32_t ttl,
           std::initializer_list<std::vector<std::uint8_t>> rdatas) {
  RRset s;
  s.owner = name(owner);
  s.type = type;
  s.ttl = ttl;
  for (const auto& r : rdatas) REQUIRE(s.add_rdata(r));
  return s;
}

void check_same(const RRset& a, const RRset& b) {
  CHECK(a.owner.equals_exact(b.owner));
  CHECK(a.type == b.type);
  CHECK(a.rclass == b.rclass);
  CHECK(a.ttl == b.ttl);
  CHECK(bytes(a.storage()) == bytes(b.storage()));
}

// Parses `wire` and re-collects every section's RRsets.
std::array<std::vector<RRset>, 4> sections_of(std::span<const std::uint8_t> wire, Message& m) {
  std::array<std::vector<RRset>, 4> out;
  REQUIRE(m.parse(wire).ok());
  for (Section s : {Section::Answer, Section::Authority, Section::Additional}) {
    collect_rrsets(m, s, out[static_cast<std::size_t>(s)]);
  }
  return out;
}

}  // namespace

TEST_CASE("parse, collect and rebuild gives the independent encoder's bytes",
          "[resolver][builder]") {
  // gen_samples.py compresses like RFC 1035 §4.1.4 suggests (first
  // occurrence of the longest suffix), and so does the builder. kManyTypes
  // differs in one place on purpose: its DNAME target is compressed, as old
  // servers sent it; the builder writes it whole (RFC 6672 §2.5).
  for (std::string_view sample : {kAnswerWithGlue, kNxdomain, kManyTypes}) {
    const auto wire = hex(sample);
    Message m;
    const auto sets = sections_of(wire, m);
    std::vector<std::uint8_t> buf(kMaxMessageSize);
    MessageBuilder b(buf);
    b.set_header(m.header());
    if (m.edns()) {
      EdnsSpec e;
      e.udp_payload_size = m.edns()->udp_payload_size;
      e.dnssec_ok = m.edns()->dnssec_ok;
      e.options = m.edns()->options;
      REQUIRE(b.set_edns(e));
    }
    REQUIRE(b.add_question(m.question()->qname, m.question()->qtype, m.question()->qclass) ==
            AddResult::Ok);
    for (Section s : {Section::Answer, Section::Authority, Section::Additional}) {
      for (const RRset& r : sets[static_cast<std::size_t>(s)])
        REQUIRE(b.add_rrset(s, r) == AddResult::Ok);
    }
    const auto out = b.finish();
    CHECK(bytes(b.finish()) == bytes(out));  // finish() is idempotent
    if (sample != kManyTypes) {
      CHECK(bytes(out) == wire);
    } else {
      // "new" + pointer (6 octets) became new.example.test. (18 octets).
      CHECK(out.size() == wire.size() + 18 - 6);
    }
    Message again;
    const auto rebuilt = sections_of(out, again);
    for (std::size_t s = 1; s < 4; ++s) {
      REQUIRE(rebuilt[s].size() == sets[s].size());
      for (std::size_t i = 0; i < sets[s].size(); ++i) check_same(rebuilt[s][i], sets[s][i]);
    }
  }
}

TEST_CASE("every record type round-trips in every section", "[resolver][builder]") {
  const std::vector<RRset> sets{
      make("a.example.test", rrtype::kA, 60, {hex("c0000201"), hex("c0000202")}),
      make("a.example.test", rrtype::kAAAA, 60, {hex("20010db8000000000000000000000001")}),
      make("example.test", rrtype::kNS, 3600, {nw("ns1.example.test"), nw("ns.other.test")}),
      make("www.example.test", rrtype::kCNAME, 300, {nw("a.example.test")}),
      make("example.test", rrtype::kSOA, 900,
           {cat({nw("ns1.example.test"), nw("hostmaster.example.test"),
                 hex("0000000100000e1000000384001275000000012c")})}),
      make("1.2.0.192.in-addr.arpa", rrtype::kPTR, 300, {nw("a.example.test")}),
      make("example.test", rrtype::kMX, 300, {cat({hex("000a"), nw("mail.example.test")})}),
      make("example.test", rrtype::kTXT, 300, {hex("0568656c6c6f"), hex("00")}),
      make("_x._tcp.example.test", rrtype::kSRV, 300,
           {cat({hex("000100020050"), nw("a.example.test")})}),
      make("example.test", rrtype::kNAPTR, 300,
           {cat({hex("000a0014"), hex("0155"), hex("0745322b73697021"), hex("00"),
                 nw("_sip._udp.example.test")})}),
      make("old.example.test", rrtype::kDNAME, 300, {nw("new.example.test")}),
      make("example.test", rrtype::kRP, 300,
           {cat({nw("admin.example.test"), nw("txt.example.test")})}),
      make("example.test", rrtype::kAFSDB, 300, {cat({hex("0001"), nw("afs.example.test")})}),
      make("example.test", rrtype::kMINFO, 300,
           {cat({nw("r.example.test"), nw("e.example.test")})}),
      // RFC 3597: unknown types, including one whose RDATA looks like a name
      // with a pointer: it must be copied, never interpreted.
      make("example.test", 65280, 300, {hex("c00c"), hex(""), hex("0102030405")}),
      make("example.test", rrtype::kDS, 300, {hex("4f660802aabbccdd")}),
  };
  for (Section s : {Section::Answer, Section::Authority, Section::Additional}) {
    std::vector<std::uint8_t> buf(kMaxMessageSize);
    MessageBuilder b(buf);
    Header h;
    h.id = 7;
    h.qr = true;
    b.set_header(h);
    REQUIRE(b.add_question(name("example.test"), rrtype::kANY, rrclass::kIN) == AddResult::Ok);
    for (const RRset& r : sets) REQUIRE(b.add_rrset(s, r) == AddResult::Ok);
    const auto wire = b.finish();
    Message m;
    const auto back = sections_of(wire, m);
    const auto& got = back[static_cast<std::size_t>(s)];
    REQUIRE(got.size() == sets.size());
    for (std::size_t i = 0; i < sets.size(); ++i) {
      INFO("type " << type_to_text(sets[i].type));
      check_same(got[i], sets[i]);
    }
    // Compression shrank the message: every owner and RFC 1035 RDATA name
    // that repeats a suffix is a pointer.
    std::size_t uncompressed = 12 + 18;
    for (const RRset& r : sets) {
      for (auto rd : r) uncompressed += r.owner.wire_length() + 10 + rd.size();
    }
    CHECK(wire.size() < uncompressed * 3 / 4);
  }
}

TEST_CASE("the builder refuses what it cannot write", "[resolver][builder]") {
  std::vector<std::uint8_t> buf(512);
  MessageBuilder b(buf);
  // An A of 3 octets; an NS whose RDATA is not one name; OPT as a record.
  CHECK(b.add_record(Section::Answer, name("x.test"), rrtype::kA, 1, 0, hex("c00002")) ==
        AddResult::Invalid);
  CHECK(b.add_record(Section::Answer, name("x.test"), rrtype::kNS, 1, 0, hex("0178")) ==
        AddResult::Invalid);
  CHECK(b.add_record(Section::Answer, name("x.test"), rrtype::kNS, 1, 0, hex("c00c")) ==
        AddResult::Invalid);  // compressed RDATA given to the builder
  CHECK(b.add_record(Section::Additional, name("."), rrtype::kOPT, 1232, 0, hex("")) ==
        AddResult::Invalid);
  CHECK(b.add_record(Section::Authority, name("x.test"), rrtype::kA, 1, 0, hex("c0000201")) ==
        AddResult::Ok);
  // Sections go in order; the question comes first; EDNS before records.
  CHECK(b.add_record(Section::Answer, name("x.test"), rrtype::kA, 1, 0, hex("c0000201")) ==
        AddResult::OutOfOrder);
  CHECK(b.add_question(name("x.test"), rrtype::kA, 1) == AddResult::OutOfOrder);
  CHECK_FALSE(b.set_edns(EdnsSpec{}));
  Message m;
  REQUIRE(m.parse(b.finish()).ok());
  CHECK(m.count(Section::Authority) == 1);
  CHECK(m.count(Section::Answer) == 0);
  // Nothing is accepted after finish().
  CHECK(b.add_record(Section::Additional, name("x.test"), rrtype::kA, 1, 0, hex("c0000201")) ==
        AddResult::Truncated);
}

TEST_CASE("an answer too big for the limit stops at an RRset boundary with TC",
          "[resolver][builder]") {
  // Ten A RRsets of four addresses each: 12 + 18 + 10 × (owner + 4 × 16) octets.
  std::vector<RRset> sets;
  for (int i = 0; i < 10; ++i) {
    const std::string owner = "host" + std::to_string(i) + ".example.test";
    RRset s = make(owner, rrtype::kA, 300, {});
    for (std::uint8_t k = 1; k <= 4; ++k)
      REQUIRE(s.add_rdata(std::vector<std::uint8_t>{203, 0, 113, k}));
    sets.push_back(s);
  }
  for (const bool with_edns : {false, true}) {
    std::vector<std::uint8_t> buf(kMaxMessageSize);
    MessageBuilder b(buf, 512);
    Header h;
    h.id = 0x5151;
    h.qr = true;
    b.set_header(h);
    REQUIRE(b.add_question(name("example.test"), rrtype::kANY, rrclass::kIN) == AddResult::Ok);
    if (with_edns) REQUIRE(b.set_edns(EdnsSpec{}));
    std::size_t written = 0;
    AddResult last = AddResult::Ok;
    for (const RRset& s : sets) {
      last = b.add_rrset(Section::Answer, s);
      if (last != AddResult::Ok) break;
      ++written;
    }
    INFO("with EDNS: " << with_edns);
    CHECK(last == AddResult::NoSpace);
    CHECK(b.truncated());
    CHECK(written > 0);
    CHECK(written < sets.size());
    // After TC nothing more goes in, not even a tiny additional record.
    CHECK(b.add_record(Section::Additional, name("x.test"), rrtype::kA, 1, 0, hex("c0000201")) ==
          AddResult::Truncated);
    const auto wire = b.finish();
    CHECK(wire.size() <= 512);
    Message m;
    REQUIRE(m.parse(wire).ok());
    CHECK(m.header().tc);
    CHECK(m.count(Section::Answer) == written * 4);  // whole RRsets only
    CHECK(m.edns().has_value() == with_edns);        // the reserved OPT is always there
    // Exactly the RRsets that fit, in order.
    std::vector<RRset> got;
    collect_rrsets(m, Section::Answer, got);
    REQUIRE(got.size() == written);
    for (std::size_t i = 0; i < written; ++i) check_same(got[i], sets[i]);
  }
}

TEST_CASE("additional RRsets that do not fit are dropped without TC", "[resolver][builder]") {
  std::vector<std::uint8_t> buf(kMaxMessageSize);
  MessageBuilder b(buf, 200);
  REQUIRE(b.add_question(name("example.test"), rrtype::kNS, rrclass::kIN) == AddResult::Ok);
  REQUIRE(b.add_rrset(Section::Answer, make("example.test", rrtype::kNS, 60,
                                            {nw("ns1.example.test")})) == AddResult::Ok);
  RRset big = make("ns1.example.test", rrtype::kAAAA, 60, {});
  for (std::uint8_t k = 1; k <= 8; ++k) {
    auto a = hex("20010db8000000000000000000000000");
    a[15] = k;
    REQUIRE(big.add_rdata(a));
  }
  CHECK(b.add_rrset(Section::Additional, big) == AddResult::NoSpace);
  CHECK_FALSE(b.truncated());
  // A smaller RRset still fits after the dropped one.
  CHECK(b.add_rrset(Section::Additional,
                    make("ns1.example.test", rrtype::kA, 60, {hex("c6336435")})) == AddResult::Ok);
  // Asked to, the builder sets TC for required glue (RFC 9471).
  CHECK(b.add_rrset(Section::Additional, big, Overflow::SetTc) == AddResult::NoSpace);
  CHECK(b.truncated());
  Message m;
  REQUIRE(m.parse(b.finish()).ok());
  CHECK(m.count(Section::Additional) == 1);
  CHECK(m.header().tc);
}

TEST_CASE("a cached answer is served by copy, ID patch and TTL decrement", "[resolver][builder]") {
  // Build the answer once, as the cache will, and keep the wire bytes plus
  // the TTL offsets.
  std::vector<std::uint8_t> buf(kMaxMessageSize);
  MessageBuilder b(buf, 1232);
  Header h;
  h.id = 1;
  h.qr = true;
  h.rd = true;
  h.ra = true;
  b.set_header(h);
  EdnsSpec e;
  e.dnssec_ok = true;
  REQUIRE(b.set_edns(e));
  REQUIRE(b.add_question(name("www.example.test"), rrtype::kA, rrclass::kIN) == AddResult::Ok);
  REQUIRE(b.add_rrset(Section::Answer, make("www.example.test", rrtype::kCNAME, 300,
                                            {nw("web.example.test")})) == AddResult::Ok);
  REQUIRE(b.add_rrset(Section::Answer, make("web.example.test", rrtype::kA, 60,
                                            {hex("c0000250"), hex("c0000251")})) == AddResult::Ok);
  REQUIRE(b.add_rrset(Section::Authority, make("example.test", rrtype::kNS, 3600,
                                               {nw("ns1.example.test")})) == AddResult::Ok);
  const std::vector<std::uint8_t> cached = bytes(b.finish());
  const std::vector<std::uint16_t> ttls(b.ttl_offsets().begin(), b.ttl_offsets().end());
  REQUIRE(ttls.size() == 4);

  // 100 seconds later a client asks with ID 0x7777 and 0x20 case.
  std::vector<std::uint8_t> reply = cached;
  patch_id(reply, 0x7777);
  decrement_ttls(reply, ttls, 100);
  const Name asked = name("WwW.eXaMpLe.TeSt");
  REQUIRE(copy_question_case(reply, asked));

  Message m;
  REQUIRE(m.parse(reply).ok());
  CHECK(m.header().id == 0x7777);
  CHECK(m.question()->qname.equals_exact(asked));
  // The CNAME owner is a pointer to the question, so it echoes the case too.
  CHECK(m.record(Section::Answer, 0).owner.equals_exact(asked));
  CHECK(m.record(Section::Answer, 0).ttl == 200);
  CHECK(m.record(Section::Answer, 1).ttl == 0);  // 60 - 100 stops at 0
  CHECK(m.record(Section::Answer, 2).ttl == 0);
  CHECK(m.record(Section::Authority, 0).ttl == 3500);
  // The OPT's TTL field holds flags, not a TTL: it was not touched.
  REQUIRE(m.edns());
  CHECK(m.edns()->dnssec_ok);
  // Everything but the ID, the question's case and the TTLs is unchanged.
  std::size_t diffs = 0;
  for (std::size_t i = 0; i < reply.size(); ++i) diffs += reply[i] != cached[i] ? 1u : 0u;
  CHECK(diffs <= 2 + 8 + 4 * 4);
  // A different name is not patched in.
  CHECK_FALSE(copy_question_case(reply, name("www.example.tesu")));
  CHECK_FALSE(copy_question_case(reply, name("example.test")));
}

TEST_CASE("many names overflow the compression table gracefully", "[resolver][builder]") {
  std::vector<std::uint8_t> buf(kMaxMessageSize);
  MessageBuilder b(buf);
  REQUIRE(b.add_question(name("zone.test"), rrtype::kNS, rrclass::kIN) == AddResult::Ok);
  std::vector<RRset> sets;
  for (int i = 0; i < 300; ++i) {
    const std::string host =
        "ns" + std::to_string(i) + ".sub" + std::to_string(i % 7) + ".zone.test";
    sets.push_back(make(host, rrtype::kA, 60,
                        {std::vector<std::uint8_t>{198, 51, 100, static_cast<std::uint8_t>(i)}}));
    REQUIRE(b.add_rrset(Section::Additional, sets.back()) == AddResult::Ok);
  }
  Message m;
  REQUIRE(m.parse(b.finish()).ok());
  std::vector<RRset> got;
  collect_rrsets(m, Section::Additional, got);
  REQUIRE(got.size() == sets.size());
  for (std::size_t i = 0; i < sets.size(); ++i) check_same(got[i], sets[i]);
}

TEST_CASE("header flags and the extended RCODE are encoded", "[resolver][builder]") {
  std::vector<std::uint8_t> buf(512);
  MessageBuilder b(buf);
  Header h;
  h.id = 0xFFFF;
  h.qr = h.aa = h.tc = h.rd = h.ra = h.ad = h.cd = true;
  h.opcode = 5;
  h.rcode = 0;
  b.set_header(h);
  EdnsSpec e;
  e.udp_payload_size = 4096;
  e.extended_rcode = 1;  // BADVERS = 16
  e.version = 0;
  const auto opt = hex("000a00020102");
  e.options = opt;
  REQUIRE(b.set_edns(e));
  Message m;
  REQUIRE(m.parse(b.finish()).ok());
  Header want = h;
  want.arcount = 1;
  CHECK(m.header() == want);
  CHECK(m.rcode() == rcode::kBadVers);
  CHECK(m.edns()->udp_payload_size == 4096);
  CHECK(bytes(m.edns()->find(10)->data) == hex("0102"));
}

TEST_CASE("names past 16 KiB are written whole, never pointed at", "[resolver][builder]") {
  std::vector<std::uint8_t> buf(kMaxMessageSize);
  MessageBuilder b(buf);
  REQUIRE(b.add_question(name("big.example.test"), rrtype::kTXT, rrclass::kIN) == AddResult::Ok);
  // One TXT of 80 strings of 255 octets pushes everything after it past 0x3FFF.
  std::vector<std::uint8_t> txt;
  for (int i = 0; i < 80; ++i) {
    txt.push_back(255);
    txt.insert(txt.end(), 255, static_cast<std::uint8_t>('a' + i % 26));
  }
  REQUIRE(b.add_rrset(Section::Answer, make("big.example.test", rrtype::kTXT, 60, {txt})) ==
          AddResult::Ok);
  REQUIRE(b.size() > 0x3FFF);
  const RRset far1 = make("far.away.invalid", rrtype::kA, 60, {hex("c0000201")});
  const RRset far2 = make("x.far.away.invalid", rrtype::kA, 60, {hex("c0000202")});
  const RRset near = make("ns.example.test", rrtype::kA, 60, {hex("c0000203")});
  REQUIRE(b.add_rrset(Section::Additional, far1) == AddResult::Ok);
  const std::size_t before_far2 = b.size();
  REQUIRE(b.add_rrset(Section::Additional, far2) == AddResult::Ok);
  // x.far.away.invalid could only point past 16 KiB: it is written whole.
  CHECK(b.size() - before_far2 == far2.owner.wire_length() + 10 + 4);
  const std::size_t before_near = b.size();
  REQUIRE(b.add_rrset(Section::Additional, near) == AddResult::Ok);
  // ns.example.test points back at example.test in the question.
  CHECK(b.size() - before_near == 3 + 2 + 10 + 4);
  Message m;
  REQUIRE(m.parse(b.finish()).ok());
  std::vector<RRset> got;
  collect_rrsets(m, Section::Additional, got);
  REQUIRE(got.size() == 3);
  check_same(got[0], far1);
  check_same(got[1], far2);
  check_same(got[2], near);
}

TEST_CASE("type mnemonics convert both ways (RFC 3597 §5)", "[resolver][wire]") {
  CHECK(type_to_text(rrtype::kAAAA) == "AAAA");
  CHECK(type_to_text(65280) == "TYPE65280");
  CHECK(type_from_text("aaaa") == rrtype::kAAAA);
  CHECK(type_from_text("TYPE28") == rrtype::kAAAA);
  CHECK(type_from_text("type65280") == 65280);
  CHECK_FALSE(type_from_text("TYPE65536"));
  CHECK_FALSE(type_from_text("TYPE"));
  CHECK_FALSE(type_from_text("TYPE+1"));
  CHECK_FALSE(type_from_text("BOGUS"));
  for (std::uint32_t t = 0; t <= 0xFFFF; t += 97) {
    const auto back = type_from_text(type_to_text(static_cast<std::uint16_t>(t)));
    REQUIRE(back);
    CHECK(*back == t);
  }
}

TEST_CASE("a buffer smaller than a header builds nothing", "[resolver][builder]") {
  std::array<std::uint8_t, 11> tiny{};
  MessageBuilder b(tiny);
  CHECK(b.add_question(name("x.test"), rrtype::kA, rrclass::kIN) == AddResult::Truncated);
  CHECK_FALSE(b.set_edns(EdnsSpec{}));
  CHECK(b.finish().empty());
  // A limit below 12 is raised to the header: an empty message still fits.
  std::vector<std::uint8_t> buf(512);
  MessageBuilder h(buf, 3);
  CHECK(h.add_question(name("x.test"), rrtype::kA, rrclass::kIN) == AddResult::NoSpace);
  CHECK(h.finish().size() == 12);
}

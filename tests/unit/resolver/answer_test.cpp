#include <catch2/catch.hpp>

#include "diode/resolver/answer.hpp"
#include "fake_net.hpp"

using namespace diode::resolver;
using namespace diode::resolver::test;

namespace {

std::vector<std::uint8_t> client_query(std::string_view qname, std::uint16_t qtype, bool edns,
                                       std::uint16_t id = 0x1234) {
  std::vector<std::uint8_t> buf(512);
  MessageBuilder b(buf);
  Header h;
  h.id = id;
  h.rd = true;
  b.set_header(h);
  if (edns) {
    EdnsSpec e;
    e.udp_payload_size = 1232;
    REQUIRE(b.set_edns(e));
  }
  REQUIRE(b.add_question(name(qname), qtype, rrclass::kIN) == AddResult::Ok);
  auto w = b.finish();
  return {w.begin(), w.end()};
}

}  // namespace

TEST_CASE("answer: the upstream query has RD clear, EDNS and the 0x20 name") {
  Outgoing o;
  o.qname = name("wWw.A.tEst.");
  o.qtype = rrtype::kAAAA;
  std::vector<std::uint8_t> q;
  build_upstream_query(o, 0x4242, 1232, q);
  Message m;
  REQUIRE(m.parse(q).ok());
  CHECK(m.header().id == 0x4242);
  CHECK_FALSE(m.header().rd);
  CHECK_FALSE(m.header().qr);
  REQUIRE(m.edns());
  CHECK(m.edns()->udp_payload_size == 1232);
  CHECK(m.question()->qname.equals_exact(o.qname));
  CHECK(m.question()->qtype == rrtype::kAAAA);
}

TEST_CASE("answer: built from an outcome; TC when it does not fit the client's size") {
  const auto qw = client_query("big.a.test.", rrtype::kTXT, true);
  Message q;
  REQUIRE(q.parse(qw).ok());
  std::vector<std::vector<std::uint8_t>> txt;
  for (int i = 0; i < 40; ++i) {
    std::string s(60, 'x');
    s[0] = static_cast<char>('A' + i);
    std::vector<std::uint8_t> rd;
    rd.push_back(60);
    for (const char ch : s) rd.push_back(static_cast<std::uint8_t>(ch));
    txt.push_back(rd);
  }
  Outcome o;
  o.rcode = rcode::kNoError;
  o.answer = {rrset("big.a.test.", rrtype::kTXT, 300, txt)};
  BuiltAnswer a;
  build_answer(q, o, 1232, 1232, a);
  CHECK(a.truncated);
  CHECK(a.wire.size() <= 1232);
  Message m;
  REQUIRE(m.parse(a.wire).ok());
  CHECK(m.header().tc);
  CHECK(m.header().id == 0x1234);
  CHECK(m.header().ra);
  CHECK(m.header().rd);
  CHECK(m.count(Section::Answer) == 0);
  REQUIRE(m.edns());

  build_answer(q, o, 65535, 1232, a);  // over TCP
  CHECK_FALSE(a.truncated);
  REQUIRE(m.parse(a.wire).ok());
  CHECK(m.count(Section::Answer) == 40);
  CHECK(a.min_ttl == 300);
  CHECK(a.ttl_offsets.size() == 40);
}

TEST_CASE("answer: error replies echo ID and question, never answer a response") {
  const auto qw = client_query("www.a.test.", rrtype::kA, true, 0x9999);
  Message q;
  REQUIRE(q.parse(qw).ok());
  std::vector<std::uint8_t> out;
  REQUIRE(build_error(qw, &q, rcode::kRefused, 1232, out));
  Message m;
  REQUIRE(m.parse(out).ok());
  CHECK(m.header().id == 0x9999);
  CHECK(m.rcode() == rcode::kRefused);
  CHECK(m.question()->qname == name("www.a.test."));
  // FORMERR to something whose header alone is readable.
  std::vector<std::uint8_t> junk(qw.begin(), qw.begin() + 14);
  REQUIRE(build_error(junk, nullptr, rcode::kFormErr, 1232, out));
  REQUIRE(m.parse(out).ok());
  CHECK(m.rcode() == rcode::kFormErr);
  CHECK(m.header().qdcount == 0);
  CHECK_FALSE(build_error(std::vector<std::uint8_t>(5, 0), nullptr, rcode::kFormErr, 1232, out));
  std::vector<std::uint8_t> response = out;  // QR set: no reply to a reply
  CHECK_FALSE(build_error(response, nullptr, rcode::kFormErr, 1232, out));
}

TEST_CASE("answer: RFC 6761 local zones") {
  auto a = local_zone_answer(Question{name("localhost."), rrtype::kA, rrclass::kIN});
  REQUIRE(a);
  CHECK(addresses_of(*a) == std::vector<std::string>{"127.0.0.1"});
  auto t = local_zone_answer(Question{name("www.a.test."), rrtype::kA, rrclass::kIN});
  REQUIRE(t);
  CHECK(t->rcode == rcode::kNxDomain);
  REQUIRE(t->authority.size() == 1);
  CHECK(t->authority[0].owner == name("test."));
  auto rev = local_zone_answer(Question{name("10.2.0.192.in-addr.arpa."), rrtype::kPTR, rrclass::kIN});
  REQUIRE(rev);
  CHECK(rev->rcode == rcode::kNxDomain);
  CHECK_FALSE(local_zone_answer(Question{name("www.example.com."), rrtype::kA, rrclass::kIN}));
  CHECK(outcome_ttl(*t) == 10800);
}

TEST_CASE("answer: what a client query deserves before resolution") {
  auto verdict = [](std::vector<std::uint8_t> wire) {
    Message m;
    const ParseStatus ps = m.parse(wire);
    return check_query(m, ps);
  };
  CHECK(verdict(client_query("www.a.test.", rrtype::kA, true)) == 0);
  CHECK(verdict(client_query("www.a.test.", 252, false)) == rcode::kRefused);  // AXFR
  CHECK(verdict(client_query("www.a.test.", 251, false)) == rcode::kRefused);  // IXFR
  auto notimp = client_query("www.a.test.", rrtype::kA, false);
  notimp[2] = static_cast<std::uint8_t>(notimp[2] | (2U << 3));  // opcode STATUS
  CHECK(verdict(notimp) == rcode::kNotImp);
  auto chaos = client_query("version.bind.", rrtype::kTXT, false);
  chaos[chaos.size() - 1] = rrclass::kCH;
  CHECK(verdict(chaos) == rcode::kRefused);
  auto v1 = client_query("www.a.test.", rrtype::kA, true);
  v1[v1.size() - 5] = 1;  // EDNS version 1 (the OPT TTL's second octet)
  CHECK(verdict(v1) == rcode::kBadVers);
  auto loop = hex("2222 0100 0001 0000 0000 0000 c00c 0001 0001");
  CHECK(verdict(loop) == rcode::kFormErr);
  auto counts = client_query("www.a.test.", rrtype::kA, false);
  counts[7] = 5;  // ANCOUNT 5, nothing there
  CHECK(verdict(counts) == rcode::kFormErr);
  CHECK(verdict(hex("2222 0100 0000 0000 0000 0000")) == rcode::kFormErr);  // no question
}

TEST_CASE("answer: the size a client may get") {
  Message m;
  const auto plain = client_query("www.a.test.", rrtype::kA, false);
  REQUIRE(m.parse(plain).ok());
  CHECK(reply_limit(m, false, 1232) == 512);
  CHECK(reply_limit(m, true, 1232) == 65535);
  const auto edns = client_query("www.a.test.", rrtype::kA, true);  // advertises 1232
  REQUIRE(m.parse(edns).ok());
  CHECK(reply_limit(m, false, 1232) == 1232);
  CHECK(reply_limit(m, false, 800) == 800);
  auto small = edns;
  small[small.size() - 8] = 0x01;  // CLASS = 0x0100 = 256: less than 512 means 512
  small[small.size() - 7] = 0x00;
  REQUIRE(m.parse(small).ok());
  CHECK(reply_limit(m, false, 1232) == 512);
}

TEST_CASE("answer: a cached answer finalised for one client") {
  const auto qw = client_query("big.a.test.", rrtype::kTXT, true, 0x7777);
  Message q;
  REQUIRE(q.parse(qw).ok());
  std::vector<std::vector<std::uint8_t>> txt;
  for (int i = 0; i < 20; ++i) {
    std::vector<std::uint8_t> rd;
    rd.push_back(60);
    for (int j = 0; j < 60; ++j) rd.push_back(static_cast<std::uint8_t>('a' + (i + j) % 26));
    txt.push_back(rd);
  }
  Outcome o;
  o.rcode = rcode::kNoError;
  o.answer = {rrset("big.a.test.", rrtype::kTXT, 300, txt)};
  BuiltAnswer a;
  build_answer(q, o, 65535, 0, a);  // the cached form: no OPT
  Message m;
  REQUIRE(m.parse(a.wire).ok());
  CHECK_FALSE(m.edns());
  const std::size_t full = a.wire.size();
  REQUIRE(full > 1232);

  Header h = q.header();
  h.id = 0x0102;
  h.rd = false;
  h.cd = true;
  auto tcp = a.wire;
  CHECK_FALSE(finalize_reply(tcp, h, true, 65535, 1232));
  REQUIRE(m.parse(tcp).ok());
  CHECK(m.header().id == 0x0102);
  CHECK_FALSE(m.header().rd);
  CHECK(m.header().cd);
  REQUIRE(m.edns());
  CHECK(m.edns()->udp_payload_size == 1232);
  CHECK(m.count(Section::Answer) == 20);

  auto udp = a.wire;
  CHECK(finalize_reply(udp, h, true, 1232, 1232));
  CHECK(udp.size() <= 1232);
  REQUIRE(m.parse(udp).ok());
  CHECK(m.header().tc);
  CHECK(m.count(Section::Answer) == 0);
  CHECK(m.question()->qname == name("big.a.test."));
  REQUIRE(m.edns());

  auto plain = a.wire;  // no EDNS from this client: 512 and no OPT
  CHECK(finalize_reply(plain, h, false, 512, 1232));
  REQUIRE(m.parse(plain).ok());
  CHECK_FALSE(m.edns());
  CHECK(m.header().tc);
}

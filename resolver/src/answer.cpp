#include "diode/resolver/answer.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "diode/resolver/builder.hpp"

namespace diode::resolver {

namespace {

EdnsSpec edns_for(std::uint16_t size, std::uint16_t rc) {
  EdnsSpec e;
  e.udp_payload_size = size;
  e.extended_rcode = static_cast<std::uint8_t>(rc >> 4);
  return e;
}

Header reply_header(const Header& q, std::uint16_t rc) {
  Header h;
  h.id = q.id;
  h.qr = true;
  h.opcode = q.opcode;
  h.rd = q.rd;
  h.cd = q.cd;
  h.ra = true;
  h.rcode = static_cast<std::uint8_t>(rc & 0x0f);
  return h;
}

void push_u32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  v.push_back(static_cast<std::uint8_t>(x >> 24));
  v.push_back(static_cast<std::uint8_t>(x >> 16));
  v.push_back(static_cast<std::uint8_t>(x >> 8));
  v.push_back(static_cast<std::uint8_t>(x));
}

// The SOA of a locally served zone: RFC 6303 §3's shape, negative TTL 10800.
RRset local_soa(const Name& zone) {
  static const Name mname = *Name::from_text("localhost.");
  static const Name rname = *Name::from_text("nobody.invalid.");
  std::vector<std::uint8_t> rdata(mname.wire().begin(), mname.wire().end());
  rdata.insert(rdata.end(), rname.wire().begin(), rname.wire().end());
  for (const std::uint32_t v : {1U, 3600U, 1200U, 604800U, 10800U}) push_u32(rdata, v);
  RRset soa;
  soa.owner = zone;
  soa.type = rrtype::kSOA;
  soa.ttl = 10800;
  (void)soa.add_rdata(rdata);
  return soa;
}

constexpr std::array<std::string_view, 8> kLocalZones = {
    "localhost.",
    "test.",                      // RFC 6761 §6.2
    "invalid.",                   // RFC 6761 §6.4
    "onion.",                     // RFC 7686 §2
    "2.0.192.in-addr.arpa.",      // RFC 5737 TEST-NET-1
    "100.51.198.in-addr.arpa.",   // TEST-NET-2
    "113.0.203.in-addr.arpa.",    // TEST-NET-3
    "8.b.d.0.1.0.0.2.ip6.arpa.",  // RFC 3849
};

}  // namespace

void build_upstream_query(const Outgoing& q, std::uint16_t id, std::uint16_t edns_size,
                          std::vector<std::uint8_t>& out) {
  out.resize(kHeaderSize + kMaxNameLength + 4 + 11);
  MessageBuilder b(out);
  Header h;
  h.id = id;
  b.set_header(h);
  EdnsSpec e = edns_for(edns_size, 0);
  e.dnssec_ok = q.dnssec_ok;
  (void)b.set_edns(e);
  (void)b.add_question(q.qname, q.qtype, q.qclass);
  const auto done = b.finish();
  out.resize(done.size());
}

std::uint32_t outcome_ttl(const Outcome& o) {
  std::uint32_t ttl = 0xffffffffU;
  bool any = false;
  for (const auto* sets : {&o.answer, &o.authority}) {
    for (const RRset& r : *sets) {
      ttl = std::min(ttl, r.ttl);
      any = true;
    }
  }
  return any ? ttl : 0;
}

void build_answer(const Message& query, const Outcome& outcome, std::size_t limit,
                  std::uint16_t edns_size, BuiltAnswer& out) {
  out.wire.resize(std::max<std::size_t>(limit, 512));
  MessageBuilder b(out.wire, limit);
  b.set_header(reply_header(query.header(), outcome.rcode));
  if (query.edns() && edns_size != 0) (void)b.set_edns(edns_for(edns_size, outcome.rcode));
  if (query.question()) {
    const Question& q = *query.question();
    (void)b.add_question(q.qname, q.qtype, q.qclass);
  }
  for (const RRset& r : outcome.answer) {
    if (b.add_rrset(Section::Answer, r) != AddResult::Ok) break;
  }
  for (const RRset& r : outcome.authority) {
    if (b.add_rrset(Section::Authority, r) != AddResult::Ok) break;
  }
  out.truncated = b.truncated();
  const auto done = b.finish();
  out.ttl_offsets.assign(b.ttl_offsets().begin(), b.ttl_offsets().end());
  out.wire.resize(done.size());
  out.min_ttl = outcome_ttl(outcome);
}

bool build_error(std::span<const std::uint8_t> query_wire, const Message* parsed,
                 std::uint16_t rc, std::uint16_t edns_size, std::vector<std::uint8_t>& out) {
  const auto h = read_header(query_wire);
  if (!h || h->qr) return false;  // never answer a response (reflection loops)
  out.resize(kHeaderSize + kMaxNameLength + 4 + 11);
  MessageBuilder b(out);
  Header rh = reply_header(*h, rc);
  rh.ra = rc != rcode::kFormErr;
  b.set_header(rh);
  const bool with_question = parsed != nullptr && parsed->question().has_value();
  if (with_question && parsed->edns()) (void)b.set_edns(edns_for(edns_size, rc));
  if (with_question) {
    const Question& q = *parsed->question();
    (void)b.add_question(q.qname, q.qtype, q.qclass);
  }
  const auto done = b.finish();
  out.resize(done.size());
  return true;
}

std::uint16_t check_query(const Message& m, const ParseStatus& status) {
  if (!status.ok() || !m.question()) return rcode::kFormErr;
  if (m.header().opcode != 0) return rcode::kNotImp;
  if (m.edns() && m.edns()->version != 0) return rcode::kBadVers;
  if (m.question()->qclass != rrclass::kIN) return rcode::kRefused;
  const std::uint16_t t = m.question()->qtype;
  if (t == 251 || t == 252 || t == rrtype::kOPT || t == 0) return rcode::kRefused;
  return 0;
}

std::size_t reply_limit(const Message& query, bool over_tcp, std::uint16_t edns_size) {
  if (over_tcp) return kMaxMessageSize;
  if (!query.edns()) return kClassicUdpSize;
  return std::clamp<std::size_t>(query.edns()->udp_payload_size, kClassicUdpSize,
                                 std::max<std::size_t>(edns_size, kClassicUdpSize));
}

namespace {
std::uint16_t get16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
void put16(std::uint8_t* p, std::size_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
}  // namespace

bool finalize_reply(std::vector<std::uint8_t>& msg, const Header& query, bool edns,
                    std::size_t limit, std::uint16_t edns_size, bool dnssec_ok,
                    std::uint16_t ede_code, std::string_view ede_text) {
  if (msg.size() < kHeaderSize) return false;
  patch_id(msg, query.id);
  msg[2] = static_cast<std::uint8_t>((msg[2] & ~0x01U) | (query.rd ? 0x01U : 0U));
  msg[3] = static_cast<std::uint8_t>((msg[3] & ~0x10U) | (query.cd ? 0x10U : 0U));
  if (!query.ad && !dnssec_ok) msg[3] = static_cast<std::uint8_t>(msg[3] & ~0x20U);
  std::vector<std::uint8_t> options;
  if (edns && ede_code != 0xffff) {
    ede_text = ede_text.substr(0, 200);
    const std::size_t len = 2 + ede_text.size();
    options = {0, 15, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len),
               static_cast<std::uint8_t>(ede_code >> 8), static_cast<std::uint8_t>(ede_code)};
    options.insert(options.end(), ede_text.begin(), ede_text.end());
  }
  const std::size_t opt_size = edns ? 11 + options.size() : 0;
  bool truncated = false;
  if (msg.size() + opt_size > limit) {
    std::size_t end = kHeaderSize;
    if (get16(&msg[4]) == 1) {
      std::size_t next = 0;
      if (read_name(msg, kHeaderSize, nullptr, &next) == WireError::Ok) end = next + 4;
    }
    if (end == kHeaderSize) put16(&msg[4], 0);
    msg.resize(std::min(end, msg.size()));
    msg[2] = static_cast<std::uint8_t>(msg[2] | 0x02U);
    put16(&msg[6], 0);
    put16(&msg[8], 0);
    put16(&msg[10], 0);
    truncated = true;
  }
  if (edns) {
    const std::array<std::uint8_t, 11> opt{0,
                                           0,
                                           41,
                                           static_cast<std::uint8_t>(edns_size >> 8),
                                           static_cast<std::uint8_t>(edns_size),
                                           0,
                                           0,
                                           static_cast<std::uint8_t>(dnssec_ok ? 0x80U : 0U),
                                           0,
                                           static_cast<std::uint8_t>(options.size() >> 8),
                                           static_cast<std::uint8_t>(options.size())};
    msg.insert(msg.end(), opt.begin(), opt.end());
    msg.insert(msg.end(), options.begin(), options.end());
    put16(&msg[10], get16(&msg[10]) + 1u);
  }
  return truncated;
}

std::optional<Outcome> local_zone_answer(const Question& q) {
  // Parsed once: this runs for every client query.
  static const std::vector<Name> zones = [] {
    std::vector<Name> v;
    for (const std::string_view text : kLocalZones) v.push_back(*Name::from_text(text));
    return v;
  }();
  for (const Name& zone : zones) {
    if (!q.qname.is_subdomain_of(zone)) continue;
    Outcome o;
    o.rcode = rcode::kNoError;
    if (&zone == &zones.front()) {  // localhost.
      // RFC 6761 §6.3: every name below localhost. is loopback.
      RRset r;
      r.owner = q.qname;
      r.ttl = 10800;
      if (q.qtype == rrtype::kA) {
        r.type = rrtype::kA;
        (void)r.add_rdata(std::array<std::uint8_t, 4>{127, 0, 0, 1});
      } else if (q.qtype == rrtype::kAAAA) {
        r.type = rrtype::kAAAA;
        std::array<std::uint8_t, 16> one{};
        one[15] = 1;
        (void)r.add_rdata(one);
      }
      if (!r.empty()) {
        o.answer.push_back(std::move(r));
        return o;
      }
      o.authority.push_back(local_soa(zone));
      return o;
    }
    if (q.qname == zone && q.qtype == rrtype::kSOA) {
      o.answer.push_back(local_soa(zone));
      return o;
    }
    if (q.qname != zone) o.rcode = rcode::kNxDomain;
    o.authority.push_back(local_soa(zone));
    return o;
  }
  return std::nullopt;
}

}  // namespace diode::resolver

#include "diode/resolver/message.hpp"

#include <algorithm>

#include "rdata.hpp"

namespace diode::resolver {

using detail::get16;
using detail::get32;

EdnsOption EdnsOptionIterator::operator*() const {
  return {get16(rest_.data()), rest_.subspan(4, get16(rest_.data() + 2))};
}

EdnsOptionIterator& EdnsOptionIterator::operator++() {
  rest_ = rest_.subspan(4u + get16(rest_.data() + 2));
  return *this;
}

std::optional<EdnsOption> Edns::find(std::uint16_t code) const {
  for (EdnsOption o : *this) {
    if (o.code == code) return o;
  }
  return std::nullopt;
}

void Message::clear() {
  wire_ = {};
  header_ = Header{};
  question_.reset();
  edns_.reset();
  entries_.clear();
  section_begin_ = {};
}

namespace {

// RFC 6891 §6.1.2: the OPT RDATA is a sequence of {code, length, data}
// that must exactly fill RDLENGTH.
bool options_well_formed(std::span<const std::uint8_t> rdata) {
  std::size_t pos = 0;
  while (pos < rdata.size()) {
    if (rdata.size() - pos < 4) return false;
    const std::size_t len = get16(rdata.data() + pos + 2);
    if (rdata.size() - pos - 4 < len) return false;
    pos += 4 + len;
  }
  return true;
}

}  // namespace

ParseStatus Message::parse(std::span<const std::uint8_t> wire, const ParseOptions& options) {
  clear();
  wire_ = wire;
  ParseStatus st;
  const auto fail = [&](WireError e, std::size_t at) {
    const Header keep = header_;
    clear();
    wire_ = wire;
    header_ = keep;
    st.error = e;
    st.offset = at;
    return st;
  };
  if (wire.size() < kHeaderSize) return fail(WireError::Truncated, wire.size());
  header_ = *read_header(wire);
  st.header_intact = true;
  if (wire.size() > kMaxMessageSize) return fail(WireError::TooLarge, kMaxMessageSize);

  std::size_t pos = kHeaderSize;
  // RFC 1035 §4.1.2. QDCOUNT > 1 is undefined in practice (RFC 9619).
  if (header_.qdcount > 1) return fail(WireError::MultipleQuestions, 4);
  if (header_.qdcount == 1) {
    Question q;
    std::size_t next = 0;
    const WireError e = read_name(wire, pos, &q.qname, &next);
    if (e != WireError::Ok) return fail(e, pos);
    if (wire.size() - next < 4) return fail(WireError::Truncated, wire.size());
    q.qtype = get16(wire.data() + next);
    q.qclass = get16(wire.data() + next + 2);
    if (q.qtype == rrtype::kOPT) return fail(WireError::OptNotInAdditional, next);
    question_ = q;
    pos = next + 4;
  }

  // One allocation at most, sized by what the octets left could hold (a
  // record is at least 11 octets), never by counts an attacker chose.
  const std::size_t declared = std::size_t{header_.ancount} + header_.nscount + header_.arcount;
  entries_.reserve(std::min(declared, (wire.size() - pos) / 11 + 1));

  const std::array<std::uint16_t, 3> counts{header_.ancount, header_.nscount, header_.arcount};
  for (std::size_t s = 0; s < 3; ++s) {
    const Section section = static_cast<Section>(s + 1);
    section_begin_[s + 1] = entries_.size();
    for (std::size_t i = 0; i < counts[s]; ++i) {
      // RFC 1035 §4.1.3: NAME TYPE CLASS TTL RDLENGTH RDATA.
      if (pos == wire.size()) return fail(WireError::CountMismatch, pos);
      const std::size_t start = pos;
      std::size_t next = 0;
      const WireError e = read_name(wire, pos, nullptr, &next);
      if (e != WireError::Ok) return fail(e, pos);
      if (wire.size() - next < 10) return fail(WireError::Truncated, wire.size());
      const std::uint8_t* f = wire.data() + next;
      const std::uint16_t type = get16(f);
      const std::uint16_t rclass = get16(f + 2);
      const std::uint32_t ttl = get32(f + 4);
      const std::size_t rdlen = get16(f + 8);
      const std::size_t rdata = next + 10;
      if (wire.size() - rdata < rdlen) return fail(WireError::RdataOverrun, next + 8);
      pos = rdata + rdlen;
      if (type == rrtype::kOPT) {
        // RFC 6891 §6.1.1: at most one OPT, only in the additional section.
        if (section != Section::Additional) return fail(WireError::OptNotInAdditional, start);
        if (edns_) return fail(WireError::MultipleOpt, start);
        if (wire[start] != 0) return fail(WireError::OptBadOwner, start);
        const auto opts = wire.subspan(rdata, rdlen);
        if (!options_well_formed(opts)) return fail(WireError::BadOptOption, rdata);
        Edns ed;
        ed.udp_payload_size = rclass;
        ed.extended_rcode = static_cast<std::uint8_t>(ttl >> 24);
        ed.version = static_cast<std::uint8_t>(ttl >> 16);
        ed.flags = static_cast<std::uint16_t>(ttl);
        ed.dnssec_ok = (ttl & 0x8000u) != 0;
        ed.options = opts;
        ed.offset = static_cast<std::uint16_t>(start);
        edns_ = ed;
        continue;
      }
      const WireError re = detail::expand_rdata(wire, rdata, rdlen, type, nullptr);
      if (re != WireError::Ok) return fail(re, rdata);
      entries_.push_back({static_cast<std::uint16_t>(start), type, rclass,
                          static_cast<std::uint16_t>(rdata), static_cast<std::uint16_t>(rdlen),
                          ttl});
    }
  }
  if (pos != wire.size() && !options.allow_trailing_data) {
    return fail(WireError::TrailingData, pos);
  }
  return st;
}

std::uint16_t Message::rcode() const {
  const std::uint16_t high = edns_ ? edns_->extended_rcode : 0;
  return static_cast<std::uint16_t>((high << 4) | header_.rcode);
}

std::size_t Message::count(Section s) const {
  const auto i = static_cast<std::size_t>(s);
  if (i == 0) return question_ ? 1 : 0;
  const std::size_t end = i == 3 ? entries_.size() : section_begin_[i + 1];
  return end - section_begin_[i];
}

RecordView Message::record(Section s, std::size_t i) const {
  const Entry& e = entries_[section_begin_[static_cast<std::size_t>(s)] + i];
  RecordView r;
  r.section = s;
  (void)read_name(wire_, e.owner_offset, &r.owner, nullptr);
  r.type = e.type;
  r.rclass = e.rclass;
  r.ttl = e.ttl;
  r.owner_offset = e.owner_offset;
  r.ttl_offset = static_cast<std::uint16_t>(e.rdata_offset - 6u);
  r.rdata_offset = e.rdata_offset;
  r.rdata_length = e.rdata_length;
  r.rdata = wire_.subspan(e.rdata_offset, e.rdata_length);
  return r;
}

Name Message::owner(Section s, std::size_t i) const {
  Name n;
  (void)read_name(wire_, entries_[section_begin_[static_cast<std::size_t>(s)] + i].owner_offset, &n,
                  nullptr);
  return n;
}

void Message::append_expanded_rdata(const RecordView& r, std::vector<std::uint8_t>& out) const {
  (void)detail::expand_rdata(wire_, r.rdata_offset, r.rdata_length, r.type, &out);
}

}  // namespace diode::resolver

// Fuzzes the DNS message parser and, through it, the builder. Besides "no
// crash" it holds the codec to its contract: a rejected message reports a
// position inside the input; an accepted one has consistent views; and its
// records, re-encoded through collect_rrsets and MessageBuilder, parse
// again into the same question and RRsets.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "diode/resolver/builder.hpp"
#include "diode/resolver/message.hpp"
#include "diode/resolver/rrset.hpp"

namespace {

using namespace diode::resolver;

constexpr Section kRecordSections[] = {Section::Answer, Section::Authority, Section::Additional};

void require(bool ok) {
  if (!ok) __builtin_trap();
}

std::uint8_t lower(std::uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<std::uint8_t>(c + 32) : c;
}

// Names inside RDATA may come back with another case after compression
// against an earlier name, so RDATA is compared ignoring ASCII case.
bool same_ignoring_case(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

void check_name_text(const Name& n) {
  const auto back = Name::from_text(n.to_text());
  require(back.has_value() && back->equals_exact(n));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  Message m;
  const ParseStatus st = m.parse(in);
  if (!st.ok()) {
    require(st.offset <= size || st.error == WireError::TooLarge);
    require(st.header_intact == (size >= kHeaderSize));
    require(m.count(Section::Answer) == 0 && m.count(Section::Additional) == 0);
    if (st.error == WireError::TrailingData) {
      ParseOptions lenient;
      lenient.allow_trailing_data = true;
      require(m.parse(in, lenient).ok());
    }
    return 0;
  }

  // Every view stays inside the input and every name survives text.
  if (m.question()) check_name_text(m.question()->qname);
  std::vector<std::uint8_t> scratch;
  for (Section s : kRecordSections) {
    for (std::size_t i = 0; i < m.count(s); ++i) {
      const RecordView r = m.record(s, i);
      require(r.type != rrtype::kOPT);
      require(std::size_t{r.rdata_offset} + r.rdata_length <= size);
      require(r.rdata.data() == data + r.rdata_offset);
      require(r.ttl_offset + 4u == r.rdata_offset - 2u);
      check_name_text(r.owner);
      // The expanded RDATA is valid uncompressed RDATA of its type.
      scratch.clear();
      m.append_expanded_rdata(r, scratch);
      RRset one;
      one.type = r.type;
      require(one.add_rdata(scratch) || scratch.size() > 65535);
    }
  }
  if (m.edns()) {
    std::size_t total = 0;
    for (EdnsOption o : *m.edns()) total += 4 + o.data.size();
    require(total == m.edns()->options.size());
  }

  // Re-encode.
  std::vector<RRset> sets[3];
  bool complete = true;
  for (std::size_t k = 0; k < 3; ++k) {
    complete = collect_rrsets(m, kRecordSections[k], sets[k]) && complete;
  }
  std::vector<std::uint8_t> buf(kMaxMessageSize);
  MessageBuilder b(buf);
  b.set_header(m.header());
  if (m.edns()) {
    EdnsSpec e;
    e.udp_payload_size = m.edns()->udp_payload_size;
    e.extended_rcode = m.edns()->extended_rcode;
    e.version = m.edns()->version;
    e.dnssec_ok = m.edns()->dnssec_ok;
    e.options = m.edns()->options;
    require(b.set_edns(e));
  }
  if (m.question()) {
    require(b.add_question(m.question()->qname, m.question()->qtype, m.question()->qclass) ==
            AddResult::Ok);
  }
  for (std::size_t k = 0; k < 3; ++k) {
    for (const RRset& r : sets[k]) {
      const AddResult res = b.add_rrset(kRecordSections[k], r, Overflow::SetTc);
      // Expanded names can make a full message outgrow 65535 octets.
      require(res == AddResult::Ok || res == AddResult::NoSpace || res == AddResult::Truncated);
      complete = complete && res == AddResult::Ok;
    }
  }
  const auto out = b.finish();
  Message again;
  require(again.parse(out).ok());
  require(again.question().has_value() == m.question().has_value());
  if (m.question()) require(again.question()->qname.equals_exact(m.question()->qname));
  require(again.edns().has_value() == m.edns().has_value());
  require(again.rcode() == m.rcode());
  if (b.truncated()) require(again.header().tc);
  if (!complete) return 0;
  for (std::size_t k = 0; k < 3; ++k) {
    std::vector<RRset> back;
    collect_rrsets(again, kRecordSections[k], back);
    require(back.size() == sets[k].size());
    for (std::size_t i = 0; i < back.size(); ++i) {
      const RRset& a = sets[k][i];
      const RRset& c = back[i];
      require(c.owner == a.owner && c.type == a.type && c.rclass == a.rclass && c.ttl == a.ttl);
      // Two RDATAs differing only in the case of a compressed name may merge.
      require(c.size() <= a.size() && !c.empty());
      if (c.size() == a.size()) require(same_ignoring_case(c.storage(), a.storage()));
    }
  }
  return 0;
}

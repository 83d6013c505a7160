#include "diode/resolver/builder.hpp"

#include <algorithm>
#include <cstring>

#include "rdata.hpp"

namespace diode::resolver {

using detail::get16;
using detail::put16;
using detail::put32;

namespace {

constexpr std::uint8_t lower(std::uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<std::uint8_t>(c + ('a' - 'A')) : c;
}

std::uint32_t suffix_hash(std::span<const std::uint8_t> wire) {
  std::uint32_t h = 2166136261u;
  for (std::uint8_t c : wire) {
    h ^= lower(c);
    h *= 16777619u;
  }
  return h;
}

// Pointers can only address the first 16 KiB (14-bit offsets, RFC 1035 §4.1.4).
constexpr std::size_t kMaxPointerTarget = 0x3FFF;

}  // namespace

MessageBuilder::MessageBuilder(std::span<std::uint8_t> buffer, std::size_t limit)
    : buf_(buffer), limit_(std::min({limit, buffer.size(), kMaxMessageSize})) {
  if (buffer.size() < kHeaderSize) {
    // No room for even a header: refuse everything, finish() gives nothing.
    limit_ = 0;
    pos_ = 0;
    finished_ = true;
    return;
  }
  if (limit_ < kHeaderSize) limit_ = kHeaderSize;
  std::memset(buf_.data(), 0, kHeaderSize);
}

void MessageBuilder::set_header(const Header& h) {
  header_ = h;
}

bool MessageBuilder::set_edns(const EdnsSpec& edns) {
  if (section_ > 0 || has_edns_) return false;
  const std::size_t need = 11 + edns.options.size();
  if (edns.options.size() > 0xFFFF || pos_ + need > limit_) return false;
  has_edns_ = true;
  edns_ = edns;
  reserved_ = need;
  return true;
}

void MessageBuilder::restore(const Saved& s) {
  pos_ = s.pos;
  table_size_ = s.table;
  ttl_offsets_.resize(s.ttls);
  counts_ = s.counts;
}

AddResult MessageBuilder::begin_section(Section s) {
  if (truncated_ || finished_) return AddResult::Truncated;
  const int v = static_cast<int>(s);
  if (v < section_) return AddResult::OutOfOrder;
  section_ = v;
  return AddResult::Ok;
}

AddResult MessageBuilder::overflow(Section s, Overflow o, const Saved& saved) {
  restore(saved);
  if (o == Overflow::Default) o = s == Section::Additional ? Overflow::Drop : Overflow::SetTc;
  if (o == Overflow::SetTc) truncated_ = true;
  return AddResult::NoSpace;
}

AddResult MessageBuilder::add_question(const Name& qname, std::uint16_t qtype,
                                       std::uint16_t qclass) {
  if (truncated_ || finished_) return AddResult::Truncated;
  if (section_ > 0 || counts_[0] != 0) return AddResult::OutOfOrder;
  const Saved saved = save();
  if (!write_name(qname, true) || !room(4)) {
    restore(saved);
    return AddResult::NoSpace;  // a message without its question is useless: no TC
  }
  put16(buf_.data() + pos_, qtype);
  put16(buf_.data() + pos_ + 2, qclass);
  pos_ += 4;
  counts_[0] = 1;
  return AddResult::Ok;
}

bool MessageBuilder::matches_at(std::size_t offset, std::span<const std::uint8_t> suffix) const {
  // Walks a name already in the message (it may end in pointers we wrote).
  std::size_t p = offset;
  std::size_t i = 0;
  for (std::size_t guard = 0; guard < kMaxLabels + 1; ++guard) {
    std::uint8_t b = buf_[p];
    if ((b & 0xC0) == 0xC0) {
      p = (static_cast<std::size_t>(b & 0x3F) << 8) | buf_[p + 1];
      b = buf_[p];
    }
    if (i >= suffix.size() || suffix[i] != b) return false;
    for (std::size_t k = 1; k <= b; ++k) {
      if (lower(buf_[p + k]) != lower(suffix[i + k])) return false;
    }
    if (b == 0) return true;
    i += 1u + b;
    p += 1u + b;
  }
  return false;
}

bool MessageBuilder::write_name(const Name& n, bool compress) {
  const auto wire = n.wire();
  // Find the longest suffix already in the message (RFC 1035 §4.1.4).
  std::size_t keep = wire.size();  // octets written verbatim
  std::size_t target = 0;
  bool found = false;
  if (compress) {
    std::size_t p = 0;
    std::size_t labels = n.label_count();
    while (wire[p] != 0 && !found) {
      const auto suffix = wire.subspan(p);
      const std::uint32_t h = suffix_hash(suffix);
      for (std::size_t t = 0; t < table_size_; ++t) {
        const TableEntry& e = table_[t];
        if (e.labels == labels && e.hash == h && matches_at(e.offset, suffix)) {
          keep = p;
          target = e.offset;
          found = true;
          break;
        }
      }
      if (!found) {
        p += 1u + wire[p];
        --labels;
      }
    }
  }
  const std::size_t need = found ? keep + 2 : wire.size();
  if (!room(need)) return false;
  // Remember where each label written verbatim starts, for later names.
  std::size_t labels_left = n.label_count();
  for (std::size_t p = 0; p < keep && wire[p] != 0; p += 1u + wire[p]) {
    const std::size_t at = pos_ + p;
    if (table_size_ < kTableSize && at <= kMaxPointerTarget) {
      table_[table_size_++] = {static_cast<std::uint16_t>(at),
                               static_cast<std::uint8_t>(labels_left),
                               suffix_hash(wire.subspan(p))};
    }
    --labels_left;
  }
  std::memcpy(buf_.data() + pos_, wire.data(), keep);
  pos_ += keep;
  if (found) {
    put16(buf_.data() + pos_, static_cast<std::uint16_t>(0xC000 | target));
    pos_ += 2;
  }
  return true;
}

bool MessageBuilder::write_record(const Name& owner, std::uint16_t type, std::uint16_t rclass,
                                  std::uint32_t ttl, std::span<const std::uint8_t> rdata) {
  if (!write_name(owner, true) || !room(10)) return false;
  std::uint8_t* f = buf_.data() + pos_;
  put16(f, type);
  put16(f + 2, rclass);
  put32(f + 4, ttl);
  const std::size_t ttl_at = pos_ + 4;
  const std::size_t rdlen_at = pos_ + 8;
  pos_ += 10;
  const std::size_t rdata_start = pos_;
  const detail::RdataLayout* l = detail::layout_of(type);
  bool has_names = false;
  if (l != nullptr) {
    for (std::size_t i = 0; i < l->count; ++i) {
      has_names = has_names || l->fields[i].kind == detail::FieldKind::Name;
    }
  }
  if (!has_names) {
    if (!room(rdata.size())) return false;
    if (!rdata.empty()) std::memcpy(buf_.data() + pos_, rdata.data(), rdata.size());
    pos_ += rdata.size();
  } else {
    // Re-walk the (validated) uncompressed layout, compressing names when
    // the type is one of RFC 1035's.
    std::size_t in = 0;
    for (std::size_t i = 0; i < l->count; ++i) {
      const detail::Field& fd = l->fields[i];
      std::size_t n = 0;
      switch (fd.kind) {
        case detail::FieldKind::Name: {
          Name name;
          std::size_t next = 0;
          if (read_uncompressed_name(rdata, in, &name, &next) != WireError::Ok) return false;
          if (!write_name(name, l->compress_on_send)) return false;
          in = next;
          continue;
        }
        case detail::FieldKind::Fixed:
          n = fd.size;
          break;
        case detail::FieldKind::CharString:
          n = 1u + rdata[in];
          break;
        case detail::FieldKind::Rest:
          n = rdata.size() - in;
          break;
      }
      if (!room(n)) return false;
      if (n != 0) std::memcpy(buf_.data() + pos_, rdata.data() + in, n);
      pos_ += n;
      in += n;
    }
  }
  const std::size_t rdlen = pos_ - rdata_start;
  if (rdlen > 0xFFFF) return false;
  put16(buf_.data() + rdlen_at, static_cast<std::uint16_t>(rdlen));
  ttl_offsets_.push_back(static_cast<std::uint16_t>(ttl_at));
  return true;
}

AddResult MessageBuilder::add_record(Section s, const Name& owner, std::uint16_t type,
                                     std::uint16_t rclass, std::uint32_t ttl,
                                     std::span<const std::uint8_t> rdata, Overflow o) {
  if (s == Section::Question) return AddResult::OutOfOrder;
  if (truncated_ || finished_) return AddResult::Truncated;
  // Checked before the section moves on, so a rejected record changes nothing.
  if (type == rrtype::kOPT || rdata.size() > 0xFFFF ||
      detail::check_uncompressed_rdata(type, rdata) != WireError::Ok) {
    return AddResult::Invalid;
  }
  if (const AddResult r = begin_section(s); r != AddResult::Ok) return r;
  const Saved saved = save();
  auto& count = counts_[static_cast<std::size_t>(s)];
  if (count == 0xFFFF || !write_record(owner, type, rclass, ttl, rdata)) {
    return overflow(s, o, saved);
  }
  ++count;
  return AddResult::Ok;
}

AddResult MessageBuilder::add_rrset(Section s, const RRset& rrset, Overflow o) {
  if (s == Section::Question) return AddResult::OutOfOrder;
  if (truncated_ || finished_) return AddResult::Truncated;
  if (rrset.type == rrtype::kOPT) return AddResult::Invalid;
  if (const AddResult r = begin_section(s); r != AddResult::Ok) return r;
  const Saved saved = save();
  auto& count = counts_[static_cast<std::size_t>(s)];
  for (auto rdata : rrset) {
    if (count == 0xFFFF || !write_record(rrset.owner, rrset.type, rrset.rclass, rrset.ttl, rdata)) {
      return overflow(s, o, saved);
    }
    ++count;
  }
  return AddResult::Ok;
}

std::span<const std::uint8_t> MessageBuilder::finish() {
  if (finished_) return buf_.first(finished_size_);
  finished_ = true;
  std::uint16_t arcount = counts_[3];
  if (has_edns_) {
    // RFC 6891 §6.1.2/§6.1.3: root owner, CLASS = payload size, TTL =
    // extended RCODE, version, flags (DO is the top bit).
    std::uint8_t* p = buf_.data() + pos_;
    p[0] = 0;
    put16(p + 1, rrtype::kOPT);
    put16(p + 3, edns_.udp_payload_size);
    const std::uint32_t ttl = (std::uint32_t{edns_.extended_rcode} << 24) |
                              (std::uint32_t{edns_.version} << 16) |
                              (edns_.dnssec_ok ? 0x8000u : 0u);
    put32(p + 5, ttl);
    put16(p + 9, static_cast<std::uint16_t>(edns_.options.size()));
    if (!edns_.options.empty()) std::memcpy(p + 11, edns_.options.data(), edns_.options.size());
    pos_ += reserved_;
    reserved_ = 0;
    if (arcount < 0xFFFF) ++arcount;
  }
  Header h = header_;
  h.tc = h.tc || truncated_;
  h.qdcount = counts_[0];
  h.ancount = counts_[1];
  h.nscount = counts_[2];
  h.arcount = arcount;
  write_header(h, buf_);
  finished_size_ = pos_;
  return buf_.first(pos_);
}

void patch_id(std::span<std::uint8_t> message, std::uint16_t id) {
  if (message.size() >= 2) put16(message.data(), id);
}

void decrement_ttls(std::span<std::uint8_t> message, std::span<const std::uint16_t> ttl_offsets,
                    std::uint32_t elapsed) {
  for (const std::uint16_t off : ttl_offsets) {
    if (std::size_t{off} + 4 > message.size()) continue;  // not this message's offsets
    std::uint8_t* p = message.data() + off;
    const std::uint32_t ttl = detail::get32(p);
    put32(p, ttl > elapsed ? ttl - elapsed : 0);
  }
}

bool copy_question_case(std::span<std::uint8_t> message, const Name& qname) {
  const auto h = read_header(message);
  if (!h || h->qdcount != 1) return false;
  // Only an uncompressed question name equal to qname but for case can be
  // overwritten octet for octet. qname's length octets are below 0x40, so
  // a compression pointer (0xC0...) in the message never compares equal,
  // and qname ends with the root label, so the names end together.
  const std::span<const std::uint8_t> want = qname.wire();
  if (message.size() < kHeaderSize + want.size()) return false;
  auto lower = [](std::uint8_t c) {
    return static_cast<std::uint8_t>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  };
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (lower(message[kHeaderSize + i]) != lower(want[i])) return false;
  }
  std::memcpy(message.data() + kHeaderSize, want.data(), want.size());
  return true;
}

}  // namespace diode::resolver

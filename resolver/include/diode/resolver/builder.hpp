#pragma once
// The message builder (RFC 1035 §4.1) with name compression (§4.1.4), EDNS0
// (RFC 6891 §6.1) and truncation (RFC 2181 §9), plus the hot-path patches
// that serve a cached answer from its wire bytes: copy, new ID, older TTLs.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "diode/resolver/name.hpp"
#include "diode/resolver/rrset.hpp"
#include "diode/resolver/wire.hpp"

namespace diode::resolver {

/// The OPT record to append (RFC 6891 §6.1.2). `options` are already encoded
/// {code, length, data} triples, copied verbatim.
struct EdnsSpec {
  std::uint16_t udp_payload_size = 1232;
  std::uint8_t extended_rcode = 0;  // upper 8 bits of the 12-bit RCODE
  std::uint8_t version = 0;
  bool dnssec_ok = false;
  std::span<const std::uint8_t> options = {};
};

enum class AddResult : std::uint8_t {
  Ok,
  NoSpace,     // did not fit; nothing of it was written
  Invalid,     // RDATA does not match its type's layout, or RDATA > 65535 octets
  OutOfOrder,  // a section earlier than one already written, or a second question
  Truncated,   // the message is already truncated: nothing more is accepted
};

/// What to do when an RRset does not fit.
enum class Overflow : std::uint8_t {
  Default,  // SetTc for answer and authority, Drop for additional (RFC 2181 §9)
  SetTc,    // set TC and accept nothing more
  Drop,     // leave the RRset out and carry on
};

/// Writes one message into a caller-owned buffer. Records go in section
/// order; an RRset is written whole or not at all, so a truncated message
/// always ends at an RRset boundary.
class MessageBuilder {
 public:
  /// The message will not exceed min(limit, buffer.size(), 65535) octets
  /// (nor go below the 12-octet header). A buffer under 12 octets accepts
  /// nothing and finish() returns an empty span.
  explicit MessageBuilder(std::span<std::uint8_t> buffer, std::size_t limit = kMaxMessageSize);

  /// Sets ID, flags and RCODE (low 4 bits); the counts are the builder's own.
  void set_header(const Header& h);
  /// Reserves room for an OPT record written by finish(). Call before any
  /// record; false if it cannot fit or records were already added.
  bool set_edns(const EdnsSpec& edns);
  /// Adds the single question (RFC 1035 §4.1.2), before any record.
  AddResult add_question(const Name& qname, std::uint16_t qtype, std::uint16_t qclass);
  /// Adds one record; `rdata` is uncompressed. Names in RDATA of RFC 1035
  /// types are compressed, others are written as given (RFC 3597 §4).
  AddResult add_record(Section s, const Name& owner, std::uint16_t type, std::uint16_t rclass,
                       std::uint32_t ttl, std::span<const std::uint8_t> rdata,
                       Overflow overflow = Overflow::Default);
  /// Adds every RDATA of `rrset` with its owner, type, class and TTL, all or none.
  AddResult add_rrset(Section s, const RRset& rrset, Overflow overflow = Overflow::Default);

  bool truncated() const { return truncated_; }
  /// Octets written so far, the reserved OPT not included.
  std::size_t size() const { return pos_; }
  /// Writes the counts and the OPT record; returns the finished message.
  /// Calling it again returns the same message.
  std::span<const std::uint8_t> finish();
  /// Offsets of every record's TTL field (OPT excluded), in message order.
  std::span<const std::uint16_t> ttl_offsets() const { return ttl_offsets_; }

 private:
  struct Saved {
    std::size_t pos;
    std::size_t table;
    std::size_t ttls;
    std::array<std::uint16_t, 4> counts;
  };
  struct TableEntry {
    std::uint16_t offset;  // where a name suffix starts in the message
    std::uint8_t labels;   // labels in that suffix
    std::uint32_t hash;    // of the lowercased suffix
  };
  static constexpr std::size_t kTableSize = 128;

  Saved save() const { return {pos_, table_size_, ttl_offsets_.size(), counts_}; }
  void restore(const Saved& s);
  AddResult begin_section(Section s);
  AddResult overflow(Section s, Overflow o, const Saved& saved);
  bool write_name(const Name& n, bool compress);
  bool write_record(const Name& owner, std::uint16_t type, std::uint16_t rclass, std::uint32_t ttl,
                    std::span<const std::uint8_t> rdata);
  bool room(std::size_t n) const { return pos_ + n <= limit_ - reserved_; }
  bool matches_at(std::size_t offset, std::span<const std::uint8_t> suffix) const;

  std::span<std::uint8_t> buf_;
  std::size_t limit_;
  std::size_t pos_ = kHeaderSize;
  std::size_t reserved_ = 0;  // the OPT record's size, written by finish()
  Header header_;
  bool has_edns_ = false;
  EdnsSpec edns_;
  bool truncated_ = false;
  bool finished_ = false;
  std::size_t finished_size_ = 0;
  int section_ = 0;  // highest Section value written so far
  std::array<std::uint16_t, 4> counts_{};
  std::array<TableEntry, kTableSize> table_{};
  std::size_t table_size_ = 0;
  std::vector<std::uint16_t> ttl_offsets_;
};

/// Sets the ID of a message held as wire bytes (at least 12 octets).
void patch_id(std::span<std::uint8_t> message, std::uint16_t id);

/// Lowers each TTL at `ttl_offsets` by `elapsed` seconds, stopping at 0:
/// how a cached answer kept as wire bytes ages without being re-encoded.
void decrement_ttls(std::span<std::uint8_t> message, std::span<const std::uint16_t> ttl_offsets,
                    std::uint32_t elapsed);

/// Overwrites the question name with `qname`'s octets when both are the same
/// name ignoring case, so a cached answer echoes the client's 0x20 case.
/// False (message unchanged) when there is no such question.
bool copy_question_case(std::span<std::uint8_t> message, const Name& qname);

}  // namespace diode::resolver

#pragma once
// The message parser (RFC 1035 §4.1) with EDNS0 (RFC 6891 §6). One pass
// validates everything (header counts, every name, every RDATA of a type
// whose layout is known, the single OPT) and keeps only offsets into the
// caller's buffer: the buffer must outlive the Message. A Message can be
// reused; parse() keeps its storage, so steady-state parsing allocates nothing.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "diode/resolver/name.hpp"
#include "diode/resolver/wire.hpp"

namespace diode::resolver {

struct Question {
  Name qname;
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
};

/// One EDNS option (RFC 6891 §6.1.2): code and its data inside the message.
struct EdnsOption {
  std::uint16_t code = 0;
  std::span<const std::uint8_t> data;
};

/// Walks a validated option list (OPT RDATA) one option at a time.
class EdnsOptionIterator {
 public:
  using value_type = EdnsOption;
  using difference_type = std::ptrdiff_t;
  EdnsOptionIterator() = default;
  explicit EdnsOptionIterator(std::span<const std::uint8_t> rest) : rest_(rest) {}
  EdnsOption operator*() const;
  EdnsOptionIterator& operator++();
  EdnsOptionIterator operator++(int) {
    auto old = *this;
    ++*this;
    return old;
  }
  bool operator==(const EdnsOptionIterator& o) const { return rest_.size() == o.rest_.size(); }

 private:
  std::span<const std::uint8_t> rest_;
};

/// The OPT pseudo-record's fields (RFC 6891 §6.1.3).
struct Edns {
  std::uint16_t udp_payload_size = 0;  // the CLASS field, as sent (values < 512 mean 512)
  std::uint8_t extended_rcode = 0;     // upper 8 bits of the 12-bit RCODE
  std::uint8_t version = 0;
  bool dnssec_ok = false;                 // DO bit (RFC 3225)
  std::uint16_t flags = 0;                // the whole 16-bit flags field, DO included
  std::span<const std::uint8_t> options;  // the OPT RDATA, validated
  std::uint16_t offset = 0;               // where the OPT record starts in the message

  EdnsOptionIterator begin() const { return EdnsOptionIterator(options); }
  EdnsOptionIterator end() const { return EdnsOptionIterator(options.subspan(options.size())); }
  /// The first option with `code`, if any.
  std::optional<EdnsOption> find(std::uint16_t code) const;
};

/// One resource record, as a view into the parsed message.
struct RecordView {
  Section section = Section::Answer;
  Name owner;  // decoded (uncompressed) owner name
  std::uint16_t type = 0;
  std::uint16_t rclass = 0;
  std::uint32_t ttl = 0;
  std::uint16_t owner_offset = 0;  // where the (possibly compressed) owner starts
  std::uint16_t ttl_offset = 0;    // where the 32-bit TTL sits, for in-place patching
  std::uint16_t rdata_offset = 0;
  std::uint16_t rdata_length = 0;
  std::span<const std::uint8_t> rdata;  // raw, possibly with compressed names
};

/// What to tolerate. Defaults are strict: a query from a client that breaks
/// any rule gets FORMERR.
struct ParseOptions {
  /// Accept octets after the last counted record (some middleboxes pad).
  bool allow_trailing_data = false;
};

/// The outcome of parse(): Ok, or the first problem and where it was found.
struct ParseStatus {
  WireError error = WireError::Ok;
  std::size_t offset = 0;  // octet offset of the problem
  /// True when the 12-octet header could be read: the server can then
  /// answer FORMERR with the client's ID (RFC 1035 §4.1.1).
  bool header_intact = false;

  bool ok() const { return error == WireError::Ok; }
};

/// A parsed, fully validated DNS message.
class Message {
 public:
  /// Parses and validates `wire` (RFC 1035 §4.1, RFC 6891 §6.1). On failure
  /// the Message holds the header (if intact) and nothing else.
  ParseStatus parse(std::span<const std::uint8_t> wire, const ParseOptions& options = {});

  const Header& header() const { return header_; }
  std::span<const std::uint8_t> wire() const { return wire_; }
  /// The question, when QDCOUNT is 1 (0 is allowed, e.g. some NOTIMP replies).
  const std::optional<Question>& question() const { return question_; }
  /// The OPT record, if present. It is not listed among the additional records.
  const std::optional<Edns>& edns() const { return edns_; }
  /// The 12-bit RCODE: header bits plus the OPT's upper 8 (RFC 6891 §6.1.3).
  std::uint16_t rcode() const;

  /// Number of records in a section (OPT excluded from Additional).
  std::size_t count(Section s) const;
  /// The i-th record of section s; i < count(s).
  RecordView record(Section s, std::size_t i) const;
  /// The owner of the i-th record of section s, without building a RecordView.
  Name owner(Section s, std::size_t i) const;

  /// Appends the record's RDATA with every compressed name expanded (the
  /// types of RFC 3597 §4 plus DNAME); other types are copied verbatim.
  /// Validated during parse(), so it cannot fail for a parsed record.
  void append_expanded_rdata(const RecordView& r, std::vector<std::uint8_t>& out) const;

 private:
  struct Entry {
    std::uint16_t owner_offset;
    std::uint16_t type;
    std::uint16_t rclass;
    std::uint16_t rdata_offset;
    std::uint16_t rdata_length;
    std::uint32_t ttl;
  };
  void clear();
  std::span<const std::uint8_t> wire_;
  Header header_;
  std::optional<Question> question_;
  std::optional<Edns> edns_;
  std::vector<Entry> entries_;
  // Index into entries_ of each section's first record, by Section value
  // ([0], the question, is unused); a section ends where the next begins.
  std::array<std::size_t, 4> section_begin_{};
};

}  // namespace diode::resolver

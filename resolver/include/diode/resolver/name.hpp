#pragma once
// Domain names (RFC 1035 §3.1) held uncompressed in wire form in a fixed
// inline buffer, so that copying, comparing and hashing never allocate.
// Reading from a message follows compression pointers (RFC 1035 §4.1.4)
// under strict limits; see docs/dns-wire.md.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "diode/resolver/wire.hpp"

namespace diode::resolver {

inline constexpr std::size_t kMaxNameLength = 255;  // octets on the wire, root included
inline constexpr std::size_t kMaxLabelLength = 63;
inline constexpr std::size_t kMaxLabels = 127;  // 127 one-octet labels + root = 255
/// Pointers followed for one name. Honest compressors need one per name
/// (each pointer ends a name); chains of this depth never occur in practice.
inline constexpr std::size_t kMaxPointerJumps = 32;

/// An absolute domain name in uncompressed wire form, case preserved.
/// Equality and hashing ignore ASCII case (RFC 4343); equals_exact does not.
class Name {
 public:
  /// The root name ".".
  Name() = default;

  /// Validates an uncompressed wire name that fills `wire` exactly.
  static std::optional<Name> from_wire(std::span<const std::uint8_t> wire);
  /// Parses presentation format (RFC 1035 §5.1): labels separated by dots,
  /// `\DDD` and `\X` escapes, trailing dot optional, "." is the root.
  static std::optional<Name> from_text(std::string_view text);

  /// Presentation format with a trailing dot; `.`, `\`, `"`, `(`, `)`, `;`,
  /// `@`, `$` escaped as `\X` and non-printable octets as `\DDD`.
  std::string to_text() const;

  std::span<const std::uint8_t> wire() const { return {buf_.data(), len_}; }
  std::size_t wire_length() const { return len_; }
  /// Labels other than the root: "www.example.test." has 3.
  std::size_t label_count() const { return labels_; }
  bool is_root() const { return labels_ == 0; }

  /// Case-insensitive equality (RFC 4343 §3).
  bool operator==(const Name& other) const;
  /// Same octets, same case: the 0x20 check that an answer echoes the query.
  bool equals_exact(const Name& other) const;
  /// Case-insensitive hash consistent with operator==.
  std::size_t hash() const;
  /// Canonical DNSSEC-style ordering (RFC 4034 §6.1): by reversed labels,
  /// case-insensitive; negative, zero or positive.
  int canonical_compare(const Name& other) const;

  /// True when this name equals `ancestor` or lies below it.
  bool is_subdomain_of(const Name& ancestor) const;
  /// The last `n` labels (n >= label_count() gives the name itself; 0 the root).
  Name suffix(std::size_t n) const;
  /// This name without its first label; the root's parent is the root.
  Name parent() const { return suffix(labels_ == 0 ? 0 : labels_ - 1u); }
  /// A copy with ASCII letters lowercased (the cache key form).
  Name lowered() const;
  /// Prepends one label; false (name unchanged) when the result is invalid.
  bool prepend_label(std::span<const std::uint8_t> label);

  /// Iterates labels left to right as spans of their octets (no length byte).
  class LabelIterator {
   public:
    using value_type = std::span<const std::uint8_t>;
    using difference_type = std::ptrdiff_t;
    LabelIterator() = default;
    LabelIterator(const std::uint8_t* p) : p_(p) {}
    value_type operator*() const { return {p_ + 1, *p_}; }
    LabelIterator& operator++() {
      p_ += 1u + *p_;
      return *this;
    }
    LabelIterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const LabelIterator& o) const { return p_ == o.p_; }

   private:
    const std::uint8_t* p_ = nullptr;
  };
  struct LabelRange {
    LabelIterator b, e;
    LabelIterator begin() const { return b; }
    LabelIterator end() const { return e; }
  };
  /// The labels, root excluded.
  LabelRange labels() const {
    return {LabelIterator(buf_.data()), LabelIterator(buf_.data() + len_ - 1)};
  }

 private:
  friend WireError read_name(std::span<const std::uint8_t>, std::size_t, Name*, std::size_t*);
  friend WireError read_uncompressed_name(std::span<const std::uint8_t>, std::size_t, Name*,
                                          std::size_t*);
  std::array<std::uint8_t, kMaxNameLength> buf_{0};
  std::uint8_t len_ = 1;
  std::uint8_t labels_ = 0;
};

/// Reads a possibly compressed name starting at `offset` of `message`.
/// On success fills `out` (when non-null) and sets `*next` to the offset
/// just after the name where it started (after the first pointer, if any).
WireError read_name(std::span<const std::uint8_t> message, std::size_t offset, Name* out,
                    std::size_t* next);

/// Reads an uncompressed name at `offset` of `data` (e.g. RDATA of a cached
/// RRset); pointers are rejected with PointerNotAllowed.
WireError read_uncompressed_name(std::span<const std::uint8_t> data, std::size_t offset, Name* out,
                                 std::size_t* next);

struct NameHash {
  std::size_t operator()(const Name& n) const { return n.hash(); }
};

}  // namespace diode::resolver

template <>
struct std::hash<diode::resolver::Name> {
  std::size_t operator()(const diode::resolver::Name& n) const { return n.hash(); }
};

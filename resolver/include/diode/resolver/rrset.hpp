#pragma once
// The cache's canonical RRset (RFC 2181 §5): owner, type, class, one TTL and
// the RDATAs in uncompressed wire form (names inside RDATA expanded), held
// in one contiguous buffer, each RDATA preceded by its 16-bit length.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "diode/resolver/message.hpp"
#include "diode/resolver/name.hpp"
#include "diode/resolver/wire.hpp"

namespace diode::resolver {

class RRset {
 public:
  Name owner;
  std::uint16_t type = 0;
  std::uint16_t rclass = rrclass::kIN;
  std::uint32_t ttl = 0;

  /// Adds one uncompressed RDATA, validated against the type's layout;
  /// a duplicate is ignored (RFC 2181 §5). False if the RDATA is invalid.
  /// The duplicate check is linear in the set's size: for small sets.
  /// collect_rrsets finds duplicates by hashing instead.
  bool add_rdata(std::span<const std::uint8_t> rdata);
  /// Number of distinct RDATAs.
  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  /// Every RDATA with its 2-octet length prefix, back to back.
  std::span<const std::uint8_t> storage() const { return rdatas_; }

  class Iterator {
   public:
    using value_type = std::span<const std::uint8_t>;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    explicit Iterator(const std::uint8_t* p) : p_(p) {}
    value_type operator*() const {
      return {p_ + 2, static_cast<std::size_t>((p_[0] << 8) | p_[1])};
    }
    Iterator& operator++() {
      p_ += 2 + ((p_[0] << 8) | p_[1]);
      return *this;
    }
    Iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    bool operator==(const Iterator& o) const { return p_ == o.p_; }

   private:
    const std::uint8_t* p_ = nullptr;
  };
  /// Iterates the RDATAs (without their length prefix).
  Iterator begin() const { return Iterator(rdatas_.data()); }
  Iterator end() const { return Iterator(rdatas_.data() + rdatas_.size()); }

 private:
  friend bool collect_rrsets(const Message& m, Section s, std::vector<RRset>& out);
  // Appends without validation or duplicate check (the caller did both).
  void push_rdata(std::span<const std::uint8_t> rdata);

  std::vector<std::uint8_t> rdatas_;
  std::size_t count_ = 0;
};

/// Groups section `s` of a parsed message into RRsets by owner (ignoring
/// case), type and class, expanding compressed RDATA names, in time linear
/// in the number of records (hash tables, not scans). The TTL is the
/// smallest seen, with TTLs above 2^31-1 read as 0 (RFC 2181 §8). Appends
/// to `out` in order of first appearance. False when some RDATA could not
/// be kept because, expanded, it outgrew 65535 octets (it is left out).
bool collect_rrsets(const Message& m, Section s, std::vector<RRset>& out);

}  // namespace diode::resolver

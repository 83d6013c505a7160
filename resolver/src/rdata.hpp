#pragma once
// Internal: RDATA layouts of the types whose RDATA holds domain names or has
// a fixed size, so names can be decompressed (RFC 3597 §4) and lengths
// checked. Every other type is opaque octets (RFC 3597 §2).

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "diode/resolver/wire.hpp"

namespace diode::resolver::detail {

enum class FieldKind : std::uint8_t { Name, Fixed, CharString, Rest };

struct Field {
  FieldKind kind = FieldKind::Rest;
  std::uint8_t size = 0;  // for Fixed
};

struct RdataLayout {
  std::array<Field, 6> fields{};
  std::uint8_t count = 0;
  /// RFC 1035 types, whose RDATA names a sender may compress (RFC 3597 §4).
  bool compress_on_send = false;
};

/// The layout of `type`, or nullptr when its RDATA is opaque.
const RdataLayout* layout_of(std::uint16_t type);

/// Validates the RDATA at msg[offset, offset+length) for `type`, following
/// compression pointers into the message; appends the expanded RDATA to
/// `out` when it is non-null.
WireError expand_rdata(std::span<const std::uint8_t> msg, std::size_t offset, std::size_t length,
                       std::uint16_t type, std::vector<std::uint8_t>* out);

/// Validates RDATA given on its own (uncompressed form, no pointers).
WireError check_uncompressed_rdata(std::uint16_t type, std::span<const std::uint8_t> rdata);

inline std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t get32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

}  // namespace diode::resolver::detail

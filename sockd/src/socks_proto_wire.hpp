#pragma once
// Byte-level helpers shared by the codec's translation units; not public.

#include <cstddef>
#include <cstdint>
#include <span>

#include "diode/sockd/socks_proto.hpp"

namespace diode::sockd::proto::wire {

inline void put_port(std::uint8_t* out, std::uint16_t port) {
  out[0] = static_cast<std::uint8_t>(port >> 8);
  out[1] = static_cast<std::uint8_t>(port & 0xFF);
}

inline std::uint16_t get_port(const std::uint8_t* in) {
  return static_cast<std::uint16_t>((in[0] << 8) | in[1]);
}

/// Writes ATYP DST.ADDR DST.PORT (RFC 1928 §5); `out` must hold
/// a.wire_size() bytes. Returns the bytes written.
std::size_t write_address(const Address& a, std::uint8_t* out);

struct AddressParse {
  ParseStatus status = ParseStatus::NeedMore;
  Address address;
  std::size_t size = 0;             // Ok: bytes of ATYP..PORT
  Failure failure = Failure::None;  // Malformed: why
  std::size_t bad_offset = 0;       // Malformed: bytes up to the offending one
};

/// Reads ATYP DST.ADDR DST.PORT (RFC 1928 §5) at the start of `b`.
AddressParse read_address(std::span<const std::uint8_t> b);

}  // namespace diode::sockd::proto::wire

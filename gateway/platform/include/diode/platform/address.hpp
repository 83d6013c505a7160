#pragma once
// IP addresses, prefixes and NEC-style address/mask pairs, IPv4 and IPv6,
// as plain values with no I/O. Parsing is strict (inet_pton): no octal, no
// shortened IPv4 forms.

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace diode::platform {

enum class Family : std::uint8_t { V4 = 4, V6 = 6 };

/// An IPv4 or IPv6 address. IPv4 lives in bytes[0..3]; the rest are zero.
struct IpAddress {
  Family family = Family::V4;
  std::array<std::uint8_t, 16> bytes{};

  static IpAddress v4(std::uint32_t host_order);
  static std::optional<IpAddress> parse(std::string_view text);      // v4 or v6
  static std::optional<IpAddress> parse_v4(std::string_view text);   // dotted quad only
  static std::optional<IpAddress> parse_v6(std::string_view text);

  std::size_t size() const { return family == Family::V4 ? 4 : 16; }
  std::size_t bits() const { return size() * 8; }
  /// IPv4 address in host byte order (undefined for V6).
  std::uint32_t v4_value() const;
  std::string to_string() const;
  /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4; others unchanged.
  /// (Inline: every session calls it several times.)
  IpAddress unmapped() const {
    if (!is_v4_mapped()) return *this;
    IpAddress a;
    for (std::size_t i = 0; i < 4; ++i) a.bytes[i] = bytes[12 + i];
    return a;
  }
  /// ::ffff:a.b.c.d (an IPv4 address in an IPv6 socket's form).
  bool is_v4_mapped() const {
    if (family != Family::V6) return false;
    for (std::size_t i = 0; i < 10; ++i) {
      if (bytes[i] != 0) return false;
    }
    return bytes[10] == 0xff && bytes[11] == 0xff;
  }

  bool is_loopback() const;
  bool is_link_local() const;
  bool is_unspecified() const {
    for (std::size_t i = 0; i < size(); ++i) {
      if (bytes[i] != 0) return false;
    }
    return true;
  }

  auto operator<=>(const IpAddress&) const = default;
};

/// A netmask of arbitrary bits (NEC allows non-contiguous masks).
/// `matches(a)` is NEC's test: (a & mask) == (addr & mask).
struct MaskedAddress {
  IpAddress addr;
  IpAddress mask;

  bool matches(const IpAddress& a) const;
  /// Number of leading one bits if the mask is contiguous, else nullopt.
  std::optional<unsigned> prefix_length() const;
  /// True when addr has bits set outside the mask.
  bool has_host_bits() const;
  auto operator<=>(const MaskedAddress&) const = default;
};

/// A CIDR prefix: address plus length.
struct Prefix {
  IpAddress addr;
  unsigned length = 0;

  /// "a.b.c.d/len", "v6/len", or a bare address (full length).
  static std::optional<Prefix> parse(std::string_view text);
  /// The same answer as to_masked().matches(a), without making the mask.
  bool contains(const IpAddress& a) const;
  MaskedAddress to_masked() const;
  std::string to_string() const;
  auto operator<=>(const Prefix&) const = default;
};

/// A mask of `length` leading ones for the family.
IpAddress mask_of_length(Family f, unsigned length);

/// An address and port. Text: "a.b.c.d:port" or "[v6]:port".
struct Endpoint {
  IpAddress addr;
  std::uint16_t port = 0;

  static std::optional<Endpoint> parse(std::string_view text);
  std::string to_string() const;
  auto operator<=>(const Endpoint&) const = default;
};

/// A syntactically valid DNS name (letters, digits, '-', '_', dots; labels
/// 1–63, total ≤ 253), without a trailing dot. Leading dot not allowed here.
bool is_valid_domain_name(std::string_view name);

/// Parses a decimal port 0–65535; nullopt on anything else.
std::optional<std::uint16_t> parse_port_number(std::string_view text);

}  // namespace diode::platform

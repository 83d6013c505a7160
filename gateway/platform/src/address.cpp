#include "diode/platform/address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace diode::platform {

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress a;
  a.family = Family::V4;
  a.bytes[0] = static_cast<std::uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<std::uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<std::uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<std::uint8_t>(host_order);
  return a;
}

std::optional<IpAddress> IpAddress::parse_v4(std::string_view text) {
  if (text.empty() || text.size() > 15) return std::nullopt;
  char buf[16];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  a.family = Family::V4;
  if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
  return a;
}

std::optional<IpAddress> IpAddress::parse_v6(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[46];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  a.family = Family::V6;
  if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
  return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.find(':') != std::string_view::npos) return parse_v6(text);
  return parse_v4(text);
}

std::uint32_t IpAddress::v4_value() const {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

std::string IpAddress::to_string() const {
  if (family == Family::V4) {
    // Dotted quad by hand: inet_ntop formats IPv4 through sprintf, and
    // every session's record formats its client and destination.
    char buf[16];
    char* p = buf;
    for (int i = 0; i < 4; ++i) {
      const unsigned v = bytes[static_cast<std::size_t>(i)];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
      if (i < 3) *p++ = '.';
    }
    return std::string(buf, p);
  }
  char buf[INET6_ADDRSTRLEN];
  const int af = family == Family::V4 ? AF_INET : AF_INET6;
  if (inet_ntop(af, bytes.data(), buf, sizeof buf) == nullptr) return "?";
  return buf;
}

bool IpAddress::is_loopback() const {
  if (family == Family::V4) return bytes[0] == 127;
  for (std::size_t i = 0; i < 15; ++i) {
    if (bytes[i] != 0) return unmapped().family == Family::V4 && unmapped().is_loopback();
  }
  return bytes[15] == 1;
}

bool IpAddress::is_link_local() const {
  if (family == Family::V4) return bytes[0] == 169 && bytes[1] == 254;
  return bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80;
}

bool MaskedAddress::matches(const IpAddress& a) const {
  if (a.family != addr.family) return false;
  for (std::size_t i = 0; i < addr.size(); ++i) {
    if (((a.bytes[i] ^ addr.bytes[i]) & mask.bytes[i]) != 0) return false;
  }
  return true;
}

std::optional<unsigned> MaskedAddress::prefix_length() const {
  unsigned len = 0;
  bool zero_seen = false;
  for (std::size_t i = 0; i < mask.size(); ++i) {
    for (int b = 7; b >= 0; --b) {
      const bool one = ((mask.bytes[i] >> b) & 1) != 0;
      if (one) {
        if (zero_seen) return std::nullopt;
        ++len;
      } else {
        zero_seen = true;
      }
    }
  }
  return len;
}

bool MaskedAddress::has_host_bits() const {
  for (std::size_t i = 0; i < addr.size(); ++i) {
    if ((addr.bytes[i] & static_cast<std::uint8_t>(~mask.bytes[i])) != 0) return true;
  }
  return false;
}

IpAddress mask_of_length(Family f, unsigned length) {
  IpAddress m;
  m.family = f;
  const std::size_t n = f == Family::V4 ? 4 : 16;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned bits_here = length >= 8 * (i + 1) ? 8 : (length > 8 * i ? length - 8 * static_cast<unsigned>(i) : 0);
    m.bytes[i] = static_cast<std::uint8_t>(bits_here == 0 ? 0 : (0xffU << (8 - bits_here)) & 0xffU);
  }
  return m;
}

std::optional<Prefix> Prefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  Prefix p{*addr, static_cast<unsigned>(addr->bits())};
  if (slash == std::string_view::npos) return p;
  const auto len_text = text.substr(slash + 1);
  if (len_text.empty() || len_text.size() > 3) return std::nullopt;
  unsigned len = 0;
  auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (ec != std::errc{} || ptr != len_text.data() + len_text.size()) return std::nullopt;
  if (len > addr->bits()) return std::nullopt;
  p.length = len;
  return p;
}

bool Prefix::contains(const IpAddress& a) const {
  if (a.family != addr.family) return false;
  const std::size_t len = std::min<std::size_t>(length, addr.bits());
  const std::size_t whole = len / 8;
  if (std::memcmp(a.bytes.data(), addr.bytes.data(), whole) != 0) return false;
  const std::size_t rest = len % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xffU << (8 - rest));
  return ((a.bytes[whole] ^ addr.bytes[whole]) & mask) == 0;
}

MaskedAddress Prefix::to_masked() const { return {addr, mask_of_length(addr.family, length)}; }

std::string Prefix::to_string() const { return addr.to_string() + '/' + std::to_string(length); }

std::optional<std::uint16_t> parse_port_number(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    auto a = IpAddress::parse_v6(host);
    auto p = parse_port_number(port);
    if (!a || !p) return std::nullopt;
    return Endpoint{*a, *p};
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto a = IpAddress::parse_v4(text.substr(0, colon));
  auto p = parse_port_number(text.substr(colon + 1));
  if (!a || !p) return std::nullopt;
  return Endpoint{*a, *p};
}

std::string Endpoint::to_string() const {
  if (addr.family == Family::V6) return '[' + addr.to_string() + "]:" + std::to_string(port);
  return addr.to_string() + ':' + std::to_string(port);
}

bool is_valid_domain_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label != 0;
}

}  // namespace diode::platform

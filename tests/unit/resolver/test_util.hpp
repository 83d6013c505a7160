#pragma once
// Helpers shared by the resolver wire tests.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "diode/resolver/name.hpp"

namespace diode::resolver::test {

// Hex to bytes; whitespace ignored. Throws on bad input (test code only).
inline std::vector<std::uint8_t> hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  int hi = -1;
  for (char c : text) {
    int v = -1;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else if (c == ' ' || c == '\n' || c == '\t')
      continue;
    else
      throw std::invalid_argument("bad hex");
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi * 16 + v));
      hi = -1;
    }
  }
  if (hi >= 0) throw std::invalid_argument("odd hex");
  return out;
}

// A name from text that the test knows to be valid.
inline Name name(std::string_view text) {
  auto n = Name::from_text(text);
  if (!n) throw std::invalid_argument("bad test name: " + std::string(text));
  return *n;
}

inline std::vector<std::uint8_t> bytes(std::span<const std::uint8_t> s) {
  return {s.begin(), s.end()};
}

}  // namespace diode::resolver::test

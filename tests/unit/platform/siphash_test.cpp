// platform::siphash24 against the reference vectors of the SipHash paper's
// code (vectors.h: key 00..0f, messages 00, 00 01, 00 01 02, ...).
#include "diode/platform/siphash.hpp"

#include <catch2/catch.hpp>

#include <vector>

using diode::platform::SipHasher;
using diode::platform::SipKey;
using diode::platform::siphash24;

namespace {
SipKey reference_key() {
  SipKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i);
  return k;
}
std::vector<std::uint8_t> message(std::size_t n) {
  std::vector<std::uint8_t> m(n);
  for (std::size_t i = 0; i < n; ++i) m[i] = static_cast<std::uint8_t>(i);
  return m;
}
}  // namespace

TEST_CASE("SipHash-2-4 reference vectors", "[platform][siphash]") {
  const SipKey k = reference_key();
  // vectors_sip64[n] read as a little-endian 64-bit number, for messages of n octets.
  CHECK(siphash24(k, message(0)) == 0x726fdb47dd0e0e31ULL);
  CHECK(siphash24(k, message(1)) == 0x74f839c593dc67fdULL);
  CHECK(siphash24(k, message(2)) == 0x0d6c8009d9a94f5aULL);
  CHECK(siphash24(k, message(7)) == 0xab0200f58b01d137ULL);
  CHECK(siphash24(k, message(8)) == 0x93f5f5799a932462ULL);
  CHECK(siphash24(k, message(15)) == 0xa129ca6149be45e5ULL);
  CHECK(siphash24(k, message(63)) == 0x958a324ceb064572ULL);
  CHECK(siphash24(k, std::string_view{""}) == 0x726fdb47dd0e0e31ULL);
}

TEST_CASE("SipHasher in pieces is siphash24 of the whole", "[platform][siphash]") {
  const SipKey k = reference_key();
  for (std::size_t n = 0; n < 40; ++n) {
    const auto m = message(n);
    for (std::size_t cut = 0; cut <= n; ++cut) {
      SipHasher h(k);
      h.update(std::span<const std::uint8_t>(m.data(), cut));
      h.update(std::span<const std::uint8_t>(m.data() + cut, n - cut));
      INFO("n=" << n << " cut=" << cut);
      CHECK(h.finish() == siphash24(k, m));
    }
  }
  SipHasher h(k);
  h.update_u16(0x0001);
  h.update_u8(0x02);
  CHECK(h.finish() == siphash24(k, message(3)));
}

TEST_CASE("a random key is random and changes the hash", "[platform][siphash]") {
  const auto a = diode::platform::random_sip_key();
  const auto b = diode::platform::random_sip_key();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a != *b);
  CHECK(siphash24(*a, std::string_view{"www.example.com"}) !=
        siphash24(*b, std::string_view{"www.example.com"}));
}

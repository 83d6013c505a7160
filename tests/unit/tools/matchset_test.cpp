#include "diode/tools/matchset.hpp"

#include <catch2/catch.hpp>
#include <random>

using namespace diode::tools;
using diode::platform::IpAddress;
using diode::platform::MaskedAddress;

namespace {

MaskedAddress masked(const char* a, const char* m) {
  return {*IpAddress::parse(a), *IpAddress::parse(m)};
}

bool addr_in(const AddrSet& s, const IpAddress& a) {
  for (const auto& c : s.cubes) {
    if (c.contains(a)) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("cube subtraction is exact, including non-contiguous masks", "[matchset]") {
  // Exhaustive over the last octet of 192.0.2.x: 300 random pairs of cubes,
  // each result compared with the brute-force set difference.
  std::minstd_rand rng(12345);
  for (int round = 0; round < 300; ++round) {
    const auto va = static_cast<std::uint8_t>(rng());
    const auto ma = static_cast<std::uint8_t>(rng());
    const auto vb = static_cast<std::uint8_t>(rng());
    const auto mb = static_cast<std::uint8_t>(rng() | rng());
    const std::string a_addr = "192.0.2." + std::to_string(va);
    const std::string b_addr = "192.0.2." + std::to_string(vb);
    const std::string a_mask = "255.255.255." + std::to_string(ma);
    const std::string b_mask = "255.255.255." + std::to_string(mb);
    const AddrSet a{false, {Cube::of(masked(a_addr.c_str(), a_mask.c_str()))}};
    const AddrSet b{false, {Cube::of(masked(b_addr.c_str(), b_mask.c_str()))}};
    const AddrSet diff = subtract(a, b);
    const AddrSet inter = intersect(a, b);
    for (unsigned x = 0; x < 256; ++x) {
      const auto ip = *IpAddress::parse("192.0.2." + std::to_string(x));
      const bool in_a = addr_in(a, ip);
      const bool in_b = addr_in(b, ip);
      REQUIRE(addr_in(diff, ip) == (in_a && !in_b));
      REQUIRE(addr_in(inter, ip) == (in_a && in_b));
    }
    // The pieces are disjoint.
    for (std::size_t i = 0; i < diff.cubes.size(); ++i) {
      for (std::size_t j = i + 1; j < diff.cubes.size(); ++j) {
        REQUIRE(
            intersect(AddrSet{false, {diff.cubes[i]}}, AddrSet{false, {diff.cubes[j]}}).empty());
      }
    }
  }
}

TEST_CASE("port sets from port tests", "[matchset]") {
  using diode::sockd::PortOp;
  using diode::sockd::PortTest;
  CHECK(PortSet::of(PortTest{PortOp::Lt, 0, 0, {}}).empty());
  CHECK(PortSet::of(PortTest{PortOp::Gt, 65535, 0, {}}).empty());
  CHECK(PortSet::of(PortTest{PortOp::Ge, 0, 0, {}}).full());
  CHECK(PortSet::of(PortTest{PortOp::Le, 65535, 0, {}}).full());
  CHECK(PortSet::of(PortTest{PortOp::Range, 10, 5, {}}).empty());
  CHECK(describe(PortSet::of(PortTest{PortOp::Neq, 23, 0, {}})) == "0-22,24-65535");
  const auto d = subtract(PortSet::all(), PortSet::of(PortTest{PortOp::Range, 1000, 2000, {}}));
  CHECK(describe(d) == "0-999,2001-65535");
  CHECK(describe(intersect(d, PortSet::of(PortTest{PortOp::Ge, 1500, 0, {}}))) == "2001-65535");
}

TEST_CASE("name sets and domain sets", "[matchset]") {
  const auto ab = NameSet::of({"bob", "alice"});
  CHECK(subtract(ab, NameSet::of({"alice"})) == NameSet::of({"bob"}));
  CHECK(subtract(NameSet::all(), ab).contains("carol"));
  CHECK_FALSE(subtract(NameSet::all(), ab).contains("bob"));
  CHECK(subtract(ab, NameSet::all()).empty());

  DomainSet zone{false, false, {{"example.test", true}}};
  DomainSet host{false, false, {{"www.example.test", false}}};
  CHECK(subtract(host, zone).empty());
  CHECK_FALSE(subtract(zone, host).empty());  // over-approximated, never too small
  CHECK(intersect(zone, host) == host);
  DomainSet other{false, false, {{"example.org", true}}};
  CHECK(intersect(zone, other).empty());
}

TEST_CASE("box subtraction and partition", "[matchset]") {
  Box a;
  a.src_addr = AddrSet{false, {Cube::of(masked("192.0.2.0", "255.255.255.0"))}};
  Box b = a;
  b.port = PortSet{{{80, 80}}};
  b.users = NameSet::of({"alice"});
  const auto pieces = subtract(a, b);
  REQUIRE(pieces.size() == 2);
  for (const auto& p : pieces) CHECK_FALSE(intersects(p, b));
  CHECK(describe(b) == "from=192.0.2.0/24 port=80 user=alice");
  CHECK(describe(Box::universe()) == "any request");
  CHECK(Box::universe().is_universe());
  CHECK(subtract(b, a).empty());
}

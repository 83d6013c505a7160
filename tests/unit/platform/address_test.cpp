#include <catch2/catch.hpp>

#include "diode/platform/address.hpp"

using diode::platform::Endpoint;
using diode::platform::Family;
using diode::platform::IpAddress;
using diode::platform::MaskedAddress;
using diode::platform::Prefix;

TEST_CASE("IPv4 parsing is strict", "[platform][address]") {
  CHECK(IpAddress::parse("192.0.2.1"));
  CHECK(IpAddress::parse("192.0.2.1")->to_string() == "192.0.2.1");
  for (const char* text : {"0.0.0.0", "255.255.255.255", "10.0.100.9", "203.0.113.10", "198.51.100.99"}) {
    CHECK(IpAddress::parse(text)->to_string() == text);
  }
  CHECK_FALSE(IpAddress::parse("192.0.2"));
  CHECK_FALSE(IpAddress::parse("192.0.2.256"));
  CHECK_FALSE(IpAddress::parse("192.0.02.1"));
  CHECK_FALSE(IpAddress::parse(""));
  CHECK_FALSE(IpAddress::parse("192.0.2.1 "));
}

TEST_CASE("IPv6 parsing and formatting", "[platform][address]") {
  auto a = IpAddress::parse("2001:DB8::1");
  REQUIRE(a);
  CHECK(a->family == Family::V6);
  CHECK(a->to_string() == "2001:db8::1");
  CHECK(IpAddress::parse("::ffff:192.0.2.7")->unmapped().to_string() == "192.0.2.7");
  CHECK(IpAddress::parse("::1")->is_loopback());
  CHECK(IpAddress::parse("fe80::1")->is_link_local());
  CHECK_FALSE(IpAddress::parse("2001:db8:::1"));
}

TEST_CASE("NEC masks, contiguous or not", "[platform][address]") {
  MaskedAddress m{*IpAddress::parse("128.12.6.0"), *IpAddress::parse("255.255.255.0")};
  CHECK(m.matches(*IpAddress::parse("128.12.6.34")));
  CHECK_FALSE(m.matches(*IpAddress::parse("128.12.7.34")));
  CHECK(m.prefix_length() == 24u);
  CHECK_FALSE(m.has_host_bits());

  MaskedAddress odd{*IpAddress::parse("10.0.0.1"), *IpAddress::parse("255.0.0.255")};
  CHECK(odd.matches(*IpAddress::parse("10.99.7.1")));
  CHECK_FALSE(odd.matches(*IpAddress::parse("10.99.7.2")));
  CHECK_FALSE(odd.prefix_length());

  MaskedAddress host{*IpAddress::parse("128.12.6.4"), *IpAddress::parse("255.255.255.0")};
  CHECK(host.has_host_bits());
  CHECK_FALSE(m.matches(*IpAddress::parse("2001:db8::1")));
}

TEST_CASE("CIDR prefixes", "[platform][address]") {
  auto p = Prefix::parse("198.51.100.0/24");
  REQUIRE(p);
  CHECK(p->contains(*IpAddress::parse("198.51.100.200")));
  CHECK_FALSE(p->contains(*IpAddress::parse("198.51.101.1")));
  CHECK(Prefix::parse("2001:db8::/32")->contains(*IpAddress::parse("2001:db8:ffff::1")));
  CHECK(Prefix::parse("192.0.2.1")->length == 32);
  CHECK_FALSE(Prefix::parse("192.0.2.0/33"));
  CHECK_FALSE(Prefix::parse("192.0.2.0/"));
  CHECK_FALSE(Prefix::parse("192.0.2.0/2x"));
  CHECK(Prefix::parse("0.0.0.0/0")->contains(*IpAddress::parse("203.0.113.9")));
}

TEST_CASE("a prefix's contains() answers as its mask does, at every length", "[platform][address]") {
  // contains() compares the leading bytes and one partial byte; to_masked()
  // builds the mask. They must agree for every length, both families, and
  // addresses that differ from the prefix in each bit in turn.
  for (const char* base : {"198.51.100.77", "2001:db8:a5c3::f00d"}) {
    const IpAddress addr = *IpAddress::parse(base);
    const IpAddress other = *IpAddress::parse(addr.family == Family::V4 ? "2001:db8::1" : "192.0.2.1");
    for (unsigned len = 0; len <= addr.bits(); ++len) {
      const Prefix p{addr, len};
      const MaskedAddress m = p.to_masked();
      CHECK(p.contains(addr));
      CHECK_FALSE(p.contains(other));
      for (std::size_t bit = 0; bit < addr.bits(); ++bit) {
        IpAddress a = addr;
        a.bytes[bit / 8] = static_cast<std::uint8_t>(a.bytes[bit / 8] ^ (0x80U >> (bit % 8)));
        INFO(p.to_string() << " against " << a.to_string());
        CHECK(p.contains(a) == m.matches(a));
        CHECK(p.contains(a) == (bit >= len));
      }
    }
  }
}

TEST_CASE("IPv4-mapped addresses", "[platform][address]") {
  const IpAddress mapped = *IpAddress::parse("::ffff:203.0.113.5");
  CHECK(mapped.is_v4_mapped());
  CHECK(mapped.unmapped() == *IpAddress::parse("203.0.113.5"));
  for (const char* text : {"::fffe:203.0.113.5", "1::ffff:203.0.113.5", "2001:db8::1", "::1", "::"}) {
    INFO(text);
    const IpAddress a = *IpAddress::parse(text);
    CHECK_FALSE(a.is_v4_mapped());
    CHECK(a.unmapped() == a);
  }
  const IpAddress v4 = *IpAddress::parse("192.0.2.9");
  CHECK_FALSE(v4.is_v4_mapped());
  CHECK(v4.unmapped() == v4);
  CHECK(IpAddress::parse("::")->is_unspecified());
  CHECK(IpAddress::parse("0.0.0.0")->is_unspecified());
  CHECK_FALSE(IpAddress::parse("0.0.0.1")->is_unspecified());
}

TEST_CASE("endpoints", "[platform][address]") {
  CHECK(Endpoint::parse("127.0.0.1:1080")->port == 1080);
  CHECK(Endpoint::parse("[2001:db8::1]:53")->to_string() == "[2001:db8::1]:53");
  CHECK_FALSE(Endpoint::parse("127.0.0.1"));
  CHECK_FALSE(Endpoint::parse("127.0.0.1:65536"));
  CHECK_FALSE(Endpoint::parse("[2001:db8::1]53"));
}

TEST_CASE("domain names", "[platform][address]") {
  CHECK(diode::platform::is_valid_domain_name("www.example.test"));
  CHECK_FALSE(diode::platform::is_valid_domain_name("a..b"));
  CHECK_FALSE(diode::platform::is_valid_domain_name(".a"));
  CHECK_FALSE(diode::platform::is_valid_domain_name(std::string(64, 'a')));
}

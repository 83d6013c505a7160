#include "diode/resolver/root_hints.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "test_util.hpp"

using namespace diode::resolver;
using diode::platform::Diagnostics;
using diode::platform::IpAddress;
using diode::platform::Severity;
using diode::resolver::test::name;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The fenced block after the `root-hints-example` marker in docs/dns-wire.md.
std::string docs_example() {
  const std::string doc = read_file(std::string(DIODE_SOURCE_DIR) + "/docs/dns-wire.md");
  const auto marker = doc.find("<!-- root-hints-example -->");
  if (marker == std::string::npos) return {};
  const auto open = doc.find("```text\n", marker);
  const auto close = doc.find("\n```", open + 8);
  if (open == std::string::npos || close == std::string::npos) return {};
  return doc.substr(open + 8, close - open - 8 + 1);
}

std::vector<std::string> lines(const Diagnostics& d) {
  std::vector<std::string> out;
  for (const auto& item : d.items()) out.push_back(item.format());
  return out;
}

}  // namespace

TEST_CASE("Debian's root.hints gives 13 servers with IPv4 and IPv6", "[resolver][root_hints]") {
  const std::string path(kDefaultRootHintsPath);
  REQUIRE(std::filesystem::exists(path));  // dns-root-data, listed in scripts/setup.sh
  Diagnostics d;
  const auto hints = load_root_hints(path, d);
  INFO(d.format());
  REQUIRE(hints);
  CHECK(d.empty());
  REQUIRE(hints->servers.size() == 13);
  CHECK(hints->ns_ttl == 3600000);
  for (std::size_t i = 0; i < 13; ++i) {
    const RootServer& s = hints->servers[i];
    const std::string want = std::string(1, static_cast<char>('a' + i)) + ".root-servers.net";
    CHECK(s.name == name(want));
    std::size_t v4 = 0;
    std::size_t v6 = 0;
    for (const IpAddress& a : s.addresses) {
      (a.family == diode::platform::Family::V4 ? v4 : v6)++;
      CHECK_FALSE(a.is_unspecified());
    }
    CHECK(v4 == 1);
    CHECK(v6 == 1);
  }
}

TEST_CASE("the example in docs/dns-wire.md loads", "[resolver][root_hints]") {
  const std::string text = docs_example();
  REQUIRE_FALSE(text.empty());
  Diagnostics d;
  const auto hints = parse_root_hints(text, "dns-wire.md", d);
  INFO(d.format());
  REQUIRE(hints);
  CHECK(d.empty());
  REQUIRE(hints->servers.size() == 2);
  CHECK(hints->servers[0].name.equals_exact(name("A.ROOT.TEST")));
  CHECK(hints->servers[0].addresses == std::vector<IpAddress>{*IpAddress::parse("198.51.100.53"),
                                                              *IpAddress::parse("2001:db8:2::53")});
  CHECK(hints->servers[1].name.equals_exact(name("b.root.test")));
  CHECK(hints->servers[1].addresses == std::vector<IpAddress>{*IpAddress::parse("203.0.113.53"),
                                                              *IpAddress::parse("2001:db8:3::53")});
  CHECK(hints->ns_ttl == 3600000);
}

TEST_CASE("root hints syntax variants", "[resolver][root_hints]") {
  Diagnostics d;
  // No TTL and no class; lowercase types; TYPEn; CRLF; comments after data.
  const auto h = parse_root_hints(
      ". ns ns1.root.test.\r\n"
      "ns1.root.test. a 192.0.2.53 ; the v4 one\r\n"
      "ns1.root.test. TYPE28 2001:db8::53\r\n"
      "@ IN 100 TYPE2 ns2.root.test.\n"
      "ns2.root.test. 5 in A 198.51.100.1\n",
      "v.hints", d);
  INFO(d.format());
  REQUIRE(h);
  CHECK(d.empty());
  REQUIRE(h->servers.size() == 2);
  CHECK(h->servers[0].addresses.size() == 2);
  CHECK(h->servers[1].addresses.size() == 1);
  CHECK(h->ns_ttl == 100);  // the first NS took 3600000, the second 100
}

TEST_CASE("every error in a hints file is reported with its position", "[resolver][root_hints]") {
  Diagnostics d;
  const auto h = parse_root_hints(
      ".  3600000 IN NS a.root.test.\n"          // 1 fine
      "a.root.test. 3600000 A 192.0.2.300\n"     // 2 bad address
      "a.root.test. 3600000 AAAA 192.0.2.1\n"    // 3 v4 given for AAAA
      "a.root.test. 3600000 MX 10 mail.test.\n"  // 4 type not allowed
      "a.root.test. 3600000 BOGUS x\n"           // 5 unknown type
      ". 3600000 CH NS b.root.test.\n"           // 6 class
      "test. 3600000 NS c.root.test.\n"          // 7 NS not for the root
      ". 3600000 NS ( b.root.test. )\n"          // 8 parentheses
      "$INCLUDE other.hints\n"                   // 9 directive
      ". 3600000 NS\n"                           // 10 no data
      ". 3600000 NS b.root.test. extra\n"        // 11 extra token
      ". 99999999999 NS b.root.test.\n"          // 12 TTL too large
      "$TTL forever\n"                           // 13 bad $TTL
      "bad..name. A 192.0.2.1\n"                 // 14 bad owner
      "   A 192.0.2.9\n",                        // 15 owner of line 11, "."
      "bad.hints", d);
  CHECK_FALSE(h);
  const auto got = lines(d);
  INFO(d.format());
  const std::vector<std::string> want{
      "bad.hints:2:24: error: bad A address '192.0.2.300'",
      "bad.hints:3:27: error: bad AAAA address '192.0.2.1'",
      "bad.hints:4:22: error: record type MX has no place in root hints (NS, A and AAAA do)",
      "bad.hints:5:22: error: unknown record type 'BOGUS'",
      "bad.hints:6:11: error: class CH in root hints; only IN is allowed",
      "bad.hints:7:1: error: NS record for test.: root hints hold only the root's NS records",
      "bad.hints:8:14: error: parentheses (records over several lines) are not supported in root "
      "hints",
      "bad.hints:9:1: error: directive '$INCLUDE' is not supported in root hints ($TTL and $ORIGIN "
      "are)",
      "bad.hints:10:11: error: NS record without data",
      "bad.hints:11:27: error: unexpected 'extra' after the record data",
      "bad.hints:12:3: error: TTL '99999999999' is above 2147483647",
      "bad.hints:13:6: error: bad $TTL 'forever' (decimal seconds, at most 2147483647)",
      "bad.hints:14:1: error: bad owner name 'bad..name.'",
      "bad.hints:15:4: warning: address for ., which is not a root name server; ignored",
      "bad.hints: warning: no address for a.root.test.; it will need resolving",
  };
  CHECK(got == want);
  CHECK(d.count(Severity::Error) == 13);
  Diagnostics first;
  CHECK_FALSE(parse_root_hints("  NS a.root.test.\n", "c.hints", first));
  CHECK(lines(first).at(0) ==
        "c.hints:1:3: error: record without an owner name, and no previous owner");
}

TEST_CASE("the docs' error example is what the parser prints", "[resolver][root_hints]") {
  Diagnostics d;
  CHECK_FALSE(parse_root_hints(". 3600000 IN NS\n. 3600000 CH NS a.root.test.\n", "hints.test", d));
  const std::string doc = read_file(std::string(DIODE_SOURCE_DIR) + "/docs/dns-wire.md");
  CHECK(doc.find(d.format()) != std::string::npos);
  INFO(d.format());
  CHECK(d.count(Severity::Error) == 3);
}

TEST_CASE("root hints warnings do not fail the file", "[resolver][root_hints]") {
  Diagnostics d;
  const auto h = parse_root_hints(
      ". NS a.root.test.\n"
      ". NS A.ROOT.TEST.\n"
      ". NS b.root.test.\n"
      "a.root.test. A 192.0.2.1\n"
      "a.root.test. A 192.0.2.1\n"
      "elsewhere.test. A 192.0.2.2\n",
      "w.hints", d);
  REQUIRE(h);
  REQUIRE(h->servers.size() == 2);
  CHECK(h->servers[0].addresses.size() == 1);  // the duplicate address collapsed
  CHECK(lines(d) == std::vector<std::string>{
                        "w.hints:2:1: warning: duplicate NS record for A.ROOT.TEST.",
                        "w.hints:6:1: warning: address for elsewhere.test., which is not a root "
                        "name server; ignored",
                        "w.hints: warning: no address for b.root.test.; it will need resolving"});
  Diagnostics none;
  CHECK_FALSE(parse_root_hints("; only a comment\n\n", "empty.hints", none));
  CHECK(lines(none) ==
        std::vector<std::string>{
            "empty.hints: error: no NS records for the root: not a root hints file"});
  Diagnostics missing;
  CHECK_FALSE(load_root_hints("/nonexistent/diode/root.hints", missing));
  CHECK(missing.has_errors());
}

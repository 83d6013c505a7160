#include "diode/resolver/name.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "test_util.hpp"

using namespace diode::resolver;
using diode::resolver::test::hex;
using diode::resolver::test::name;

namespace {

// A message of a 12-octet zero header followed by `body`.
std::vector<std::uint8_t> with_header(const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> m(12 + body.size(), 0);
  for (std::size_t i = 0; i < body.size(); ++i) m[12 + i] = body[i];
  return m;
}

std::string label_of(std::size_t n, char c = 'a') {
  return std::string(n, c);
}

}  // namespace

TEST_CASE("names convert from and to presentation format", "[resolver][name]") {
  CHECK(name("www.example.test").to_text() == "www.example.test.");
  CHECK(name("www.example.test.").to_text() == "www.example.test.");
  CHECK(name(".").to_text() == ".");
  CHECK(name(".").is_root());
  CHECK(name("www.example.test").label_count() == 3);
  CHECK(name("www.example.test").wire_length() == 18);
  // \X and \DDD escapes (RFC 1035 §5.1).
  const Name dotted = name("a\\.b.test");
  CHECK(dotted.label_count() == 2);
  CHECK(dotted.to_text() == "a\\.b.test.");
  CHECK(name("\\065bc.test").to_text() == "Abc.test.");
  const Name odd = name("\\000\\255\\032x.test");
  CHECK(odd.wire()[0] == 4);
  CHECK(odd.wire()[1] == 0);
  CHECK(odd.wire()[2] == 255);
  CHECK(odd.to_text() == "\\000\\255\\032x.test.");
  CHECK(name("semi\\;colon.test").to_text() == "semi\\;colon.test.");
  // Every rendering parses back to the same octets.
  for (const char* t :
       {"a\\.b.test", "\\000\\255\\032x.test", "x\\\\y.test", "q\\\"\\(\\)\\@\\$.test"}) {
    const Name n = name(t);
    const auto back = Name::from_text(n.to_text());
    REQUIRE(back);
    CHECK(back->equals_exact(n));
  }
}

TEST_CASE("bad presentation names are rejected", "[resolver][name]") {
  for (const char* t : {"", "a..b", ".a", "..", "a\\25", "a\\256.test", "a\\2x5", "trailing\\"}) {
    INFO(t);
    CHECK_FALSE(Name::from_text(t));
  }
}

TEST_CASE("label 63 is accepted and label 64 rejected", "[resolver][name]") {
  CHECK(Name::from_text(label_of(63) + ".test"));
  CHECK_FALSE(Name::from_text(label_of(64) + ".test"));
  // On the wire a length octet of 64 is label type 0x40, which is reserved.
  std::vector<std::uint8_t> w63{63};
  w63.insert(w63.end(), 63, 'a');
  w63.push_back(0);
  CHECK(Name::from_wire(w63));
  std::vector<std::uint8_t> w64{64};
  w64.insert(w64.end(), 64, 'a');
  w64.push_back(0);
  CHECK_FALSE(Name::from_wire(w64));
  Name n;
  CHECK(read_uncompressed_name(w64, 0, &n, nullptr) == WireError::BadLabelType);
}

TEST_CASE("a name of 255 octets is accepted and one of 256 rejected", "[resolver][name]") {
  // 3 × (1+63) + (1+61) + root = 255.
  const std::string t255 =
      label_of(63) + "." + label_of(63) + "." + label_of(63) + "." + label_of(61);
  const std::string t256 =
      label_of(63) + "." + label_of(63) + "." + label_of(63) + "." + label_of(62);
  const auto n255 = Name::from_text(t255);
  REQUIRE(n255);
  CHECK(n255->wire_length() == 255);
  CHECK_FALSE(Name::from_text(t256));
  // The same on the wire.
  const auto w255 = n255->wire();
  CHECK(Name::from_wire(w255));
  std::vector<std::uint8_t> w256;
  for (int i = 0; i < 3; ++i) {
    w256.push_back(63);
    w256.insert(w256.end(), 63, 'a');
  }
  w256.push_back(62);
  w256.insert(w256.end(), 62, 'a');
  w256.push_back(0);
  REQUIRE(w256.size() == 256);
  Name n;
  CHECK(read_uncompressed_name(w256, 0, &n, nullptr) == WireError::NameTooLong);
  // 127 one-octet labels: the most labels a name can have.
  std::string many;
  for (int i = 0; i < 127; ++i) many += "x.";
  const auto n127 = Name::from_text(many);
  REQUIRE(n127);
  CHECK(n127->label_count() == 127);
  CHECK(n127->wire_length() == 255);
  CHECK_FALSE(Name::from_text(many + "x"));
  // A 256-octet name built from a compression pointer is rejected too.
  // Offset 12: 63,63,63-label name of 193 octets; then 2 labels + pointer.
  std::vector<std::uint8_t> body;
  for (int i = 0; i < 3; ++i) {
    body.push_back(63);
    body.insert(body.end(), 63, 'c');
  }
  body.push_back(0);  // 193 octets at offset 12
  const std::size_t second = 12 + body.size();
  body.push_back(61);
  body.insert(body.end(), 61, 'd');  // 62 + 193 = 255: fits
  body.push_back(0xC0);
  body.push_back(12);
  const std::size_t third = 12 + body.size();
  body.push_back(62);
  body.insert(body.end(), 62, 'e');  // 63 + 193 = 256: too long
  body.push_back(0xC0);
  body.push_back(12);
  const auto msg = with_header(body);
  std::size_t next = 0;
  CHECK(read_name(msg, second, &n, &next) == WireError::Ok);
  CHECK(n.wire_length() == 255);
  CHECK(next == third);
  CHECK(read_name(msg, third, &n, &next) == WireError::NameTooLong);
}

TEST_CASE("comparison ignores case, the 0x20 check does not", "[resolver][name]") {
  const Name a = name("WwW.ExAmPlE.TeSt");
  const Name b = name("www.example.test");
  CHECK(a == b);
  CHECK(a.hash() == b.hash());
  CHECK_FALSE(a.equals_exact(b));
  CHECK(a.equals_exact(name("WwW.ExAmPlE.TeSt")));
  CHECK(a.lowered().equals_exact(b));
  CHECK_FALSE(a == name("www.example.tesu"));
  CHECK_FALSE(name("a.b") == name("ab"));
  // Only ASCII letters fold (RFC 4343): 0xC0 and 0xE0 stay different.
  CHECK_FALSE(name("\\192.test") == name("\\224.test"));
  std::unordered_set<Name> set{a};
  CHECK(set.count(b) == 1);
}

TEST_CASE("subdomains, suffixes and labels", "[resolver][name]") {
  const Name n = name("www.Example.test");
  CHECK(n.is_subdomain_of(name("example.TEST")));
  CHECK(n.is_subdomain_of(n));
  CHECK(n.is_subdomain_of(name(".")));
  CHECK_FALSE(n.is_subdomain_of(name("ample.test")));
  CHECK_FALSE(name("example.test").is_subdomain_of(n));
  CHECK(n.suffix(0).is_root());
  CHECK(n.suffix(1).equals_exact(name("test")));
  CHECK(n.suffix(2).equals_exact(name("Example.test")));
  CHECK(n.suffix(9).equals_exact(n));
  CHECK(n.parent().equals_exact(name("Example.test")));
  CHECK(name(".").parent().is_root());
  std::vector<std::string> labels;
  for (auto l : n.labels()) labels.emplace_back(l.begin(), l.end());
  CHECK(labels == std::vector<std::string>{"www", "Example", "test"});
  const Name root;
  CHECK(root.labels().begin() == root.labels().end());
  // QNAME minimisation builds names label by label.
  Name q = name("test");
  const std::string www = "www";
  CHECK(q.prepend_label({reinterpret_cast<const std::uint8_t*>(www.data()), www.size()}));
  CHECK(q.equals_exact(name("www.test")));
  CHECK_FALSE(q.prepend_label({}));
  const std::string big = label_of(64);
  CHECK_FALSE(q.prepend_label({reinterpret_cast<const std::uint8_t*>(big.data()), big.size()}));
}

TEST_CASE("canonical ordering follows RFC 4034 §6.1", "[resolver][name]") {
  // The example list of RFC 4034 §6.1, in order (the \001 and \200 names
  // use \DDD escapes; \200 is decimal 200).
  const std::vector<Name> ordered{
      name("example.test"),         name("a.example.test"),      name("yljkjljk.a.example.test"),
      name("Z.a.example.test"),     name("zABC.a.EXAMPLE.test"), name("z.example.test"),
      name("\\001.z.example.test"), name("*.z.example.test"),    name("\\200.z.example.test")};
  for (std::size_t i = 0; i + 1 < ordered.size(); ++i) {
    INFO(ordered[i].to_text() << " < " << ordered[i + 1].to_text());
    CHECK(ordered[i].canonical_compare(ordered[i + 1]) < 0);
    CHECK(ordered[i + 1].canonical_compare(ordered[i]) > 0);
  }
  CHECK(name("A.test").canonical_compare(name("a.TEST")) == 0);
}

TEST_CASE("valid compression pointers are followed", "[resolver][name]") {
  // 12: example.test ; 26: www + pointer to 12 ; 32: pointer to 26.
  const auto msg = with_header(hex("076578616d706c6504746573740003777777c00cc01a"));
  Name n;
  std::size_t next = 0;
  REQUIRE(read_name(msg, 26, &n, &next) == WireError::Ok);
  CHECK(n.equals_exact(name("www.example.test")));
  CHECK(next == 32);
  REQUIRE(read_name(msg, 32, &n, &next) == WireError::Ok);
  CHECK(n.equals_exact(name("www.example.test")));
  CHECK(next == 34);
  // Validation without output.
  CHECK(read_name(msg, 32, nullptr, &next) == WireError::Ok);
}

TEST_CASE("hostile compression pointers are rejected", "[resolver][name]") {
  Name n;
  std::size_t next = 0;
  // Forward pointer: 12 points to 14.
  CHECK(read_name(with_header(hex("c00e00")), 12, &n, &next) == WireError::PointerForward);
  // Pointer into itself.
  CHECK(read_name(with_header(hex("c00c")), 12, &n, &next) == WireError::PointerForward);
  // Two pointers at each other: whichever is entered, one of them is forward.
  const auto pair = with_header(hex("c00ec00c"));
  CHECK(read_name(pair, 12, &n, &next) == WireError::PointerForward);
  CHECK(read_name(pair, 14, &n, &next) == WireError::PointerForward);
  // A loop made of backward pointers: label "a" at 12, then a pointer to 12,
  // i.e. a.a.a.a...; entered at the label or at the pointer.
  const auto loop = with_header(hex("0161c00c"));
  CHECK(read_name(loop, 12, &n, &next) == WireError::PointerLoop);
  CHECK(read_name(loop, 14, &n, &next) == WireError::PointerLoop);
  // A pointer back into the middle of a label already read.
  CHECK(read_name(with_header(hex("0161c00d")), 12, &n, &next) == WireError::PointerLoop);
  // The same label reached once through a backward pointer is fine.
  CHECK(read_name(with_header(hex("016100c00c")), 15, &n, &next) == WireError::Ok);
  CHECK(n.equals_exact(name("a")));
  // Out of range, and into the header.
  CHECK(read_name(with_header(hex("0000c0ff")), 14, &n, &next) == WireError::PointerOutOfRange);
  CHECK(read_name(with_header(hex("0000c005")), 14, &n, &next) == WireError::PointerOutOfRange);
  // A pointer cut in half, and a label cut short.
  CHECK(read_name(with_header(hex("00c0")), 13, &n, &next) == WireError::Truncated);
  CHECK(read_name(with_header(hex("0461")), 12, &n, &next) == WireError::Truncated);
  CHECK(read_name(std::vector<std::uint8_t>(12, 0), 12, &n, &next) == WireError::Truncated);
  // Reserved label types 0x40 and 0x80.
  CHECK(read_name(with_header(hex("4100")), 12, &n, &next) == WireError::BadLabelType);
  CHECK(read_name(with_header(hex("8100")), 12, &n, &next) == WireError::BadLabelType);
  // No pointers where the data is uncompressed.
  const auto ptr = with_header(hex("00c00c"));
  CHECK(read_uncompressed_name(ptr, 13, &n, &next) == WireError::PointerNotAllowed);
  CHECK_FALSE(Name::from_wire(hex("c000")));
  CHECK_FALSE(Name::from_wire(hex("000000")));  // trailing octets
}

TEST_CASE("chains of nested pointers are bounded", "[resolver][name]") {
  // The root at 12, then pointer k at 13+2k pointing to the one before it.
  const auto chain = [](std::size_t pointers) {
    std::vector<std::uint8_t> body{0};
    std::size_t prev = 12;
    for (std::size_t i = 0; i < pointers; ++i) {
      body.push_back(static_cast<std::uint8_t>(0xC0 | (prev >> 8)));
      body.push_back(static_cast<std::uint8_t>(prev & 0xFF));
      prev = 12 + body.size() - 2;
    }
    return std::pair{with_header(body), prev};
  };
  Name n;
  std::size_t next = 0;
  {
    const auto [msg, start] = chain(kMaxPointerJumps);
    CHECK(read_name(msg, start, &n, &next) == WireError::Ok);
    CHECK(n.is_root());
  }
  {
    const auto [msg, start] = chain(kMaxPointerJumps + 1);
    CHECK(read_name(msg, start, &n, &next) == WireError::TooManyPointers);
  }
  {
    const auto [msg, start] = chain(64);
    CHECK(read_name(msg, start, &n, &next) == WireError::TooManyPointers);
  }
}

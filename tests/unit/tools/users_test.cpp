#include "diode/sockd/users.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

using diode::platform::Diagnostics;
using diode::sockd::parse_users_file;

namespace {
// A real sha512-crypt hash (of "diode-sample") and a syntactically valid yescrypt one.
const std::string kSha =
    "$6$QgT5LjqGZZhC/"
    "ZRz$X2bz87U7EnAGy1wxNVt9mjt9cPjkaDpLxfEBHylDNdD7uTP2tGLFYy033RCnnMOkt.cf2M3fhwXRRMsDbTQG.1";
const std::string kYes =
    "$y$j9T$abcdefghijklmnopqrstuv$0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg";
}  // namespace

TEST_CASE("users file: good lines, comments, locked accounts", "[users]") {
  Diagnostics d;
  const std::string text =
      "# staff\n\nalice:" + kSha + "\n  bob:" + kYes + "  \ncarol:!\ndave:!" + kSha + "\r\n";
  auto u = parse_users_file(text, "users", d);
  REQUIRE(u);
  CHECK(d.empty());
  REQUIRE(u->users.size() == 4);
  CHECK(u->users[0].name == "alice");
  CHECK(u->users[0].pos.line == 3);
  CHECK(u->users[1].name == "bob");
  CHECK(u->users[1].pos.column == 3);
  CHECK(u->users[1].hash == kYes);
  CHECK_FALSE(u->users[1].locked);
  CHECK(u->users[2].locked);
  CHECK(u->users[3].locked);
  CHECK(u->contains("carol"));
  CHECK_FALSE(u->contains("eve"));
}

TEST_CASE("users file: every error is reported with line and column", "[users]") {
  Diagnostics d;
  const std::string text = "alice:" + kSha +
                           "\n"               // 1 ok
                           "no colon here\n"  // 2
                           ":" +
                           kSha +
                           "\n"  // 3 empty name
                           "bad name:" +
                           kSha +
                           "\n"  // 4 blank in name
                           "alice:" +
                           kSha +
                           "\n"               // 5 duplicate
                           "eve:plaintext\n"  // 6 not a hash
                           "frank:\n"         // 7 missing hash
                           "gina:" +
                           kSha +
                           ":x\n"               // 8 extra colon
                           "hal:$1$abc$def\n";  // 9 md5-crypt: unsupported
  auto u = parse_users_file(text, "users", d);
  CHECK_FALSE(u);
  const auto& items = d.items();
  REQUIRE(items.size() == 8);
  CHECK(items[0].format() == "users:2:1: error: expected `name:HASH`, found no ':'");
  CHECK(items[1].format() == "users:3:1: error: empty user name");
  CHECK(items[2].format() == "users:4:4: error: user name `bad name` contains a blank");
  CHECK(items[3].code == "duplicate-user");
  CHECK(items[3].pos.line == 5);
  REQUIRE(items[3].related.size() == 1);
  CHECK(items[3].related[0].line == 1);
  CHECK(items[4].pos.line == 6);
  CHECK(items[4].pos.column == 5);
  CHECK(items[4].code == "bad-hash");
  CHECK(items[5].pos.line == 7);
  CHECK(items[6].pos.line == 8);
  CHECK(items[6].pos.column == 6 + kSha.size());
  CHECK(items[7].pos.line == 9);
}

TEST_CASE("users file: garbage and huge lines give errors, not crashes", "[users]") {
  Diagnostics d;
  std::string bin("\x01\x02\xff\xfe:\x00zz\n", 9);
  CHECK_FALSE(parse_users_file(bin, "users", d));
  CHECK(d.has_errors());
  Diagnostics d2;
  std::string huge(10U * 1024U * 1024U, 'a');
  CHECK_FALSE(parse_users_file(huge, "users", d2));
  REQUIRE(d2.items().size() == 1);
  CHECK(d2.items()[0].code == "line-too-long");
}

TEST_CASE("users file: missing files and directories are errors", "[users]") {
  Diagnostics d;
  CHECK_FALSE(diode::sockd::load_users_file("/nonexistent/users", d));
  CHECK_FALSE(diode::sockd::load_users_file("/", d));
  CHECK(d.count(diode::platform::Severity::Error) == 2);
}

TEST_CASE("crypt hash shapes", "[users]") {
  using diode::sockd::is_supported_crypt_hash;
  CHECK(is_supported_crypt_hash(kSha));
  CHECK(is_supported_crypt_hash(kYes));
  CHECK(is_supported_crypt_hash("$6$rounds=5000$" + kSha.substr(3)));
  CHECK_FALSE(is_supported_crypt_hash("$6$salt$short"));
  CHECK_FALSE(is_supported_crypt_hash("$y$j9T$salt$short"));
  CHECK_FALSE(is_supported_crypt_hash("$2b$10$abc"));
  CHECK_FALSE(is_supported_crypt_hash(""));
}

namespace {
// The fenced blocks of docs/users.md with the given info string.
std::vector<std::string> doc_blocks(const std::string& info) {
  std::ifstream in(std::string(DIODE_SOURCE_DIR) + "/docs/users.md");
  std::vector<std::string> blocks;
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) {
      if (!inside && line == "```" + info) {
        inside = true;
        blocks.emplace_back();
      } else {
        inside = false;
      }
      continue;
    }
    if (inside) blocks.back() += line + "\n";
  }
  return blocks;
}
}  // namespace

TEST_CASE("docs/users.md: the examples parse as the page says", "[users][docs]") {
  const auto good = doc_blocks("users");
  REQUIRE(good.size() == 1);
  Diagnostics d;
  auto u = parse_users_file(good[0], "users", d);
  REQUIRE(u);
  CHECK(u->users.size() == 2);
  CHECK(u->find("bob")->locked);
  const auto bad = doc_blocks("users-invalid");
  REQUIRE(bad.size() == 1);
  Diagnostics e;
  CHECK_FALSE(parse_users_file(bad[0], "users", e));
  CHECK(e.format() ==
        "users:2:1: error: duplicate user `alice` (first defined on line 1)\n"
        "users:1:1: note: related line\n"
        "users:3:7: error: not a yescrypt ($y$) or sha512-crypt ($6$) hash; make one with "
        "`mkpasswd -m yescrypt`\n"
        "users:4:1: error: expected `name:HASH`, found no ':'\n"
        "users:5:4: error: user name `eve smith` contains a blank\n");
  // The sample file in conf/ parses, with the same first account.
  Diagnostics c;
  auto sample = diode::sockd::load_users_file(std::string(DIODE_SOURCE_DIR) + "/conf/users", c);
  REQUIRE(sample);
  CHECK(sample->users.at(0).hash == u->users.at(0).hash);
}

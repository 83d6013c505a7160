// The SOCKS codec: every valid message whole, split at every position and
// one byte at a time; every strict prefix pending; each malformation with
// its exact reply bytes; pipelined data kept; reply codes, UDP header and the
// client side checked byte for byte against RFC 1928, RFC 1929 and SOCKS4/4a.
#include "diode/sockd/socks_proto.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "diode/sockd/proto_client.hpp"

using namespace diode::sockd::proto;
using diode::platform::IpAddress;

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bytes(std::initializer_list<int> v) {
  Bytes out;
  for (int b : v) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes repeat(std::uint8_t b, std::size_t n) {
  return Bytes(n, b);
}

IpAddress ip(std::string_view s) {
  return *IpAddress::parse(s);
}

Bytes to_bytes(std::span<const std::uint8_t> s) {
  return Bytes(s.begin(), s.end());
}

/// What a handshake driven over some chunks came to.
struct Outcome {
  StepKind kind = StepKind::NeedMore;  // Request, Malformed, or NeedMore if input ran out
  Bytes sent;                          // every reply, in order
  Failure failure = Failure::None;
  Bytes rest;  // input not consumed after the last step
  Request request;
  std::vector<std::pair<std::string, std::string>> credentials;
};

/// Feeds `data` cut at `cuts` (ascending offsets), answering Send steps by
/// recording the reply and Authenticate steps with `auth_ok`, exactly as the
/// relay will. The loop is bounded: each turn must consume a byte or finish.
Outcome drive(const HandshakeOptions& options, const Bytes& data, const std::vector<std::size_t>& cuts,
              bool auth_ok = true) {
  ServerHandshake hs(options);
  Outcome out;
  std::vector<std::span<const std::uint8_t>> chunks;
  std::size_t from = 0;
  for (std::size_t c : cuts) {
    chunks.emplace_back(data.data() + from, c - from);
    from = c;
  }
  chunks.emplace_back(data.data() + from, data.size() - from);

  bool done = false;
  for (std::size_t ci = 0; ci < chunks.size(); ++ci) {
    auto chunk = chunks[ci];
    for (int turns = 0; !done && turns < 8; ++turns) {
      Step s = hs.feed(chunk);
      REQUIRE(s.consumed <= chunk.size());
      chunk = chunk.subspan(s.consumed);
      if (s.kind == StepKind::Authenticate) {
        out.credentials.emplace_back(std::string(hs.username()), std::string(hs.password()));
        s = hs.accept_auth(auth_ok);
        CHECK(hs.password().empty());
      }
      if (s.kind == StepKind::Send || s.kind == StepKind::Malformed) {
        const Bytes r = to_bytes(s.reply);
        out.sent.insert(out.sent.end(), r.begin(), r.end());
      }
      if (s.kind == StepKind::Request || s.kind == StepKind::Malformed) {
        out.kind = s.kind;
        out.failure = s.failure;
        if (s.kind == StepKind::Request) out.request = hs.request();
        CHECK(hs.finished());
        done = true;
        break;
      }
      if (s.kind == StepKind::NeedMore) {
        CHECK(chunk.empty());
        break;
      }
      if (chunk.empty()) break;  // a Send that used the chunk up: next chunk
    }
    if (done) {
      out.rest.insert(out.rest.end(), chunk.begin(), chunk.end());
      for (std::size_t k = ci + 1; k < chunks.size(); ++k) {
        out.rest.insert(out.rest.end(), chunks[k].begin(), chunks[k].end());
      }
      break;
    }
  }
  return out;
}

std::vector<std::size_t> every_byte(std::size_t n) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < n; ++i) cuts.push_back(i);
  return cuts;
}

HandshakeOptions no_auth() {
  return HandshakeOptions{};
}
HandshakeOptions user_pass() {
  return HandshakeOptions{false, true, true};
}

Address v4(std::string_view a, std::uint16_t port) {
  return Address::from_ip(ip(a), port);
}
Address name(std::string_view n, std::uint16_t port) {
  return *Address::from_name(n, port);
}

/// A valid client transcript and what the server must make of it.
struct Case {
  std::string label;
  HandshakeOptions options;
  Bytes input;
  Bytes replies;  // what the server sends before the request is complete
  Request expected;
  std::vector<std::pair<std::string, std::string>> credentials;
};

Request req(Version v, Command c, Address dst, std::string_view userid = {},
            std::string_view username = {}, std::uint8_t method = kMethodNone) {
  Request r;
  r.version = v;
  r.command = c;
  r.destination = dst;
  r.userid.assign(userid);
  r.username.assign(username);
  r.method = method;
  return r;
}

void check_request(const Request& got, const Request& want) {
  CHECK(got.version == want.version);
  CHECK(got.command == want.command);
  CHECK(got.destination.to_string() == want.destination.to_string());
  CHECK(got.destination == want.destination);
  CHECK(got.userid.view() == want.userid.view());
  CHECK(got.username.view() == want.username.view());
  CHECK(got.method == want.method);
}

std::vector<Case> valid_cases() {
  std::vector<Case> cases;
  const std::string long255(255, 'x');
  const std::string name255 = std::string(250, 'n') + ".test";

  cases.push_back({"socks4 connect",
                   no_auth(),
                   cat({bytes({4, 1, 0, 80, 192, 0, 2, 10}), text("alice"), bytes({0})}),
                   {},
                   req(Version::Socks4, Command::Connect, v4("192.0.2.10", 80), "alice"),
                   {}});
  cases.push_back({"socks4 bind, empty userid",
                   no_auth(),
                   bytes({4, 2, 0x1F, 0x90, 198, 51, 100, 7, 0}),
                   {},
                   req(Version::Socks4, Command::Bind, v4("198.51.100.7", 8080)),
                   {}});
  cases.push_back({"socks4 bind to 0.0.0.0 is plain socks4, not 4a",
                   no_auth(),
                   bytes({4, 2, 0, 21, 0, 0, 0, 0, 'u', 0}),
                   {},
                   req(Version::Socks4, Command::Bind, v4("0.0.0.0", 21), "u"),
                   {}});
  cases.push_back({"socks4a connect",
                   no_auth(),
                   cat({bytes({4, 1, 1, 0xBB, 0, 0, 0, 1}), text("bob"), bytes({0}),
                        text("example.test"), bytes({0})}),
                   {},
                   req(Version::Socks4a, Command::Connect, name("example.test", 443), "bob"),
                   {}});
  cases.push_back({"socks4a maximal (255-byte userid and name)",
                   no_auth(),
                   cat({bytes({4, 1, 0, 80, 0, 0, 0, 255}), text(long255), bytes({0}),
                        text(name255), bytes({0})}),
                   {},
                   req(Version::Socks4a, Command::Connect, name(name255, 80), long255),
                   {}});
  cases.push_back({"socks5 connect ipv4",
                   no_auth(),
                   bytes({5, 1, 0, 5, 1, 0, 1, 198, 51, 100, 7, 1, 0xBB}),
                   bytes({5, 0}),
                   req(Version::Socks5, Command::Connect, v4("198.51.100.7", 443)),
                   {}});
  cases.push_back({"socks5 connect ipv6, several methods offered",
                   no_auth(),
                   cat({bytes({5, 3, 0x80, 1, 0, 5, 1, 0, 4}), to_bytes(ip("2001:db8::1").bytes),
                        bytes({0, 22})}),
                   bytes({5, 0}),
                   req(Version::Socks5, Command::Connect, Address::from_ip(ip("2001:db8::1"), 22)),
                   {}});
  cases.push_back({"socks5 connect name, non-zero RSV tolerated",
                   no_auth(),
                   cat({bytes({5, 1, 0, 5, 1, 0x7F, 3, 12}), text("example.test"), bytes({0, 80})}),
                   bytes({5, 0}),
                   req(Version::Socks5, Command::Connect, name("example.test", 80)),
                   {}});
  cases.push_back(
      {"socks5 user/pass then udp associate",
       user_pass(),
       cat({bytes({5, 2, 0, 2, 1, 5}), text("alice"), bytes({6}), text("s3cret"),
            bytes({5, 3, 0, 1, 0, 0, 0, 0, 0, 0})}),
       bytes({5, 2, 1, 0}),
       req(Version::Socks5, Command::UdpAssociate, v4("0.0.0.0", 0), {}, "alice", kMethodUserPass),
       {{"alice", "s3cret"}}});
  cases.push_back(
      {"socks5 user/pass with empty password, bind to a name",
       user_pass(),
       cat({bytes({5, 1, 2, 1, 3}), text("bob"), bytes({0}), bytes({5, 2, 0, 3, 4}), text("a.ex"),
            bytes({0x04, 0x00})}),
       bytes({5, 2, 1, 0}),
       req(Version::Socks5, Command::Bind, name("a.ex", 1024), {}, "bob", kMethodUserPass),
       {{"bob", ""}}});
  Bytes all_methods;
  for (int m = 0; m < 255; ++m) all_methods.push_back(static_cast<std::uint8_t>(254 - m));
  cases.push_back(
      {"socks5 maximal (255 methods, 255-byte credentials, 255-byte name)",
       user_pass(),
       cat({bytes({5, 255}), all_methods, bytes({1, 255}), text(long255), bytes({255}),
            text(long255), bytes({5, 1, 0, 3, 255}), text(name255), bytes({0xFF, 0xFF})}),
       bytes({5, 2, 1, 0}),
       req(Version::Socks5, Command::Connect, name(name255, 65535), {}, long255, kMethodUserPass),
       {{long255, long255}}});
  return cases;
}

void check_valid(const Case& c, const Outcome& o) {
  REQUIRE(o.kind == StepKind::Request);
  CHECK(o.failure == Failure::None);
  CHECK(o.sent == c.replies);
  CHECK(o.rest.empty());
  CHECK(o.credentials == c.credentials);
  check_request(o.request, c.expected);
}

}  // namespace

TEST_CASE("every valid message, whole, split anywhere, byte by byte", "[sockd][proto]") {
  for (const Case& c : valid_cases()) {
    INFO(c.label);
    const std::size_t n = c.input.size();
    check_valid(c, drive(c.options, c.input, {}));
    for (std::size_t cut = 1; cut < n; ++cut) {
      INFO("cut at " << cut);
      check_valid(c, drive(c.options, c.input, {cut}));
    }
    check_valid(c, drive(c.options, c.input, every_byte(n)));
  }
}

TEST_CASE("every strict prefix of every valid transcript needs more", "[sockd][proto]") {
  std::size_t total = 0;
  std::size_t with_reply = 0;  // prefixes after which a reply was already owed and sent
  for (const Case& c : valid_cases()) {
    total += c.input.size();
    INFO(c.label);
    std::size_t sent_before = 0;
    for (std::size_t len = 0; len < c.input.size(); ++len) {
      INFO("prefix length " << len);
      const Bytes prefix(c.input.begin(), c.input.begin() + static_cast<std::ptrdiff_t>(len));
      const Outcome whole = drive(c.options, prefix, {});
      CHECK(whole.kind == StepKind::NeedMore);
      CHECK(whole.rest.empty());
      // The replies so far are a prefix of the full transcript's replies,
      // and a longer prefix never takes back a reply a shorter one sent.
      REQUIRE(whole.sent.size() <= c.replies.size());
      CHECK(std::equal(whole.sent.begin(), whole.sent.end(), c.replies.begin()));
      CHECK(whole.sent.size() >= sent_before);
      sent_before = whole.sent.size();
      if (!whole.sent.empty()) ++with_reply;
    }
    // Every reply is owed before the request's last byte: the last strict
    // prefix has sent them all (the method selection, the RFC 1929 status).
    CHECK(sent_before == c.replies.size());
  }
  // Both kinds were seen: prefixes before any reply and prefixes after one.
  CHECK(with_reply > 0);
  CHECK(with_reply < total);
  CHECK(total > 1500);
}

TEST_CASE("client bytes sent after the request are not consumed", "[sockd][proto]") {
  const Bytes early = text("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n");
  for (const Case& c : valid_cases()) {
    INFO(c.label);
    const Bytes input = cat({c.input, early});
    for (std::size_t cut = 1; cut < input.size(); cut += 7) {
      const Outcome o = drive(c.options, input, {cut});
      REQUIRE(o.kind == StepKind::Request);
      CHECK(o.rest == early);
    }
    // One read holding everything: the Request step's `consumed` ends
    // exactly where the early data begins.
    ServerHandshake hs(c.options);
    std::span<const std::uint8_t> in(input);
    for (int turns = 0; turns < 6; ++turns) {
      Step s = hs.feed(in);
      in = in.subspan(s.consumed);
      if (s.kind == StepKind::Authenticate) s = hs.accept_auth(true);
      if (s.kind == StepKind::Request) break;
      REQUIRE(s.kind == StepKind::Send);
    }
    CHECK(to_bytes(in) == early);
  }
}

namespace {

struct BadCase {
  std::string label;
  HandshakeOptions options;
  Bytes input;
  Failure failure;
  Bytes sent;  // every byte the server sends, including earlier Send steps
  bool auth_ok = true;
};

const Bytes kV5Fail01 = bytes({5, 1, 0, 1, 0, 0, 0, 0, 0, 0});
const Bytes kV4Fail = bytes({0, 91, 0, 0, 0, 0, 0, 0});

std::vector<BadCase> bad_cases() {
  const Bytes v4_head = bytes({4, 1, 0, 80, 192, 0, 2, 10});
  const Bytes v4a_head = bytes({4, 1, 0, 80, 0, 0, 0, 9});
  const Bytes hello = bytes({5, 1, 0});
  return {
      {"TLS to the SOCKS port", no_auth(), bytes({0x16, 3, 1, 0, 0x2f}), Failure::WrongVersion, {}},
      {"HTTP to the SOCKS port", no_auth(), text("GET / HTTP/1.0\r\n"), Failure::WrongVersion, {}},
      {"socks4 command 3", no_auth(), bytes({4, 3, 0, 80, 192, 0, 2, 10, 0}),
       Failure::Socks4BadCommand, kV4Fail},
      {"socks4 userid of 256 bytes", no_auth(), cat({v4_head, repeat('u', 256), bytes({0})}),
       Failure::Socks4UseridTooLong, kV4Fail},
      {"socks4a empty name", no_auth(), cat({v4a_head, text("u"), bytes({0, 0})}),
       Failure::Socks4EmptyName, kV4Fail},
      {"socks4a name of 256 bytes", no_auth(),
       cat({v4a_head, bytes({0}), repeat('n', 256), bytes({0})}), Failure::Socks4NameTooLong,
       kV4Fail},
      // A USERID is only a claim: with authentication required, SOCKS4 and
      // 4a are refused outright (CD 91), whatever USERID they carry.
      {"socks4 to a server requiring user/pass", user_pass(), cat({v4_head, text("alice"), bytes({0})}),
       Failure::Socks4NeedsNoAuth, kV4Fail},
      {"socks4a to a server requiring user/pass", user_pass(),
       cat({v4a_head, text("alice"), bytes({0}), text("example.test"), bytes({0})}),
       Failure::Socks4NeedsNoAuth, kV4Fail},
      {"nmethods 0", no_auth(), bytes({5, 0}), Failure::NoMethods, bytes({5, 0xFF})},
      {"only user/pass offered to a no-auth server", no_auth(), bytes({5, 1, 2}),
       Failure::NoAcceptableMethod, bytes({5, 0xFF})},
      {"only gssapi offered", no_auth(), bytes({5, 2, 1, 0x80}), Failure::NoAcceptableMethod,
       bytes({5, 0xFF})},
      {"no-auth offered to a user/pass server", user_pass(), bytes({5, 1, 0}),
       Failure::NoAcceptableMethod, bytes({5, 0xFF})},
      {"request version 4 after a v5 greeting", no_auth(),
       cat({hello, bytes({4, 1, 0, 1, 192, 0, 2, 1, 0, 80})}), Failure::BadRequestVersion,
       cat({bytes({5, 0}), kV5Fail01})},
      {"unknown command 4", no_auth(), cat({hello, bytes({5, 4, 0, 1, 192, 0, 2, 1, 0, 80})}),
       Failure::UnknownCommand, cat({bytes({5, 0}), bytes({5, 7, 0, 1, 0, 0, 0, 0, 0, 0})})},
      {"unknown command 0", no_auth(), cat({hello, bytes({5, 0, 0, 1, 192, 0, 2, 1, 0, 80})}),
       Failure::UnknownCommand, cat({bytes({5, 0}), bytes({5, 7, 0, 1, 0, 0, 0, 0, 0, 0})})},
      {"unknown address type 2", no_auth(), cat({hello, bytes({5, 1, 0, 2, 192, 0, 2, 1, 0, 80})}),
       Failure::UnknownAddressType, cat({bytes({5, 0}), bytes({5, 8, 0, 1, 0, 0, 0, 0, 0, 0})})},
      {"zero-length name", no_auth(), cat({hello, bytes({5, 1, 0, 3, 0, 0, 80})}),
       Failure::EmptyName, cat({bytes({5, 0}), kV5Fail01})},
      {"name with a NUL", no_auth(), cat({hello, bytes({5, 1, 0, 3, 3, 'a', 0, 'b', 0, 80})}),
       Failure::NameHasNul, cat({bytes({5, 0}), kV5Fail01})},
      {"auth version 5", user_pass(), cat({bytes({5, 1, 2}), bytes({5, 1, 'a', 1, 'b'})}),
       Failure::BadAuthVersion, bytes({5, 2, 1, 1})},
      {"auth with empty username", user_pass(), cat({bytes({5, 1, 2}), bytes({1, 0, 1, 'b'})}),
       Failure::EmptyUsername, bytes({5, 2, 1, 1})},
      {"wrong password", user_pass(), cat({bytes({5, 1, 2}), bytes({1, 1, 'a', 1, 'b'})}),
       Failure::AuthRejected, bytes({5, 2, 1, 1}), false},
  };
}

}  // namespace

TEST_CASE("each malformation gets its failure reply", "[sockd][proto]") {
  for (const BadCase& c : bad_cases()) {
    INFO(c.label);
    for (const auto& cuts : {std::vector<std::size_t>{}, every_byte(c.input.size())}) {
      const Outcome o = drive(c.options, c.input, cuts, c.auth_ok);
      REQUIRE(o.kind == StepKind::Malformed);
      CHECK(o.failure == c.failure);
      CHECK(o.sent == c.sent);
      CHECK_FALSE(to_string(o.failure).empty());
    }
  }
  CHECK(to_string(Failure::WrongVersion) == "wrong version");
}

TEST_CASE("a finished machine stays finished and replies only once", "[sockd][proto]") {
  ServerHandshake hs;
  const Bytes bad = bytes({5, 0});
  Step s = hs.feed(bad);
  REQUIRE(s.kind == StepKind::Malformed);
  CHECK(to_bytes(s.reply) == bytes({5, 0xFF}));
  s = hs.feed(bad);
  CHECK(s.kind == StepKind::Malformed);
  CHECK(s.consumed == 0);
  CHECK(s.reply.empty());
  CHECK(s.failure == Failure::NoMethods);
  CHECK(hs.accept_auth(true).kind == StepKind::Malformed);

  ServerHandshake ok;
  const Bytes v4req = bytes({4, 1, 0, 80, 192, 0, 2, 10, 0});
  REQUIRE(ok.feed(v4req).kind == StepKind::Request);
  s = ok.feed(v4req);
  CHECK(s.kind == StepKind::Request);
  CHECK(s.consumed == 0);
}

TEST_CASE("the machine waits for accept_auth and refuses it out of turn", "[sockd][proto]") {
  ServerHandshake hs(user_pass());
  const Bytes in =
      cat({bytes({5, 1, 2, 1, 1, 'a', 1, 'b'}), bytes({5, 1, 0, 1, 192, 0, 2, 1, 0, 80})});
  std::span<const std::uint8_t> rest(in);
  Step s = hs.feed(rest);
  REQUIRE(s.kind == StepKind::Send);
  rest = rest.subspan(s.consumed);
  s = hs.feed(rest);
  REQUIRE(s.kind == StepKind::Authenticate);
  CHECK(s.consumed == 5);
  rest = rest.subspan(s.consumed);
  CHECK(hs.username() == "a");
  CHECK(hs.password() == "b");
  // Feeding before the verdict consumes nothing and asks again.
  s = hs.feed(rest);
  CHECK(s.kind == StepKind::Authenticate);
  CHECK(s.consumed == 0);
  s = hs.accept_auth(true);
  REQUIRE(s.kind == StepKind::Send);
  CHECK(to_bytes(s.reply) == bytes({1, 0}));
  CHECK(hs.password().empty());
  s = hs.feed(rest);
  REQUIRE(s.kind == StepKind::Request);
  CHECK(hs.request().username.view() == "a");
  CHECK(hs.request().destination.to_string() == "192.0.2.1:80");

  ServerHandshake early;
  s = early.accept_auth(true);
  CHECK(s.kind == StepKind::Malformed);
  CHECK(s.failure == Failure::InternalLimit);
}

namespace {

// True when `needle` occurs anywhere in the object's bytes.
template <class T>
bool holds_bytes(const T& object, std::string_view needle) {
  const auto* p = reinterpret_cast<const char*>(&object);
  return std::string_view(p, sizeof(T)).find(needle) != std::string_view::npos;
}

}  // namespace

TEST_CASE("no copy of the password is left in the machine after accept_auth", "[sockd][proto]") {
  const std::string pw = "Pa55-w0rd-kept?";
  const Bytes auth = cat({bytes({1, 5}), text("alice"), bytes({static_cast<int>(pw.size())}), text(pw)});
  for (const bool ok : {true, false}) {
    // Whole, and one byte at a time (then the reassembly buffer holds it).
    for (const std::size_t chunk : {auth.size(), std::size_t{1}}) {
      INFO("ok=" << ok << " chunk=" << chunk);
      ServerHandshake hs(HandshakeOptions{false, true, true});
      const Bytes hello = bytes({5, 1, 2});
      REQUIRE(hs.feed(hello).kind == StepKind::Send);
      Step s;
      for (std::size_t i = 0; i < auth.size(); i += chunk) {
        s = hs.feed(std::span<const std::uint8_t>(auth.data() + i, std::min(chunk, auth.size() - i)));
      }
      REQUIRE(s.kind == StepKind::Authenticate);
      CHECK(hs.password() == pw);
      s = hs.accept_auth(ok);
      CHECK_FALSE(holds_bytes(hs, pw));
      CHECK_FALSE(holds_bytes(hs, pw.substr(0, 6)));  // nor a piece of it
      CHECK(hs.username() == "alice");                // the name is no secret
    }
  }
}

TEST_CASE("wipe_except clears a read buffer but the unparsed bytes", "[sockd][proto]") {
  std::array<std::uint8_t, 16> buf{};
  buf.fill(0xAB);
  wipe_except(buf, 5, 9);
  for (std::size_t i = 0; i < buf.size(); ++i) {
    INFO(i);
    CHECK(buf[i] == ((i >= 5 && i < 9) ? 0xAB : 0));
  }
  buf.fill(0xAB);
  wipe_except(buf, 16, 16);  // nothing to keep
  CHECK(std::all_of(buf.begin(), buf.end(), [](std::uint8_t b) { return b == 0; }));
  buf.fill(0xAB);
  wipe_except(buf, 9, 5);  // nonsense range: everything goes
  CHECK(std::all_of(buf.begin(), buf.end(), [](std::uint8_t b) { return b == 0; }));
}

TEST_CASE("64 KiB of garbage is refused without being buffered", "[sockd][proto]") {
  const Bytes head = bytes({4, 1, 0, 80, 192, 0, 2, 10});
  const Bytes blast = cat({head, repeat('A', 65536)});
  {
    ServerHandshake hs;
    const Step s = hs.feed(blast);
    REQUIRE(s.kind == StepKind::Malformed);
    CHECK(s.failure == Failure::Socks4UseridTooLong);
    CHECK(s.consumed == 8 + 256);  // decided at the 256th USERID byte
    CHECK(to_bytes(s.reply) == kV4Fail);
  }
  {
    // Refused at the 256th USERID byte itself, without waiting for one more.
    ServerHandshake hs;
    const Step s = hs.feed(std::span<const std::uint8_t>(blast).first(8 + 256));
    CHECK(s.kind == StepKind::Malformed);
    ServerHandshake hs4a;
    const Bytes name_blast = cat({bytes({4, 1, 0, 80, 0, 0, 0, 1, 0}), repeat('n', 256)});
    const Step s4a = hs4a.feed(name_blast);
    CHECK(s4a.kind == StepKind::Malformed);
    CHECK(s4a.failure == Failure::Socks4NameTooLong);
    CHECK(s4a.consumed == name_blast.size());
  }
  {
    // In 100-byte reads: refused during the third read, never more buffered.
    ServerHandshake hs;
    std::size_t offered = 0;
    Step s;
    for (std::size_t off = 0; off < blast.size(); off += 100) {
      const auto chunk = std::span<const std::uint8_t>(blast).subspan(
          off, std::min<std::size_t>(100, blast.size() - off));
      offered += chunk.size();
      s = hs.feed(chunk);
      if (s.kind != StepKind::NeedMore) break;
    }
    CHECK(s.kind == StepKind::Malformed);
    CHECK(offered == 300);
  }
  {
    // A v5 greeting cannot run past 257 bytes: garbage after it is the
    // next message's problem, and a bad request version ends it.
    const Bytes v5 = cat({bytes({5, 255}), repeat(0, 255), repeat(0xEE, 65536)});
    ServerHandshake hs;
    Step s = hs.feed(v5);
    REQUIRE(s.kind == StepKind::Send);
    CHECK(s.consumed == 257);
    s = hs.feed(std::span<const std::uint8_t>(v5).subspan(257));
    CHECK(s.kind == StepKind::Malformed);
    CHECK(s.failure == Failure::BadRequestVersion);
    CHECK(s.consumed == 1);
  }
}

TEST_CASE("method selection honours the allowed set and the preference", "[sockd][proto]") {
  struct Row {
    HandshakeOptions options;
    Bytes offered;
    int chosen;  // -1: no acceptable method
  };
  const std::vector<Row> rows = {
      {{true, false, true}, bytes({0}), kMethodNone},
      {{true, false, true}, bytes({2, 0}), kMethodNone},
      {{true, false, true}, bytes({2}), -1},
      {{true, true, true}, bytes({0, 2}), kMethodUserPass},
      {{true, true, false}, bytes({0, 2}), kMethodNone},
      {{true, true, false}, bytes({2}), kMethodUserPass},
      {{true, true, true}, bytes({0}), kMethodNone},
      {{false, true, true}, bytes({0, 1, 2}), kMethodUserPass},
      {{false, true, true}, bytes({0, 1}), -1},
      {{false, false, true}, bytes({0, 2}), -1},
  };
  for (const Row& r : rows) {
    ServerHandshake hs(r.options);
    const Bytes g = cat({bytes({5, static_cast<int>(r.offered.size())}), r.offered});
    const Step s = hs.feed(g);
    if (r.chosen < 0) {
      CHECK(s.kind == StepKind::Malformed);
      CHECK(to_bytes(s.reply) == bytes({5, 0xFF}));
    } else {
      REQUIRE(s.kind == StepKind::Send);
      CHECK(to_bytes(s.reply) == bytes({5, r.chosen}));
    }
  }
}

TEST_CASE("reply codes map to each protocol as the RFCs say", "[sockd][proto]") {
  struct Row {
    ReplyKind kind;
    int v5;
    int v4;
  };
  const std::vector<Row> rows = {
      {ReplyKind::Granted, 0x00, 90},
      {ReplyKind::GeneralFailure, 0x01, 91},
      {ReplyKind::NotAllowed, 0x02, 91},
      {ReplyKind::NetUnreachable, 0x03, 91},
      {ReplyKind::HostUnreachable, 0x04, 91},
      {ReplyKind::Refused, 0x05, 91},
      {ReplyKind::TtlExpired, 0x06, 91},
      {ReplyKind::CommandNotSupported, 0x07, 91},
      {ReplyKind::AddressTypeNotSupported, 0x08, 91},
      {ReplyKind::IdentUnreachable, 0x02, 92},
      {ReplyKind::IdentMismatch, 0x02, 93},
  };
  const Address bnd4 = v4("198.51.100.1", 0x1234);
  const Address bnd6 = Address::from_ip(ip("2001:db8:2::1"), 1080);
  const Address bndn = name("gw.example.test", 53);
  for (const Row& r : rows) {
    INFO(to_string(r.kind));
    CHECK(static_cast<int>(to_socks5(r.kind)) == r.v5);
    CHECK(static_cast<int>(to_socks4(r.kind)) == r.v4);

    const auto v4r = encode_socks4_reply(r.kind, bnd4);
    CHECK(Bytes(v4r.begin(), v4r.end()) == bytes({0, r.v4, 0x12, 0x34, 198, 51, 100, 1}));

    CHECK(to_bytes(encode_socks5_reply(r.kind, bnd4).view()) ==
          bytes({5, r.v5, 0, 1, 198, 51, 100, 1, 0x12, 0x34}));
    CHECK(to_bytes(encode_socks5_reply(r.kind, bnd6).view()) ==
          cat({bytes({5, r.v5, 0, 4}), to_bytes(ip("2001:db8:2::1").bytes), bytes({0x04, 0x38})}));
    CHECK(to_bytes(encode_socks5_reply(r.kind, bndn).view()) ==
          cat({bytes({5, r.v5, 0, 3, 15}), text("gw.example.test"), bytes({0, 53})}));
  }
  // v4 cannot carry IPv6: the port survives, the address is 0.0.0.0.
  const auto v4of6 = encode_socks4_reply(ReplyKind::Granted, bnd6);
  CHECK(Bytes(v4of6.begin(), v4of6.end()) == bytes({0, 90, 0x04, 0x38, 0, 0, 0, 0}));
}

TEST_CASE("errno values map to reply kinds", "[sockd][proto]") {
  CHECK(reply_kind_from_errno(0) == ReplyKind::Granted);
  CHECK(reply_kind_from_errno(ECONNREFUSED) == ReplyKind::Refused);
  CHECK(reply_kind_from_errno(ENETUNREACH) == ReplyKind::NetUnreachable);
  CHECK(reply_kind_from_errno(ENETDOWN) == ReplyKind::NetUnreachable);
  CHECK(reply_kind_from_errno(EHOSTUNREACH) == ReplyKind::HostUnreachable);
  CHECK(reply_kind_from_errno(EHOSTDOWN) == ReplyKind::HostUnreachable);
  CHECK(reply_kind_from_errno(ETIMEDOUT) == ReplyKind::TtlExpired);
  CHECK(reply_kind_from_errno(EACCES) == ReplyKind::NotAllowed);
  CHECK(reply_kind_from_errno(EPERM) == ReplyKind::NotAllowed);
  CHECK(reply_kind_from_errno(EAFNOSUPPORT) == ReplyKind::AddressTypeNotSupported);
  CHECK(reply_kind_from_errno(EMFILE) == ReplyKind::GeneralFailure);
  CHECK(reply_kind_from_errno(ECONNRESET) == ReplyKind::GeneralFailure);
}

TEST_CASE("UDP header round trips, FRAG flagged, truncation and junk refused", "[sockd][proto]") {
  const Bytes payload = text("\x12\x34 dns query bytes");
  const std::vector<Address> dsts = {v4("203.0.113.53", 53),
                                     Address::from_ip(ip("2001:db8::53"), 53),
                                     name("ns.example.test", 5353), name(std::string(255, 'z'), 1)};
  for (const Address& dst : dsts) {
    INFO(dst.to_string());
    for (std::uint8_t frag : {std::uint8_t{0}, std::uint8_t{1}, std::uint8_t{0x81}}) {
      std::array<std::uint8_t, 600> dgram{};
      const std::size_t h = encode_udp_header(dst, dgram, frag);
      REQUIRE(h == 3 + dst.wire_size());
      std::copy(payload.begin(), payload.end(), dgram.begin() + static_cast<std::ptrdiff_t>(h));
      const std::span<const std::uint8_t> whole(dgram.data(), h + payload.size());
      const UdpParse p = parse_udp_header(whole);
      REQUIRE(p.status == ParseStatus::Ok);
      CHECK(p.header.destination == dst);
      CHECK(p.header.frag == frag);
      CHECK(p.header.fragmented() == (frag != 0));
      CHECK(p.payload_offset == h);
      CHECK(to_bytes(whole.subspan(p.payload_offset)) == payload);
      // A datagram cut inside the header is truncated, never misread.
      for (std::size_t len = 0; len < h; ++len) {
        CHECK(parse_udp_header(whole.first(len)).status == ParseStatus::NeedMore);
      }
      // An empty payload is a valid datagram.
      CHECK(parse_udp_header(whole.first(h)).status == ParseStatus::Ok);
      // Too small an output buffer writes nothing.
      CHECK(encode_udp_header(dst, std::span<std::uint8_t>(dgram.data(), h - 1), frag) == 0);
    }
  }
  std::array<std::uint8_t, 10> small{};
  REQUIRE(encode_udp_header(v4("192.0.2.7", 0x0102), small) == 10);
  CHECK(to_bytes(small) == bytes({0, 0, 0, 1, 192, 0, 2, 7, 1, 2}));
  CHECK(parse_udp_header(bytes({0, 0, 0, 2, 1, 2, 3, 4, 0, 53})).status == ParseStatus::Malformed);
  CHECK(parse_udp_header(bytes({0, 0, 0, 3, 0, 0, 53})).status == ParseStatus::Malformed);
  CHECK(parse_udp_header(bytes({0, 0, 0, 3, 2, 'a', 0, 0, 53})).status == ParseStatus::Malformed);
}

TEST_CASE("client encoders round-trip through the server machine", "[sockd][proto]") {
  struct Row {
    Command cmd;
    Address dst;
  };
  const std::vector<Row> rows = {
      {Command::Connect, v4("198.51.100.7", 443)},
      {Command::Bind, Address::from_ip(ip("2001:db8:2::7"), 21)},
      {Command::UdpAssociate, v4("0.0.0.0", 0)},
      {Command::Connect, name("www.example.test", 80)},
  };
  for (const Row& r : rows) {
    INFO(r.dst.to_string());
    const std::array<std::uint8_t, 2> methods{kMethodNone, kMethodUserPass};
    const Bytes in = cat({to_bytes(encode_greeting(methods)->view()),
                          to_bytes(encode_auth("carol", "pw")->view()),
                          to_bytes(encode_socks5_request(r.cmd, r.dst)->view())});
    const Outcome o = drive(HandshakeOptions{true, true, true}, in, every_byte(in.size()));
    REQUIRE(o.kind == StepKind::Request);
    check_request(o.request, req(Version::Socks5, r.cmd, r.dst, {}, "carol", kMethodUserPass));
    // The client decoders read what the server sent.
    const auto sel = parse_method_selection(o.sent);
    REQUIRE(sel.status == ParseStatus::Ok);
    CHECK(sel.value == kMethodUserPass);
    const auto st = parse_auth_status(std::span<const std::uint8_t>(o.sent).subspan(sel.consumed));
    REQUIRE(st.status == ParseStatus::Ok);
    CHECK(st.value);

    if (r.cmd != Command::UdpAssociate && r.dst.type != AddressType::Ipv6) {
      const auto v4enc = encode_socks4_request(r.cmd, r.dst, "carol");
      REQUIRE(v4enc);
      const Outcome o4 = drive(HandshakeOptions{}, to_bytes(v4enc->view()), {});
      REQUIRE(o4.kind == StepKind::Request);
      check_request(o4.request,
                    req(r.dst.type == AddressType::Domain ? Version::Socks4a : Version::Socks4,
                        r.cmd, r.dst, "carol"));
    }
  }
  CHECK_FALSE(encode_socks4_request(Command::Connect, Address::from_ip(ip("2001:db8::1"), 1), ""));
  CHECK_FALSE(encode_socks4_request(Command::UdpAssociate, v4("192.0.2.1", 1), ""));
  CHECK_FALSE(encode_socks4_request(Command::Connect, v4("192.0.2.1", 1), std::string(256, 'u')));
  CHECK_FALSE(encode_greeting({}));
  CHECK_FALSE(encode_auth("", "pw"));
  CHECK_FALSE(encode_auth("u", std::string(256, 'p')));
  CHECK(parse_auth_status(bytes({1, 1})).value == false);
  CHECK(parse_auth_status(bytes({1})).status == ParseStatus::NeedMore);
  CHECK(parse_method_selection(bytes({4, 0})).status == ParseStatus::Malformed);
}

TEST_CASE("client reply decoders: whole, every prefix, and junk", "[sockd][proto]") {
  const std::vector<Address> bnds = {v4("198.51.100.1", 40000),
                                     Address::from_ip(ip("2001:db8:2::1"), 1),
                                     name("gw.example.test", 1080)};
  for (const Address& b : bnds) {
    const Encoded e = encode_socks5_reply(ReplyKind::HostUnreachable, b);
    const auto p = parse_socks5_reply(e.view());
    REQUIRE(p.status == ParseStatus::Ok);
    CHECK(p.consumed == e.size);
    CHECK(p.value.rep == 0x04);
    CHECK(p.value.bound == b);
    for (std::size_t len = 0; len < e.size; ++len) {
      CHECK(parse_socks5_reply(e.view().first(len)).status == ParseStatus::NeedMore);
    }
  }
  // Unassigned REP values are passed through raw for the caller to judge.
  const Encoded odd = encode_socks5_reply_raw(0x09, v4("192.0.2.1", 1));
  CHECK(parse_socks5_reply(odd.view()).value.rep == 0x09);
  CHECK(parse_socks5_reply(bytes({4, 0, 0, 1})).status == ParseStatus::Malformed);
  CHECK(parse_socks5_reply(bytes({5, 0, 0, 9, 0})).status == ParseStatus::Malformed);
  // A length byte of 0x80..0xFF is a length, never a negative number.
  const Bytes long_name = cat({bytes({5, 0, 0, 3, 0xC8}), repeat('h', 0xC8), bytes({0, 1})});
  const auto ln = parse_socks5_reply(long_name);
  REQUIRE(ln.status == ParseStatus::Ok);
  CHECK(ln.value.bound.name.size() == 200);
  CHECK(parse_socks5_reply(std::span<const std::uint8_t>(long_name).first(100)).status ==
        ParseStatus::NeedMore);

  const auto v4r = encode_socks4_reply(ReplyKind::Granted, v4("192.0.2.1", 1080));
  const auto p4 = parse_socks4_reply(v4r);
  REQUIRE(p4.status == ParseStatus::Ok);
  CHECK(p4.value.cd == 90);
  CHECK(p4.value.bound == v4("192.0.2.1", 1080));
  CHECK(parse_socks4_reply(std::span<const std::uint8_t>(v4r).first(7)).status ==
        ParseStatus::NeedMore);
  CHECK(parse_socks4_reply(bytes({4, 90, 0, 0, 0, 0, 0, 0})).status == ParseStatus::Malformed);
}

TEST_CASE("addresses: names are bounded and NUL-free, text forms", "[sockd][proto]") {
  CHECK_FALSE(Address::from_name("", 1));
  CHECK_FALSE(Address::from_name(std::string(256, 'a'), 1));
  CHECK_FALSE(Address::from_name(std::string_view("a\0b", 3), 1));
  CHECK(Address::from_name(std::string(255, 'a'), 1));
  CHECK(v4("192.0.2.1", 80).to_string() == "192.0.2.1:80");
  CHECK(Address::from_ip(ip("2001:db8::1"), 443).to_string() == "[2001:db8::1]:443");
  CHECK(name("example.test", 8080).to_string() == "example.test:8080");
  CHECK(v4("192.0.2.1", 80).wire_size() == 7);
  CHECK(Address::from_ip(ip("2001:db8::1"), 1).wire_size() == 19);
  CHECK(name("ab", 1).wire_size() == 6);
}

namespace {

std::string_view version_text(Version v) {
  switch (v) {
    case Version::Socks4:
      return "socks4";
    case Version::Socks4a:
      return "socks4a";
    case Version::Socks5:
      return "socks5";
  }
  return "?";
}

std::string_view command_text(Command c) {
  switch (c) {
    case Command::Connect:
      return "connect";
    case Command::Bind:
      return "bind";
    case Command::UdpAssociate:
      return "udp";
  }
  return "?";
}

Bytes parse_hex(std::string_view s) {
  Bytes out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ') {
      ++i;
      continue;
    }
    REQUIRE(i + 1 < s.size());
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(s.substr(i, 2)), nullptr, 16)));
    i += 2;
  }
  return out;
}

/// One ```socks-transcript block of docs/socks-protocol.md.
struct Transcript {
  HandshakeOptions options;
  std::string accept_password;
  Bytes client;
  Bytes server;
  std::string end;
};

std::vector<Transcript> doc_transcripts() {
  std::ifstream in(std::string(DIODE_SOURCE_DIR) + "/docs/socks-protocol.md");
  REQUIRE(in);
  std::vector<Transcript> out;
  std::string line;
  bool inside = false;
  // The file is small; the loop ends at its last line.
  while (std::getline(in, line)) {
    if (!inside) {
      if (line == "```socks-transcript") {
        inside = true;
        out.emplace_back();
      }
      continue;
    }
    if (line == "```") {
      inside = false;
      continue;
    }
    Transcript& t = out.back();
    const std::size_t colon = line.find(": ");
    REQUIRE(colon != std::string::npos);
    const std::string key = line.substr(0, colon);
    const std::string value = line.substr(colon + 2);
    if (key == "options") {
      REQUIRE((value == "no-auth" || value == "user-pass" || value == "both"));
      t.options = HandshakeOptions{value != "user-pass", value != "no-auth", true};
    } else if (key == "accept-password") {
      t.accept_password = value;
    } else if (key == "C") {
      const Bytes b = parse_hex(value);
      t.client.insert(t.client.end(), b.begin(), b.end());
    } else if (key == "S") {
      const Bytes b = parse_hex(value);
      t.server.insert(t.server.end(), b.begin(), b.end());
    } else if (key == "end") {
      t.end = value;
    } else {
      FAIL("unknown transcript key " << key);
    }
  }
  return out;
}

/// Drives a transcript and describes its end in the doc's `end:` syntax.
std::pair<std::string, Bytes> replay(const Transcript& t, const std::vector<std::size_t>& cuts) {
  ServerHandshake hs(t.options);
  Bytes sent;
  std::string end = "needmore";
  std::size_t pos = 0;
  std::size_t cut_index = 0;
  for (int turns = 0; turns < 4096 && pos <= t.client.size(); ++turns) {
    const std::size_t limit = cut_index < cuts.size() ? cuts[cut_index] : t.client.size();
    Step s = hs.feed(std::span<const std::uint8_t>(t.client).subspan(pos, limit - pos));
    pos += s.consumed;
    if (s.kind == StepKind::Authenticate) s = hs.accept_auth(hs.password() == t.accept_password);
    sent.insert(sent.end(), s.reply.begin(), s.reply.end());
    if (s.kind == StepKind::Malformed) {
      end = "malformed " + std::string(to_string(s.failure));
      break;
    }
    if (s.kind == StepKind::Request) {
      const Request& r = hs.request();
      end = "request " + std::string(version_text(r.version)) + " " +
            std::string(command_text(r.command)) + " " + r.destination.to_string();
      if (r.version != Version::Socks5) end += " userid=" + std::string(r.userid.view());
      if (!r.username.empty()) end += " user=" + std::string(r.username.view());
      if (pos < t.client.size()) end += " rest=" + std::to_string(t.client.size() - pos);
      break;
    }
    if (s.kind == StepKind::NeedMore) {
      if (pos == t.client.size()) break;
      ++cut_index;
    }
  }
  return {end, sent};
}

}  // namespace

TEST_CASE("the transcripts in docs/socks-protocol.md are what the codec does",
          "[sockd][proto][docs]") {
  const auto transcripts = doc_transcripts();
  CHECK(transcripts.size() >= 10);
  for (const Transcript& t : transcripts) {
    INFO(t.end);
    REQUIRE_FALSE(t.end.empty());
    const auto whole = replay(t, {});
    CHECK(whole.first == t.end);
    CHECK(whole.second == t.server);
    const auto bytewise = replay(t, every_byte(t.client.size()));
    CHECK(bytewise.first == t.end);
    CHECK(bytewise.second == t.server);
  }
}

namespace {

/// A client machine and a server machine talking over two in-memory byte
/// queues, each side reading pseudo-random amounts (1..max_read bytes).
struct Conversation {
  ClientStepKind client_end = ClientStepKind::NeedMore;
  ClientFailure client_failure = ClientFailure::None;
  std::vector<ClientReply> replies;
  StepKind server_end = StepKind::NeedMore;
  Failure server_failure = Failure::None;
  Request request;
  Bytes client_rest;  // server bytes the client left unconsumed after its last reply
};

const Bytes kServerData = text("220 ready\r\n");

Conversation converse(const ClientRequest& creq, const HandshakeOptions& opts,
                      std::string_view accept_password, std::uint32_t seed, std::size_t max_read) {
  ClientHandshake client(creq);
  ServerHandshake server(opts);
  Conversation out;
  Bytes c2s;
  Bytes s2c;
  std::size_t c_read = 0;
  std::size_t s_read = 0;
  std::uint32_t rng = seed;
  auto next_len = [&](std::size_t avail) {
    rng = rng * 1103515245u + 12345u;
    return std::min<std::size_t>(avail, 1 + (rng >> 16) % max_read);
  };
  auto append = [](Bytes& q, std::span<const std::uint8_t> b) {
    q.insert(q.end(), b.begin(), b.end());
  };

  const ClientStep first = client.start();
  if (first.kind == ClientStepKind::Failed) {
    out.client_end = first.kind;
    out.client_failure = first.failure;
    return out;
  }
  REQUIRE(first.kind == ClientStepKind::Send);
  append(c2s, first.send);
  bool server_done = false;
  bool client_done = false;
  for (int turns = 0; turns < 10000; ++turns) {
    bool progressed = false;
    if (!server_done && s_read < c2s.size()) {
      const auto chunk =
          std::span<const std::uint8_t>(c2s).subspan(s_read, next_len(c2s.size() - s_read));
      Step st = server.feed(chunk);
      s_read += st.consumed;
      if (st.kind == StepKind::Authenticate)
        st = server.accept_auth(server.password() == accept_password);
      append(s2c, st.reply);
      if (st.kind == StepKind::Request) {
        server_done = true;
        out.server_end = st.kind;
        out.request = server.request();
        const Address bnd = v4("198.51.100.1", 40000);
        if (out.request.version == Version::Socks5) {
          append(s2c, encode_socks5_reply(ReplyKind::Granted, bnd).view());
          if (out.request.command == Command::Bind) {
            append(s2c, encode_socks5_reply(ReplyKind::Granted, v4("203.0.113.9", 20)).view());
          }
        } else {
          const auto r = encode_socks4_reply(ReplyKind::Granted, bnd);
          append(s2c, r);
          if (out.request.command == Command::Bind) {
            append(s2c, encode_socks4_reply(ReplyKind::Granted, v4("203.0.113.9", 20)));
          }
        }
        append(s2c, kServerData);
      } else if (st.kind == StepKind::Malformed) {
        server_done = true;
        out.server_end = st.kind;
        out.server_failure = st.failure;
      }
      progressed = true;
    }
    if (!client_done && c_read < s2c.size()) {
      const auto chunk =
          std::span<const std::uint8_t>(s2c).subspan(c_read, next_len(s2c.size() - c_read));
      const ClientStep st = client.feed(chunk);
      REQUIRE(st.consumed <= chunk.size());
      c_read += st.consumed;
      if (st.kind == ClientStepKind::Send) append(c2s, st.send);
      if (st.kind == ClientStepKind::Reply) out.replies.push_back(client.reply());
      if (st.kind == ClientStepKind::Failed) out.client_failure = st.failure;
      if (client.finished()) {
        client_done = true;
        out.client_end = st.kind;
        out.client_rest.assign(s2c.begin() + static_cast<std::ptrdiff_t>(c_read), s2c.end());
      }
      progressed = true;
    }
    if (!progressed) break;
  }
  return out;
}

}  // namespace

TEST_CASE("client and server machines agree over any read sizes", "[sockd][proto][client]") {
  struct Row {
    std::string label;
    ClientRequest creq;
    HandshakeOptions opts;
    Request expected;
    std::size_t replies;
  };
  const std::string long_user(255, 'u');
  const std::vector<Row> rows = {
      {"socks4 connect",
       {Version::Socks4, Command::Connect, v4("192.0.2.80", 80), "alice", {}, {}, true},
       no_auth(),
       req(Version::Socks4, Command::Connect, v4("192.0.2.80", 80), "alice"),
       1},
      {"socks4a bind",
       {Version::Socks4a, Command::Bind, name("ftp.example.test", 21), "", {}, {}, true},
       no_auth(),
       req(Version::Socks4a, Command::Bind, name("ftp.example.test", 21)),
       2},
      {"socks5 no auth, ipv6",
       {Version::Socks5,
        Command::Connect,
        Address::from_ip(ip("2001:db8::5"), 443),
        {},
        {},
        {},
        true},
       no_auth(),
       req(Version::Socks5, Command::Connect, Address::from_ip(ip("2001:db8::5"), 443)),
       1},
      {"socks5 user/pass, name",
       {Version::Socks5,
        Command::Connect,
        name("www.example.test", 443),
        {},
        "alice",
        "s3cret",
        true},
       HandshakeOptions{true, true, true},
       req(Version::Socks5, Command::Connect, name("www.example.test", 443), {}, "alice",
           kMethodUserPass),
       1},
      {"socks5 user/pass only, long user, bind",
       {Version::Socks5, Command::Bind, v4("203.0.113.9", 0), {}, long_user, "s3cret", false},
       user_pass(),
       req(Version::Socks5, Command::Bind, v4("203.0.113.9", 0), {}, long_user, kMethodUserPass),
       2},
      {"socks5 udp",
       {Version::Socks5, Command::UdpAssociate, v4("0.0.0.0", 0), {}, {}, {}, true},
       HandshakeOptions{true, true, false},
       req(Version::Socks5, Command::UdpAssociate, v4("0.0.0.0", 0)),
       1},
  };
  for (const Row& r : rows) {
    INFO(r.label);
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
      for (std::size_t max_read :
           {std::size_t{1}, std::size_t{3}, std::size_t{64}, std::size_t{1000}}) {
        const Conversation c = converse(r.creq, r.opts, "s3cret", seed, max_read);
        REQUIRE(c.server_end == StepKind::Request);
        check_request(c.request, r.expected);
        REQUIRE(c.client_end == ClientStepKind::Reply);
        REQUIRE(c.replies.size() == r.replies);
        CHECK(c.replies.front().granted);
        CHECK(c.replies.front().bound == v4("198.51.100.1", 40000));
        CHECK(c.replies.back().bound ==
              (r.replies == 2 ? v4("203.0.113.9", 20) : v4("198.51.100.1", 40000)));
        CHECK(c.client_rest == kServerData);
      }
    }
  }
}

TEST_CASE("client machine failures", "[sockd][proto][client]") {
  const ClientRequest plain{
      Version::Socks5, Command::Connect, v4("192.0.2.1", 80), {}, {}, {}, true};
  SECTION("server refuses every offered method") {
    const Conversation c = converse(plain, user_pass(), "", 1, 8);
    CHECK(c.server_failure == Failure::NoAcceptableMethod);
    CHECK(c.client_end == ClientStepKind::Failed);
    CHECK(c.client_failure == ClientFailure::NoAcceptableMethod);
  }
  SECTION("wrong password") {
    ClientRequest up = plain;
    up.username = "alice";
    up.password = "guess";
    up.offer_no_auth = false;
    const Conversation c = converse(up, user_pass(), "s3cret", 2, 2);
    CHECK(c.server_failure == Failure::AuthRejected);
    CHECK(c.client_failure == ClientFailure::AuthFailed);
  }
  SECTION("server picks a method that was not offered") {
    ClientHandshake client(plain);
    REQUIRE(client.start().kind == ClientStepKind::Send);
    const ClientStep s = client.feed(bytes({5, 2}));
    CHECK(s.kind == ClientStepKind::Failed);
    CHECK(s.failure == ClientFailure::UnexpectedMethod);
    CHECK(client.feed(bytes({5, 0})).consumed == 0);
    CHECK_FALSE(to_string(s.failure).empty());
  }
  SECTION("replies with the wrong version or an unknown address type") {
    ClientHandshake a(plain);
    a.start();
    REQUIRE(a.feed(bytes({5, 0})).kind == ClientStepKind::Send);
    CHECK(a.feed(bytes({4, 0, 0, 1})).failure == ClientFailure::BadServerVersion);
    ClientHandshake b(plain);
    b.start();
    REQUIRE(b.feed(bytes({5, 0})).kind == ClientStepKind::Send);
    CHECK(b.feed(bytes({5, 0, 0, 9})).failure == ClientFailure::MalformedReply);
    ClientHandshake m(plain);
    m.start();
    CHECK(m.feed(bytes({1, 0})).failure == ClientFailure::BadServerVersion);
  }
  SECTION("a refused connection is a reply, not a failure") {
    ClientHandshake a(plain);
    a.start();
    REQUIRE(a.feed(bytes({5, 0})).kind == ClientStepKind::Send);
    const Encoded r = encode_socks5_reply(ReplyKind::Refused, v4("0.0.0.0", 0));
    const ClientStep s = a.feed(r.view());
    REQUIRE(s.kind == ClientStepKind::Reply);
    CHECK_FALSE(a.reply().granted);
    CHECK(a.reply().code == 0x05);
    CHECK(a.finished());
    ClientHandshake v4c({Version::Socks4, Command::Bind, v4("192.0.2.1", 21), "u", {}, {}, true});
    v4c.start();
    const ClientStep s4 = v4c.feed(encode_socks4_reply(ReplyKind::IdentMismatch, v4("0.0.0.0", 0)));
    REQUIRE(s4.kind == ClientStepKind::Reply);
    CHECK(v4c.reply().code == 93);
    CHECK(v4c.finished());  // a refused BIND has no second reply
  }
  SECTION("requests that cannot be encoded") {
    CHECK(ClientHandshake({Version::Socks4, Command::Connect, name("a.test", 1), {}, {}, {}, true})
              .start()
              .failure == ClientFailure::BadRequest);
    CHECK(ClientHandshake({Version::Socks4a,
                           Command::Connect,
                           Address::from_ip(ip("2001:db8::1"), 1),
                           {},
                           {},
                           {},
                           true})
              .start()
              .kind == ClientStepKind::Failed);
    CHECK(ClientHandshake(
              {Version::Socks4, Command::UdpAssociate, v4("192.0.2.1", 1), {}, {}, {}, true})
              .start()
              .kind == ClientStepKind::Failed);
    CHECK(
        ClientHandshake({Version::Socks5, Command::Connect, v4("192.0.2.1", 1), {}, {}, {}, false})
            .start()
            .kind == ClientStepKind::Failed);
    CHECK(ClientHandshake({Version::Socks5,
                           Command::Connect,
                           v4("192.0.2.1", 1),
                           {},
                           std::string(256, 'u'),
                           {},
                           true})
              .start()
              .kind == ClientStepKind::Failed);
    CHECK(ClientHandshake({Version::Socks4,
                           Command::Connect,
                           v4("192.0.2.1", 1),
                           std::string_view("a\0b", 3),
                           {},
                           {},
                           true})
              .start()
              .kind == ClientStepKind::Failed);
  }
}

TEST_CASE("a bounded string copies, compares and wipes only its length", "[sockd][proto]") {
  Name a;
  CHECK(a.empty());
  CHECK(a.view().empty());
  REQUIRE(a.assign("example.test"));
  Name b(a);  // a copy
  CHECK(b.view() == "example.test");
  CHECK(b == a);
  Name c;
  REQUIRE(c.assign("a much longer name than the other one.test"));
  c = a;  // a longer one assigned a shorter one: nothing of its own is left visible
  CHECK(c.view() == "example.test");
  CHECK(c.size() == a.size());
  REQUIRE(c.assign("x"));
  a = c;  // and the other way
  CHECK(a.view() == "x");
  CHECK_FALSE(a == b);
  const Name& self = a;
  a = self;  // assigned to itself
  CHECK(a.view() == "x");
  CHECK_FALSE(a.assign(std::string(kMaxField + 1, 'y')));  // too long: unchanged
  CHECK(a.view() == "x");
  REQUIRE(a.assign(std::string(kMaxField, 'z')));
  Name full(a);
  CHECK(full.size() == kMaxField);
  CHECK(full.view() == std::string(kMaxField, 'z'));
  full.wipe();
  CHECK(full.empty());
}

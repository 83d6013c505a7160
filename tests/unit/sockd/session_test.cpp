// sockd's sans-I/O pieces: the policy a session decides with (built-in
// policy, protect_internal, identd fallback, routes), the log line format,
// and password verification with its cache.
#include <catch2/catch.hpp>

#include <crypt.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "diode/platform/config.hpp"
#include "diode/sockd/auth.hpp"
#include "diode/sockd/counters.hpp"
#include "diode/sockd/host_addresses.hpp"
#include "diode/sockd/identd.hpp"
#include "diode/sockd/log.hpp"
#include "diode/sockd/parse.hpp"
#include "diode/sockd/resolve.hpp"
#include "diode/sockd/session.hpp"

using namespace diode;
using namespace diode::sockd;
using platform::IpAddress;

namespace {

IpAddress ip(const char* text) {
  auto a = IpAddress::parse(text);
  REQUIRE(a);
  return *a;
}

platform::GatewayConfig config_from(std::string_view toml) {
  platform::Diagnostics d;
  auto c = platform::parse_gateway_config(toml, "test.toml", d);
  INFO(d.format());
  REQUIRE(c);
  return *c;
}

platform::GatewayConfig default_config() {
  return config_from(platform::embedded_default_config());
}

// A policy from sockd.conf text (and optional sockd.route text).
std::shared_ptr<RelayPolicy> policy_from(const platform::GatewayConfig& cfg, std::string_view conf,
                                    std::string_view route = {}) {
  platform::Diagnostics d;
  auto rules = parse_sockd_conf(conf, "sockd.conf", d);
  INFO(d.format());
  REQUIRE(rules);
  std::shared_ptr<const RouteTable> rt;
  if (!route.empty()) {
    auto r = parse_sockd_route(route, "sockd.route", d);
    INFO(d.format());
    REQUIRE(r);
    rt = std::make_shared<const RouteTable>(std::move(*r));
  }
  auto p = std::make_shared<RelayPolicy>();
  p->engine = std::make_shared<const Engine>(std::make_shared<const RuleSet>(std::move(*rules)), rt);
  p->protect = protected_destinations(cfg);
  return p;
}

RuleRequest connect_request(const char* src, const char* dst, std::uint16_t port = 80) {
  RuleRequest q;
  q.src_addr = ip(src);
  q.dst_addr = ip(dst);
  q.dst_port = port;
  q.command = RuleCommand::Connect;
  return q;
}

}  // namespace

TEST_CASE("protected destinations of the built-in configuration", "[sockd][policy]") {
  const auto set = protected_destinations(default_config());
  CHECK(set.contains(ip("127.0.0.1")));
  CHECK(set.contains(ip("127.255.0.9")));
  CHECK(set.contains(ip("::1")));
  CHECK(set.contains(ip("::ffff:127.0.0.1")));  // mapped loopback is loopback
  CHECK(set.contains(ip("0.0.0.0")));
  CHECK(set.contains(ip("169.254.169.254")));
  CHECK(set.contains(ip("fe80::1")));
  CHECK_FALSE(set.contains(ip("198.51.100.7")));
  CHECK_FALSE(set.contains(ip("2001:db8::7")));
}

TEST_CASE("internal networks and the gateway's own addresses are protected", "[sockd][policy]") {
  auto cfg = config_from(R"(
[[interface]]
name = "eth0"
role = "internal"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
[[interface]]
name = "eth1"
role = "external"
addresses = ["198.51.100.1/24"]
)");
  const auto set = protected_destinations(cfg);
  CHECK(set.contains(ip("192.0.2.77")));        // internal network
  CHECK(set.contains(ip("2001:db8:1::99")));    // internal network, v6
  CHECK(set.contains(ip("198.51.100.1")));      // the gateway's external address
  CHECK_FALSE(set.contains(ip("198.51.100.2")));  // the outside
  CHECK_FALSE(set.contains(ip("203.0.113.9")));

  cfg.sockd.protect_internal = false;
  const auto off = protected_destinations(cfg);
  CHECK_FALSE(off.contains(ip("127.0.0.1")));
  CHECK_FALSE(off.contains(ip("192.0.2.77")));
}

TEST_CASE("the built-in policy admits loopback clients to unprotected destinations",
          "[sockd][policy]") {
  const auto cfg = default_config();
  platform::Diagnostics d;
  auto p = load_policy(cfg, d);
  INFO(d.format());
  REQUIRE(p);

  const Check out = check_destination(*p, connect_request("127.0.0.1", "198.51.100.7"));
  CHECK(out.permitted);
  REQUIRE(out.rule != nullptr);
  CHECK(rule_label(*out.rule) == "<built-in sockd.conf>:3");

  const Check v6 = check_destination(*p, connect_request("::1", "2001:db8::7"));
  CHECK(v6.permitted);

  const Check loop = check_destination(*p, connect_request("127.0.0.1", "127.0.0.1"));
  CHECK_FALSE(loop.permitted);
  CHECK(loop.reply == proto::ReplyKind::NotAllowed);
  CHECK(loop.reason == "protected destination");

  const Check stranger = check_destination(*p, connect_request("192.0.2.10", "198.51.100.7"));
  CHECK_FALSE(stranger.permitted);
  CHECK(stranger.reason == "no matching rule");
  CHECK(stranger.rule == nullptr);
}

TEST_CASE("a protected destination needs a rule naming it", "[sockd][policy]") {
  const auto cfg = default_config();
  auto p = policy_from(cfg,
                       "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq 8080\n"
                       "deny 0.0.0.0 0.0.0.0 198.51.100.0/24\n"
                       "permit 0.0.0.0 0.0.0.0\n");
  CHECK(check_destination(*p, connect_request("127.0.0.1", "127.0.0.1", 8080)).permitted);
  // Same address, other port: only the catch-all matches, and it is not explicit.
  const Check other = check_destination(*p, connect_request("127.0.0.1", "127.0.0.1", 8081));
  CHECK_FALSE(other.permitted);
  CHECK(other.reason == "protected destination");
  REQUIRE(other.rule != nullptr);
  CHECK(other.rule->pos.line == 3);
  const Check denied = check_destination(*p, connect_request("127.0.0.1", "198.51.100.9"));
  CHECK_FALSE(denied.permitted);
  CHECK(denied.reason == "denied by rule");
  CHECK(proto::to_socks5(denied.reply) == proto::Socks5Reply::NotAllowed);
  CHECK(proto::to_socks4(denied.reply) == proto::Socks4Reply::Rejected);
}

TEST_CASE("identd rules ask for identd, then decide on its answer", "[sockd][policy]") {
  const auto cfg = default_config();
  auto strict = policy_from(cfg, "#NO_IDENTD: echo noident %u\n#BAD_ID: echo bad %U %u\n"
                                 "permit ?=I 0.0.0.0 0.0.0.0\n");
  RuleRequest q = connect_request("127.0.0.1", "198.51.100.7");
  q.user = "alice";
  const Check ask = check_destination(*strict, q);
  CHECK(ask.needs_ident);
  CHECK_FALSE(ask.permitted);

  q.ident = IdentResult::Unreachable;
  const Check s = check_destination(*strict, q);
  CHECK_FALSE(s.permitted);
  CHECK(s.reply == proto::ReplyKind::IdentUnreachable);
  CHECK(proto::to_socks4(s.reply) == proto::Socks4Reply::IdentUnreachable);
  REQUIRE(s.ident_command);
  CHECK(*s.ident_command == "echo noident alice");
  CHECK(s.ident_origin == "sockd.conf:1");

  q.ident = IdentResult::Mismatch;
  q.ident_user = "mallory";
  const Check m = check_destination(*strict, q);
  CHECK_FALSE(m.permitted);
  CHECK(m.reply == proto::ReplyKind::IdentMismatch);
  CHECK(proto::to_socks4(m.reply) == proto::Socks4Reply::IdentMismatch);
  REQUIRE(m.ident_command);
  CHECK(m.ident_origin == "sockd.conf:2");

  q.ident = IdentResult::Ok;
  CHECK(check_destination(*strict, q).permitted);

  auto lenient = policy_from(cfg, "permit ?=i 0.0.0.0 0.0.0.0\n");
  q.ident = IdentResult::Unreachable;
  CHECK(check_destination(*lenient, q).permitted);
  q.ident = IdentResult::Mismatch;
  CHECK_FALSE(check_destination(*lenient, q).permitted);
}

TEST_CASE("RFC 1413 queries and replies", "[sockd][identd]") {
  CHECK(ident_query(6191, 1080) == "6191 , 1080\r\n");
  auto ok = parse_ident_reply("6191 , 1080 : USERID : UNIX : alice\r\n", 6191, 1080);
  CHECK(ok.ok);
  CHECK(ok.user == "alice");
  auto colon = parse_ident_reply("6191,1080:USERID:UNIX,UTF-8:  a:b ", 6191, 1080);
  CHECK(colon.ok);
  CHECK(colon.user == "a:b ");
  auto err = parse_ident_reply("6191 , 1080 : ERROR : NO-USER", 6191, 1080);
  CHECK_FALSE(err.ok);
  CHECK(err.error == "NO-USER");
  CHECK_FALSE(parse_ident_reply("6192 , 1080 : USERID : UNIX : alice", 6191, 1080).ok);
  CHECK_FALSE(parse_ident_reply("6191 , 1080 : USERID : UNIX", 6191, 1080).ok);
  CHECK_FALSE(parse_ident_reply("garbage", 6191, 1080).ok);
  CHECK_FALSE(parse_ident_reply("6191 , 1080 : USERID : UNIX : ", 6191, 1080).ok);
  CHECK_FALSE(parse_ident_reply("", 6191, 1080).ok);
}

TEST_CASE("a permit without a route is refused as network unreachable", "[sockd][policy]") {
  const auto cfg = default_config();
  auto p = policy_from(cfg, "permit 0.0.0.0 0.0.0.0\n", "192.0.2.1 203.0.113.0 255.255.255.0\n");
  const Check routed = check_destination(*p, connect_request("127.0.0.1", "203.0.113.5"));
  CHECK(routed.permitted);
  REQUIRE(routed.route != nullptr);
  REQUIRE(routed.route->egress_addr);
  CHECK(routed.route->egress_addr->to_string() == "192.0.2.1");
  auto both = policy_from(cfg, "permit 0.0.0.0 0.0.0.0\npermit ::/0\n",
                          "192.0.2.1 0.0.0.0 0.0.0.0\n2001:db8:1::1 ::/0\n");
  const Check v6 = check_destination(*both, connect_request("127.0.0.1", "2001:db8:2::80"));
  CHECK(v6.permitted);
  REQUIRE(v6.route != nullptr);
  REQUIRE(v6.route->egress_addr);
  CHECK(v6.route->egress_addr->to_string() == "2001:db8:1::1");  // not the IPv4 line first
  auto v4only = policy_from(cfg, "permit 0.0.0.0 0.0.0.0\npermit ::/0\n", "192.0.2.1 0.0.0.0 0.0.0.0\n");
  const Check nov6 = check_destination(*v4only, connect_request("127.0.0.1", "2001:db8:2::80"));
  CHECK_FALSE(nov6.permitted);
  CHECK(nov6.reply == proto::ReplyKind::NetUnreachable);

  const Check unrouted = check_destination(*p, connect_request("127.0.0.1", "198.51.100.5"));
  CHECK_FALSE(unrouted.permitted);
  CHECK(unrouted.reply == proto::ReplyKind::NetUnreachable);
  CHECK(proto::to_socks5(unrouted.reply) == proto::Socks5Reply::NetworkUnreachable);
}

TEST_CASE("handshake requests become rule requests", "[sockd][policy]") {
  proto::Request hs;
  hs.version = proto::Version::Socks5;
  hs.command = proto::Command::Connect;
  hs.method = proto::kMethodUserPass;
  REQUIRE(hs.username.assign("alice"));
  auto dst = proto::Address::from_name("WWW.Example.TEST", 443);
  REQUIRE(dst);
  hs.destination = *dst;
  const platform::Endpoint client{ip("::ffff:192.0.2.10"), 50312};
  const RuleRequest q = make_rule_request(hs, client, "eth0");
  CHECK(q.user == "alice");
  CHECK(q.method == AuthMethod::UserPass);
  CHECK(q.src_addr == ip("192.0.2.10"));
  CHECK(q.src_port == 50312);
  REQUIRE(q.dst_name);
  CHECK(*q.dst_name == "www.example.test");
  CHECK_FALSE(q.dst_addr);
  CHECK(q.dst_port == 443);
  CHECK(q.iface == "eth0");

  proto::Request v4;
  v4.version = proto::Version::Socks4;
  v4.command = proto::Command::Bind;
  REQUIRE(v4.userid.assign("bob"));
  v4.destination = proto::Address::from_ip(ip("198.51.100.7"), 21);
  const RuleRequest q4 = make_rule_request(v4, client, "");
  CHECK(q4.user == "bob");
  CHECK(q4.method == AuthMethod::None);
  CHECK(q4.command == RuleCommand::Bind);
  REQUIRE(q4.dst_addr);
  CHECK(*q4.dst_addr == ip("198.51.100.7"));
}

TEST_CASE("session log lines: text and JSON", "[sockd][log]") {
  SessionRecord r;
  r.event = "terminated";
  r.start = std::chrono::system_clock::time_point{} + std::chrono::seconds{1795000000} +
            std::chrono::milliseconds{42};
  r.client = "192.0.2.10:50312";
  r.version = "socks5";
  r.user = "al ice\"\x01";
  r.method = "userpass";
  r.cmd = "connect";
  r.dst = "example.test:443";
  r.addr = "198.51.100.7:443";
  r.rule = "/etc/diode/sockd.conf:12";
  r.verdict = "permit";
  r.reply = 0;
  r.up = 1234;
  r.down = 5678;
  r.duration = std::chrono::milliseconds{1500};
  r.reason = "eof";
  const std::string text = format_text(r);
  CHECK(text ==
        "time=2026-11-18T11:06:40.042Z event=terminated client=192.0.2.10:50312 "
        "version=socks5 user=\"al ice\\\"\\x01\" method=userpass cmd=connect "
        "dst=example.test:443 addr=198.51.100.7:443 rule=/etc/diode/sockd.conf:12 "
        "verdict=permit reply=0 up=1234 down=5678 duration=1.500 reason=eof");
  const std::string json = format_json(r);
  CHECK(json.find("\"user\":\"al ice\\\"\\u0001\"") != std::string::npos);
  CHECK(json.front() == '{');
  CHECK(json.back() == '}');

  SessionRecord refused;
  refused.client = "127.0.0.1:1";
  refused.reason = "wrong version";
  const std::string t2 = format_text(refused);
  CHECK(t2.find("event=refused") != std::string::npos);
  CHECK(t2.find("user=- method=- cmd=- dst=- addr=- rule=- verdict=- reply=-") != std::string::npos);
  CHECK(t2.find("reason=\"wrong version\"") != std::string::npos);
  CHECK(quote_value("") == "\"\"");
  CHECK(quote_value("a=b") == "\"a=b\"");
}

TEST_CASE("SipHash-2-4 reference vectors", "[sockd][auth]") {
  std::array<std::uint8_t, 16> key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  CHECK(siphash24(key, "") == 0x726fdb47dd0e0e31ULL);
  std::string msg;
  for (char c = 0; c < 15; ++c) msg += c;
  CHECK(siphash24(key, msg) == 0xa129ca6149be45e5ULL);
}

namespace {

std::string make_hash(const char* prefix, const char* password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn(prefix, 0, nullptr, 0, salt, sizeof salt) != nullptr);
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* h = crypt_rn(password, salt, data.get(), sizeof(crypt_data));
  REQUIRE(h != nullptr);
  return h;
}

UsersFile users_with(const std::string& line) {
  platform::Diagnostics d;
  auto u = parse_users_file(line, "users", d);
  INFO(d.format());
  REQUIRE(u);
  return *u;
}

}  // namespace

TEST_CASE("crypt hashes are checked with libcrypt", "[sockd][auth]") {
  for (const char* prefix : {"$y$", "$6$"}) {
    const std::string h = make_hash(prefix, "s3cret");
    CHECK(crypt_matches("s3cret", h));
    CHECK_FALSE(crypt_matches("s3cret!", h));
    CHECK_FALSE(crypt_matches("", h));
    CHECK_FALSE(crypt_matches(std::string_view("s3cret\0x", 8), h));
  }
  CHECK_FALSE(crypt_matches("x", "!"));
  CHECK_FALSE(crypt_matches("x", "plaintext"));
}

TEST_CASE("an unknown or locked user costs the same hash as a real one", "[sockd][auth]") {
  using namespace std::chrono_literals;
  // The dummy is a real user's setting: same scheme, same cost parameters.
  const std::string slow = "$6$rounds=20000$saltsalt$";
  char out[CRYPT_OUTPUT_SIZE];
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  REQUIRE(crypt_rn("pw", slow.c_str(), data.get(), sizeof(crypt_data)) != nullptr);
  std::strcpy(out, data->output);
  const UsersFile users = users_with("locked:!" + make_hash("$y$", "x") + "\nalice:" + out + "\n");
  const std::string* d = dummy_hash(users);
  REQUIRE(d != nullptr);
  CHECK(d->rfind("$6$rounds=20000$", 0) == 0);  // not the locked entry's yescrypt
  PasswordVerifier v(0ms);
  CHECK_FALSE(v.verify(users, "nobody", "pw"));  // even with alice's password
  CHECK_FALSE(v.verify(users, "locked", "x"));
  CHECK(v.hashes_run() == 2);
  CHECK(v.verify(users, "alice", "pw"));
  CHECK(v.hashes_run() == 3);
  // A file without a usable hash: no one can log in, no hash to imitate.
  const UsersFile none = users_with("bob:!\n");
  CHECK(dummy_hash(none) == nullptr);
  CHECK_FALSE(v.verify(none, "bob", "x"));
  CHECK(v.hashes_run() == 3);
}

TEST_CASE("repeated failures lock a client out for a while", "[sockd][auth]") {
  using namespace std::chrono_literals;
  using T = AuthThrottle;
  AuthThrottle t;
  const auto a = *platform::IpAddress::parse("192.0.2.10");
  const auto b = *platform::IpAddress::parse("192.0.2.11");
  const auto t0 = T::Clock::now();
  for (unsigned i = 0; i + 1 < T::kMaxFailures; ++i) {
    CHECK_FALSE(t.blocked(a, t0 + i * 1s));
    t.failed(a, t0 + i * 1s);
  }
  CHECK_FALSE(t.blocked(a, t0 + 10s));
  t.failed(a, t0 + 10s);  // the fifth within the window
  CHECK(t.blocked(a, t0 + 10s));
  CHECK(t.blocked(a, t0 + 10s + T::kLockout - 1s));
  CHECK_FALSE(t.blocked(b, t0 + 10s));  // only that client
  CHECK_FALSE(t.blocked(a, t0 + 10s + T::kLockout));  // over
  // Failures spread wider than the window never add up.
  AuthThrottle slow;
  for (unsigned i = 0; i < 3 * T::kMaxFailures; ++i) slow.failed(a, t0 + i * (T::kWindow / 2));
  CHECK_FALSE(slow.blocked(a, t0 + 3 * T::kMaxFailures * (T::kWindow / 2)));
  // One IPv6 /64 is one client.
  AuthThrottle v6;
  for (unsigned i = 0; i < T::kMaxFailures; ++i) {
    v6.failed(*platform::IpAddress::parse("2001:db8:1::" + std::to_string(i + 1)), t0);
  }
  CHECK(v6.blocked(*platform::IpAddress::parse("2001:db8:1::ffff"), t0 + 1s));
  CHECK_FALSE(v6.blocked(*platform::IpAddress::parse("2001:db8:2::1"), t0 + 1s));
}

TEST_CASE("verified logins are cached under a keyed hash for the TTL", "[sockd][auth]") {
  using namespace std::chrono_literals;
  const UsersFile users = users_with("alice:" + make_hash("$y$", "pw-alice") + "\nbob:!\n");
  PasswordVerifier v(5min);
  const auto t0 = PasswordVerifier::Clock::now();
  CHECK(v.verify(users, "alice", "pw-alice", t0));
  CHECK(v.hashes_run() == 1);
  CHECK(v.verify(users, "alice", "pw-alice", t0 + 1s));
  CHECK(v.cache_hits() == 1);
  CHECK(v.hashes_run() == 1);  // the second login paid no hash

  CHECK_FALSE(v.verify(users, "alice", "wrong", t0 + 2s));
  CHECK_FALSE(v.verify(users, "alice", "wrong", t0 + 3s));
  CHECK(v.hashes_run() == 3);  // failures are never cached
  CHECK_FALSE(v.verify(users, "bob", "anything", t0));   // locked
  CHECK_FALSE(v.verify(users, "carol", "anything", t0));  // unknown
  CHECK(v.hashes_run() == 5);  // each paid a hash, like a real user: no timing oracle

  CHECK(v.verify(users, "alice", "pw-alice", t0 + 6min));  // expired: hashed again
  CHECK(v.hashes_run() == 6);

  // A new hash for alice (users file reloaded) does not match the old entry.
  const UsersFile changed = users_with("alice:" + make_hash("$6$", "new-pw") + "\n");
  CHECK_FALSE(v.verify(changed, "alice", "pw-alice", t0 + 6min + 1s));
  CHECK(v.verify(changed, "alice", "new-pw", t0 + 6min + 2s));

  // cached(): the cheap check before a hash is handed to another thread.
  PasswordVerifier fresh(5min);
  CHECK_FALSE(fresh.cached(users, "alice", "pw-alice", t0));
  CHECK(fresh.verify(users, "alice", "pw-alice", t0));
  CHECK(fresh.cached(users, "alice", "pw-alice", t0 + 1s));
  CHECK_FALSE(fresh.cached(users, "alice", "wrong", t0 + 1s));
  CHECK_FALSE(fresh.cached(users, "alice", "pw-alice", t0 + 6min));
  CHECK(fresh.cache_hits() == 1);
  CHECK(fresh.hashes_run() == 1);

  PasswordVerifier nocache(0ms);
  CHECK(nocache.verify(users, "alice", "pw-alice", t0));
  CHECK(nocache.verify(users, "alice", "pw-alice", t0));
  CHECK(nocache.hashes_run() == 2);
  CHECK(nocache.cache_hits() == 0);
}

TEST_CASE("UDP needs a rule naming it, CONNECT and BIND do not", "[sockd][policy]") {
  const auto cfg = default_config();
  auto p = policy_from(cfg,
                       "permit cmd=udp 127.0.0.1 255.255.255.255 198.51.100.0/24 : echo %c\n"
                       "permit 127.0.0.1 255.255.255.255 # cmd=udp in a comment does not count\n"
                       "permit cmd=connect 192.0.2.0/24\n");
  const auto& rules = p->engine->rules().rules;
  REQUIRE(rules.size() == 3);
  CHECK(names_command(rules[0], RuleCommand::Udp));
  CHECK_FALSE(names_command(rules[0], RuleCommand::Connect));
  CHECK_FALSE(names_command(rules[1], RuleCommand::Udp));
  CHECK_FALSE(names_command(rules[2], RuleCommand::Bind));

  RuleRequest q = connect_request("127.0.0.1", "198.51.100.7", 53);
  q.command = RuleCommand::Udp;
  CHECK(check_destination(*p, q).permitted);
  q.dst_addr = ip("203.0.113.9");  // only line 2 matches, and it has no cmd=
  const Check c = check_destination(*p, q);
  CHECK_FALSE(c.permitted);
  CHECK(c.reason == "udp needs a rule with cmd=udp");
  q.command = RuleCommand::Bind;  // an unqualified line permits BIND, as NEC's did
  CHECK(check_destination(*p, q).permitted);

  RuleRequest from_lan = connect_request("192.0.2.10", "198.51.100.7");
  CHECK(may_use_udp(*p, q));
  CHECK_FALSE(may_use_udp(*p, from_lan));
}

TEST_CASE("docs/sockd.md: the protect_internal example", "[sockd][policy]") {
  const auto cfg = config_from(R"(
[[interface]]
name = "eth0"
role = "internal"
addresses = ["192.0.2.1/24"]
)");
  auto p = policy_from(cfg,
                       "permit 192.0.2.0/24 127.0.0.1 255.255.255.255 eq 8080\n"
                       "permit 192.0.2.0/24\n");
  CHECK(check_destination(*p, connect_request("192.0.2.10", "127.0.0.1", 8080)).permitted);
  CHECK(check_destination(*p, connect_request("192.0.2.10", "198.51.100.7", 443)).permitted);
  const Check gw = check_destination(*p, connect_request("192.0.2.10", "192.0.2.1", 80));
  CHECK_FALSE(gw.permitted);
  CHECK(gw.reason == "protected destination");
  CHECK_FALSE(check_destination(*p, connect_request("192.0.2.10", "192.0.2.20", 22)).permitted);
  CHECK_FALSE(check_destination(*p, connect_request("192.0.2.10", "127.0.0.1", 8081)).permitted);
}

TEST_CASE("a loaded policy counts its rules' decisions, the default apart", "[sockd][hits]") {
  const auto cfg = default_config();
  platform::Diagnostics d;
  auto p = load_policy(cfg, d);
  REQUIRE(p);
  REQUIRE(p->hits);
  REQUIRE(p->hits->size() == 2);
  const Check permit = check_destination(*p, connect_request("127.0.0.1", "198.51.100.7"));
  record_decision(*p, permit.rule);
  record_decision(*p, permit.rule);
  record_decision(*p, nullptr);
  CHECK(p->hits->rule(0).hits == 2);
  CHECK(p->hits->rule(0).last > 0);
  CHECK(p->hits->rule(1).hits == 0);
  CHECK(p->hits->fallback().hits == 1);
  const std::string text = format_hits(p->engine->rules(), *p->hits);
  CHECK(text.find("\n<built-in sockd.conf>:3 hits=2 last=20") != std::string::npos);
  CHECK(text.find("\n<built-in sockd.conf>:4 hits=0 last=-\n") != std::string::npos);
  // A reload is a new policy: its counters start at zero.
  auto fresh = load_policy(cfg, d);
  CHECK(fresh->hits->rule(0).hits == 0);
}

TEST_CASE("stats and metrics text from the counters", "[sockd][counters]") {
  SessionCounters w1;
  SessionCounters w2;
  w1.accepted = 3;
  w2.accepted = 2;
  w1.add_outcome(Outcome::Permitted);
  w2.add_outcome(Outcome::Permitted);
  w1.add_outcome(Outcome::Failed);
  w2.add_outcome(Outcome::Denied);
  w2.add_outcome(Outcome::Malformed);
  w1.replies[0] = 2;
  w2.replies[2] = 1;
  w2.replies[91] = 1;
  w1.bytes_up = 10;
  w2.bytes_down = 20;
  w1.handshake.observe(std::chrono::milliseconds{3});
  w2.handshake.observe(std::chrono::milliseconds{30});
  w1.connect.observe(std::chrono::microseconds{200});
  CounterTotals t;
  t.add(w1);
  t.add(w2);
  t.sessions_open = 1;
  t.rules = 12;
  CHECK(format_stats(t) ==
        "sessions_open=1 sessions_total=5 permitted=2 denied=1 failed=1 malformed=1 unresolved=0 "
        "incomplete=0 limited=0 bytes_up=10 bytes_down=20 handshakes=2 connects=1 "
        "accept_errors=0 reloads=0 reload_failures=0 rules=12 uptime_seconds=0\n");
  const std::string m = format_metrics(t);
  for (const char* line : {
           "# TYPE diode_sockd_sessions_total counter\n",
           "\ndiode_sockd_sessions_total{verdict=\"permit\"} 3\n",
           "\ndiode_sockd_sessions_total{verdict=\"deny\"} 1\n",
           "\ndiode_sockd_sessions_total{verdict=\"none\"} 1\n",
           "\ndiode_sockd_connect_failures_total 1\n",
           "\ndiode_sockd_sessions_open 1\n",
           "\ndiode_sockd_replies_total{code=\"0\"} 2\n",
           "\ndiode_sockd_replies_total{code=\"2\"} 1\n",
           "\ndiode_sockd_replies_total{code=\"90\"} 0\n",
           "\ndiode_sockd_replies_total{code=\"91\"} 1\n",
           "\ndiode_sockd_bytes_total{direction=\"up\"} 10\n",
           "\ndiode_sockd_bytes_total{direction=\"down\"} 20\n",
           "\ndiode_sockd_handshake_seconds_bucket{le=\"0.005\"} 1\n",
           "\ndiode_sockd_handshake_seconds_bucket{le=\"0.05\"} 2\n",
           "\ndiode_sockd_handshake_seconds_count 2\n",
           "\ndiode_sockd_handshake_seconds_sum 0.033\n",
           "\ndiode_sockd_connect_seconds_bucket{le=\"0.0005\"} 1\n",
           "\ndiode_sockd_rules 12\n",
       }) {
    INFO(line);
    CHECK(m.find(line) != std::string::npos);
  }
  CHECK(m.find("code=\"1\"") == std::string::npos);  // never sent: left out
}

TEST_CASE("RFC 6761: localhost and the names below it are loopback, without DNS", "[sockd][names]") {
  const std::vector<IpAddress> loop{ip("::1"), ip("127.0.0.1")};
  for (const char* n : {"localhost", "localhost.", "LocalHost", "x.localhost", "a.b.LOCALHOST."}) {
    INFO(n);
    const auto got = special_use_addresses(n);
    REQUIRE(got);
    CHECK(*got == loop);
  }
  for (const char* n : {"", ".", "local", "xlocalhost", "localhost.test", "localhost..", "intranet"}) {
    INFO(n);
    CHECK_FALSE(special_use_addresses(n));
  }
}

TEST_CASE("per-client limits count IPv4 clients by address, IPv6 clients by /64", "[sockd][limits]") {
  CHECK(client_limit_key(ip("192.0.2.10")) == ip("192.0.2.10"));
  CHECK(client_limit_key(ip("192.0.2.11")) != client_limit_key(ip("192.0.2.10")));
  CHECK(client_limit_key(ip("::ffff:192.0.2.10")) == ip("192.0.2.10"));
  CHECK(client_limit_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")) == ip("2001:db8:1:2::"));
  CHECK(client_limit_key(ip("2001:db8:1:2::1")) == client_limit_key(ip("2001:db8:1:2:ffff::9")));
  CHECK(client_limit_key(ip("2001:db8:1:3::1")) != client_limit_key(ip("2001:db8:1:2::1")));
}

TEST_CASE("per-client counts: refusals count nothing, idle keys are kept then swept", "[sockd][limits]") {
  ClientCounts c;
  const auto limit = [](std::uint32_t max) {
    return [max](std::uint32_t n) -> const char* { return n >= max ? "per-client session limit" : nullptr; };
  };
  const IpAddress a = ip("192.0.2.10");
  CHECK(c.add(a, limit(2)) == nullptr);
  CHECK(c.add(a, limit(2)) == nullptr);
  CHECK(c.open(a) == 2);
  CHECK(std::string(c.add(a, limit(2))) == "per-client session limit");
  CHECK(c.open(a) == 2);
  // A refusal of a key never seen leaves no entry behind.
  CHECK(c.add(ip("192.0.2.11"), limit(0)) != nullptr);
  CHECK(c.keys() == 1);
  c.remove(a);
  c.remove(a);
  CHECK(c.open(a) == 0);
  c.remove(a);  // one too many: stays at zero
  CHECK(c.open(a) == 0);
  CHECK(c.keys() == 1);  // kept at zero
  CHECK(c.add(a, limit(1)) == nullptr);
  CHECK(c.open(a) == 1);
  CHECK(std::string(c.add(a, limit(1))) == "per-client session limit");
  c.remove(a);

  // kIdleKept keys at zero are kept; one more and every key at zero goes,
  // while a key with sessions open stays and counts on.
  const IpAddress busy = ip("2001:db8::1");
  CHECK(c.add(busy, limit(5)) == nullptr);
  const auto key = [](std::uint32_t i) {  // 2001:db8:1::i (keys only: no traffic)
    IpAddress k = ip("2001:db8:1::");
    k.bytes[14] = static_cast<std::uint8_t>(i >> 8);
    k.bytes[15] = static_cast<std::uint8_t>(i);
    return k;
  };
  for (std::uint32_t i = 0; i + 1 < ClientCounts::kIdleKept; ++i) {
    const IpAddress k = key(i);
    REQUIRE(c.add(k, limit(1)) == nullptr);
    c.remove(k);
  }
  // a and kIdleKept - 1 others are at zero (kIdleKept, all kept); busy is not.
  CHECK(c.keys() == ClientCounts::kIdleKept + 1);
  c.remove(key(0));  // already at zero: no change
  CHECK(c.keys() == ClientCounts::kIdleKept + 1);
  const IpAddress last = ip("203.0.113.1");
  CHECK(c.add(last, limit(1)) == nullptr);
  c.remove(last);  // the (kIdleKept + 1)th key at zero
  CHECK(c.keys() == 1);
  CHECK(c.open(busy) == 1);
  CHECK(c.add(busy, limit(2)) == nullptr);
  CHECK(c.add(busy, limit(2)) != nullptr);
}

namespace {

// One rtnetlink address message as the kernel lays it out.
std::vector<std::uint8_t> addr_message(std::uint16_t type, std::uint8_t family, std::uint8_t plen,
                                       int ifindex,
                                       std::vector<std::pair<std::uint16_t, IpAddress>> attrs) {
  std::vector<std::uint8_t> out(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifaddrmsg)));
  ifaddrmsg ifa{};
  ifa.ifa_family = family;
  ifa.ifa_prefixlen = plen;
  ifa.ifa_index = static_cast<unsigned>(ifindex);
  std::memcpy(out.data() + NLMSG_HDRLEN, &ifa, sizeof ifa);
  for (const auto& [t, a] : attrs) {
    rtattr rta{};
    rta.rta_type = t;
    rta.rta_len = static_cast<std::uint16_t>(RTA_LENGTH(a.size()));
    const std::size_t at = out.size();
    out.resize(at + RTA_SPACE(a.size()));
    std::memcpy(out.data() + at, &rta, sizeof rta);
    std::memcpy(out.data() + at + RTA_LENGTH(0), a.bytes.data(), a.size());
  }
  nlmsghdr h{};
  h.nlmsg_len = static_cast<std::uint32_t>(out.size());
  h.nlmsg_type = type;
  std::memcpy(out.data(), &h, sizeof h);
  return out;
}

}  // namespace

TEST_CASE("rtnetlink address messages are parsed with every length checked", "[sockd][netlink]") {
  std::vector<std::uint8_t> buf;
  auto add = [&](const std::vector<std::uint8_t>& m) { buf.insert(buf.end(), m.begin(), m.end()); };
  // IPv4 point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours.
  add(addr_message(RTM_NEWADDR, AF_INET, 32, 7,
                   {{IFA_ADDRESS, ip("198.51.100.9")}, {IFA_LOCAL, ip("203.0.113.77")}}));
  add(addr_message(RTM_NEWADDR, AF_INET, 24, 8,
                   {{IFA_LOCAL, ip("192.0.2.5")}, {IFA_BROADCAST, ip("192.0.2.255")}}));
  add(addr_message(RTM_DELADDR, AF_INET6, 64, 9, {{IFA_ADDRESS, ip("2001:db8::5")}}));
  nlmsghdr done{};
  done.nlmsg_len = NLMSG_LENGTH(sizeof(int));
  done.nlmsg_type = NLMSG_DONE;
  const auto whole = buf.size();
  buf.resize(whole + done.nlmsg_len);
  std::memcpy(buf.data() + whole, &done, sizeof done);

  const auto p = parse_addr_messages(buf);
  CHECK_FALSE(p.malformed);
  CHECK(p.done);
  REQUIRE(p.events.size() == 3);
  CHECK(p.events[0].added);
  CHECK(p.events[0].address.addr == ip("203.0.113.77"));
  CHECK(p.events[0].address.ifindex == 7);
  CHECK(p.events[1].address.broadcast == ip("192.0.2.255"));
  CHECK(p.events[1].address.prefix_len == 24);
  CHECK_FALSE(p.events[2].added);
  CHECK(p.events[2].address.addr == ip("2001:db8::5"));

  // Every truncation: no read past the end, never more than what fits.
  for (std::size_t n = 0; n < buf.size(); ++n) {
    const auto q = parse_addr_messages(std::span<const std::uint8_t>(buf.data(), n));
    CHECK(q.events.size() <= 3);
    CHECK_FALSE(q.done);
  }
  // An attribute whose length runs past its message drops the message.
  auto bad = addr_message(RTM_NEWADDR, AF_INET, 32, 1, {{IFA_LOCAL, ip("192.0.2.1")}});
  bad[NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifaddrmsg))] = 200;
  CHECK(parse_addr_messages(bad).events.empty());
  // An address of the wrong size for its family is no address.
  auto odd = addr_message(RTM_NEWADDR, AF_INET6, 128, 1, {{IFA_ADDRESS, ip("192.0.2.1")}});
  CHECK(parse_addr_messages(odd).events.empty());
}

TEST_CASE("protect_internal covers the kernel's addresses, multicast and broadcast", "[sockd][policy]") {
  auto host = std::make_shared<HostAddresses>();
  const auto set = protected_destinations(default_config(), host);
  for (const char* a : {"224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", "0.1.2.3"}) {
    INFO(a);
    CHECK(set.contains(ip(a)));
  }
  CHECK_FALSE(set.contains(ip("203.0.113.77")));
  host->publish({ip("203.0.113.77"), ip("2001:db8::77")});
  CHECK(set.contains(ip("203.0.113.77")));
  CHECK(set.contains(ip("::ffff:203.0.113.77")));
  CHECK(set.contains(ip("2001:db8::77")));
  CHECK_FALSE(set.contains(ip("203.0.113.78")));
  host->publish({});
  CHECK_FALSE(set.contains(ip("203.0.113.77")));

  // The kernel's own view: lo's 127.0.0.1 is always there.
  Logger log("sockd-test", platform::LogSettings{platform::LogFormat::Text, platform::LogTarget::Stderr, platform::LogLevel::Error});
  auto live = std::make_shared<HostAddresses>();
  std::string error;
  auto watch = HostAddressWatch::start(live, log, error);
  INFO(error);
  REQUIRE(watch);
  CHECK(live->contains(ip("127.0.0.1")));
}

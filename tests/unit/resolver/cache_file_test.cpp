// The cache file: what goes in comes back with its TTLs aged by the time
// that passed (an injected wall clock); a damaged, truncated, foreign or
// future-dated file restores nothing.
#include "diode/resolver/cache_file.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "diode/resolver/builder.hpp"
#include "fake_net.hpp"

using namespace diode::resolver;
using namespace diode::resolver::test;
using std::chrono::seconds;

namespace {

std::uint32_t read32(std::span<const std::uint8_t> m, std::size_t at) {
  return (std::uint32_t{m[at]} << 24) | (std::uint32_t{m[at + 1]} << 16) |
         (std::uint32_t{m[at + 2]} << 8) | m[at + 3];
}

constexpr std::int64_t kWall = 1'800'000'000'000;  // some day in 2027, in ms

struct Msg {
  std::vector<std::uint8_t> wire;
  std::vector<std::uint16_t> ttls;
};

Msg answer(std::string_view qname, std::string_view addr, std::uint32_t ttl, std::uint8_t rc = 0) {
  std::vector<std::uint8_t> buf(512);
  MessageBuilder b(buf);
  Header h;
  h.qr = true;
  h.ra = true;
  h.rcode = rc;
  b.set_header(h);
  REQUIRE(b.add_question(name(qname), rrtype::kA, rrclass::kIN) == AddResult::Ok);
  if (rc == 0) REQUIRE(b.add_rrset(Section::Answer, a_set(qname, addr, ttl)) == AddResult::Ok);
  const auto w = b.finish();
  return {{w.begin(), w.end()}, {b.ttl_offsets().begin(), b.ttl_offsets().end()}};
}

// A cache holding one of everything the file keeps, stored at t0.
void fill(Cache& c, Time t0) {
  REQUIRE(c.insert_rrset(a_set("ns1.a.test.", "198.51.100.53", 3600), Trust::Answer, t0));
  REQUIRE(c.insert_rrset(ns_set("a.test.", {"ns1.a.test."}, 7200), Trust::Authority, t0));
  REQUIRE(c.insert_negative(name("nope.a.test."), rrtype::kA, rrclass::kIN, NegativeKind::NxDomain,
                            soa_set("a.test.", 3600, 3000), t0));
  REQUIRE(c.insert_negative(name("v4.a.test."), rrtype::kAAAA, rrclass::kIN, NegativeKind::NoData,
                            soa_set("a.test.", 3600, 600), t0));
  c.insert_parent_glue(name("a.test."), a_set("ns1.a.test.", "198.51.100.53", 3600), t0);
  const Msg m = answer("www.a.test.", "198.51.100.80", 1000);
  c.insert_message(Question{name("www.a.test."), rrtype::kA, rrclass::kIN}, m.wire, m.ttls, 1000,
                   t0);
}

std::vector<std::uint8_t> saved_file(Time at, std::int64_t wall, CacheFileSaved* s = nullptr) {
  Cache c;
  fill(c, Time{0});
  Cache* caches[] = {&c};
  return encode_cache_file(caches, at, wall, s);
}

CacheFileLoaded load(std::span<const std::uint8_t> bytes, Cache& into, Time now,
                     std::int64_t wall) {
  Cache* caches[] = {&into};
  return decode_cache_file(bytes, now, wall, caches);
}

}  // namespace

TEST_CASE("cache file: round trip, every TTL reduced by its age plus the time stopped") {
  CacheFileSaved saved;
  // Saved 100 s after the entries were stored; read back 250 s of wall
  // clock later by a process whose monotonic clock says something else.
  const auto bytes = saved_file(Time{0} + seconds{100}, kWall, &saved);
  CHECK(saved.entries == 6);
  CHECK(saved.skipped == 0);
  Cache c;
  const Time now{77'000'000};
  const auto r = load(bytes, c, now, kWall + 250'000);
  REQUIRE(r.ok);
  CHECK(r.error.empty());
  CHECK(r.entries == 6);
  CHECK(r.restored == 6);
  CHECK(r.expired == 0);
  CHECK(r.elapsed_ms == 250'000);
  CHECK(c.entries() == 6);

  auto rr = c.find_rrset(name("NS1.a.test."), rrtype::kA, rrclass::kIN, now);
  REQUIRE(rr);
  CHECK(rr->ttl == 3600 - 350);
  CHECK(rr->trust == Trust::Answer);
  CHECK(addresses_of(Outcome{0, {*rr->rrset}, {}, {}}) ==
        std::vector<std::string>{"198.51.100.53"});
  auto ns = c.find_rrset(name("a.test."), rrtype::kNS, rrclass::kIN, now);
  REQUIRE(ns);
  CHECK(ns->ttl == 7200 - 350);
  CHECK(ns->trust == Trust::Authority);
  auto nx = c.find_negative(name("nope.a.test."), rrtype::kMX, rrclass::kIN, now);
  REQUIRE(nx);
  CHECK(nx->kind == NegativeKind::NxDomain);
  CHECK(nx->ttl == 3000 - 350);
  auto nodata = c.find_negative(name("v4.a.test."), rrtype::kAAAA, rrclass::kIN, now);
  REQUIRE(nodata);
  CHECK(nodata->kind == NegativeKind::NoData);
  CHECK(nodata->ttl == 600 - 350);
  auto glue = c.find_parent_glue(name("a.test."), rrtype::kA, now);
  REQUIRE(glue);
  CHECK(glue->ttl == 3600 - 350);

  std::vector<std::uint8_t> out;
  const Question q{name("www.A.test."), rrtype::kA, rrclass::kIN};
  auto hit = c.copy_message(q, 0x1234, now, out);
  REQUIRE(hit);
  CHECK_FALSE(hit->stale);
  const Msg m = answer("www.a.test.", "198.51.100.80", 1000);
  CHECK(read32(out, m.ttls[0]) == 1000 - 350);
  CHECK(out[0] == 0x12);
  CHECK(out[1] == 0x34);
  // And it expires when it would have, had the resolver never stopped.
  CHECK(c.copy_message(q, 1, now + seconds{649}, out));
  CHECK_FALSE(c.copy_message(q, 1, now + seconds{651}, out));
}

TEST_CASE("cache file: the DNSSEC form of an answer (filed under kDnssecFormClass) comes back") {
  Cache c;
  fill(c, Time{0});
  const Msg m = answer("sig.a.test.", "198.51.100.81", 1000);
  const Question dq{name("sig.a.test."), rrtype::kA, kDnssecFormClass};
  c.insert_message(dq, m.wire, m.ttls, 1000, Time{0});
  Cache* caches[] = {&c};
  CacheFileSaved saved;
  const auto bytes = encode_cache_file(caches, Time{0} + seconds{100}, kWall, &saved);
  CHECK(saved.entries == 7);
  Cache back;
  const auto r = load(bytes, back, Time{0}, kWall + 1000);
  REQUIRE(r.ok);
  CHECK(r.restored == 7);
  std::vector<std::uint8_t> out;
  CHECK(back.copy_message(dq, 1, Time{0}, out));
  // A foreign class that does not match its message is still refused.
  Cache bad;
  fill(bad, Time{0});
  bad.insert_message(Question{name("sig.a.test."), rrtype::kA, 3}, m.wire, m.ttls, 1000, Time{0});
  Cache* bad_caches[] = {&bad};
  const auto bad_bytes = encode_cache_file(bad_caches, Time{0}, kWall, nullptr);
  Cache none;
  CHECK_FALSE(load(bad_bytes, none, Time{0}, kWall).ok);
}

TEST_CASE("cache file: entries expired while stopped are dropped; serve-stale keeps its window") {
  const auto bytes = saved_file(Time{0}, kWall);
  SECTION("serve_stale off: what expired is not restored") {
    CacheSettings s;
    s.serve_stale = false;
    Cache c(s);
    // 700 s later: the NODATA (600 s) is gone, the rest are not.
    const auto r = load(bytes, c, Time{0}, kWall + 700'000);
    REQUIRE(r.ok);
    CHECK(r.entries == 6);
    CHECK(r.expired == 1);
    CHECK(r.restored == 5);
    CHECK(c.entries() == 5);
    CHECK_FALSE(c.find_negative(name("v4.a.test."), rrtype::kAAAA, rrclass::kIN, Time{0}));
    CHECK(c.find_negative(name("nope.a.test."), rrtype::kA, rrclass::kIN, Time{0}));
    // A day later nothing is left.
    Cache d(s);
    const auto late = load(bytes, d, Time{0}, kWall + 86'400'000);
    REQUIRE(late.ok);
    CHECK(late.restored == 0);
    CHECK(late.expired == 6);
    CHECK(d.entries() == 0);
  }
  SECTION("serve_stale on: expired within max_stale is kept, and served only as stale") {
    CacheSettings s;
    s.serve_stale = true;
    s.max_stale = 600;
    s.stale_answer_ttl = 30;
    Cache c(s);
    // 1,200 s later: www (1000 s) expired 200 s ago, inside max_stale.
    const auto r = load(bytes, c, Time{0}, kWall + 1'200'000);
    REQUIRE(r.ok);
    CHECK(r.expired == 1);  // v4.a.test's NODATA (600 s + 600 s of max_stale)
    std::vector<std::uint8_t> out;
    const Question q{name("www.a.test."), rrtype::kA, rrclass::kIN};
    CHECK_FALSE(c.copy_message(q, 1, Time{0}, out));
    auto stale = c.copy_message(q, 1, Time{0}, out, true);
    REQUIRE(stale);
    CHECK(stale->stale);
  }
}

TEST_CASE("cache file: failures and hints are not kept; the current max_ttl applies") {
  Cache c;
  const Time t0{0};
  const Msg fail = answer("bad.a.test.", "", 5, rcode::kServFail);
  c.insert_message(Question{name("bad.a.test."), rrtype::kA, rrclass::kIN}, fail.wire, fail.ttls, 5,
                   t0);
  REQUIRE(c.insert_rrset(a_set("a.root-servers.test.", "198.51.100.2"), Trust::Hints, t0));
  REQUIRE(c.insert_rrset(a_set("www.b.test.", "198.51.100.81", 86400), Trust::Answer, t0));
  Cache* caches[] = {&c};
  CacheFileSaved saved;
  const auto bytes = encode_cache_file(caches, t0, kWall, &saved);
  CHECK(saved.entries == 1);
  CHECK(saved.skipped == 2);
  CacheSettings s;
  s.max_ttl = 600;
  Cache d(s);
  const auto r = load(bytes, d, t0, kWall + 10'000);
  REQUIRE(r.ok);
  CHECK(r.restored == 1);
  auto hit = d.find_rrset(name("www.b.test."), rrtype::kA, rrclass::kIN, t0);
  REQUIRE(hit);
  CHECK(hit->ttl == 590);
}

TEST_CASE("cache file: several threads' caches; the longest-lived copy wins") {
  Cache a, b;
  REQUIRE(a.insert_rrset(a_set("x.a.test.", "198.51.100.1", 100), Trust::Answer, Time{0}));
  REQUIRE(b.insert_rrset(a_set("x.a.test.", "198.51.100.2", 1000), Trust::Answer, Time{0}));
  REQUIRE(b.insert_rrset(a_set("y.a.test.", "198.51.100.3", 1000), Trust::Answer, Time{0}));
  Cache* both[] = {&a, &b};
  const auto bytes = encode_cache_file(both, Time{0}, kWall);
  Cache c1, c2;
  Cache* into[] = {&c1, &c2};
  const auto r = decode_cache_file(bytes, Time{0}, kWall, into);
  REQUIRE(r.ok);
  CHECK(r.entries == 3);
  for (Cache* c : into) {
    CHECK(c->entries() == 2);
    auto x = c->find_rrset(name("x.a.test."), rrtype::kA, rrclass::kIN, Time{0});
    REQUIRE(x);
    CHECK(x->ttl == 1000);
  }
}

TEST_CASE("cache file: damaged, truncated, foreign or future-dated files restore nothing") {
  const auto good = saved_file(Time{0}, kWall);
  auto refused = [](std::span<const std::uint8_t> bytes, std::int64_t wall = kWall) {
    Cache c;
    const auto r = load(bytes, c, Time{0}, wall);
    CHECK_FALSE(r.ok);
    CHECK_FALSE(r.error.empty());
    CHECK(c.entries() == 0);
    return r.error;
  };
  CHECK(refused({}).find("magic") != std::string::npos);
  const std::string text = "# not a cache file\n";
  CHECK(refused(std::vector<std::uint8_t>(text.begin(), text.end())).find("magic") !=
        std::string::npos);
  // Every proper prefix is refused (truncated).
  for (std::size_t n = 0; n < good.size(); ++n) {
    (void)refused(std::span<const std::uint8_t>(good.data(), n));
  }
  // Any one octet changed is refused (checksum, or magic/version first).
  for (std::size_t i = 0; i < good.size(); i += 7) {
    auto bad = good;
    bad[i] ^= 0x20;
    (void)refused(bad);
  }
  // Another version of the format.
  auto v2 = good;
  v2[9] = 2;
  CHECK(refused(v2).find("version") != std::string::npos);
  // Saved more than a minute after "now": the clock went back, or someone else's file.
  CHECK(refused(good, kWall - 120'000).find("future") != std::string::npos);
  // A few seconds of clock step is tolerated (and counted as no time at all).
  Cache c;
  const auto r = load(good, c, Time{0}, kWall - 5'000);
  CHECK(r.ok);
  CHECK(r.elapsed_ms == 0);
}

TEST_CASE("cache file: written atomically, read with a bound") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("diode-cache-file-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "resolver.cache").string();
  const auto bytes = saved_file(Time{0}, kWall);
  std::string error;
  REQUIRE(write_file_atomically(path, bytes, error));
  CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::group_read) ==
        std::filesystem::perms::none);
  bool missing = true;
  auto back = read_file_bounded(path, bytes.size(), error, &missing);
  REQUIRE(back);
  CHECK_FALSE(missing);
  CHECK(*back == bytes);
  CHECK_FALSE(read_file_bounded(path, bytes.size() - 1, error, &missing));
  CHECK(error.find("larger than") != std::string::npos);
  CHECK_FALSE(read_file_bounded((dir / "none").string(), 1000, error, &missing));
  CHECK(missing);
  CHECK_FALSE(read_file_bounded(dir.string(), 1000, error, &missing));
  CHECK_FALSE(missing);
  // Nothing left beside it; an unwritable place leaves the old file alone.
  CHECK(std::distance(std::filesystem::directory_iterator(dir),
                      std::filesystem::directory_iterator{}) == 1);
  CHECK_FALSE(write_file_atomically((dir / "no" / "such" / "dir").string(), bytes, error));
  CHECK(error.find("cannot create") != std::string::npos);
  std::filesystem::remove_all(dir);
}

// RFC 5011 trust anchor updates (anchor_state.hpp) with an injected clock:
// DNSKEY sets of the root signed here, with Ed25519 keys made for each
// test (OpenSSL), fed to the tracker at chosen times. No sockets, no files.

#include "diode/resolver/anchor_state.hpp"

#include <openssl/evp.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

using namespace diode::resolver;
using namespace diode::resolver::dnssec;

namespace {

constexpr std::uint64_t kDay = 86400;
constexpr std::uint64_t kT0 = 1'800'000'000;  // 2027-01-15, well inside 32-bit serial time
constexpr std::uint16_t kKsk = 257;           // zone key + SEP
constexpr std::uint16_t kRevoke = 0x0080;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

// An Ed25519 key (algorithm 15) of the root with its DNSKEY RDATA.
struct TestKey {
  std::shared_ptr<EVP_PKEY> pkey;
  std::vector<std::uint8_t> pub;

  TestKey() {
    EVP_PKEY* p = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    REQUIRE(p != nullptr);
    pkey.reset(p, PkeyFree{});
    std::size_t len = 32;
    pub.resize(len);
    REQUIRE(EVP_PKEY_get_raw_public_key(p, pub.data(), &len) == 1);
  }
  std::vector<std::uint8_t> rdata(std::uint16_t flags = kKsk) const {
    std::vector<std::uint8_t> r{static_cast<std::uint8_t>(flags >> 8),
                                static_cast<std::uint8_t>(flags & 0xff), 3, 15};
    r.insert(r.end(), pub.begin(), pub.end());
    return r;
  }
};

RRset root_keys(const std::vector<std::vector<std::uint8_t>>& rdatas, std::uint32_t ttl = 3600) {
  RRset s;
  s.owner = Name();
  s.type = rrtype::kDNSKEY;
  s.ttl = ttl;
  for (const auto& r : rdatas) REQUIRE(s.add_rdata(r));
  return s;
}

// An RRSIG over `set` by `key` (its RDATA with `flags`), valid from
// `now` - 1 day to `now` + `valid_for`.
std::vector<std::uint8_t> sign(const RRset& set, const TestKey& key, std::uint16_t flags,
                               std::uint64_t now, std::uint64_t valid_for = 21 * kDay) {
  const auto krd = key.rdata(flags);
  const std::uint16_t tag = key_tag(krd);
  const auto put32 = [](std::vector<std::uint8_t>& v, std::uint64_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<std::uint8_t>((x >> s) & 0xff));
  };
  std::vector<std::uint8_t> r{0, static_cast<std::uint8_t>(rrtype::kDNSKEY), 15, 0};
  put32(r, set.ttl);
  put32(r, now + valid_for);
  put32(r, now - kDay);
  r.push_back(static_cast<std::uint8_t>(tag >> 8));
  r.push_back(static_cast<std::uint8_t>(tag & 0xff));
  r.push_back(0);  // signer: the root
  const std::size_t fixed = r.size();
  r.resize(fixed + 64, 0);  // room for the signature, so that it parses
  auto view = parse_rrsig(r);
  REQUIRE(view.has_value());
  auto data = signed_data(set, *view);
  REQUIRE(data.has_value());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  REQUIRE(EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.pkey.get()) == 1);
  std::size_t len = 64;
  REQUIRE(EVP_DigestSign(ctx.get(), r.data() + fixed, &len, data->data(), data->size()) == 1);
  REQUIRE(len == 64);
  return r;
}

struct Fetch {
  RRset keys;
  std::vector<std::vector<std::uint8_t>> sigs;
  std::vector<std::span<const std::uint8_t>> spans() const {
    std::vector<std::span<const std::uint8_t>> out;
    for (const auto& s : sigs) out.emplace_back(s);
    return out;
  }
};

// The root's DNSKEY set of `members` (key, flags), signed by `signers`.
Fetch fetch(const std::vector<std::pair<const TestKey*, std::uint16_t>>& members,
            const std::vector<std::pair<const TestKey*, std::uint16_t>>& signers, std::uint64_t now,
            std::uint32_t ttl = 3600) {
  Fetch f;
  std::vector<std::vector<std::uint8_t>> rd;
  for (const auto& [k, flags] : members) rd.push_back(k->rdata(flags));
  f.keys = root_keys(rd, ttl);
  for (const auto& [k, flags] : signers) f.sigs.push_back(sign(f.keys, *k, flags, now));
  return f;
}

TrustAnchors anchor_of(const TestKey& k) {
  std::vector<TrustAnchors::Anchor> a(1);
  a[0].zone = Name();
  a[0].dnskey = root_keys({k.rdata()});
  a[0].ds.type = rrtype::kDS;
  return TrustAnchors::from(a);
}

RefreshOutcome feed(AnchorTracker& t, const Fetch& f, std::uint64_t now) {
  Budget budget(100, 1000);
  const auto s = f.spans();
  return t.on_dnskeys(Name(), f.keys, s, now, AlgorithmPolicy{}, budget);
}

std::optional<KeyState> state_of(const AnchorTracker& t, const TestKey& k) {
  for (const ManagedKey& m : t.points().front().keys) {
    const auto plain = k.rdata();
    if (m.rdata == plain || m.rdata == k.rdata(kKsk | kRevoke)) return m.state;
  }
  return std::nullopt;
}

bool trusts(const AnchorTracker& t, const TestKey& k) {
  const TrustAnchors a = t.anchors();
  const auto want = k.rdata();
  for (auto rd : a.anchors().front().dnskey)
    if (std::equal(rd.begin(), rd.end(), want.begin(), want.end())) return true;
  return false;
}

}  // namespace

TEST_CASE("a new key is AddPend and becomes Valid only after 30 days of being seen") {
  TestKey a, b;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  REQUIRE(t.due(kT0).size() == 1);

  auto r = feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0), kT0);
  REQUIRE(r.validated);
  REQUIRE(r.changed);
  REQUIRE(r.changes.size() == 1);
  CHECK(r.changes[0].from == KeyState::Start);
  CHECK(r.changes[0].to == KeyState::AddPend);
  CHECK(r.changes[0].tag == key_tag(b.rdata()));
  CHECK(state_of(t, b) == KeyState::AddPend);
  CHECK_FALSE(trusts(t, b));
  CHECK(t.points().front().keys.back().first_seen == kT0);
  // The next look is no later than the end of the hold-down.
  CHECK(t.next_refresh() > kT0);
  CHECK(t.next_refresh() <= kT0 + 30 * kDay + 1);

  // Seen again before the hold-down ends: still pending, nothing to save.
  r = feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 29 * kDay), kT0 + 29 * kDay);
  CHECK(r.validated);
  CHECK_FALSE(r.changed);
  CHECK(state_of(t, b) == KeyState::AddPend);

  // Hold-down over: Valid, and a trust anchor.
  r = feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 30 * kDay), kT0 + 30 * kDay);
  CHECK(r.changed);
  CHECK(state_of(t, b) == KeyState::Valid);
  CHECK(trusts(t, b));
  CHECK(trusts(t, a));
}

TEST_CASE("a pending key that disappears is forgotten and starts over") {
  TestKey a, b;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0), kT0);
  auto r = feed(t, fetch({{&a, kKsk}}, {{&a, kKsk}}, kT0 + kDay), kT0 + kDay);
  CHECK(r.changed);
  CHECK_FALSE(state_of(t, b).has_value());
  // Back again: the hold-down starts from now, not from the first sighting.
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 2 * kDay), kT0 + 2 * kDay);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 31 * kDay), kT0 + 31 * kDay);
  CHECK(state_of(t, b) == KeyState::AddPend);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 32 * kDay), kT0 + 32 * kDay);
  CHECK(state_of(t, b) == KeyState::Valid);
}

TEST_CASE("a revoked key with a valid self-signature is removed from the anchors at once") {
  TestKey a, b;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0), kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 30 * kDay), kT0 + 30 * kDay);
  REQUIRE(state_of(t, b) == KeyState::Valid);

  const std::uint64_t t1 = kT0 + 40 * kDay;
  // Revoked but not self-signed (only b signed): no effect.
  auto r = feed(t, fetch({{&a, kKsk | kRevoke}, {&b, kKsk}}, {{&b, kKsk}}, t1), t1);
  CHECK(r.validated);
  CHECK_FALSE(r.changed);
  CHECK(state_of(t, a) == KeyState::Valid);
  CHECK(trusts(t, a));

  // Self-signed with the REVOKE bit: Revoked at once, no hold-down.
  r = feed(t, fetch({{&a, kKsk | kRevoke}, {&b, kKsk}}, {{&a, kKsk | kRevoke}, {&b, kKsk}}, t1),
           t1);
  CHECK(r.changed);
  REQUIRE(r.changes.size() == 1);
  CHECK(r.changes[0].to == KeyState::Revoked);
  CHECK(r.changes[0].tag == key_tag(a.rdata(kKsk | kRevoke)));
  CHECK(state_of(t, a) == KeyState::Revoked);
  CHECK_FALSE(trusts(t, a));
  CHECK(trusts(t, b));

  // The revoked key is never trusted again, even shown without the bit.
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&b, kKsk}}, t1 + kDay), t1 + kDay);
  CHECK(state_of(t, a) == KeyState::Revoked);
  CHECK_FALSE(trusts(t, a));

  // After the remove hold-down it is Removed.
  r = feed(t, fetch({{&b, kKsk}}, {{&b, kKsk}}, t1 + 30 * kDay), t1 + 30 * kDay);
  CHECK(r.changed);
  CHECK(state_of(t, a) == KeyState::Removed);
  CHECK_FALSE(trusts(t, a));
}

TEST_CASE("a set signed only by the revoked key still revokes it, and leaves no anchor") {
  TestKey a;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  auto r = feed(t, fetch({{&a, kKsk | kRevoke}}, {{&a, kKsk | kRevoke}}, kT0), kT0);
  CHECK_FALSE(r.validated);
  CHECK(r.changed);
  CHECK(state_of(t, a) == KeyState::Revoked);
  // The trust point stays, with no key: its zone is bogus, never insecure.
  const TrustAnchors anchors = t.anchors();
  REQUIRE(anchors.anchors().size() == 1);
  CHECK(anchors.anchors().front().dnskey.empty());
}

TEST_CASE("a key that disappears goes Missing and stays trusted") {
  TestKey a, b;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0), kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 30 * kDay), kT0 + 30 * kDay);
  auto r = feed(t, fetch({{&b, kKsk}}, {{&b, kKsk}}, kT0 + 31 * kDay), kT0 + 31 * kDay);
  CHECK(r.validated);
  CHECK(r.changed);
  CHECK(state_of(t, a) == KeyState::Missing);
  CHECK(trusts(t, a));
  // A missing key still validates a set it signs; present again: Valid.
  r = feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 32 * kDay), kT0 + 32 * kDay);
  CHECK(r.validated);
  CHECK(state_of(t, a) == KeyState::Valid);
}

TEST_CASE("a DNSKEY set not signed by a trusted key changes nothing") {
  TestKey a, c;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  // Signed by the newcomer only, and a forged revocation of the anchor.
  for (const auto& f :
       {fetch({{&a, kKsk}, {&c, kKsk}}, {{&c, kKsk}}, kT0), fetch({{&c, kKsk}}, {{&c, kKsk}}, kT0),
        fetch({{&a, kKsk | kRevoke}, {&c, kKsk}}, {{&c, kKsk}}, kT0)}) {
    auto r = feed(t, f, kT0);
    CHECK_FALSE(r.validated);
    CHECK_FALSE(r.changed);
    CHECK_FALSE(r.reason.empty());
  }
  CHECK_FALSE(state_of(t, c).has_value());
  CHECK(state_of(t, a) == KeyState::Valid);
  // A signature by the trusted key over other data does not count either.
  Fetch f = fetch({{&a, kKsk}, {&c, kKsk}}, {}, kT0);
  Fetch other = fetch({{&a, kKsk}}, {{&a, kKsk}}, kT0);
  f.sigs = other.sigs;
  CHECK_FALSE(feed(t, f, kT0).validated);
  CHECK_FALSE(state_of(t, c).has_value());
  // Failures schedule a retry (RFC 5011 §2.3: at least an hour away).
  CHECK(t.points().front().failures == 4);
  CHECK(t.next_refresh() >= kT0 + 3600);
}

TEST_CASE("time going backwards does nothing harmful") {
  TestKey a, b;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0), kT0);
  // A clock 40 days behind: no hold-down has passed, b stays pending and
  // its start is not moved.
  const std::uint64_t back = kT0 - 40 * kDay;
  auto r = feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, back), back);
  CHECK(r.validated);
  CHECK_FALSE(r.changed);
  CHECK(state_of(t, b) == KeyState::AddPend);
  CHECK(t.points().front().keys.back().first_seen == kT0);
  CHECK(t.points().front().last_success == kT0);
  CHECK(t.next_refresh() > back);
  // A key first seen while the clock is behind is stamped with the latest
  // time seen, so the clock coming right does not shorten its hold-down.
  TestKey c;
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}, {&c, kKsk}}, {{&a, kKsk}}, back), back);
  CHECK(state_of(t, c) == KeyState::AddPend);
  CHECK(t.points().front().keys.back().first_seen == kT0);
  // The real time again: the hold-down counts from the first sighting.
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}, {&c, kKsk}}, {{&a, kKsk}}, kT0 + 30 * kDay),
       kT0 + 30 * kDay);
  CHECK(state_of(t, b) == KeyState::Valid);
  CHECK(state_of(t, c) == KeyState::Valid);
}

TEST_CASE("the add hold-down is at least the DNSKEY set's TTL, and configurable for tests") {
  TestKey a, b;
  AnchorTimings short_hold;
  short_hold.add_hold_down = 5;
  short_hold.remove_hold_down = 5;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), short_hold, kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0, 10), kT0);
  // Half the TTL; the hold-down is the TTL (10 s), above the 5 s configured.
  CHECK(t.next_refresh() == kT0 + 5);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 6, 10), kT0 + 6);
  CHECK(state_of(t, b) == KeyState::AddPend);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 11, 10), kT0 + 11);
  CHECK(state_of(t, b) == KeyState::Valid);
}

TEST_CASE("the refresh timer follows RFC 5011 section 2.3") {
  TestKey a;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  // TTL 2 days, signatures valid 21 more days: MIN(15 days, 1 day, 10.5 days).
  feed(t, fetch({{&a, kKsk}}, {{&a, kKsk}}, kT0, 2 * kDay), kT0);
  CHECK(t.next_refresh() == kT0 + kDay);
  // TTL 10 minutes: the one-hour floor.
  feed(t, fetch({{&a, kKsk}}, {{&a, kKsk}}, kT0, 600), kT0);
  CHECK(t.next_refresh() == kT0 + 3600);
  // A failure: retry at MAX(1 hour, MIN(1 day, TTL/10)).
  feed(t, fetch({{&a, kKsk}}, {{&a, kKsk}}, kT0, 5 * kDay), kT0);
  t.on_failure(Name(), kT0 + 10);
  CHECK(t.next_refresh() == kT0 + 10 + kDay / 2);
  CHECK(t.points().front().failures == 1);
  CHECK(t.due(kT0 + 10 + kDay / 2).size() == 1);
  CHECK(t.due(kT0 + 10).empty());
}

TEST_CASE("a DS anchor seeds the keys it matches at the first refresh") {
  TestKey a, b;
  TrustAnchors::Anchor an;
  an.zone = Name();
  an.dnskey.type = rrtype::kDNSKEY;
  an.ds.type = rrtype::kDS;
  const auto digest = ds_digest(Name(), a.rdata(), digest::kSha256);
  REQUIRE(digest.has_value());
  const std::uint16_t tag = key_tag(a.rdata());
  std::vector<std::uint8_t> ds{static_cast<std::uint8_t>(tag >> 8),
                               static_cast<std::uint8_t>(tag & 0xff), 15, digest::kSha256};
  ds.insert(ds.end(), digest->begin(), digest->end());
  REQUIRE(an.ds.add_rdata(ds));
  AnchorTracker t = AnchorTracker::seed(TrustAnchors::from({an}), AnchorTimings{}, kT0);
  CHECK(t.anchors().anchors().front().dnskey.empty());
  auto r = feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0), kT0);
  CHECK(r.validated);
  CHECK(state_of(t, a) == KeyState::Valid);
  CHECK(state_of(t, b) == KeyState::AddPend);
  CHECK(trusts(t, a));
  CHECK(t.points().front().seed_ds.empty());
}

TEST_CASE("the state file round-trips, and a damaged one is refused whole") {
  TestKey a, b;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0), kT0);
  const std::string text = t.to_text();
  INFO(text);
  CHECK(text.find("state=addpend") != std::string::npos);
  CHECK(text.find("first-seen=" + std::to_string(kT0)) != std::string::npos);
  std::string error;
  auto back = AnchorTracker::parse(text, AnchorTimings{}, error);
  REQUIRE(back.has_value());
  CHECK(back->to_text() == text);
  CHECK(state_of(*back, b) == KeyState::AddPend);
  CHECK(trusts(*back, a));
  // It goes on where it stopped: the hold-down ends 30 days after kT0.
  feed(*back, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0 + 30 * kDay), kT0 + 30 * kDay);
  CHECK(state_of(*back, b) == KeyState::Valid);

  const auto refused = [&](std::string bad) {
    std::string e;
    INFO(bad);
    CHECK_FALSE(AnchorTracker::parse(bad, AnchorTimings{}, e).has_value());
    CHECK(e.rfind("line ", 0) == 0);
  };
  const auto replace = [&](std::string from, std::string to) {
    std::string s = text;
    const auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  refused("");
  refused("garbage\n");
  refused(replace("format 1", "format 2"));
  refused(replace("state=addpend", "state=pending"));
  refused(replace("state=addpend", "state=start"));
  refused(replace(" tag=", " tag=1"));
  refused(replace("first-seen=", "first-seen=x"));
  refused(replace("first-seen=", "colour=blue first-seen="));
  refused(replace("; trust-point=.", "; trust-point=example."));
  refused(replace("IN DNSKEY 257", "IN DNSKEY 385"));  // REVOKE bit but not revoked
  refused(replace("IN DNSKEY", "IN TXT"));
  refused(text.substr(0, text.rfind(" ; state")) + "\n");
  refused(text.substr(0, text.find("; trust-point")));
  refused(text + text.substr(text.find("\n. ") + 1));  // a key twice
}

TEST_CASE("a state read back follows the configured trust points") {
  TestKey a, b, e;
  AnchorTracker t = AnchorTracker::seed(anchor_of(a), AnchorTimings{}, kT0);
  feed(t, fetch({{&a, kKsk}, {&b, kKsk}}, {{&a, kKsk}}, kT0), kT0);
  std::string error;
  auto back = AnchorTracker::parse(t.to_text(), AnchorTimings{}, error);
  REQUIRE(back.has_value());
  // The same trust point configured: the state read is kept as it is.
  CHECK_FALSE(back->adopt_configured(anchor_of(a), kT0 + 1));
  CHECK(state_of(*back, b) == KeyState::AddPend);
  // A zone added to the anchor file is seeded beside it.
  TrustAnchors::Anchor ex;
  ex.zone = *Name::from_text("example.");
  ex.dnskey.owner = ex.zone;
  ex.dnskey.type = rrtype::kDNSKEY;
  REQUIRE(ex.dnskey.add_rdata(e.rdata()));
  ex.ds.type = rrtype::kDS;
  std::vector<TrustAnchors::Anchor> both = anchor_of(a).anchors();
  both.push_back(ex);
  CHECK(back->adopt_configured(TrustAnchors::from(both), kT0 + 1));
  REQUIRE(back->points().size() == 2);
  CHECK(state_of(*back, b) == KeyState::AddPend);
  CHECK(back->points().back().zone == ex.zone);
  CHECK(back->points().back().keys.front().state == KeyState::Valid);
  CHECK(back->due(kT0 + 1).size() == 1);
  // A zone no longer configured is dropped.
  CHECK(back->adopt_configured(TrustAnchors::from({ex}), kT0 + 2));
  REQUIRE(back->points().size() == 1);
  CHECK(back->points().front().zone == ex.zone);
  CHECK(back->anchors().anchors().size() == 1);
}

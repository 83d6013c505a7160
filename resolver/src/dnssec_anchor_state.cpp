// RFC 5011 automated trust anchor updates: the key states of §4, the
// hold-downs of §2.4, the refresh timers of §2.3 and the state file.

#include <algorithm>
#include <cctype>
#include <charconv>

#include "diode/resolver/anchor_state.hpp"
#include "diode/resolver/zone_text.hpp"

namespace diode::resolver::dnssec {

namespace {

constexpr std::uint16_t kRevokeFlag = 0x0080;      // RFC 5011 §2.1 (DNSKEY flags bit 8)
constexpr std::uint32_t kMaxRefresh = 15 * 86400;  // §2.3
constexpr std::uint32_t kMaxRetry = 86400;         // §2.3
constexpr std::string_view kHeader = "; diode-resolver trust anchor state, format 1";

// A key's identity across revocation: its RDATA with the REVOKE bit
// cleared (setting the bit changes the key tag, RFC 5011 §2.1).
bool same_key(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  if (a.size() != b.size() || a.size() < 2) return false;
  if (a[0] != b[0] || (a[1] & ~kRevokeFlag) != (b[1] & ~kRevokeFlag)) return false;
  return std::equal(a.begin() + 2, a.end(), b.begin() + 2);
}

bool trusted(KeyState s) {
  return s == KeyState::Valid || s == KeyState::Missing;
}

std::uint64_t elapsed(std::uint64_t since, std::uint64_t now) {
  return now > since ? now - since : 0;  // a clock that went back: no time passed
}

RRset dnskey_set(const Name& zone) {
  RRset r;
  r.owner = zone;
  r.type = rrtype::kDNSKEY;
  return r;
}

std::string hex(std::span<const std::uint8_t> data) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (std::uint8_t b : data) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

}  // namespace

std::string_view to_string(KeyState s) {
  switch (s) {
    case KeyState::Start:
      return "start";
    case KeyState::AddPend:
      return "addpend";
    case KeyState::Valid:
      return "valid";
    case KeyState::Missing:
      return "missing";
    case KeyState::Revoked:
      return "revoked";
    case KeyState::Removed:
      return "removed";
  }
  return "?";
}

std::optional<KeyState> key_state_from_text(std::string_view t) {
  for (KeyState s : {KeyState::AddPend, KeyState::Valid, KeyState::Missing, KeyState::Revoked,
                     KeyState::Removed})
    if (t == to_string(s)) return s;
  return std::nullopt;  // Start is never stored
}

std::uint16_t ManagedKey::tag() const {
  return key_tag(rdata);
}

std::string base64_encode(std::span<const std::uint8_t> data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const unsigned v = (unsigned{data[i]} << 16) | (unsigned{data[i + 1]} << 8) | data[i + 2];
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63u]);
  }
  const std::size_t rest = data.size() - i;
  if (rest > 0) {
    unsigned v = unsigned{data[i]} << 16;
    if (rest == 2) v |= unsigned{data[i + 1]} << 8;
    out.push_back(kAlphabet[(v >> 18) & 63u]);
    out.push_back(kAlphabet[(v >> 12) & 63u]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63u] : '=');
    out.push_back('=');
  }
  return out;
}

// ---------------------------------------------------------------------------

AnchorTracker AnchorTracker::seed(const TrustAnchors& anchors, AnchorTimings timings,
                                  std::uint64_t now) {
  AnchorTracker t(timings);
  for (const TrustAnchors::Anchor& a : anchors.anchors()) {
    TrustPoint tp;
    tp.zone = a.zone;
    tp.seed_ds = a.ds;
    tp.ttl = a.dnskey.empty() ? a.ds.ttl : a.dnskey.ttl;
    for (auto rd : a.dnskey) {
      ManagedKey k;
      k.rdata.assign(rd.begin(), rd.end());
      k.state = KeyState::Valid;
      k.first_seen = k.changed = now;
      tp.keys.push_back(std::move(k));
    }
    tp.next_refresh = now;
    t.points_.push_back(std::move(tp));
  }
  return t;
}

bool AnchorTracker::adopt_configured(const TrustAnchors& configured, std::uint64_t now) {
  const std::size_t before = points_.size();
  std::erase_if(points_, [&](const TrustPoint& tp) {
    return std::none_of(configured.anchors().begin(), configured.anchors().end(),
                        [&](const TrustAnchors::Anchor& a) { return a.zone == tp.zone; });
  });
  bool changed = points_.size() != before;
  for (const TrustAnchors::Anchor& a : configured.anchors()) {
    if (find(a.zone) != nullptr) continue;
    std::vector<TrustAnchors::Anchor> one{a};
    AnchorTracker fresh = seed(TrustAnchors::from(one), timings_, now);
    points_.push_back(std::move(fresh.points_.front()));
    changed = true;
  }
  return changed;
}

TrustPoint* AnchorTracker::find(const Name& zone) {
  for (TrustPoint& tp : points_)
    if (tp.zone == zone) return &tp;
  return nullptr;
}

std::uint32_t AnchorTracker::floor_seconds() const {
  return std::max<std::uint32_t>(1, std::min(timings_.min_refresh, timings_.add_hold_down));
}

void AnchorTracker::schedule(TrustPoint& tp, std::uint64_t now, std::uint32_t sig_remaining,
                             bool success) {
  // RFC 5011 §2.3: refresh at MAX(1 hour, MIN(15 days, 1/2 OrigTTL,
  // 1/2 RRSigExpirationInterval)); after a failure, retry at MAX(1 hour,
  // MIN(1 day, 1/10 OrigTTL, 1/10 RRSigExpirationInterval)).
  const std::uint32_t div = success ? 2 : 10;
  std::uint32_t interval = std::min(success ? kMaxRefresh : kMaxRetry, tp.ttl / div);
  if (sig_remaining > 0) interval = std::min(interval, sig_remaining / div);
  interval = std::max(interval, floor_seconds());
  std::uint64_t next = now + interval;
  // A pending key is looked at again when its hold-down ends, and a
  // revoked one when it may be removed, rather than up to 15 days later.
  for (const ManagedKey& k : tp.keys) {
    std::uint64_t at = 0;
    if (k.state == KeyState::AddPend)
      at = k.first_seen + std::max<std::uint64_t>(timings_.add_hold_down, tp.ttl);
    else if (k.state == KeyState::Revoked)
      at = k.changed + timings_.remove_hold_down;
    if (at > now) next = std::min(next, at + 1);
  }
  tp.next_refresh = next;
}

RefreshOutcome AnchorTracker::on_dnskeys(const Name& zone, const RRset& keys,
                                         std::span<const std::span<const std::uint8_t>> rrsigs,
                                         std::uint64_t now, const AlgorithmPolicy& policy,
                                         Budget& budget) {
  RefreshOutcome out;
  TrustPoint* tp = find(zone);
  if (tp == nullptr) {
    out.reason = "not a trust point";
    return out;
  }
  Clock clock;
  clock.now = now;
  // §2.2: the set counts only when a key trusted now signed it.
  RRset anchor_keys = dnskey_set(zone);
  for (const ManagedKey& k : tp->keys)
    if (trusted(k.state)) anchor_keys.add_rdata(k.rdata);
  std::vector<std::vector<std::uint8_t>> seeded;  // keys vouched for by the seed DS
  const bool held = std::any_of(tp->keys.begin(), tp->keys.end(),
                                [](const ManagedKey& k) { return trusted(k.state); });
  if (!held && !tp->seed_ds.empty()) {
    for (auto kd : keys) {
      auto k = parse_dnskey(kd);
      if (!k || k->protocol != 3 || !k->zone_key() || k->revoked()) continue;
      for (auto dd : tp->seed_ds) {
        auto d = parse_ds(dd);
        if (!d || d->key_tag != key_tag(kd) || d->algorithm != k->algorithm ||
            !digest_supported(d->digest_type, policy))
          continue;
        auto got = ds_digest(zone, kd, d->digest_type);
        if (got && std::equal(got->begin(), got->end(), d->digest.begin(), d->digest.end())) {
          anchor_keys.add_rdata(kd);
          seeded.emplace_back(kd.begin(), kd.end());
          break;
        }
      }
    }
  }
  const RrsetCheck check = keys.owner == zone && keys.type == rrtype::kDNSKEY
                               ? check_rrset(keys, rrsigs, zone, anchor_keys, clock, policy, budget)
                               : RrsetCheck{};
  // Times written down never go back: a clock set back stamps what it sees
  // with the latest time already seen, so that no hold-down is shortened
  // when the clock comes right again.
  const std::uint64_t stamp = std::max(now, tp->last_success);
  auto move = [&](ManagedKey& k, KeyState to) {
    out.changes.push_back({zone, k.tag(), k.state, to});
    k.state = to;
    k.changed = std::max(k.changed, stamp);
    out.changed = true;
  };
  // §2.1: a key we hold that comes with the REVOKE bit set and its own
  // signature over the set is revoked, whoever else signed the set: only
  // its holder can make that signature.
  auto revocation = [&](std::span<const std::uint8_t> kd, std::size_t i) {
    if (i == tp->keys.size()) return;  // one we never held is of no interest
    ManagedKey& mk = tp->keys[i];
    if (mk.state != KeyState::AddPend && !trusted(mk.state)) return;
    RRset self = dnskey_set(zone);
    self.add_rdata(kd);
    if (check_rrset(keys, rrsigs, zone, self, clock, policy, budget).status != SigStatus::Valid)
      return;
    mk.rdata.assign(kd.begin(), kd.end());
    move(mk, KeyState::Revoked);
  };
  auto find_key = [&](std::span<const std::uint8_t> kd) {
    std::size_t i = 0;
    while (i < tp->keys.size() && !same_key(tp->keys[i].rdata, kd)) ++i;
    return i;
  };
  if (check.status != SigStatus::Valid) {
    if (keys.owner == zone && keys.type == rrtype::kDNSKEY)
      for (auto kd : keys) {
        auto k = parse_dnskey(kd);
        if (k && k->protocol == 3 && k->zone_key() && k->revoked()) revocation(kd, find_key(kd));
      }
    out.reason =
        anchor_keys.empty() ? "no trusted key left" : "DNSKEY set not signed by a trusted key";
    ++tp->failures;
    schedule(*tp, now, 0, false);
    return out;
  }
  out.validated = true;
  tp->failures = 0;
  tp->last_success = std::max(tp->last_success, now);
  // The original TTL of the set, as signed (RFC 5011 §2.4.1's hold-down floor).
  std::uint32_t ttl = keys.ttl;
  std::uint32_t sig_remaining = 0;
  for (auto rd : rrsigs) {
    auto sig = parse_rrsig(rd);
    if (!sig || sig->type_covered != rrtype::kDNSKEY || !(sig->signer == zone)) continue;
    ttl = std::max(ttl, sig->original_ttl);
    const std::uint32_t now32 = static_cast<std::uint32_t>(now & 0xffffffffu);
    if (serial_less(now32, sig->expiration)) {
      const std::uint32_t left = sig->expiration - now32;
      sig_remaining = sig_remaining == 0 ? left : std::min(sig_remaining, left);
    }
  }
  tp->ttl = ttl;

  std::vector<bool> present(tp->keys.size(), false);
  for (auto kd : keys) {
    auto k = parse_dnskey(kd);
    if (!k || k->protocol != 3 || !k->zone_key()) continue;
    const std::size_t i = find_key(kd);
    // Only key-signing keys (SEP) become new anchors (RFC 5011 §2); a
    // configured one without the bit is still followed.
    if (i == tp->keys.size() && !k->sep()) continue;
    if (i < tp->keys.size()) present[i] = true;
    if (k->revoked()) {
      revocation(kd, i);
      continue;
    }
    if (i == tp->keys.size()) {
      ManagedKey nk;
      nk.rdata.assign(kd.begin(), kd.end());
      nk.state = KeyState::Start;
      nk.first_seen = stamp;
      const bool from_seed = std::any_of(seeded.begin(), seeded.end(), [&](const auto& s) {
        return std::equal(s.begin(), s.end(), kd.begin(), kd.end());
      });
      tp->keys.push_back(std::move(nk));
      present.push_back(true);
      // The configured DS vouches for it: it is the anchor, not a new key.
      move(tp->keys.back(), from_seed ? KeyState::Valid : KeyState::AddPend);
      continue;
    }
    ManagedKey& mk = tp->keys[i];
    switch (mk.state) {
      case KeyState::AddPend: {
        // §2.4.1: trusted once the hold-down (at least the set's TTL) has
        // passed since it was first seen.
        const std::uint64_t hold = std::max<std::uint64_t>(timings_.add_hold_down, ttl);
        if (elapsed(mk.first_seen, now) >= hold) move(mk, KeyState::Valid);
        break;
      }
      case KeyState::Missing:
        move(mk, KeyState::Valid);
        break;
      default:  // Valid stays; Revoked and Removed keys are never trusted again
        break;
    }
  }
  for (std::size_t i = 0; i < tp->keys.size(); ++i) {
    ManagedKey& mk = tp->keys[i];
    if (!present[i]) {
      if (mk.state == KeyState::AddPend) {
        move(mk, KeyState::Start);  // gone during the hold-down: forgotten
      } else if (mk.state == KeyState::Valid) {
        move(mk, KeyState::Missing);  // still trusted (§4, "Missing")
      }
    }
    if (mk.state == KeyState::Revoked && elapsed(mk.changed, now) >= timings_.remove_hold_down)
      move(mk, KeyState::Removed);
  }
  std::erase_if(tp->keys, [](const ManagedKey& k) { return k.state == KeyState::Start; });
  if (std::any_of(tp->keys.begin(), tp->keys.end(),
                  [](const ManagedKey& k) { return trusted(k.state); }))
    tp->seed_ds = RRset();  // the keys it vouched for are held now
  schedule(*tp, now, sig_remaining, true);
  return out;
}

void AnchorTracker::on_failure(const Name& zone, std::uint64_t now) {
  if (TrustPoint* tp = find(zone)) {
    ++tp->failures;
    schedule(*tp, now, 0, false);
  }
}

std::vector<Name> AnchorTracker::due(std::uint64_t now) const {
  std::vector<Name> out;
  for (const TrustPoint& tp : points_)
    if (tp.next_refresh <= now) out.push_back(tp.zone);
  return out;
}

std::uint64_t AnchorTracker::next_refresh() const {
  std::uint64_t next = 0;
  for (const TrustPoint& tp : points_)
    if (next == 0 || tp.next_refresh < next) next = tp.next_refresh;
  return next;
}

TrustAnchors AnchorTracker::anchors() const {
  std::vector<TrustAnchors::Anchor> out;
  for (const TrustPoint& tp : points_) {
    TrustAnchors::Anchor a;
    a.zone = tp.zone;
    a.dnskey = dnskey_set(tp.zone);
    a.dnskey.ttl = tp.ttl;
    for (const ManagedKey& k : tp.keys)
      if (trusted(k.state)) a.dnskey.add_rdata(k.rdata);
    a.ds = tp.seed_ds;
    a.ds.owner = tp.zone;
    a.ds.type = rrtype::kDS;
    out.push_back(std::move(a));
  }
  return TrustAnchors::from(std::move(out));
}

// ---------------------------------------------------------------------------
// The state file: presentation-format records, each followed by a comment
// holding its state; a trust point line before its records.

std::string AnchorTracker::to_text() const {
  std::string out(kHeader);
  out +=
      "\n; Written by diode-resolver when a key changes state (RFC 5011); see docs/resolver.md.\n";
  for (const TrustPoint& tp : points_) {
    const std::string zone = tp.zone.to_text();
    out += "; trust-point=" + zone + " ttl=" + std::to_string(tp.ttl) +
           " last-success=" + std::to_string(tp.last_success) +
           " next-refresh=" + std::to_string(tp.next_refresh) +
           " failures=" + std::to_string(tp.failures) + "\n";
    for (auto dd : tp.seed_ds) {
      auto d = parse_ds(dd);
      if (!d) continue;
      out += zone + " " + std::to_string(tp.ttl) + " IN DS " + std::to_string(d->key_tag) + " " +
             std::to_string(d->algorithm) + " " + std::to_string(d->digest_type) + " " +
             hex(d->digest) + " ; seed\n";
    }
    for (const ManagedKey& k : tp.keys) {
      auto v = parse_dnskey(k.rdata);
      if (!v) continue;
      out += zone + " " + std::to_string(tp.ttl) + " IN DNSKEY " + std::to_string(v->flags) + " " +
             std::to_string(v->protocol) + " " + std::to_string(v->algorithm) + " " +
             base64_encode(v->public_key) + " ; state=" + std::string(to_string(k.state)) +
             " tag=" + std::to_string(k.tag()) + " first-seen=" + std::to_string(k.first_seen) +
             " changed=" + std::to_string(k.changed) + "\n";
    }
  }
  return out;
}

namespace {

// "k=v k=v" fields after the ';' of a line; false on a token without '='.
bool parse_fields(std::string_view s,
                  std::vector<std::pair<std::string_view, std::string_view>>& out) {
  std::size_t pos = 0;
  while (pos < s.size()) {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
    if (pos == s.size()) break;
    std::size_t end = pos;
    while (end < s.size() && s[end] != ' ' && s[end] != '\t') ++end;
    const std::string_view tok = s.substr(pos, end - pos);
    const std::size_t eq = tok.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      if (tok == "seed") {
        out.emplace_back(tok, std::string_view());
      } else {
        return false;
      }
    } else {
      out.emplace_back(tok.substr(0, eq), tok.substr(eq + 1));
    }
    pos = end;
  }
  return true;
}

template <class T>
bool number(std::string_view s, T& out) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<AnchorTracker> AnchorTracker::parse(std::string_view text, AnchorTimings timings,
                                                  std::string& error) {
  AnchorTracker t(timings);
  std::size_t line_no = 0;
  bool header = false;
  auto fail = [&](const std::string& what) {
    error = "line " + std::to_string(line_no) + ": " + what;
    return std::nullopt;
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\0') != std::string_view::npos) return fail("NUL character");
    if (!header) {
      if (line != kHeader) return fail("not a diode-resolver trust anchor state file (format 1)");
      header = true;
      continue;
    }
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::size_t semi = line.find(';');
    std::vector<std::pair<std::string_view, std::string_view>> fields;
    if (line.substr(0, semi).find_first_not_of(" \t") == std::string_view::npos) {
      // A comment line: a trust point's, or free text.
      const std::string_view c = line.substr(semi + 1);
      const std::size_t first = c.find_first_not_of(" \t");
      if (first == std::string_view::npos || c.substr(first).rfind("trust-point=", 0) != 0)
        continue;
      if (!parse_fields(c, fields)) return fail("malformed trust point fields");
      TrustPoint tp;
      bool have_zone = false;
      for (const auto& [k, v] : fields) {
        bool ok = true;
        if (k == "trust-point") {
          auto n = Name::from_text(v);
          ok = n.has_value() && !v.empty() && v.back() == '.';
          // Plain host-name characters only: the name is written at the
          // start of record lines, where ';' or '(' would mean something.
          if (ok)
            for (char ch : n->to_text())
              if (!(std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' ||
                    ch == '.'))
                return fail("unusual characters in the trust point name");
          if (ok) tp.zone = *n;
          have_zone = ok;
        } else if (k == "ttl") {
          ok = number(v, tp.ttl);
        } else if (k == "last-success") {
          ok = number(v, tp.last_success);
        } else if (k == "next-refresh") {
          ok = number(v, tp.next_refresh);
        } else if (k == "failures") {
          ok = number(v, tp.failures);
        } else {
          return fail("unknown trust point field '" + std::string(k) + "'");
        }
        if (!ok) return fail("bad value for '" + std::string(k) + "'");
      }
      if (!have_zone) return fail("trust point without a zone");
      if (t.find(tp.zone) != nullptr) return fail("trust point " + tp.zone.to_text() + " twice");
      tp.seed_ds.owner = tp.zone;
      tp.seed_ds.type = rrtype::kDS;
      t.points_.push_back(std::move(tp));
      continue;
    }
    if (semi == std::string_view::npos) return fail("record without its state comment");
    if (!parse_fields(line.substr(semi + 1), fields)) return fail("malformed state fields");
    ZoneText z = parse_zone_text(line.substr(0, semi));
    if (!z.errors.empty()) return fail(z.errors.front().message);
    if (z.records.size() != 1) return fail("expected one record");
    const TextRecord& r = z.records.front();
    if (r.rclass != rrclass::kIN) return fail("class must be IN");
    TrustPoint* tp = t.find(r.owner);
    if (tp == nullptr)
      return fail("record of " + r.owner.to_text() + " before its trust point line");
    if (r.type == rrtype::kDS) {
      if (fields.size() != 1 || fields.front().first != "seed")
        return fail("a DS line must say 'seed'");
      if (!parse_ds(r.rdata) || !tp->seed_ds.add_rdata(r.rdata)) return fail("malformed DS");
      continue;
    }
    if (r.type != rrtype::kDNSKEY) return fail("only DNSKEY and DS records belong here");
    auto v = parse_dnskey(r.rdata);
    if (!v || v->protocol != 3 || !v->zone_key()) return fail("not a DNSSEC zone key");
    ManagedKey k;
    k.rdata = r.rdata;
    bool have_state = false, have_seen = false, have_changed = false;
    for (const auto& [f, val] : fields) {
      bool ok = true;
      if (f == "state") {
        auto s = key_state_from_text(val);
        ok = s.has_value();
        if (ok) k.state = *s;
        have_state = ok;
      } else if (f == "tag") {
        std::uint16_t tag = 0;
        ok = number(val, tag) && tag == k.tag();
        if (!ok) return fail("tag does not match the key");
      } else if (f == "first-seen") {
        ok = have_seen = number(val, k.first_seen);
      } else if (f == "changed") {
        ok = have_changed = number(val, k.changed);
      } else {
        return fail("unknown key field '" + std::string(f) + "'");
      }
      if (!ok) return fail("bad value for '" + std::string(f) + "'");
    }
    if (!have_state || !have_seen || !have_changed)
      return fail("a key needs state, first-seen and changed");
    if (v->revoked() != (k.state == KeyState::Revoked || k.state == KeyState::Removed))
      return fail("the REVOKE bit and the state disagree");
    for (const ManagedKey& o : tp->keys)
      if (same_key(o.rdata, k.rdata)) return fail("the same key twice");
    tp->keys.push_back(std::move(k));
  }
  if (!header) {
    line_no = 1;
    return fail("empty file");
  }
  if (t.points_.empty()) return fail("no trust point");
  for (const TrustPoint& tp : t.points_)
    if (tp.keys.empty() && tp.seed_ds.empty())
      return fail("trust point " + tp.zone.to_text() + " has no key");
  return t;
}

}  // namespace diode::resolver::dnssec

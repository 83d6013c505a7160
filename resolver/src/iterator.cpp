#include "diode/resolver/iterator.hpp"

#include <algorithm>
#include <array>

namespace diode::resolver {

namespace {

using platform::Family;
using platform::IpAddress;
using std::chrono::milliseconds;

std::optional<Name> rdata_name(std::span<const std::uint8_t> rdata) {
  return Name::from_wire(rdata);
}

const RRset* find_set(const std::vector<RRset>& sets, const Name& owner, std::uint16_t type) {
  for (const RRset& r : sets) {
    if (r.type == type && r.owner == owner) return &r;
  }
  return nullptr;
}

// Keeps only RRsets owned by `zone` or names below it: the answering server
// has no authority for anything else (bailiwick rule, RFC 2181 §5.4.1).
unsigned scrub(std::vector<RRset>& sets, const Name& zone) {
  const auto keep_end = std::remove_if(sets.begin(), sets.end(), [&](const RRset& r) {
    return !r.owner.is_subdomain_of(zone) || r.rclass != rrclass::kIN;
  });
  const auto dropped = static_cast<unsigned>(sets.end() - keep_end);
  sets.erase(keep_end, sets.end());
  return dropped;
}

std::string zone_key(const Name& zone) { return zone.lowered().to_text(); }

// The SOA as a negative answer carries it: TTL no more than its MINIMUM
// (RFC 2308 §5), so the answer is not kept longer than the denial, and
// within the cache's limits for negative answers.
RRset negative_soa(const RRset& soa, const Cache& cache) {
  RRset out = soa;
  if (!soa.empty()) {
    if (const auto minimum = soa_minimum(*soa.begin())) out.ttl = std::min(out.ttl, *minimum);
  }
  out.ttl = cache.clamp_negative_ttl(out.ttl);
  return out;
}

// A record from a response as the client gets it: with the TTL the cache
// keeps it for (min_ttl, max_ttl), so the first answer says what later
// ones from the cache will.
RRset clamped(const RRset& r, const Cache& cache) {
  RRset out = r;
  out.ttl = cache.clamp_ttl(r.ttl);
  return out;
}

enum class Substitution : std::uint8_t { Ok, TooLong, Bad };

// RFC 6672 §2.2: the labels of `name` below the DNAME's owner, put in front
// of the DNAME's target. TooLong when the new name would pass 255 octets.
Substitution substitute(const Name& name, const RRset& dname, Name& out) {
  if (dname.empty()) return Substitution::Bad;
  const auto target = rdata_name(*dname.begin());
  if (!target) return Substitution::Bad;
  std::array<std::span<const std::uint8_t>, kMaxLabels> labels{};
  std::size_t n = 0;
  for (const auto label : name.labels()) labels[n++] = label;
  out = *target;
  for (std::size_t i = name.label_count() - dname.owner.label_count(); i-- > 0;) {
    if (!out.prepend_label(labels[i])) return Substitution::TooLong;
  }
  return Substitution::Ok;
}

// The closest DNAME in `sets` owned by an ancestor of `name`: a DNAME
// redirects the names below its owner, not the owner (RFC 6672 §2.3).
const RRset* dname_above(const std::vector<RRset>& sets, const Name& name) {
  const RRset* best = nullptr;
  for (const RRset& r : sets) {
    if (r.type != rrtype::kDNAME || r.empty() || name.label_count() <= r.owner.label_count() ||
        !name.is_subdomain_of(r.owner)) {
      continue;
    }
    if (best == nullptr || r.owner.label_count() > best->owner.label_count()) best = &r;
  }
  return best;
}

bool is_letter(std::uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

bool is_documentation_address(const IpAddress& a) {
  const IpAddress u = a.unmapped();
  if (u.family == Family::V4) {
    const std::uint32_t v = u.v4_value() & 0xffffff00U;
    return v == 0xc0000200U || v == 0xc6336400U || v == 0xcb007100U;
  }
  return u.bytes[0] == 0x20 && u.bytes[1] == 0x01 && u.bytes[2] == 0x0d && u.bytes[3] == 0xb8;
}

bool may_query_server(const IpAddress& addr, const IteratorSettings& s) {
  const IpAddress a = addr.unmapped();
  if (a.is_loopback() || a.is_unspecified() || a.is_link_local()) return false;
  if (a.family == Family::V4) {
    const std::uint32_t v = a.v4_value();
    if ((v & 0xf0000000U) == 0xe0000000U || v == 0xffffffffU) return false;  // multicast, broadcast
  } else if (a.bytes[0] == 0xff) {
    return false;  // multicast
  }
  if (is_documentation_address(a) && !s.query_documentation_addresses) return false;
  if (s.refused_networks) {
    for (const platform::Prefix& p : *s.refused_networks) {
      if (p.contains(a) || p.contains(addr)) return false;
    }
  }
  return true;
}

std::vector<platform::Prefix> refused_server_networks(const platform::GatewayConfig& cfg) {
  std::vector<platform::Prefix> out = platform::internal_networks(cfg);
  for (const IpAddress& a : platform::gateway_addresses(cfg)) {
    const platform::Prefix host{a, static_cast<unsigned>(a.bits())};
    if (std::find(out.begin(), out.end(), host) == out.end()) out.push_back(host);
  }
  return out;
}

bool response_matches(const Message& m, const Outgoing& q) {
  const Header& h = m.header();
  if (!h.qr || h.opcode != 0 || !m.question()) return false;
  const Question& got = *m.question();
  return got.qtype == q.qtype && got.qclass == q.qclass && got.qname.equals_exact(q.qname);
}

// ---------------------------------------------------------------- Infra

milliseconds Infra::srtt(const IpAddress& a) const {
  auto it = servers_.find(a);
  return it == servers_.end() ? kUnknownRtt : it->second.srtt;
}

milliseconds Infra::timeout_for(const IpAddress& a, milliseconds cap) const {
  auto it = servers_.find(a);
  if (it == servers_.end()) return cap;
  // The floor keeps a slow answer from a fast server from being missed.
  milliseconds t = std::max(milliseconds{250}, it->second.srtt * 3);
  for (unsigned i = 0; i < it->second.timeouts && t < cap; ++i) t *= 2;
  return std::min(t, cap);
}

void Infra::on_response(const IpAddress& a, milliseconds rtt) {
  if (servers_.size() >= kMaxServers && !servers_.contains(a)) servers_.clear();
  Entry& e = servers_[a];
  // RFC 6298-style smoothing: 7/8 old, 1/8 new; the first sample replaces the guess.
  e.srtt = e.timeouts == 0 && e.srtt == kUnknownRtt ? rtt : (e.srtt * 7 + rtt) / 8;
  e.timeouts = 0;
}

void Infra::on_timeout(const IpAddress& a, milliseconds timeout) {
  if (servers_.size() >= kMaxServers && !servers_.contains(a)) servers_.clear();
  Entry& e = servers_[a];
  // A silent server's SRTT grows so that every other server is preferred.
  e.srtt = std::min(std::max(e.srtt, timeout) * 2, milliseconds{120000});
  e.timeouts = std::min(e.timeouts + 1, 16U);
}

void Infra::mark_lame(const IpAddress& a, const Name& zone, Time now) {
  if (servers_.size() >= kMaxServers && !servers_.contains(a)) servers_.clear();
  auto& lame = servers_[a].lame_until;
  if (lame.size() > 64) lame.clear();
  lame[zone_key(zone)] = now + kLameTime;
}

bool Infra::is_lame(const IpAddress& a, const Name& zone, Time now) const {
  auto it = servers_.find(a);
  if (it == servers_.end()) return false;
  auto z = it->second.lame_until.find(zone_key(zone));
  return z != it->second.lame_until.end() && now < z->second;
}

// ---------------------------------------------------------------- Resolution

Resolution::Resolution(const Question& q, Cache& cache, Infra& infra, const RootHints& hints,
                       const IteratorSettings& settings, Random random)
    : question_(q), cache_(cache), infra_(infra), hints_(hints), settings_(settings),
      random_(std::move(random)) {}

Resolution::Step Resolution::start(Time now) {
  Frame top;
  top.qname = question_.qname;
  top.qtype = question_.qtype;
  top.skip_cache = settings_.refresh;
  frames_.push_back(std::move(top));
  if (!settings_.refresh && answer_from_cache(frames_.back(), now)) {
    return advance(now);
  }
  // Priming (RFC 8109): the hints may be old; ask a root server for the
  // current root NS set before relying on it.
  const auto root = cache_.find_rrset(Name{}, rrtype::kNS, rrclass::kIN, now);
  if (!root || root->trust < Trust::AnswerNonAuth) {
    Frame prime;
    prime.qname = Name{};
    prime.qtype = rrtype::kNS;
    prime.is_prime = true;
    frames_.push_back(std::move(prime));
    ++work_.primes;
  }
  return advance(now);
}

Name Resolution::randomise_case(const Name& n) {
  if (!settings_.use_0x20) return n;
  std::array<std::uint8_t, kMaxNameLength> buf{};
  const auto w = n.wire();
  std::copy(w.begin(), w.end(), buf.begin());
  std::uint32_t bits = 0;
  unsigned left = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (!is_letter(buf[i])) continue;
    if (left == 0) {
      bits = random_();
      left = 32;
    }
    buf[i] = static_cast<std::uint8_t>((buf[i] & ~0x20U) | ((bits & 1U) << 5));
    bits >>= 1;
    --left;
  }
  // Length octets are below 64 and never letters: only label bytes changed.
  auto out = Name::from_wire(std::span<const std::uint8_t>(buf.data(), w.size()));
  return out ? *out : n;
}

Name Resolution::sent_name(const Frame& f) const {
  if (f.qmin_labels == 0 || f.qmin_labels >= f.qname.label_count()) return f.qname;
  return f.qname.suffix(f.qmin_labels);
}

void Resolution::finish(Frame& f, std::uint16_t rc, std::string reason) {
  f.done = true;
  f.result.rcode = rc;
  if (!reason.empty()) f.result.reason = std::move(reason);
}

void Resolution::fail_all(std::string reason) {
  frames_.clear();
  outcome_ = Outcome{};
  outcome_.rcode = rcode::kServFail;
  outcome_.reason = std::move(reason);
}

bool Resolution::follow_cname(Frame& f, const RRset& cname, const Name& target) {
  if (work_.cnames >= settings_.max_cname_chain) {
    finish(f, rcode::kServFail, "cname chain longer than max_cname_chain");
    return false;
  }
  for (const RRset& r : f.chain) {
    if (r.type == rrtype::kCNAME && r.owner == target) {
      finish(f, rcode::kServFail, "cname loop at " + target.to_text());
      return false;
    }
  }
  if (target == question_.qname || target == f.qname) {
    finish(f, rcode::kServFail, "cname loop at " + target.to_text());
    return false;
  }
  ++work_.cnames;
  f.chain.push_back(cname);
  f.qname = target;
  f.has_cut = false;
  f.qmin_labels = 0;
  return true;
}

bool Resolution::follow_dname(Frame& f, const RRset& dname) {
  Name target;
  switch (substitute(f.qname, dname, target)) {
    case Substitution::Bad:
      finish(f, rcode::kServFail, "bad dname");
      return false;
    case Substitution::TooLong:
      f.result.answer = f.chain;
      f.result.answer.push_back(dname);
      finish(f, rcode::kYxDomain);
      return false;
    case Substitution::Ok:
      break;
  }
  f.chain.push_back(dname);
  RRset synth;  // RFC 6672 §3.3: the CNAME lives as long as its DNAME
  synth.owner = f.qname;
  synth.type = rrtype::kCNAME;
  synth.ttl = dname.ttl;
  (void)synth.add_rdata(target.wire());
  return follow_cname(f, synth, target);
}

bool Resolution::answer_from_cache(Frame& f, Time now) {
  const Trust min_trust = f.is_ns_lookup ? Trust::Glue : Trust::AnswerNonAuth;
  // DNSSEC: the client's question is answered only from RRsets whose
  // security is known (any, under CD); name server addresses and priming
  // are the iterator's own business and are not validated.
  const bool validated = settings_.dnssec && &f == &frames_.front() && !f.is_ns_lookup &&
                         !f.is_prime;
  const bool cd = validated && settings_.checking_disabled;
  auto usable = [&](const Cache::RRsetHit& h) {
    if (!validated || cd) return true;
    return h.security == RRsetSecurity::Secure || h.security == RRsetSecurity::Insecure;
  };
  // Each cached link of a validated answer, with its RRSIGs, for the
  // validator (when the chain goes on upstream) and for clients with DO.
  auto keep_link = [&](const Cache::RRsetHit& h) {
    if (!validated) return;
    if (h.security != RRsetSecurity::Secure) f.cached_security = RRsetSecurity::Insecure;
    f.result.sec_answer.push_back(*h.rrset);
    f.result.sec_answer.back().ttl = h.ttl;
    if (h.sigs != nullptr && !h.sigs->empty()) {
      f.result.sec_answer.push_back(*h.sigs);
      f.result.sec_answer.back().ttl = h.ttl;
    }
  };
  for (unsigned guard = 0; guard <= settings_.max_cname_chain + 1; ++guard) {
    // A cached DNAME above the name synthesises the answer's CNAME. Looked
    // for only while the cache holds a DNAME at all (rare), so that names
    // not below one cost no extra lookups.
    if (cache_.holds_dname()) {
      std::optional<RRset> dname;
      for (Name n = f.qname; !n.is_root() && !dname;) {
        n = n.parent();
        if (auto d = cache_.find_rrset(n, rrtype::kDNAME, rrclass::kIN, now);
            d && d->trust >= Trust::AnswerNonAuth) {
          if (!usable(*d)) return false;  // ask upstream, where it is signed
          keep_link(*d);
          dname = *d->rrset;
          dname->ttl = d->ttl;
        }
      }
      if (dname) {
        if (!follow_dname(f, *dname)) return true;
        continue;
      }
    }
    if (auto hit = cache_.find_rrset(f.qname, f.qtype, rrclass::kIN, now);
        hit && hit->trust >= min_trust && usable(*hit)) {
      keep_link(*hit);
      f.result.answer = f.chain;
      f.result.answer.push_back(*hit->rrset);
      f.result.answer.back().ttl = hit->ttl;
      if (validated && !cd && f.all_cached) {
        f.result.security = f.cached_security == RRsetSecurity::Secure
                                ? Outcome::Security::Secure
                                : Outcome::Security::Insecure;
      }
      finish(f, rcode::kNoError);
      return true;
    }
    if (f.qtype != rrtype::kCNAME) {
      if (auto c = cache_.find_rrset(f.qname, rrtype::kCNAME, rrclass::kIN, now);
          c && c->trust >= Trust::AnswerNonAuth && !c->rrset->empty() && usable(*c)) {
        keep_link(*c);
        const auto target = rdata_name(*c->rrset->begin());
        RRset copy = *c->rrset;
        copy.ttl = c->ttl;
        if (!target || !follow_cname(f, copy, *target)) {
          if (!f.done) finish(f, rcode::kServFail, "bad cached cname");
          return true;
        }
        continue;
      }
    }
    // A cached negative answer keeps no proof: a validated question goes
    // upstream (or to the aggressive denial cache, before the iterator).
    if (validated) return false;
    if (auto neg = cache_.find_negative(f.qname, f.qtype, rrclass::kIN, now)) {
      f.result.answer = f.chain;
      RRset soa = *neg->soa;
      soa.ttl = neg->ttl;
      f.result.authority.push_back(std::move(soa));
      finish(f, neg->kind == NegativeKind::NxDomain ? rcode::kNxDomain : rcode::kNoError);
      return true;
    }
    return false;
  }
  finish(f, rcode::kServFail, "cname chain longer than max_cname_chain");
  return true;
}

bool Resolution::add_address(Frame& f, std::uint16_t type, std::span<const std::uint8_t> rdata) {
  IpAddress a;
  if (type == rrtype::kA && rdata.size() == 4) {
    a.family = Family::V4;
  } else if (type == rrtype::kAAAA && rdata.size() == 16) {
    a.family = Family::V6;
  } else {
    return false;
  }
  std::copy(rdata.begin(), rdata.end(), a.bytes.begin());
  // A name server record must not turn the resolver against the gateway
  // itself or the LAN behind it.
  if (!may_query_server(a, settings_)) return false;
  const bool known = std::any_of(f.addrs.begin(), f.addrs.end(),
                                 [&](const ServerAddr& s) { return s.addr == a; });
  if (known) return false;
  f.addrs.push_back(ServerAddr{a, false, 0});
  return true;
}

void Resolution::add_addresses(Frame& f, const Name& ns, Time now) {
  for (const std::uint16_t type : {rrtype::kA, rrtype::kAAAA}) {
    if (type == rrtype::kAAAA && !settings_.use_ipv6) continue;
    auto hit = cache_.find_rrset(ns, type, rrclass::kIN, now);
    if (!hit) continue;
    for (const auto rdata : *hit->rrset) (void)add_address(f, type, rdata);
  }
}

// The last resort before a cut is given up: the addresses the parent's
// referral gave as glue, when the child's own records (which replaced
// them) or the resolution of the NS names led nowhere. True when it added
// an address not tried yet.
bool Resolution::add_parent_glue(Frame& f, Time now) {
  f.parent_glue_tried = true;
  bool added = false;
  for (const std::uint16_t type : {rrtype::kA, rrtype::kAAAA}) {
    if (type == rrtype::kAAAA && !settings_.use_ipv6) continue;
    auto hit = cache_.find_parent_glue(f.zone, type, now);
    if (!hit) continue;
    for (const auto rdata : *hit->rrset) added = add_address(f, type, rdata) || added;
  }
  return added;
}

void Resolution::find_cut(Frame& f, Time now) {
  Name n = f.qname;
  if (f.qtype == rrtype::kDS && !n.is_root()) n = n.parent();  // DS lives in the parent
  std::optional<Cache::RRsetHit> hit;
  for (std::size_t guard = 0; guard <= kMaxLabels; ++guard) {
    hit = cache_.find_rrset(n, rrtype::kNS, rrclass::kIN, now);
    if (hit || n.is_root()) break;
    n = n.parent();
  }
  if (!hit) {
    // Install the root hints, at the lowest trust so priming replaces them.
    RRset ns;
    ns.type = rrtype::kNS;
    ns.ttl = hints_.ns_ttl;
    for (const RootServer& s : hints_.servers) {
      (void)ns.add_rdata(s.name.wire());
      RRset a4, a6;
      a4.owner = a6.owner = s.name;
      a4.type = rrtype::kA;
      a6.type = rrtype::kAAAA;
      a4.ttl = a6.ttl = hints_.ns_ttl;
      for (const IpAddress& addr : s.addresses) {
        if (addr.family == Family::V4) {
          (void)a4.add_rdata(std::span<const std::uint8_t>(addr.bytes.data(), 4));
        } else {
          (void)a6.add_rdata(std::span<const std::uint8_t>(addr.bytes.data(), 16));
        }
      }
      (void)cache_.insert_rrset(a4, Trust::Hints, now);
      (void)cache_.insert_rrset(a6, Trust::Hints, now);
    }
    (void)cache_.insert_rrset(ns, Trust::Hints, now);
    n = Name{};
    hit = cache_.find_rrset(n, rrtype::kNS, rrclass::kIN, now);
    if (!hit) {
      finish(f, rcode::kServFail, "no root hints");
      return;
    }
  }
  f.zone = n;
  f.ns_names.clear();
  f.ns_state.clear();
  f.addrs.clear();
  f.ns_lookups = 0;
  f.parent_glue_tried = false;
  const RRset ns = *hit->rrset;  // copy: add_addresses may touch the cache's LRU
  for (const auto rdata : ns) {
    auto name = rdata_name(rdata);
    if (!name) continue;
    const std::size_t before = f.addrs.size();
    add_addresses(f, *name, now);
    f.ns_names.push_back(*name);
    f.ns_state.push_back(f.addrs.size() != before ? 2 : 0);
  }
  f.has_cut = true;
  f.qmin_labels = 0;
  if (settings_.qname_minimisation && !f.is_ns_lookup && !f.is_prime &&
      f.qname.label_count() > f.zone.label_count() + 1) {
    f.qmin_labels = f.zone.label_count() + 1;
  }
}

bool Resolution::pick_server(Frame& f, Time now) {
  ServerAddr* best = nullptr;
  milliseconds best_rtt{};
  for (ServerAddr& s : f.addrs) {
    if (s.failed || s.timeouts >= kMaxTimeoutsPerServer || infra_.is_lame(s.addr, f.zone, now)) {
      continue;
    }
    // A little jitter spreads load over servers of equal speed.
    const milliseconds rtt = infra_.srtt(s.addr) + milliseconds{random_() % 8};
    if (best == nullptr || rtt < best_rtt) {
      best = &s;
      best_rtt = rtt;
    }
  }
  if (best == nullptr) return false;
  out_.server = best->addr;
  out_.qname = randomise_case(sent_name(f));
  out_.qtype = f.qmin_labels != 0 && f.qmin_labels < f.qname.label_count() ? rrtype::kA : f.qtype;
  out_.qclass = rrclass::kIN;
  out_.tcp = false;
  out_.dnssec_ok = settings_.dnssec;
  out_.timeout = infra_.timeout_for(best->addr, settings_.upstream_timeout);
  return true;
}

void Resolution::mark_failed(Frame& f, bool timeout) {
  for (ServerAddr& s : f.addrs) {
    if (s.addr != out_.server) continue;
    if (timeout) {
      ++s.timeouts;
    } else {
      s.failed = true;
    }
  }
}

bool Resolution::push_ns_lookup(Frame& f) {
  if (frames_.size() > settings_.max_nesting) return false;
  // Every name's A first; AAAA (for IPv6-only servers) only after that.
  for (std::uint8_t phase = 0; phase < (settings_.use_ipv6 ? 2 : 1); ++phase) {
    for (std::size_t i = 0; i < f.ns_names.size(); ++i) {
      if (f.ns_state[i] != phase) continue;
      f.ns_state[i] = static_cast<std::uint8_t>(settings_.use_ipv6 ? phase + 1 : 2);
      // Per cut, and for the whole client question: glueless referrals whose
      // NS names need more glueless referrals must not multiply (NXNSAttack).
      if (f.ns_lookups >= settings_.max_ns_names_resolved ||
          work_.ns_names_resolved >= settings_.max_ns_names_resolved * kNsLookupsPerQuestion) {
        return false;
      }
      const Name target = f.ns_names[i];
      const std::uint16_t type = phase == 0 ? rrtype::kA : rrtype::kAAAA;
      // A name server whose address needs the zone being resolved: a loop.
      const bool on_stack = std::any_of(frames_.begin(), frames_.end(), [&](const Frame& o) {
        return o.qname == target && o.qtype == type;
      });
      if (on_stack) continue;
      ++f.ns_lookups;
      ++work_.ns_names_resolved;
      Frame sub;
      sub.qname = target;
      sub.qtype = type;
      sub.is_ns_lookup = true;
      frames_.push_back(std::move(sub));  // invalidates f
      return true;
    }
  }
  return false;
}

Resolution::Step Resolution::advance(Time now) {
  for (unsigned guard = 0; guard < 10000; ++guard) {
    if (frames_.empty()) return Step::Done;
    Frame& f = frames_.back();
    if (f.done) {
      Frame child = std::move(f);
      frames_.pop_back();
      if (frames_.empty()) {
        outcome_ = std::move(child.result);
        return Step::Done;
      }
      Frame& parent = frames_.back();
      if (child.is_ns_lookup && child.result.rcode == rcode::kNoError) {
        add_addresses(parent, child.qname, now);
        // The chain may have ended at another name (a CNAME'd NS, tolerated).
        if (!child.result.answer.empty()) add_addresses(parent, child.result.answer.back().owner, now);
      }
      continue;
    }
    if (!f.has_cut) {
      // Validated questions: only RRsets of known security (answer_from_cache).
      if (!f.skip_cache && answer_from_cache(f, now)) continue;
      f.skip_cache = false;
      find_cut(f, now);
      if (f.done) continue;
    }
    if (pick_server(f, now)) {
      if (work_.upstream_queries >= settings_.max_upstream_queries) {
        fail_all("work budget spent (max_upstream_queries)");
        return Step::Done;
      }
      ++work_.upstream_queries;
      return Step::Send;
    }
    if (push_ns_lookup(f)) continue;
    if (!f.parent_glue_tried && add_parent_glue(f, now)) continue;
    finish(f, rcode::kServFail, "no usable server for zone " + f.zone.to_text());
  }
  fail_all("iterator step guard");
  return Step::Done;
}

Resolution::Step Resolution::on_timeout(Time now) {
  if (frames_.empty()) return Step::Done;
  ++work_.timeouts;
  infra_.on_timeout(out_.server, out_.timeout);
  mark_failed(frames_.back(), true);
  return advance(now);
}

Resolution::Step Resolution::on_response(std::span<const std::uint8_t> wire, milliseconds rtt,
                                         Time now) {
  if (frames_.empty()) return Step::Done;
  Frame& f = frames_.back();
  Message m;
  if (!m.parse(wire).ok() || !response_matches(m, out_)) {
    // Garbage from the server we asked: try another one.
    infra_.on_response(out_.server, rtt);
    mark_failed(f, false);
    return advance(now);
  }
  infra_.on_response(out_.server, rtt);
  if (m.header().tc) {
    if (!out_.tcp) {
      // RFC 1035 §4.2.1 / RFC 7766 §5: ask the same server again over TCP.
      if (work_.upstream_queries >= settings_.max_upstream_queries) {
        fail_all("work budget spent (max_upstream_queries)");
        return Step::Done;
      }
      ++work_.upstream_queries;
      out_.tcp = true;
      return Step::Send;
    }
    mark_failed(f, false);
    return advance(now);
  }
  handle_response(f, m, now);
  return advance(now);
}

void Resolution::take_referral(Frame& f, const RRset& ns, const std::vector<RRset>& additional,
                               Trust trust, Time now) {
  ++f.referrals;
  ++work_.referrals;
  if (f.referrals > settings_.max_referral_depth) {
    finish(f, rcode::kServFail, "referral depth above max_referral_depth");
    return;
  }
  (void)cache_.insert_rrset(ns, trust, now);
  // Glue: only addresses of this NS set's names, and (already scrubbed)
  // only names inside the zone of the server that sent them. A referral's
  // glue is also kept as the parent's, apart (add_parent_glue).
  std::array<RRset, 2> parent_side;  // A, AAAA
  for (std::size_t i = 0; i < parent_side.size(); ++i) {
    parent_side[i].owner = ns.owner;
    parent_side[i].type = i == 0 ? rrtype::kA : rrtype::kAAAA;
    parent_side[i].ttl = ns.ttl;
  }
  for (const auto rdata : ns) {
    auto name = rdata_name(rdata);
    if (!name) continue;
    for (RRset& side : parent_side) {
      const RRset* g = find_set(additional, *name, side.type);
      if (g == nullptr) continue;
      (void)cache_.insert_rrset(*g, Trust::Glue, now);
      for (const auto addr : *g) (void)side.add_rdata(addr);
      side.ttl = std::min(side.ttl, g->ttl);
    }
  }
  if (trust == Trust::Authority) {
    for (const RRset& side : parent_side) cache_.insert_parent_glue(ns.owner, side, now);
  }
  f.has_cut = false;
  // find_cut sees the new NS set first (it is the closest cut), unless a
  // better-trusted one was already cached, which is then the one to use.
  find_cut(f, now);
}

void Resolution::handle_response(Frame& f, const Message& m, Time now) {
  const std::uint16_t rc = m.rcode();
  const IpAddress server = out_.server;
  // YXDOMAIN answers too, when it carries the DNAME whose substitution
  // would be too long (RFC 6672 §2.2); any other error is a failed server.
  const bool yx = rc == rcode::kYxDomain;
  if (rc != rcode::kNoError && rc != rcode::kNxDomain && !yx) {
    if (rc == rcode::kRefused) infra_.mark_lame(server, f.zone, now);
    mark_failed(f, false);
    return;
  }
  std::vector<RRset> ans, auth, add;
  (void)collect_rrsets(m, Section::Answer, ans);
  (void)collect_rrsets(m, Section::Authority, auth);
  (void)collect_rrsets(m, Section::Additional, add);
  // An NS set for a zone that is not below the one asked (the root's, a
  // sibling's): an upward or sideways referral. Seen before scrubbing drops it.
  const bool upward = std::any_of(auth.begin(), auth.end(), [&](const RRset& r) {
    return r.type == rrtype::kNS && !r.owner.is_subdomain_of(f.zone);
  });
  work_.scrubbed += scrub(ans, f.zone) + scrub(auth, f.zone) + scrub(add, f.zone);
  if (yx && dname_above(ans, f.qname) == nullptr) {
    mark_failed(f, false);
    return;
  }
  const bool aa = m.header().aa;
  const Trust answer_trust = aa ? Trust::Answer : Trust::AnswerNonAuth;
  f.all_cached = false;
  // DNSSEC: answer RRsets are cached with their RRSIGs.
  auto sigs_of = [&](const RRset& r) {
    return settings_.dnssec ? find_set(ans, r.owner, rrtype::kRRSIG) : nullptr;
  };
  const Name sent = sent_name(f);
  // For the validator: what this response contributed to the top frame's
  // outcome, with the signatures of its owners and the authority section's
  // denial records (kept when the response ends or extends the chain).
  const bool keep_sec = settings_.dnssec && frames_.size() == 1 && !f.is_prime;
  bool contributed = false;
  auto keep_answer = [&](const RRset& r) {
    if (!keep_sec) return;
    contributed = true;
    f.result.sec_answer.push_back(r);
    if (const RRset* sig = find_set(ans, r.owner, rrtype::kRRSIG)) {
      const bool have = std::any_of(f.result.sec_answer.begin(), f.result.sec_answer.end(),
                                    [&](const RRset& o) {
                                      return o.type == rrtype::kRRSIG && o.owner == r.owner;
                                    });
      if (!have) f.result.sec_answer.push_back(*sig);
    }
  };
  struct KeepAuthority {
    const bool& keep;
    const bool& contributed;
    Frame& f;
    const std::vector<RRset>& auth;
    ~KeepAuthority() {
      if (!keep || (!contributed && !f.done)) return;
      for (const RRset& r : auth) {
        if (r.type == rrtype::kNS) continue;
        const bool have = std::any_of(
            f.result.sec_authority.begin(), f.result.sec_authority.end(),
            [&](const RRset& o) { return o.type == r.type && o.owner == r.owner; });
        if (!have) f.result.sec_authority.push_back(r);
      }
    }
  } keep_authority{keep_sec, contributed, f, auth};

  auto find_referral = [&](const Name& name) -> const RRset* {
    for (const RRset& r : auth) {
      if (r.type == rrtype::kNS && r.owner.label_count() > f.zone.label_count() &&
          name.is_subdomain_of(r.owner)) {
        return &r;
      }
    }
    return nullptr;
  };
  auto find_soa = [&](const Name& name) -> const RRset* {
    for (const RRset& r : auth) {
      if (r.type == rrtype::kSOA && name.is_subdomain_of(r.owner)) return &r;
    }
    return nullptr;
  };

  if (upward && rc == rcode::kNoError && ans.empty() && find_soa(sent) == nullptr) {
    // No answer and no denial, but a referral up or sideways: the server
    // does not serve the zone, AA or not (a lame server, not NODATA).
    infra_.mark_lame(server, f.zone, now);
    mark_failed(f, false);
    return;
  }

  if (sent.label_count() < f.qname.label_count() && dname_above(ans, sent) == nullptr) {
    // A minimised query (RFC 9156 §3); a DNAME above it rewrites the whole
    // name at once, below.
    if (rc == rcode::kNxDomain) {
      // Nothing exists below a name that does not exist (RFC 8020).
      const RRset* soa = find_soa(sent);
      if (soa != nullptr) {
        (void)cache_.insert_negative(f.qname, f.qtype, rrclass::kIN, NegativeKind::NxDomain, *soa,
                                     now);
        f.result.authority.push_back(negative_soa(*soa, cache_));
      }
      f.result.answer = f.chain;
      finish(f, rcode::kNxDomain);
      return;
    }
    if (const RRset* ref = find_referral(sent)) {
      take_referral(f, *ref, add, Trust::Authority, now);
      return;
    }
    if (const RRset* ns = find_set(ans, sent, rrtype::kNS); ns != nullptr && aa) {
      take_referral(f, *ns, add, answer_trust, now);
      return;
    }
    // No cut at this label: expose one more (RFC 9156 §3, step 5).
    ++f.qmin_labels;
    if (f.qmin_labels >= f.qname.label_count()) f.qmin_labels = 0;
    return;
  }

  // The whole name: follow the answer's chain as far as this response goes.
  for (unsigned guard = 0; guard <= settings_.max_cname_chain + 1; ++guard) {
    // A DNAME above the name first (RFC 6672 §3.2): the CNAME the server
    // synthesised from it is replaced by the resolver's own and never cached
    // alone, so that every answer for a name below it carries the DNAME.
    if (const RRset* dname = dname_above(ans, f.qname)) {
      keep_answer(*dname);
      (void)cache_.insert_rrset(*dname, answer_trust, now, sigs_of(*dname));
      if (!follow_dname(f, clamped(*dname, cache_))) return;
      continue;
    }
    if (const RRset* rr = find_set(ans, f.qname, f.qtype)) {
      keep_answer(*rr);
      (void)cache_.insert_rrset(*rr, answer_trust, now, sigs_of(*rr));
      if (rr->type == rrtype::kNS) {
        for (const auto rdata : *rr) {
          auto name = rdata_name(rdata);
          if (!name) continue;
          for (const std::uint16_t t : {rrtype::kA, rrtype::kAAAA}) {
            if (const RRset* g = find_set(add, *name, t)) {
              (void)cache_.insert_rrset(*g, Trust::Glue, now);
            }
          }
        }
      }
      f.result.answer = f.chain;
      f.result.answer.push_back(clamped(*rr, cache_));
      finish(f, rcode::kNoError);
      return;
    }
    if (f.qtype != rrtype::kCNAME) {
      if (const RRset* c = find_set(ans, f.qname, rrtype::kCNAME); c != nullptr && !c->empty()) {
        const auto target = rdata_name(*c->begin());
        keep_answer(*c);
        (void)cache_.insert_rrset(*c, answer_trust, now, sigs_of(*c));
        if (!target || !follow_cname(f, clamped(*c, cache_), *target)) {
          if (!f.done) finish(f, rcode::kServFail, "bad cname");
          return;
        }
        continue;
      }
    }
    break;
  }
  if (!f.has_cut) {
    // The chain left what this response answers. What the server says about
    // the chain's end counts only if that name is in its zone and it is
    // authoritative; otherwise the new name is resolved afresh.
    // (A YXDOMAIN whose DNAME did fit says nothing about the new name.)
    if (!f.qname.is_subdomain_of(f.zone) || !aa || yx) return;
    const RRset* soa = find_soa(f.qname);
    if (rc == rcode::kNxDomain || soa != nullptr) {
      if (soa != nullptr) {
        (void)cache_.insert_negative(
            f.qname, f.qtype, rrclass::kIN,
            rc == rcode::kNxDomain ? NegativeKind::NxDomain : NegativeKind::NoData, *soa, now);
        f.result.authority.push_back(negative_soa(*soa, cache_));
      }
      f.result.answer = f.chain;
      finish(f, rc);
    }
    return;
  }
  if (yx) {  // its DNAME was not applied: not an answer to this name
    mark_failed(f, false);
    return;
  }

  if (rc == rcode::kNxDomain) {
    const RRset* soa = find_soa(f.qname);
    if (soa != nullptr) {
      (void)cache_.insert_negative(f.qname, f.qtype, rrclass::kIN, NegativeKind::NxDomain, *soa,
                                   now);
      f.result.authority.push_back(negative_soa(*soa, cache_));
    }
    f.result.answer = f.chain;
    finish(f, rcode::kNxDomain);
    return;
  }
  if (const RRset* ref = find_referral(f.qname); ref != nullptr && !aa) {
    take_referral(f, *ref, add, Trust::Authority, now);
    return;
  }
  if (const RRset* soa = find_soa(f.qname)) {
    (void)cache_.insert_negative(f.qname, f.qtype, rrclass::kIN, NegativeKind::NoData, *soa, now);
    f.result.answer = f.chain;
    f.result.authority.push_back(negative_soa(*soa, cache_));
    finish(f, rcode::kNoError);
    return;
  }
  if (aa) {
    f.result.answer = f.chain;
    finish(f, rcode::kNoError);
    return;
  }
  // Neither answer, referral nor authoritative denial: an upward referral
  // or a server that does not serve the zone (lame).
  infra_.mark_lame(server, f.zone, now);
  mark_failed(f, false);
}

}  // namespace diode::resolver

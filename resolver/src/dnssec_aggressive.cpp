// Aggressive use of validated NSEC/NSEC3 records (RFC 8198). The records
// are kept sorted (NSEC by canonical owner, NSEC3 by owner hash), so that a
// question only offers the proof functions the few records that can prove
// it: the one at or before the name, and the one at or before the wildcard
// of each ancestor down to the zone (RFC 4035 §5.4, RFC 5155 §8.3-8.7).

#include <algorithm>
#include <iterator>

#include "diode/resolver/aggressive.hpp"

namespace diode::resolver::dnssec {

namespace {

constexpr std::size_t kRecordOverhead = 160;  // map node, Record, bookkeeping

std::optional<Name> wildcard_of(const Name& parent) {
  Name w = parent;
  const std::uint8_t star = '*';
  if (!w.prepend_label(std::span<const std::uint8_t>(&star, 1))) return std::nullopt;
  return w;
}

// The RRSIGs of `owner` covering `type`, from RRSIG RRsets grouped per owner.
RRset sigs_for(std::span<const RRset> sigs, const Name& owner, std::uint16_t type) {
  RRset out;
  out.owner = owner;
  out.type = rrtype::kRRSIG;
  for (const RRset& s : sigs) {
    if (s.type != rrtype::kRRSIG || !(s.owner == owner)) continue;
    out.ttl = s.ttl;
    for (const auto rd : s) {
      if (rd.size() >= 2 && ((rd[0] << 8) | rd[1]) == type) (void)out.add_rdata(rd);
    }
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> owner_hash(const Name& owner) {
  if (owner.is_root()) return std::nullopt;
  const auto first = *owner.labels().begin();
  auto h =
      base32hex_decode(std::string_view(reinterpret_cast<const char*>(first.data()), first.size()));
  if (!h || h->empty()) return std::nullopt;
  return h;
}

// The entry at or before `key`, the last one when none is (the chain wraps).
template <typename Map, typename Key>
const typename Map::mapped_type* floor_of(const Map& m, const Key& key) {
  if (m.empty()) return nullptr;
  auto it = m.upper_bound(key);
  if (it == m.begin()) return &std::prev(m.end())->second;
  return &std::prev(it)->second;
}

// The SOA MINIMUM (RFC 1035 §3.3.13): the last of the five 32-bit fields
// that end an uncompressed SOA RDATA (two names, at least 1 octet each, before).
std::optional<std::uint32_t> minimum_of(std::span<const std::uint8_t> rdata) {
  if (rdata.size() < 22) return std::nullopt;
  const std::uint8_t* p = rdata.data() + rdata.size() - 4;
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

std::uint32_t left(std::uint64_t expires, std::uint64_t now) {
  return expires > now
             ? static_cast<std::uint32_t>(std::min<std::uint64_t>(expires - now, 0xffffffffU))
             : 0;
}

}  // namespace

std::size_t DenialCache::records() const {
  std::size_t n = 0;
  for (const auto& [name, z] : zones_) n += z.nsec.size() + z.nsec3.size();
  return n;
}

void DenialCache::clear() {
  zones_.clear();
  bytes_ = 0;
}

void DenialCache::purge(Zone& z, std::uint64_t now) {
  auto sweep = [&](auto& m) {
    for (auto it = m.begin(); it != m.end();) {
      if (it->second.expires <= now) {
        z.bytes -= std::min(z.bytes, it->second.cost);
        bytes_ -= std::min(bytes_, it->second.cost);
        it = m.erase(it);
      } else {
        ++it;
      }
    }
  };
  sweep(z.nsec);
  sweep(z.nsec3);
}

void DenialCache::drop_zone(std::map<Name, Zone, CanonicalLess>::iterator it) {
  bytes_ -= std::min(bytes_, it->second.bytes);
  zones_.erase(it);
}

void DenialCache::make_room(std::uint64_t now) {
  if (bytes_ <= limits_.max_bytes) return;
  for (auto& [name, z] : zones_) purge(z, now);
  for (auto it = zones_.begin(); it != zones_.end();) {
    if (it->second.nsec.empty() && it->second.nsec3.empty()) {
      bytes_ -= std::min(bytes_, it->second.bytes);
      it = zones_.erase(it);
    } else {
      ++it;
    }
  }
  // Then the zones used least recently go, whole.
  while (bytes_ > limits_.max_bytes && !zones_.empty()) {
    auto oldest = zones_.begin();
    for (auto it = zones_.begin(); it != zones_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    drop_zone(oldest);
  }
}

void DenialCache::add(const Name& zone, std::span<const RRset> records, std::span<const RRset> sigs,
                      std::uint32_t ttl_cap, std::uint64_t now) {
  const RRset* soa = nullptr;
  for (const RRset& r : records) {
    if (r.type == rrtype::kSOA && r.owner == zone && !r.empty()) soa = &r;
  }
  if (soa == nullptr) return;
  const auto minimum = minimum_of(*soa->begin());
  if (!minimum) return;
  // RFC 9077 §3 / RFC 8198 §5: a denial lives no longer than the SOA's TTL
  // and its MINIMUM; each record also no longer than its own TTL.
  const std::uint32_t zone_ttl = std::min({soa->ttl, *minimum, ttl_cap});
  if (zone_ttl == 0) return;
  Zone& z = zones_[zone];
  z.last_used = now;
  bytes_ -= std::min(bytes_, z.soa.storage().size() + z.soa_sigs.storage().size());
  z.bytes -= std::min(z.bytes, z.soa.storage().size() + z.soa_sigs.storage().size());
  z.soa = *soa;
  z.soa.ttl = zone_ttl;
  z.soa_sigs = sigs_for(sigs, zone, rrtype::kSOA);
  z.soa_expires = now + zone_ttl;
  bytes_ += z.soa.storage().size() + z.soa_sigs.storage().size();
  z.bytes += z.soa.storage().size() + z.soa_sigs.storage().size();
  purge(z, now);
  for (const RRset& r : records) {
    if ((r.type != rrtype::kNSEC && r.type != rrtype::kNSEC3) || r.empty() ||
        !r.owner.is_subdomain_of(zone)) {
      continue;
    }
    Record rec;
    rec.set = r;
    rec.set.ttl = std::min(r.ttl, zone_ttl);
    rec.sigs = sigs_for(sigs, r.owner, r.type);
    rec.sigs.ttl = rec.set.ttl;
    rec.expires = now + rec.set.ttl;
    rec.cost = kRecordOverhead + 2 * r.owner.wire_length() + rec.set.storage().size() +
               rec.sigs.storage().size();
    if (r.type == rrtype::kNSEC) {
      if (!parse_nsec(*r.begin())) continue;
      auto old = z.nsec.find(r.owner);
      if (old != z.nsec.end()) {
        z.bytes -= std::min(z.bytes, old->second.cost);
        bytes_ -= std::min(bytes_, old->second.cost);
        z.nsec.erase(old);
      }
      if (z.nsec.size() + z.nsec3.size() >= limits_.max_records_per_zone && !z.nsec.empty()) {
        auto victim = z.nsec.begin();
        z.bytes -= std::min(z.bytes, victim->second.cost);
        bytes_ -= std::min(bytes_, victim->second.cost);
        z.nsec.erase(victim);
      }
      z.bytes += rec.cost;
      bytes_ += rec.cost;
      z.nsec.emplace(r.owner.lowered(), std::move(rec));
    } else {
      const auto p = parse_nsec3(*r.begin());
      const auto h = owner_hash(r.owner);
      if (!p || !h || !(r.owner.parent() == zone)) continue;
      // One parameter set per zone (RFC 5155 §8.2): new parameters (a new
      // salt) replace the records hashed with the old ones.
      if (!z.nsec3.empty()) {
        const auto q = parse_nsec3(*z.nsec3.begin()->second.set.begin());
        if (!q || q->hash_algorithm != p->hash_algorithm || q->iterations != p->iterations ||
            !std::equal(q->salt.begin(), q->salt.end(), p->salt.begin(), p->salt.end())) {
          for (const auto& [hash, old] : z.nsec3) {
            z.bytes -= std::min(z.bytes, old.cost);
            bytes_ -= std::min(bytes_, old.cost);
          }
          z.nsec3.clear();
        }
      }
      auto old = z.nsec3.find(*h);
      if (old != z.nsec3.end()) {
        z.bytes -= std::min(z.bytes, old->second.cost);
        bytes_ -= std::min(bytes_, old->second.cost);
        z.nsec3.erase(old);
      }
      if (z.nsec.size() + z.nsec3.size() >= limits_.max_records_per_zone && !z.nsec3.empty()) {
        auto victim = z.nsec3.begin();
        z.bytes -= std::min(z.bytes, victim->second.cost);
        bytes_ -= std::min(bytes_, victim->second.cost);
        z.nsec3.erase(victim);
      }
      z.bytes += rec.cost;
      bytes_ += rec.cost;
      z.nsec3.emplace(*h, std::move(rec));
    }
  }
  make_room(now);
}

std::optional<DenialCache::Answer> DenialCache::lookup(const Name& qname, std::uint16_t qtype,
                                                       std::uint64_t now, const Nsec3Limits& limits,
                                                       Budget& budget) {
  if (qtype == rrtype::kDS || zones_.empty()) return std::nullopt;
  // The closest enclosing zone with kept records answers, or none does: a
  // parent's records never deny names below a cut (the delegation's NSEC
  // blocks them, RFC 6840 §4.1).
  auto zit = zones_.end();
  for (Name n = qname;;) {
    zit = zones_.find(n);
    if (zit != zones_.end() || n.is_root()) break;
    n = n.parent();
  }
  if (zit == zones_.end()) return std::nullopt;
  const Name& zone = zit->first;
  Zone& z = zit->second;
  if (z.soa_expires <= now) {
    drop_zone(zit);
    return std::nullopt;
  }
  purge(z, now);
  std::vector<const Record*> offered;
  auto offer = [&](const Record* r) {
    if (r != nullptr && std::find(offered.begin(), offered.end(), r) == offered.end()) {
      offered.push_back(r);
    }
  };
  std::uint16_t rc = 0xffff;
  if (!z.nsec.empty()) {
    offer(floor_of(z.nsec, qname));
    for (Name a = qname; a.label_count() > zone.label_count();) {
      a = a.parent();
      if (auto w = wildcard_of(a)) offer(floor_of(z.nsec, *w));
    }
    std::vector<RRset> sets;
    for (const Record* r : offered) sets.push_back(r->set);
    std::vector<NsecRecord> recs;
    if (!collect_nsec(sets, recs)) return std::nullopt;
    if (nsec_nxdomain(qname, zone, recs) == DenialResult::Proven) {
      rc = rcode::kNxDomain;
    } else if (nsec_nodata(qname, qtype, zone, recs) == DenialResult::Proven) {
      rc = rcode::kNoError;
    }
  } else if (!z.nsec3.empty()) {
    const auto p = parse_nsec3(*z.nsec3.begin()->second.set.begin());
    if (!p || p->hash_algorithm != 1 || p->iterations > limits.max_iterations) return std::nullopt;
    auto offer_hash = [&](const Name& n) {
      const auto h = nsec3_hash(n.lowered(), p->hash_algorithm, p->iterations, p->salt, &budget);
      if (!h) return false;
      offer(floor_of(z.nsec3, std::vector<std::uint8_t>(h->begin(), h->end())));
      return true;
    };
    for (Name a = qname;; a = a.parent()) {
      if (!offer_hash(a)) return std::nullopt;
      if (auto w = wildcard_of(a); w && !(a == qname) && !offer_hash(*w)) return std::nullopt;
      if (a.label_count() <= zone.label_count()) break;
    }
    std::vector<RRset> sets;
    for (const Record* r : offered) sets.push_back(r->set);
    std::vector<Nsec3Record> recs;
    if (!collect_nsec3(sets, recs)) return std::nullopt;
    // OptOut, IterationsCap, Unsupported and BudgetExhausted all mean: ask.
    if (nsec3_nxdomain(qname, zone, recs, limits, budget) == DenialResult::Proven) {
      rc = rcode::kNxDomain;
    } else if (nsec3_nodata(qname, qtype, zone, recs, limits, budget) == DenialResult::Proven) {
      rc = rcode::kNoError;
    }
  }
  if (rc == 0xffff) return std::nullopt;
  z.last_used = now;
  Answer a;
  a.rcode = rc;
  std::uint32_t ttl = left(z.soa_expires, now);
  for (const Record* r : offered) ttl = std::min(ttl, left(r->expires, now));
  if (ttl == 0) return std::nullopt;
  a.soa.push_back(z.soa);
  a.soa.back().ttl = ttl;
  if (!z.soa_sigs.empty()) {
    a.records.push_back(z.soa_sigs);
    a.records.back().ttl = ttl;
  }
  for (const Record* r : offered) {
    a.records.push_back(r->set);
    a.records.back().ttl = ttl;
    if (!r->sigs.empty()) {
      a.records.push_back(r->sigs);
      a.records.back().ttl = ttl;
    }
  }
  return a;
}

}  // namespace diode::resolver::dnssec

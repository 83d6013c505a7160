// Authenticated denial of existence: NSEC (RFC 4035 §5.4 with RFC 6840
// §4.1 and §4.3) and NSEC3 (RFC 5155 §8, RFC 9276 §3.2). The records given
// are already verified; these functions decide what they prove.

#include <algorithm>
#include <map>

#include "diode/resolver/dnssec.hpp"

namespace diode::resolver::dnssec {

namespace {

// The wildcard name "*." + parent; nullopt when too long.
std::optional<Name> wildcard_of(const Name& parent) {
  Name w = parent;
  const std::uint8_t star = '*';
  if (!w.prepend_label(std::span<const std::uint8_t>(&star, 1))) return std::nullopt;
  return w;
}

// The longest common ancestor of two names.
Name common_ancestor(const Name& a, const Name& b) {
  std::size_t n = std::min(a.label_count(), b.label_count());
  while (n > 0 && !(a.suffix(n) == b.suffix(n))) --n;
  return a.suffix(n);
}

// A delegation point's NSEC (NS without SOA) or a DNAME's says nothing
// about the names below it (RFC 6840 §4.1).
bool blocks_below(const TypeBitmap& types) {
  return (types.has(rrtype::kNS) && !types.has(rrtype::kSOA)) || types.has(rrtype::kDNAME);
}

const NsecRecord* nsec_matching(const Name& name, std::span<const NsecRecord> nsecs) {
  for (const NsecRecord& r : nsecs)
    if (r.owner == name) return &r;
  return nullptr;
}

const NsecRecord* nsec_covering(const Name& name, std::span<const NsecRecord> nsecs) {
  for (const NsecRecord& r : nsecs) {
    if (!nsec_covers(r.owner, r.nsec.next, name)) continue;
    if (name.is_subdomain_of(r.owner) && blocks_below(r.nsec.types)) continue;
    return &r;
  }
  return nullptr;
}

// The closest encloser a covering NSEC implies (RFC 4035 §5.4 / RFC 6840 §4.3):
// the deeper of qname's common ancestors with the NSEC's owner and next name.
Name nsec_closest_encloser(const Name& qname, const NsecRecord& r) {
  const Name a = common_ancestor(qname, r.owner);
  const Name b = common_ancestor(qname, r.nsec.next);
  return a.label_count() >= b.label_count() ? a : b;
}

}  // namespace

bool nsec_covers(const Name& owner, const Name& next, const Name& name) {
  if (owner.canonical_compare(name) >= 0) return false;
  // The last NSEC of a zone points back to the apex (RFC 4034 §4.1.1).
  if (owner.canonical_compare(next) >= 0) return true;
  return name.canonical_compare(next) < 0;
}

bool collect_nsec(std::span<const RRset> sets, std::vector<NsecRecord>& out) {
  for (const RRset& s : sets) {
    if (s.type != rrtype::kNSEC) continue;
    for (auto rd : s) {
      auto v = parse_nsec(rd);
      if (!v) return false;
      out.push_back({s.owner, *v});
    }
  }
  return true;
}

bool collect_nsec3(std::span<const RRset> sets, std::vector<Nsec3Record>& out) {
  for (const RRset& s : sets) {
    if (s.type != rrtype::kNSEC3) continue;
    if (s.owner.is_root()) return false;
    const auto first = *s.owner.labels().begin();
    auto hash = base32hex_decode(
        std::string_view(reinterpret_cast<const char*>(first.data()), first.size()));
    if (!hash || hash->empty()) return false;
    for (auto rd : s) {
      auto v = parse_nsec3(rd);
      if (!v) return false;
      out.push_back({s.owner, *hash, *v});
    }
  }
  return true;
}

DenialResult nsec_nxdomain(const Name& qname, const Name& zone, std::span<const NsecRecord> nsecs) {
  if (!qname.is_subdomain_of(zone) || nsec_matching(qname, nsecs) != nullptr)
    return DenialResult::NotProven;
  const NsecRecord* cover = nsec_covering(qname, nsecs);
  if (cover == nullptr) return DenialResult::NotProven;
  const Name ce = nsec_closest_encloser(qname, *cover);
  if (!ce.is_subdomain_of(zone)) return DenialResult::NotProven;
  // A name with names below it (the cover's next name) exists, as an empty
  // non-terminal: NODATA, not NXDOMAIN (RFC 4035 §3.1.3.2).
  if (ce.label_count() >= qname.label_count()) return DenialResult::NotProven;
  // No wildcard could have answered: *.CE is covered, not matched.
  const auto wild = wildcard_of(ce);
  if (!wild) return DenialResult::Proven;  // no such name can exist
  if (nsec_matching(*wild, nsecs) != nullptr) return DenialResult::NotProven;
  return nsec_covering(*wild, nsecs) != nullptr ? DenialResult::Proven : DenialResult::NotProven;
}

namespace {

// Whether a matching NSEC/NSEC3 bitmap proves that `qtype` is absent at
// qname, with the rules on which side of a zone cut it must come from.
bool bitmap_proves_nodata(const TypeBitmap& types, const Name& qname, std::uint16_t qtype,
                          const Name& zone) {
  if (types.has(qtype) || types.has(rrtype::kCNAME)) return false;
  if (qtype == rrtype::kDS) {
    // The DS lives on the parent side: a record from the child's apex (SOA)
    // proves nothing about it, unless this is the root (RFC 4035 §5.4).
    return !types.has(rrtype::kSOA) || zone.is_root() || !(qname == zone);
  }
  // At a delegation, the parent's record says nothing about the child's data.
  if (types.has(rrtype::kNS) && !types.has(rrtype::kSOA) && !(qname == zone)) return false;
  return true;
}

}  // namespace

DenialResult nsec_nodata(const Name& qname, std::uint16_t qtype, const Name& zone,
                         std::span<const NsecRecord> nsecs) {
  if (!qname.is_subdomain_of(zone)) return DenialResult::NotProven;
  if (qtype == rrtype::kDS && qname == zone && !zone.is_root()) return DenialResult::NotProven;
  if (const NsecRecord* m = nsec_matching(qname, nsecs)) {
    return bitmap_proves_nodata(m->nsec.types, qname, qtype, zone) ? DenialResult::Proven
                                                                   : DenialResult::NotProven;
  }
  const NsecRecord* cover = nsec_covering(qname, nsecs);
  if (cover == nullptr) return DenialResult::NotProven;
  // An empty non-terminal: the next name lies below qname (RFC 4035 §3.1.3.2).
  if (cover->nsec.next.is_subdomain_of(qname) && !(cover->nsec.next == qname))
    return DenialResult::Proven;
  // Wildcard NODATA (RFC 4035 §3.1.3.4): *.CE exists without qtype.
  const Name ce = nsec_closest_encloser(qname, *cover);
  const auto wild = wildcard_of(ce);
  if (!wild || !ce.is_subdomain_of(zone)) return DenialResult::NotProven;
  const NsecRecord* w = nsec_matching(*wild, nsecs);
  if (w == nullptr) return DenialResult::NotProven;
  return bitmap_proves_nodata(w->nsec.types, *wild, qtype, zone) ? DenialResult::Proven
                                                                 : DenialResult::NotProven;
}

DenialResult nsec_wildcard_answer(const Name& qname, const Name& wildcard_parent,
                                  std::span<const NsecRecord> nsecs) {
  // RFC 4035 §5.3.4: qname itself does not exist, and nothing between it
  // and the wildcard's parent does either.
  const NsecRecord* cover = nsec_covering(qname, nsecs);
  if (cover == nullptr) return DenialResult::NotProven;
  const Name ce = nsec_closest_encloser(qname, *cover);
  return ce == wildcard_parent ? DenialResult::Proven : DenialResult::NotProven;
}

// ---------------------------------------------------------------------------
// NSEC3

namespace {

class Nsec3Prover {
 public:
  Nsec3Prover(const Name& zone, std::span<const Nsec3Record> recs, const Nsec3Limits& limits,
              Budget& budget)
      : zone_(zone), budget_(budget) {
    // RFC 5155 §8.2: one zone, one parameter set; use the first record's
    // and ignore records in other zones or with other parameters.
    for (const Nsec3Record& r : recs) {
      if (!(r.owner.parent() == zone) || r.owner.label_count() != zone.label_count() + 1) continue;
      if (params_ == nullptr) params_ = &r.nsec3;
      if (r.nsec3.hash_algorithm != params_->hash_algorithm ||
          r.nsec3.iterations != params_->iterations ||
          !std::equal(r.nsec3.salt.begin(), r.nsec3.salt.end(), params_->salt.begin(),
                      params_->salt.end()))
        continue;
      recs_.push_back(&r);
    }
    if (params_ == nullptr) {
      state_ = DenialResult::NotProven;
    } else if (params_->hash_algorithm != 1) {
      state_ = DenialResult::Unsupported;
    } else if (params_->iterations > limits.max_iterations) {
      // Decided before any hashing: the point of the cap is not to hash.
      state_ = DenialResult::IterationsCap;
    }
  }

  // Proven when usable; otherwise why not.
  DenialResult state() const { return state_; }

  const std::vector<std::uint8_t>* hash(const Name& n) {
    const Name key = n.lowered();
    std::vector<std::uint8_t> wire(key.wire().begin(), key.wire().end());
    auto it = cache_.find(wire);
    if (it != cache_.end()) return &it->second;
    auto h = nsec3_hash(key, params_->hash_algorithm, params_->iterations, params_->salt, &budget_);
    if (!h) {
      state_ = DenialResult::BudgetExhausted;
      return nullptr;
    }
    return &cache_.emplace(std::move(wire), std::vector<std::uint8_t>(h->begin(), h->end()))
                .first->second;
  }

  const Nsec3Record* matching(const std::vector<std::uint8_t>& h) const {
    for (const Nsec3Record* r : recs_)
      if (r->owner_hash == h) return r;
    return nullptr;
  }

  const Nsec3Record* covering(const std::vector<std::uint8_t>& h) const {
    for (const Nsec3Record* r : recs_) {
      const auto& o = r->owner_hash;
      const std::vector<std::uint8_t> next(r->nsec3.next_hashed.begin(),
                                           r->nsec3.next_hashed.end());
      if (o.size() != h.size() || next.size() != h.size()) continue;
      const bool after_owner = o < h;
      const bool before_next = h < next;
      if (o < next ? (after_owner && before_next) : (after_owner || before_next)) return r;
    }
    return nullptr;
  }

  struct Encloser {
    Name ce;
    const Nsec3Record* ce_record = nullptr;
    const Nsec3Record* next_closer_cover = nullptr;  // null when ce == qname
  };

  // RFC 5155 §8.3: the closest provable encloser and a cover of the next
  // closer name. Stops with state() set when the budget runs out.
  std::optional<Encloser> closest_encloser(const Name& qname) {
    if (!qname.is_subdomain_of(zone_)) return std::nullopt;
    for (std::size_t n = qname.label_count() + 1; n-- > zone_.label_count();) {
      const Name candidate = qname.suffix(n);
      const auto* h = hash(candidate);
      if (h == nullptr) return std::nullopt;
      const Nsec3Record* m = matching(*h);
      if (m == nullptr) continue;
      Encloser e{candidate, m, nullptr};
      if (n == qname.label_count()) return e;
      // A delegation or DNAME at the encloser hides everything below it.
      if (blocks_below(m->nsec3.types)) return std::nullopt;
      const auto* nh = hash(qname.suffix(n + 1));
      if (nh == nullptr) return std::nullopt;
      e.next_closer_cover = covering(*nh);
      if (e.next_closer_cover == nullptr) return std::nullopt;
      return e;
    }
    return std::nullopt;
  }

 private:
  const Name& zone_;
  Budget& budget_;
  const Nsec3View* params_ = nullptr;
  std::vector<const Nsec3Record*> recs_;
  std::map<std::vector<std::uint8_t>, std::vector<std::uint8_t>> cache_;
  DenialResult state_ = DenialResult::Proven;
};

DenialResult failed(const Nsec3Prover& p) {
  return p.state() == DenialResult::Proven ? DenialResult::NotProven : p.state();
}

}  // namespace

DenialResult nsec3_nxdomain(const Name& qname, const Name& zone,
                            std::span<const Nsec3Record> nsec3s, const Nsec3Limits& limits,
                            Budget& budget) {
  Nsec3Prover p(zone, nsec3s, limits, budget);
  if (p.state() != DenialResult::Proven) return p.state();
  auto e = p.closest_encloser(qname);
  if (!e || e->next_closer_cover == nullptr) return failed(p);
  // RFC 5155 §8.4: and no wildcard at the closest encloser.
  const auto wild = wildcard_of(e->ce);
  if (wild) {
    const auto* wh = p.hash(*wild);
    if (wh == nullptr) return failed(p);
    if (p.covering(*wh) == nullptr) return DenialResult::NotProven;
  }
  // An opt-out span may hide an unsigned delegation holding the name.
  return e->next_closer_cover->nsec3.opt_out() ? DenialResult::OptOut : DenialResult::Proven;
}

DenialResult nsec3_nodata(const Name& qname, std::uint16_t qtype, const Name& zone,
                          std::span<const Nsec3Record> nsec3s, const Nsec3Limits& limits,
                          Budget& budget) {
  if (qtype == rrtype::kDS && qname == zone && !zone.is_root()) return DenialResult::NotProven;
  Nsec3Prover p(zone, nsec3s, limits, budget);
  if (p.state() != DenialResult::Proven) return p.state();
  if (!qname.is_subdomain_of(zone)) return DenialResult::NotProven;
  const auto* h = p.hash(qname);
  if (h == nullptr) return failed(p);
  // RFC 5155 §8.5 (and §8.6 for DS with a matching NSEC3).
  if (const Nsec3Record* m = p.matching(*h)) {
    return bitmap_proves_nodata(m->nsec3.types, qname, qtype, zone) ? DenialResult::Proven
                                                                    : DenialResult::NotProven;
  }
  auto e = p.closest_encloser(qname);
  if (!e || e->next_closer_cover == nullptr) return failed(p);
  // RFC 5155 §8.6: no DS, and the delegation sits in an opt-out span.
  if (qtype == rrtype::kDS)
    return e->next_closer_cover->nsec3.opt_out() ? DenialResult::OptOut : DenialResult::NotProven;
  // RFC 5155 §8.7: wildcard NODATA.
  const auto wild = wildcard_of(e->ce);
  if (!wild) return DenialResult::NotProven;
  const auto* wh = p.hash(*wild);
  if (wh == nullptr) return failed(p);
  const Nsec3Record* w = p.matching(*wh);
  if (w == nullptr) return DenialResult::NotProven;
  return bitmap_proves_nodata(w->nsec3.types, *wild, qtype, zone) ? DenialResult::Proven
                                                                  : DenialResult::NotProven;
}

DenialResult nsec3_wildcard_answer(const Name& qname, const Name& wildcard_parent, const Name& zone,
                                   std::span<const Nsec3Record> nsec3s, const Nsec3Limits& limits,
                                   Budget& budget) {
  // RFC 5155 §8.8: the next closer name (one label below the wildcard's
  // parent, toward qname) is covered, so qname did not exist.
  if (qname.label_count() <= wildcard_parent.label_count() ||
      !qname.is_subdomain_of(wildcard_parent))
    return DenialResult::NotProven;
  Nsec3Prover p(zone, nsec3s, limits, budget);
  if (p.state() != DenialResult::Proven) return p.state();
  const auto* h = p.hash(qname.suffix(wildcard_parent.label_count() + 1));
  if (h == nullptr) return failed(p);
  const Nsec3Record* cover = p.covering(*h);
  if (cover == nullptr) return DenialResult::NotProven;
  // In an opt-out span the next closer name may be an unsigned delegation,
  // whose referral a forger could have replaced by the wildcard: insecure.
  return cover->nsec3.opt_out() ? DenialResult::OptOut : DenialResult::Proven;
}

}  // namespace diode::resolver::dnssec

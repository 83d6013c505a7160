// Trust anchors and the chain-of-trust state machine (RFC 4035 §5.1-5.4,
// RFC 6840 §5). Each call re-walks what it knows: the zone states found so
// far are kept, so no signature is checked twice for one question.

#include <algorithm>

#include "diode/resolver/validator.hpp"

namespace diode::resolver::dnssec {

namespace {

const RRset* find_set(const std::vector<RRset>& sets, const Name& owner, std::uint16_t type) {
  for (const RRset& s : sets)
    if (s.type == type && s.owner == owner) return &s;
  return nullptr;
}

std::vector<std::span<const std::uint8_t>> sigs_at(const std::vector<RRset>& sets,
                                                   const Name& owner) {
  std::vector<std::span<const std::uint8_t>> out;
  for (const RRset& s : sets)
    if (s.type == rrtype::kRRSIG && s.owner == owner)
      for (auto rd : s) out.push_back(rd);
  return out;
}

// The signer named by the first RRSIG covering `rrset` whose signer is the
// owner or one of its ancestors.
std::optional<Name> signer_of(const RRset& rrset, const std::vector<RRset>& section) {
  for (auto rd : sigs_at(section, rrset.owner)) {
    auto sig = parse_rrsig(rd);
    if (sig && sig->type_covered == rrset.type && rrset.owner.is_subdomain_of(sig->signer))
      return sig->signer;
  }
  return std::nullopt;
}

int severity(Security s) {
  switch (s) {
    case Security::Secure:
      return 0;
    case Security::Insecure:
      return 1;
    case Security::Indeterminate:
      return 2;
    case Security::Bogus:
      return 3;
  }
  return 3;
}

Verdict make(Security s, Ede e, std::string reason) {
  Verdict v;
  v.security = s;
  v.ede = e;
  v.reason = std::move(reason);
  return v;
}

std::string text(const Name& n) {
  return n.to_text();
}

}  // namespace

Verdict combine(const Verdict& a, const Verdict& b) {
  Verdict v = severity(b.security) > severity(a.security) ? b : a;
  v.ttl_cap = std::min(a.ttl_cap, b.ttl_cap);
  // The denial proof of either side is kept (there is at most one per answer).
  if (!v.denial_zone) {
    const Verdict& other = a.denial_zone ? a : b;
    v.denial_zone = other.denial_zone;
    v.denial_records = other.denial_records;
  }
  if (v.security != Security::Secure) {
    v.denial_zone.reset();
    v.denial_records.clear();
  }
  return v;
}

// ---------------------------------------------------------------------------

std::optional<TrustAnchors> TrustAnchors::parse(std::string_view text_in,
                                                std::vector<TextError>& errors) {
  const std::size_t before = errors.size();
  ZoneText z = parse_zone_text(text_in);
  errors.insert(errors.end(), z.errors.begin(), z.errors.end());
  TrustAnchors t;
  for (const TextRecord& r : z.records) {
    if (r.rclass != rrclass::kIN || (r.type != rrtype::kDS && r.type != rrtype::kDNSKEY)) {
      errors.push_back({r.line, 1, "only DS and DNSKEY records of class IN may be trust anchors"});
      continue;
    }
    if (r.type == rrtype::kDNSKEY) {
      auto k = parse_dnskey(r.rdata);
      if (!k || k->protocol != 3 || !k->zone_key()) {
        errors.push_back({r.line, 1, "trust anchor DNSKEY is not a DNSSEC zone key"});
        continue;
      }
    } else if (!parse_ds(r.rdata)) {
      errors.push_back({r.line, 1, "malformed DS trust anchor"});
      continue;
    }
    Anchor* a = nullptr;
    for (Anchor& x : t.anchors_)
      if (x.zone == r.owner) a = &x;
    if (a == nullptr) {
      t.anchors_.push_back({});
      a = &t.anchors_.back();
      a->zone = r.owner;
      a->ds.owner = a->dnskey.owner = r.owner;
      a->ds.type = rrtype::kDS;
      a->dnskey.type = rrtype::kDNSKEY;
    }
    RRset& set = r.type == rrtype::kDS ? a->ds : a->dnskey;
    set.ttl = r.ttl;
    set.add_rdata(r.rdata);
  }
  if (t.anchors_.empty() && errors.size() == before)
    errors.push_back({1, 1, "no trust anchor (DS or DNSKEY record) found"});
  if (errors.size() != before) {
    std::stable_sort(errors.begin() + static_cast<std::ptrdiff_t>(before), errors.end(),
                     [](const TextError& a, const TextError& b) { return a.line < b.line; });
    return std::nullopt;
  }
  return t;
}

TrustAnchors TrustAnchors::from(std::vector<Anchor> anchors) {
  TrustAnchors t;
  t.anchors_ = std::move(anchors);
  return t;
}

const TrustAnchors::Anchor* TrustAnchors::closest(const Name& name) const {
  const Anchor* best = nullptr;
  for (const Anchor& a : anchors_)
    if (name.is_subdomain_of(a.zone) &&
        (best == nullptr || a.zone.label_count() > best->zone.label_count()))
      best = &a;
  return best;
}

Response Response::from_message(const Message& m) {
  Response r;
  r.rcode = m.rcode();
  collect_rrsets(m, Section::Answer, r.answer);
  collect_rrsets(m, Section::Authority, r.authority);
  return r;
}

// ---------------------------------------------------------------------------

Validator::Validator(const TrustAnchors& anchors, const ValidatorSettings& settings, Budget& budget,
                     Clock clock, ZoneCache* cache)
    : anchors_(anchors), settings_(settings), budget_(budget), clock_(clock), cache_(cache) {}

const Validator::ZoneState* ZoneCache::find(const Name& n, std::uint64_t now) const {
  auto it = entries_.find(n);
  if (it == entries_.end() || it->second.expires <= now) return nullptr;
  return &it->second.state;
}

void ZoneCache::store(const Name& n, const Validator::ZoneState& st, std::uint64_t now) {
  using K = Validator::ZoneKind;
  std::uint64_t life = 0;
  if (st.kind == K::Secure || st.kind == K::Insecure || st.kind == K::NotACut) life = st.ttl;
  if (st.kind == K::Bogus) life = bogus_seconds_;
  if (life == 0) return;  // indeterminate (budget) and half-done states are not kept
  if (entries_.size() >= max_entries_ && entries_.find(n) == entries_.end()) {
    std::erase_if(entries_, [&](const auto& e) { return e.second.expires <= now; });
    if (entries_.size() >= max_entries_) entries_.clear();
  }
  entries_[n] = Entry{st, now + life};
}

bool Validator::known(const Name& n) {
  if (zones_.find(n) != zones_.end()) return true;
  if (cache_ == nullptr) return false;
  const ZoneState* st = cache_->find(n, clock_.now);
  if (st == nullptr) return false;
  zones_.emplace(n, *st);
  return true;
}

void Validator::remember(const Name& n, const ZoneState& st) {
  if (cache_ != nullptr) cache_->store(n, st, clock_.now);
}

Validator::Step Validator::start(const Name& qname, std::uint16_t qtype, Response response) {
  qname_ = qname;
  qtype_ = qtype;
  response_ = std::move(response);
  positive_.assign(response_.answer.size(), std::nullopt);
  pending_.reset();
  return evaluate();
}

Validator::Step Validator::provide(Response response) {
  if (!pending_) return evaluate();
  const Step p = *pending_;
  pending_.reset();
  if (p.kind == Step::Kind::NeedDnskey)
    dnskey_responses_[p.name] = std::move(response);
  else if (p.kind == Step::Kind::NeedDs)
    ds_responses_[p.name] = std::move(response);
  return evaluate();
}

Validator::Step Validator::need(Step::Kind k, const Name& n) {
  Step s;
  if (++fetches_ > settings_.max_fetches) {
    s.kind = Step::Kind::Done;
    s.verdict = make(Security::Indeterminate, Ede::DnssecIndeterminate,
                     "too many DNSKEY/DS fetches for one question");
    return s;
  }
  s.kind = k;
  s.name = n;
  pending_ = s;
  return s;
}

Validator::ZoneState Validator::validate_keyset(const Name& zone, const Response& r,
                                                const RRset* ds, const RRset* anchor_keys) {
  ZoneState st;
  const RRset* keys =
      r.rcode == rcode::kNoError ? find_set(r.answer, zone, rrtype::kDNSKEY) : nullptr;
  if (keys == nullptr) {
    st.ede = Ede::DnskeyMissing;
    st.reason = "no DNSKEY set for " + text(zone);
    return st;
  }
  // The keys vouched for from above: by a DS digest or as an anchor.
  RRset trusted;
  trusted.owner = zone;
  trusted.type = rrtype::kDNSKEY;
  bool budget_out = false;
  for (auto kd : *keys) {
    auto k = parse_dnskey(kd);
    if (!k || k->protocol != 3 || !k->zone_key() || k->revoked() ||
        !algorithm_supported(k->algorithm, settings_.policy))
      continue;
    bool ok = false;
    if (anchor_keys != nullptr)
      for (auto ad : *anchor_keys)
        if (std::equal(ad.begin(), ad.end(), kd.begin(), kd.end())) ok = true;
    if (!ok && ds != nullptr) {
      const std::uint16_t tag = key_tag(kd);
      for (auto dd : *ds) {
        auto d = parse_ds(dd);
        if (!d || d->key_tag != tag || d->algorithm != k->algorithm ||
            !digest_supported(d->digest_type, settings_.policy))
          continue;
        // A digest is a hash: charged, so many colliding tags cost bounded work.
        if (!budget_.take_hashes(1)) {
          budget_out = true;
          break;
        }
        auto got = ds_digest(zone, kd, d->digest_type);
        if (got && std::equal(got->begin(), got->end(), d->digest.begin(), d->digest.end())) {
          ok = true;
          break;
        }
      }
    }
    if (ok) trusted.add_rdata(kd);
    if (budget_out) break;
  }
  if (budget_out) {
    st.kind = ZoneKind::Indeterminate;
    st.ede = Ede::DnssecIndeterminate;
    st.reason = "validation budget spent on the DNSKEY set of " + text(zone);
    return st;
  }
  if (trusted.empty()) {
    st.ede = Ede::DnskeyMissing;
    st.reason = "no DNSKEY of " + text(zone) + " matches its DS or trust anchor";
    return st;
  }
  const RrsetCheck c =
      check_rrset(*keys, sigs_at(r.answer, zone), zone, trusted, clock_, settings_.policy, budget_);
  if (c.status == SigStatus::BudgetExhausted) {
    st.kind = ZoneKind::Indeterminate;
    st.ede = Ede::DnssecIndeterminate;
    st.reason = "validation budget spent on the DNSKEY set of " + text(zone);
    return st;
  }
  if (c.status != SigStatus::Valid) {
    st.ede = c.status == SigStatus::NoSignatures ? Ede::RrsigsMissing : ede_for(c.status);
    st.reason = "DNSKEY set of " + text(zone) + " not signed by a trusted key";
    return st;
  }
  st.kind = ZoneKind::Secure;
  st.keys = *keys;
  st.ttl = c.ttl;
  return st;
}

Validator::ZoneState Validator::process_ds(const Name& name, const Name& parent,
                                           const ZoneState& parent_state, const Response& r) {
  ZoneState st;
  if (r.rcode != rcode::kNoError && r.rcode != rcode::kNxDomain) {
    st.kind = ZoneKind::Indeterminate;
    st.ede = Ede::DnssecIndeterminate;
    st.reason = "no usable answer to the DS query for " + text(name);
    return st;
  }
  if (const RRset* ds = find_set(r.answer, name, rrtype::kDS)) {
    const RrsetCheck c = check_rrset(*ds, sigs_at(r.answer, name), parent, parent_state.keys,
                                     clock_, settings_.policy, budget_);
    if (c.status != SigStatus::Valid) {
      st.kind = c.status == SigStatus::BudgetExhausted ? ZoneKind::Indeterminate : ZoneKind::Bogus;
      st.ede = ede_for(c.status);
      st.reason = "DS of " + text(name) + " does not validate";
      return st;
    }
    bool algorithm_known = false;
    bool digest_known = false;
    for (auto dd : *ds) {
      auto d = parse_ds(dd);
      if (!d) continue;
      if (algorithm_supported(d->algorithm, settings_.policy)) {
        algorithm_known = true;
        if (digest_supported(d->digest_type, settings_.policy)) digest_known = true;
      }
    }
    // RFC 6840 §5.2: only unknown algorithms or digests: treat as unsigned.
    if (!algorithm_known || !digest_known) {
      st.kind = ZoneKind::Insecure;
      st.ttl = c.ttl;
      st.ede = !algorithm_known ? Ede::UnsupportedDnskeyAlgorithm : Ede::UnsupportedDsDigestType;
      st.reason = "DS of " + text(name) + " uses only unsupported algorithms or digests";
      return st;
    }
    st.kind = ZoneKind::HasDs;
    st.keys = *ds;
    st.ttl = c.ttl;
    return st;
  }
  // A CNAME cannot sit at a zone cut (RFC 2181 §10.1): the name is no zone.
  if (find_set(r.answer, name, rrtype::kCNAME) != nullptr) {
    st.kind = ZoneKind::NotACut;
    return st;
  }
  // No DS: the parent must prove it, with records it signed. The
  // conclusion holds as long as the proof's records do.
  std::vector<RRset> proof;
  st.ttl = 0xffffffffu;
  for (const RRset& s : r.authority) {
    if (s.type != rrtype::kNSEC && s.type != rrtype::kNSEC3) continue;
    const RrsetCheck c = check_rrset(s, sigs_at(r.authority, s.owner), parent, parent_state.keys,
                                     clock_, settings_.policy, budget_);
    if (c.status != SigStatus::Valid) {
      st.kind = c.status == SigStatus::BudgetExhausted ? ZoneKind::Indeterminate : ZoneKind::Bogus;
      st.ede = c.status == SigStatus::NoSignatures ? Ede::RrsigsMissing : ede_for(c.status);
      st.reason = "denial of the DS of " + text(name) + " does not validate";
      return st;
    }
    st.ttl = std::min(st.ttl, c.ttl);
    proof.push_back(s);
  }
  std::vector<NsecRecord> nsecs;
  std::vector<Nsec3Record> nsec3s;
  if (!collect_nsec(proof, nsecs) || !collect_nsec3(proof, nsec3s)) {
    st.ede = Ede::DnssecBogus;
    st.reason = "malformed NSEC/NSEC3 in the denial of the DS of " + text(name);
    return st;
  }
  auto insecure = [&](Ede e, std::string why) {
    st.kind = ZoneKind::Insecure;
    st.ede = e;
    st.reason = std::move(why);
    return st;
  };
  if (!nsecs.empty()) {
    if (nsec_nodata(name, rrtype::kDS, parent, nsecs) == DenialResult::Proven) {
      for (const NsecRecord& n : nsecs)
        if (n.owner == name && n.nsec.types.has(rrtype::kNS))
          return insecure(Ede::None, "unsigned delegation to " + text(name));
      st.kind = ZoneKind::NotACut;
      return st;
    }
    if (nsec_nxdomain(name, parent, nsecs) == DenialResult::Proven) {
      st.kind = ZoneKind::NotACut;
      return st;
    }
  } else if (!nsec3s.empty()) {
    const DenialResult d =
        nsec3_nodata(name, rrtype::kDS, parent, nsec3s, settings_.nsec3, budget_);
    switch (d) {
      case DenialResult::Proven: {
        // Delegation (NS bit) or not: look at the record matching the name.
        const auto& p = nsec3s.front().nsec3;
        auto h = nsec3_hash(name, p.hash_algorithm, p.iterations, p.salt, &budget_);
        if (h)
          for (const Nsec3Record& n : nsec3s)
            if (std::equal(n.owner_hash.begin(), n.owner_hash.end(), h->begin(), h->end()) &&
                n.nsec3.types.has(rrtype::kNS))
              return insecure(Ede::None, "unsigned delegation to " + text(name));
        st.kind = ZoneKind::NotACut;
        return st;
      }
      case DenialResult::OptOut:
        return insecure(Ede::None, "opt-out delegation to " + text(name));
      case DenialResult::IterationsCap:
        return insecure(Ede::UnsupportedNsec3Iterations,
                        "NSEC3 iterations above the cap in the zone of " + text(name));
      case DenialResult::Unsupported:
        return insecure(Ede::None, "unsupported NSEC3 hash in the zone of " + text(name));
      case DenialResult::BudgetExhausted:
        st.kind = ZoneKind::Indeterminate;
        st.ede = Ede::DnssecIndeterminate;
        st.reason = "validation budget spent on NSEC3 hashes";
        return st;
      case DenialResult::NotProven:
        break;
    }
    const DenialResult nx = nsec3_nxdomain(name, parent, nsec3s, settings_.nsec3, budget_);
    if (nx == DenialResult::Proven) {
      st.kind = ZoneKind::NotACut;
      return st;
    }
    if (nx == DenialResult::OptOut) return insecure(Ede::None, "opt-out span holds " + text(name));
  }
  st.ede = proof.empty() ? Ede::NsecMissing : Ede::DnssecBogus;
  st.reason = "no proof that " + text(name) + " has no DS";
  return st;
}

Validator::ChainResult Validator::chain_to(const Name& target, bool target_is_signer) {
  static const ZoneState kNoAnchor{ZoneKind::Insecure, RRset(), Ede::None, "no trust anchor"};
  static const ZoneState kNotAZone{ZoneKind::Bogus, RRset(), Ede::DnssecBogus,
                                   "the signer is not a zone"};
  ChainResult out;
  const TrustAnchors::Anchor* anchor = anchors_.closest(target);
  if (anchor == nullptr) {
    out.zone = target;
    out.state = &kNoAnchor;
    return out;
  }
  Name keys_zone = anchor->zone;
  if (!known(keys_zone)) {
    auto it = dnskey_responses_.find(keys_zone);
    if (it == dnskey_responses_.end()) {
      out.need = need(Step::Kind::NeedDnskey, keys_zone);
      return out;
    }
    zones_[keys_zone] =
        validate_keyset(keys_zone, it->second, anchor->ds.empty() ? nullptr : &anchor->ds,
                        anchor->dnskey.empty() ? nullptr : &anchor->dnskey);
    remember(keys_zone, zones_[keys_zone]);
  }
  for (;;) {
    const ZoneState& st = zones_[keys_zone];
    if (st.kind != ZoneKind::Secure || keys_zone == target) {
      out.zone = keys_zone;
      out.state = &st;
      return out;
    }
    bool descended = false;
    for (std::size_t n = keys_zone.label_count() + 1; n <= target.label_count(); ++n) {
      const Name next = target.suffix(n);
      known(next);
      auto it = zones_.find(next);
      if (it == zones_.end()) {
        auto ds = ds_responses_.find(next);
        if (ds == ds_responses_.end()) {
          out.need = need(Step::Kind::NeedDs, next);
          return out;
        }
        it = zones_.emplace(next, process_ds(next, keys_zone, st, ds->second)).first;
        if (it->second.kind != ZoneKind::HasDs) remember(next, it->second);
      }
      ZoneState& ns = it->second;
      if (ns.kind == ZoneKind::NotACut) {
        if (next == target && target_is_signer) {
          out.zone = target;
          out.state = &kNotAZone;
          return out;
        }
        continue;
      }
      if (ns.kind == ZoneKind::HasDs) {
        auto kr = dnskey_responses_.find(next);
        if (kr == dnskey_responses_.end()) {
          out.need = need(Step::Kind::NeedDnskey, next);
          return out;
        }
        const RRset ds = ns.keys;
        const std::uint32_t ds_ttl = ns.ttl;
        ns = validate_keyset(next, kr->second, &ds, nullptr);
        ns.ttl = std::min(ns.ttl, ds_ttl);
        remember(next, ns);
      }
      keys_zone = next;
      descended = true;
      break;
    }
    if (!descended) {
      // Walked to the target without finding it a zone: its closest
      // enclosing zone answers for it.
      out.zone = keys_zone;
      out.state = &zones_[keys_zone];
      return out;
    }
  }
}

Verdict Validator::check_positive(const RRset& rrset, const Response& r,
                                  std::optional<Step>& need_out) {
  const auto signer = signer_of(rrset, r.answer);
  ChainResult chain = chain_to(signer ? *signer : rrset.owner, signer.has_value());
  if (chain.need) {
    need_out = chain.need;
    return {};
  }
  const ZoneState& st = *chain.state;
  switch (st.kind) {
    case ZoneKind::Insecure:
      return make(Security::Insecure, st.ede, st.reason);
    case ZoneKind::Bogus:
      return make(Security::Bogus, st.ede, st.reason);
    case ZoneKind::Indeterminate:
      return make(Security::Indeterminate, st.ede, st.reason);
    default:
      break;
  }
  const std::string what = text(rrset.owner) + " " + type_to_text(rrset.type);
  if (!signer)
    return make(Security::Bogus, Ede::RrsigsMissing, "no RRSIG over " + what + " in a signed zone");
  if (!(chain.zone == *signer))
    return make(Security::Bogus, Ede::DnssecBogus, what + " signed by a name that is no zone");
  const RrsetCheck c = check_rrset(rrset, sigs_at(r.answer, rrset.owner), *signer, st.keys, clock_,
                                   settings_.policy, budget_);
  if (c.status == SigStatus::BudgetExhausted)
    return make(Security::Indeterminate, Ede::DnssecIndeterminate, "validation budget spent");
  if (c.status != SigStatus::Valid)
    return make(Security::Bogus, ede_for(c.status), what + ": signature does not validate");
  Verdict v = make(Security::Secure, Ede::None, "");
  v.ttl_cap = c.ttl;
  if (c.wildcard_parent) {
    // RFC 4035 §5.3.4: a wildcard answer needs the proof that no closer name exists.
    v = combine(v, check_denial(rrset.owner, rrset.type, false, r, need_out, c.wildcard_parent));
  }
  return v;
}

Verdict Validator::memo_positive(const RRset& rrset, std::optional<Step>& need_out) {
  // Each evaluate() walks the whole answer again after a fetch: the links
  // of a CNAME chain already decided are not checked (nor charged) twice.
  const auto i = static_cast<std::size_t>(&rrset - response_.answer.data());
  if (i < positive_.size() && positive_[i]) return *positive_[i];
  Verdict v = check_positive(rrset, response_, need_out);
  if (!need_out && i < positive_.size()) positive_[i] = v;
  return v;
}

Verdict Validator::check_denial(const Name& name, std::uint16_t qtype, bool nxdomain,
                                const Response& r, std::optional<Step>& need_out,
                                const std::optional<Name>& wildcard_parent) {
  std::optional<Name> signer;
  for (const RRset& s : r.authority) {
    if (s.type != rrtype::kNSEC && s.type != rrtype::kNSEC3 && s.type != rrtype::kSOA) continue;
    if ((signer = signer_of(s, r.authority))) break;
  }
  ChainResult chain = chain_to(signer ? *signer : name, signer.has_value());
  if (chain.need) {
    need_out = chain.need;
    return {};
  }
  const ZoneState& st = *chain.state;
  switch (st.kind) {
    case ZoneKind::Insecure:
      return make(Security::Insecure, st.ede, st.reason);
    case ZoneKind::Bogus:
      return make(Security::Bogus, st.ede, st.reason);
    case ZoneKind::Indeterminate:
      return make(Security::Indeterminate, st.ede, st.reason);
    default:
      break;
  }
  if (!signer)
    return make(Security::Bogus, Ede::NsecMissing,
                "unsigned denial for " + text(name) + " in a signed zone");
  if (!(chain.zone == *signer) || !name.is_subdomain_of(*signer))
    return make(Security::Bogus, Ede::DnssecBogus, "denial signed by a name that is no zone");
  Verdict v = make(Security::Secure, Ede::None, "");
  std::vector<RRset> proof;
  for (const RRset& s : r.authority) {
    if (s.type != rrtype::kNSEC && s.type != rrtype::kNSEC3 && s.type != rrtype::kSOA) continue;
    if (!s.owner.is_subdomain_of(*signer)) continue;
    const RrsetCheck c = check_rrset(s, sigs_at(r.authority, s.owner), *signer, st.keys, clock_,
                                     settings_.policy, budget_);
    if (c.status == SigStatus::BudgetExhausted)
      return make(Security::Indeterminate, Ede::DnssecIndeterminate, "validation budget spent");
    if (c.status != SigStatus::Valid)
      return make(Security::Bogus, ede_for(c.status),
                  text(s.owner) + " " + type_to_text(s.type) + ": signature does not validate");
    v.ttl_cap = std::min(v.ttl_cap, c.ttl);
    proof.push_back(s);
  }
  std::vector<NsecRecord> nsecs;
  std::vector<Nsec3Record> nsec3s;
  if (!collect_nsec(proof, nsecs) || !collect_nsec3(proof, nsec3s))
    return make(Security::Bogus, Ede::DnssecBogus, "malformed NSEC/NSEC3");
  DenialResult d = DenialResult::NotProven;
  if (!nsecs.empty()) {
    d = wildcard_parent ? nsec_wildcard_answer(name, *wildcard_parent, nsecs)
        : nxdomain      ? nsec_nxdomain(name, *signer, nsecs)
                        : nsec_nodata(name, qtype, *signer, nsecs);
  } else if (!nsec3s.empty()) {
    d = wildcard_parent ? nsec3_wildcard_answer(name, *wildcard_parent, *signer, nsec3s,
                                                settings_.nsec3, budget_)
        : nxdomain      ? nsec3_nxdomain(name, *signer, nsec3s, settings_.nsec3, budget_)
                        : nsec3_nodata(name, qtype, *signer, nsec3s, settings_.nsec3, budget_);
  }
  const std::string what = wildcard_parent ? "wildcard answer for " + text(name)
                           : nxdomain      ? "NXDOMAIN for " + text(name)
                                           : "NODATA for " + text(name);
  switch (d) {
    case DenialResult::Proven:
      if (!wildcard_parent) {
        v.denial_zone = *signer;
        v.denial_records = std::move(proof);
      }
      return v;
    case DenialResult::OptOut:
      return make(Security::Insecure, Ede::None, what + " in an opt-out span");
    case DenialResult::IterationsCap:
      return make(Security::Insecure, Ede::UnsupportedNsec3Iterations,
                  "NSEC3 iterations above the cap");
    case DenialResult::Unsupported:
      return make(Security::Insecure, Ede::None, "unsupported NSEC3 hash algorithm");
    case DenialResult::BudgetExhausted:
      return make(Security::Indeterminate, Ede::DnssecIndeterminate, "validation budget spent");
    case DenialResult::NotProven:
      break;
  }
  return make(Security::Bogus, Ede::NsecMissing, what + " is not proven");
}

Validator::Step Validator::evaluate() {
  Step done;
  done.kind = Step::Kind::Done;
  std::optional<Step> need_out;
  const Response& r = response_;
  if (r.rcode != rcode::kNoError && r.rcode != rcode::kNxDomain) {
    done.verdict = make(Security::Indeterminate, Ede::DnssecIndeterminate,
                        "only NOERROR and NXDOMAIN responses are validated");
    return done;
  }
  Verdict v = make(Security::Secure, Ede::None, "");
  // Follow the CNAME chain in the answer, checking each link in its zone.
  Name cur = qname_;
  bool answered = false;
  for (unsigned hop = 0; hop < 16; ++hop) {
    if (const RRset* data = find_set(r.answer, cur, qtype_)) {
      v = combine(v, memo_positive(*data, need_out));
      if (need_out) return *need_out;
      answered = true;
      break;
    }
    // A DNAME above cur (RFC 6672): the DNAME is what is signed; the CNAME
    // a server synthesizes from it is not, and is replaced by our own
    // substitution.
    const RRset* dname = nullptr;
    if (qtype_ != rrtype::kDNAME)
      for (const RRset& s : r.answer)
        if (s.type == rrtype::kDNAME && !s.empty() && cur.is_subdomain_of(s.owner) &&
            !(cur == s.owner))
          dname = &s;
    if (dname != nullptr) {
      v = combine(v, memo_positive(*dname, need_out));
      if (need_out) return *need_out;
      Name target;
      std::size_t next = 0;
      if (read_uncompressed_name(*dname->begin(), 0, &target, &next) != WireError::Ok) break;
      std::vector<std::span<const std::uint8_t>> prefix;
      const std::size_t keep = cur.label_count() - dname->owner.label_count();
      for (auto label : cur.labels()) {
        if (prefix.size() == keep) break;
        prefix.push_back(label);
      }
      bool fits = true;
      for (auto it = prefix.rbegin(); it != prefix.rend() && fits; ++it)
        fits = target.prepend_label(*it);
      if (!fits) break;  // YXDOMAIN: nothing more to check
      cur = target;
      continue;
    }
    const RRset* cname =
        qtype_ == rrtype::kCNAME ? nullptr : find_set(r.answer, cur, rrtype::kCNAME);
    if (cname == nullptr || cname->empty()) break;
    v = combine(v, memo_positive(*cname, need_out));
    if (need_out) return *need_out;
    Name target;
    std::size_t next = 0;
    if (read_uncompressed_name(*cname->begin(), 0, &target, &next) != WireError::Ok) break;
    cur = target;
  }
  if (!answered) {
    v = combine(v,
                check_denial(cur, qtype_, r.rcode == rcode::kNxDomain, r, need_out, std::nullopt));
    if (need_out) return *need_out;
  }
  if (v.security != Security::Secure) {
    v.ttl_cap = 0xffffffffu;
    v.denial_zone.reset();
    v.denial_records.clear();
  }
  done.verdict = v;
  return done;
}

}  // namespace diode::resolver::dnssec

#include "diode/resolver/cache.hpp"

#include <algorithm>

#include "diode/resolver/builder.hpp"

namespace diode::resolver {

namespace {

std::uint32_t seconds_between(Time from, Time to) {
  if (to <= from) return 0;
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(to - from).count();
  return s > 0x7fffffff ? 0x7fffffffU : static_cast<std::uint32_t>(s);
}

void set_ttls(std::span<std::uint8_t> wire, std::span<const std::uint16_t> offsets,
              std::uint32_t ttl) {
  for (const std::uint16_t off : offsets) {
    if (static_cast<std::size_t>(off) + 4 > wire.size()) continue;
    wire[off] = static_cast<std::uint8_t>(ttl >> 24);
    wire[off + 1u] = static_cast<std::uint8_t>(ttl >> 16);
    wire[off + 2u] = static_cast<std::uint8_t>(ttl >> 8);
    wire[off + 3u] = static_cast<std::uint8_t>(ttl);
  }
}

// Lowers every TTL field above `max` to `max`.
void lower_ttls(std::span<std::uint8_t> wire, std::span<const std::uint16_t> offsets,
                std::uint32_t max) {
  for (const std::uint16_t off : offsets) {
    if (static_cast<std::size_t>(off) + 4 > wire.size()) continue;
    const std::uint8_t* p = &wire[off];
    const std::uint32_t ttl = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                              (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    if (ttl > max) set_ttls(wire, std::span<const std::uint16_t>(&off, 1), max);
  }
}

}  // namespace

bool Cache::is_dname(const Key& k) { return k.kind == Kind::RRset && k.type == rrtype::kDNAME; }

std::optional<std::uint32_t> soa_minimum(std::span<const std::uint8_t> rdata) {
  std::size_t pos = 0;
  for (int i = 0; i < 2; ++i) {  // MNAME, RNAME
    std::size_t next = 0;
    if (read_uncompressed_name(rdata, pos, nullptr, &next) != WireError::Ok) return std::nullopt;
    pos = next;
  }
  if (rdata.size() != pos + 20) return std::nullopt;
  const std::size_t m = pos + 16;
  return (std::uint32_t{rdata[m]} << 24) | (std::uint32_t{rdata[m + 1]} << 16) |
         (std::uint32_t{rdata[m + 2]} << 8) | std::uint32_t{rdata[m + 3]};
}

std::uint64_t Cache::hash_of(const Key& k) const {
  // Key names are stored lowered, so their exact octets are the key.
  platform::SipHasher h(hash_key_);
  h.update(k.name.wire());
  h.update_u16(k.type);
  h.update_u16(k.rclass);
  h.update_u8(static_cast<std::uint8_t>(k.kind));
  return h.finish();
}

namespace {
platform::SipKey cache_hash_key() {
  if (auto k = platform::random_sip_key()) return *k;
  // No getrandom (it does not fail on Linux with a valid buffer): the clock
  // is a poor key, but better than a fixed one.
  platform::SipKey k{};
  const auto t = static_cast<std::uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  for (std::size_t i = 0; i < 8; ++i) k[i] = static_cast<std::uint8_t>(t >> (8 * i));
  return k;
}
}  // namespace

Cache::Cache(CacheSettings settings)
    : settings_(settings), hash_key_(cache_hash_key()), slots_(64) {}

Cache::~Cache() { (void)flush(); }

void Cache::set_settings(CacheSettings s) {
  settings_ = s;
  shrink();
}

std::uint32_t Cache::clamp_ttl(std::uint32_t ttl) const {
  const std::uint32_t hi = std::max(settings_.max_ttl, settings_.min_ttl);
  return std::clamp(ttl, settings_.min_ttl, hi);
}

std::uint32_t Cache::clamp_negative_ttl(std::uint32_t ttl) const {
  return std::min(clamp_ttl(std::min(ttl, settings_.max_negative_ttl)),
                  settings_.max_negative_ttl);
}

Cache::Node* Cache::find_node(const Key& key, std::uint64_t h) const {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.node == nullptr) return nullptr;
    if (s.hash == h && s.node->key == key) return s.node;
  }
}

void Cache::link_front(Node* n) {
  n->older = head_;
  n->newer = nullptr;
  if (head_ != nullptr) head_->newer = n;
  head_ = n;
  if (tail_ == nullptr) tail_ = n;
}

void Cache::unlink(Node* n) {
  (n->newer != nullptr ? n->newer->older : head_) = n->older;
  (n->older != nullptr ? n->older->newer : tail_) = n->newer;
  n->newer = n->older = nullptr;
}

void Cache::grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  const std::size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.node == nullptr) continue;
    std::size_t i = s.hash & mask;
    while (slots_[i].node != nullptr) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

Cache::Entry* Cache::lookup(const Key& key, Time now, bool allow_stale, bool* stale) {
  Node* n = find_node(key, hash_of(key));
  if (n == nullptr) return nullptr;
  Entry& e = n->entry;
  *stale = false;
  if (now >= e.expires) {
    const Time stale_end = e.expires + std::chrono::seconds(settings_.max_stale);
    if (!settings_.serve_stale || now >= stale_end) {
      ++counters_.expired;
      remove(n);
      return nullptr;
    }
    if (!allow_stale) return nullptr;
    *stale = true;
  }
  // A hit only marks the entry; eviction gives marked entries a second
  // chance. No list surgery (and no cache misses on neighbours) per hit.
  e.referenced = true;
  return &e;
}

void Cache::remove(Node* n) {
  // Backward-shift deletion keeps every probe sequence unbroken.
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = n->hash & mask;
  while (slots_[i].node != n) i = (i + 1) & mask;
  for (std::size_t j = (i + 1) & mask; slots_[j].node != nullptr; j = (j + 1) & mask) {
    const std::size_t home = slots_[j].hash & mask;
    // Move j back to i unless its home lies cyclically in (i, j].
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    slots_[i] = slots_[j];
    i = j;
  }
  slots_[i] = Slot{};
  if (is_dname(n->key)) --dnames_;
  unlink(n);
  bytes_ -= n->entry.cost;
  --count_;
  delete n;
}

void Cache::put(Key key, Entry entry) {
  entry.cost = sizeof(Node) + 2 * sizeof(Slot) + entry.rrset.storage().size() +
               entry.sigs.storage().size() + entry.wire.size() +
               entry.ttl_offsets.size() * sizeof(std::uint16_t);
  const std::uint64_t h = hash_of(key);
  if (Node* old = find_node(key, h)) remove(old);
  if (entry.cost > settings_.max_bytes) return;
  if ((count_ + 1) * 2 > slots_.size()) grow();
  auto* n = new Node{std::move(key), h, std::move(entry), nullptr, nullptr};
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = h & mask;
  while (slots_[i].node != nullptr) i = (i + 1) & mask;
  slots_[i] = Slot{h, n};
  link_front(n);
  ++count_;
  if (is_dname(n->key)) ++dnames_;
  bytes_ += n->entry.cost;
  ++counters_.inserts;
  shrink();
}

void Cache::shrink() {
  // From the tail: an entry used since it was last here goes back to the
  // head once, unmarked; the first unmarked one is evicted. Bounded: every
  // second chance clears a mark.
  while (bytes_ > settings_.max_bytes && tail_ != nullptr) {
    Node* n = tail_;
    if (n->entry.referenced && n != head_) {
      n->entry.referenced = false;
      unlink(n);
      link_front(n);
      continue;
    }
    remove(n);
    ++counters_.evictions;
  }
}

bool Cache::insert_rrset(const RRset& rrset, Trust trust, Time now, const RRset* sigs) {
  if (rrset.empty()) return false;
  Key key{rrset.owner.lowered(), rrset.type, rrset.rclass, Kind::RRset};
  if (const Node* n = find_node(key, hash_of(key))) {
    const Entry& old = n->entry;
    if (now < old.expires && old.trust > trust) return false;
  }
  Entry e;
  e.inserted = now;
  e.original_ttl = clamp_ttl(rrset.ttl);
  e.expires = now + std::chrono::seconds(e.original_ttl);
  e.trust = trust;
  e.rrset = rrset;
  e.rrset.ttl = e.original_ttl;
  if (sigs != nullptr && sigs->type == rrtype::kRRSIG) {
    e.sigs.owner = rrset.owner;
    e.sigs.type = rrtype::kRRSIG;
    e.sigs.rclass = rrset.rclass;
    e.sigs.ttl = e.original_ttl;
    for (const auto rd : *sigs) {
      // The type covered is the RRSIG RDATA's first field (RFC 4034 §3.1).
      if (rd.size() >= 2 && ((rd[0] << 8) | rd[1]) == rrset.type) (void)e.sigs.add_rdata(rd);
    }
  }
  put(std::move(key), std::move(e));
  return true;
}

bool Cache::set_security(const RRset& rrset, RRsetSecurity security, std::uint32_t ttl_cap,
                         Time now) {
  Node* n = find_node(Key{rrset.owner.lowered(), rrset.type, rrset.rclass, Kind::RRset},
                      hash_of(Key{rrset.owner.lowered(), rrset.type, rrset.rclass, Kind::RRset}));
  if (n == nullptr || now >= n->entry.expires) return false;
  Entry& e = n->entry;
  if (e.rrset.size() != rrset.size()) return false;
  for (const auto rd : rrset) {
    bool found = false;
    for (const auto have : e.rrset) {
      if (std::equal(rd.begin(), rd.end(), have.begin(), have.end())) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  e.security = security;
  const Time cap = now + std::chrono::seconds(ttl_cap);
  if (cap < e.expires) {
    e.expires = cap;
    e.original_ttl = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(cap - e.inserted).count());
  }
  return true;
}

std::optional<Cache::RRsetHit> Cache::find_rrset(const Name& name, std::uint16_t type,
                                                 std::uint16_t rclass, Time now,
                                                 bool allow_stale) {
  bool stale = false;
  Entry* e = lookup(Key{name.lowered(), type, rclass, Kind::RRset}, now, allow_stale, &stale);
  if (e == nullptr) return std::nullopt;
  RRsetHit hit;
  hit.rrset = &e->rrset;
  hit.trust = e->trust;
  hit.stale = stale;
  hit.security = e->security;
  hit.sigs = &e->sigs;
  hit.ttl = stale ? settings_.stale_answer_ttl
                  : e->original_ttl - std::min(e->original_ttl, seconds_between(e->inserted, now));
  return hit;
}

void Cache::insert_parent_glue(const Name& zone, const RRset& addresses, Time now) {
  if (addresses.empty()) return;
  Entry e;
  e.inserted = now;
  e.original_ttl = clamp_ttl(addresses.ttl);
  e.expires = now + std::chrono::seconds(e.original_ttl);
  e.trust = Trust::Glue;
  e.rrset = addresses;
  e.rrset.owner = zone;
  e.rrset.ttl = e.original_ttl;
  put(Key{zone.lowered(), addresses.type, addresses.rclass, Kind::ParentGlue}, std::move(e));
}

std::optional<Cache::RRsetHit> Cache::find_parent_glue(const Name& zone, std::uint16_t type,
                                                       Time now) {
  bool stale = false;
  Entry* e = lookup(Key{zone.lowered(), type, rrclass::kIN, Kind::ParentGlue}, now, false, &stale);
  if (e == nullptr) return std::nullopt;
  RRsetHit hit;
  hit.rrset = &e->rrset;
  hit.trust = e->trust;
  hit.ttl = e->original_ttl - std::min(e->original_ttl, seconds_between(e->inserted, now));
  return hit;
}

bool Cache::insert_negative(const Name& name, std::uint16_t type, std::uint16_t rclass,
                            NegativeKind kind, const RRset& soa, Time now) {
  if (soa.type != rrtype::kSOA || soa.empty()) return false;
  const auto minimum = soa_minimum(*soa.begin());
  if (!minimum) return false;
  const std::uint32_t ttl = clamp_negative_ttl(std::min(soa.ttl, *minimum));
  Entry e;
  e.inserted = now;
  e.original_ttl = ttl;
  e.expires = now + std::chrono::seconds(ttl);
  e.trust = Trust::Authority;
  e.negative = kind;
  e.rrset = soa;
  e.rrset.ttl = ttl;
  const std::uint16_t key_type = kind == NegativeKind::NxDomain ? 0 : type;
  put(Key{name.lowered(), key_type, rclass, Kind::Negative}, std::move(e));
  return true;
}

std::optional<Cache::NegativeHit> Cache::find_negative(const Name& name, std::uint16_t type,
                                                       std::uint16_t rclass, Time now,
                                                       bool allow_stale) {
  const Name lowered = name.lowered();
  for (const std::uint16_t t : {std::uint16_t{0}, type}) {
    bool stale = false;
    Entry* e = lookup(Key{lowered, t, rclass, Kind::Negative}, now, allow_stale, &stale);
    if (e == nullptr) continue;
    NegativeHit hit;
    hit.kind = e->negative;
    hit.soa = &e->rrset;
    hit.stale = stale;
    hit.ttl = stale ? settings_.stale_answer_ttl
                    : e->original_ttl - std::min(e->original_ttl, seconds_between(e->inserted, now));
    return hit;
  }
  return std::nullopt;
}

void Cache::insert_message(const Question& q, std::span<const std::uint8_t> wire,
                           std::span<const std::uint16_t> ttl_offsets, std::uint32_t ttl,
                           Time now) {
  if (wire.size() < kHeaderSize) return;
  // max_ttl holds here too: whoever built the message, it is not served
  // longer, nor with a larger TTL, than its records would be.
  const std::uint32_t hi = std::max(settings_.max_ttl, settings_.min_ttl);
  Entry e;
  e.inserted = now;
  e.original_ttl = std::min(ttl, hi);
  e.expires = now + std::chrono::seconds(e.original_ttl);
  e.trust = Trust::Answer;
  e.wire.assign(wire.begin(), wire.end());
  e.ttl_offsets.assign(ttl_offsets.begin(), ttl_offsets.end());
  lower_ttls(e.wire, e.ttl_offsets, hi);
  put(Key{q.qname.lowered(), q.qtype, q.qclass, Kind::Message}, std::move(e));
}

std::optional<Cache::MessageHit> Cache::copy_message(const Question& q, std::uint16_t id, Time now,
                                                     std::vector<std::uint8_t>& out,
                                                     bool allow_stale) {
  bool stale = false;
  Entry* e = lookup(Key{q.qname.lowered(), q.qtype, q.qclass, Kind::Message}, now, allow_stale,
                    &stale);
  if (e == nullptr) return std::nullopt;
  out.assign(e->wire.begin(), e->wire.end());
  patch_id(out, id);
  if (stale) {
    set_ttls(out, e->ttl_offsets, settings_.stale_answer_ttl);
  } else {
    decrement_ttls(out, e->ttl_offsets, seconds_between(e->inserted, now));
  }
  (void)copy_question_case(out, q.qname);
  MessageHit hit;
  hit.size = out.size();
  hit.stale = stale;
  if (!stale && !e->prefetch_reported && e->original_ttl >= 10) {
    const std::uint32_t left =
        e->original_ttl - std::min(e->original_ttl, seconds_between(e->inserted, now));
    if (left * 10 < e->original_ttl) {
      hit.prefetch_due = true;
      e->prefetch_reported = true;
    }
  }
  return hit;
}

void Cache::for_each_entry(Time now, const std::function<void(const EntryImage&)>& f) const {
  for (const Node* n = tail_; n != nullptr; n = n->newer) {
    const Entry& e = n->entry;
    const Time keep_until =
        settings_.serve_stale ? e.expires + std::chrono::seconds(settings_.max_stale) : e.expires;
    if (now >= keep_until) continue;
    EntryImage im;
    im.kind = n->key.kind;
    im.name = n->key.name;
    im.type = n->key.type;
    im.rclass = n->key.rclass;
    im.trust = e.trust;
    im.negative = e.negative;
    im.original_ttl = e.original_ttl;
    im.age = now > e.inserted ? now - e.inserted : Time{0};
    im.rrset = e.rrset;
    im.wire = e.wire;
    im.ttl_offsets = e.ttl_offsets;
    f(im);
  }
}

bool Cache::restore(const EntryImage& im, Time now) {
  if (im.age < Time{0}) return false;
  const std::uint32_t hi = std::max(settings_.max_ttl, settings_.min_ttl);
  std::uint32_t ttl = std::min(im.original_ttl, hi);
  if (im.kind == Kind::Negative) ttl = std::min(ttl, settings_.max_negative_ttl);
  Entry e;
  e.inserted = now - im.age;
  e.original_ttl = ttl;
  e.expires = e.inserted + std::chrono::seconds(ttl);
  const Time keep_until =
      settings_.serve_stale ? e.expires + std::chrono::seconds(settings_.max_stale) : e.expires;
  if (now >= keep_until) return false;
  Key key{im.name.lowered(), im.type, im.rclass, im.kind};
  if (const Node* n = find_node(key, hash_of(key)); n != nullptr && n->entry.expires >= e.expires) {
    return false;
  }
  e.trust = im.trust;
  e.negative = im.negative;
  if (im.kind == Kind::Message) {
    e.wire = im.wire;
    e.ttl_offsets = im.ttl_offsets;
    lower_ttls(e.wire, e.ttl_offsets, hi);
  } else {
    e.rrset = im.rrset;
    e.rrset.ttl = ttl;
  }
  put(std::move(key), std::move(e));
  return true;
}

std::size_t Cache::flush() {
  const std::size_t n = count_;
  for (Node* p = head_; p != nullptr;) {
    Node* next = p->older;
    delete p;
    p = next;
  }
  head_ = tail_ = nullptr;
  std::vector<Slot>(64).swap(slots_);
  count_ = 0;
  bytes_ = 0;
  dnames_ = 0;
  return n;
}

std::size_t Cache::flush_name(const Name& name) {
  std::size_t n = 0;
  for (Node* p = head_; p != nullptr;) {
    Node* next = p->older;
    if (p->key.name.is_subdomain_of(name)) {
      remove(p);
      ++n;
    }
    p = next;
  }
  return n;
}

}  // namespace diode::resolver

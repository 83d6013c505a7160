#include "diode/resolver/cache.hpp"

#include <algorithm>

#include "diode/resolver/builder.hpp"

namespace diode::resolver {

namespace {

// Bookkeeping per entry beyond its data: map node, list node, key, Entry.
constexpr std::size_t kEntryOverhead = 128 + sizeof(Name);

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

}  // namespace

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

std::size_t Cache::KeyHash::operator()(const Key& k) const {
  return k.name.hash() ^ (std::size_t{k.type} * 0x9e3779b97f4a7c15ULL) ^
         (std::size_t{k.rclass} << 17) ^ (static_cast<std::size_t>(k.kind) << 40);
}

Cache::Cache(CacheSettings settings) : settings_(settings) {}

std::uint32_t Cache::clamp_ttl(std::uint32_t ttl) const {
  const std::uint32_t hi = std::max(settings_.max_ttl, settings_.min_ttl);
  return std::clamp(ttl, settings_.min_ttl, hi);
}

Cache::Entry* Cache::lookup(const Key& key, Time now, bool allow_stale, bool* stale) {
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  Entry& e = it->second;
  *stale = false;
  if (now >= e.expires) {
    const Time stale_end = e.expires + std::chrono::seconds(settings_.max_stale);
    if (!settings_.serve_stale || now >= stale_end) {
      ++counters_.expired;
      erase(it);
      return nullptr;
    }
    if (!allow_stale) return nullptr;
    *stale = true;
  }
  lru_.splice(lru_.begin(), lru_, e.lru);
  return &e;
}

void Cache::erase(std::unordered_map<Key, Entry, KeyHash>::iterator it) {
  bytes_ -= it->second.cost;
  lru_.erase(it->second.lru);
  map_.erase(it);
}

void Cache::put(Key key, Entry entry) {
  entry.cost = kEntryOverhead + entry.rrset.storage().size() + entry.wire.size() +
               entry.ttl_offsets.size() * sizeof(std::uint16_t);
  auto it = map_.find(key);
  if (it != map_.end()) erase(it);
  if (entry.cost > settings_.max_bytes) return;
  lru_.push_front(key);
  entry.lru = lru_.begin();
  bytes_ += entry.cost;
  map_.emplace(std::move(key), std::move(entry));
  ++counters_.inserts;
  shrink();
}

void Cache::shrink() {
  // Bounded: each turn removes one entry.
  while (bytes_ > settings_.max_bytes && !lru_.empty()) {
    auto it = map_.find(lru_.back());
    erase(it);
    ++counters_.evictions;
  }
}

bool Cache::insert_rrset(const RRset& rrset, Trust trust, Time now) {
  if (rrset.empty()) return false;
  Key key{rrset.owner.lowered(), rrset.type, rrset.rclass, Kind::RRset};
  if (auto it = map_.find(key); it != map_.end()) {
    const Entry& old = it->second;
    if (now < old.expires && old.trust > trust) return false;
  }
  Entry e;
  e.inserted = now;
  e.original_ttl = clamp_ttl(rrset.ttl);
  e.expires = now + std::chrono::seconds(e.original_ttl);
  e.trust = trust;
  e.rrset = rrset;
  e.rrset.ttl = e.original_ttl;
  put(std::move(key), std::move(e));
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
  hit.ttl = stale ? settings_.stale_answer_ttl
                  : e->original_ttl - std::min(e->original_ttl, seconds_between(e->inserted, now));
  return hit;
}

bool Cache::insert_negative(const Name& name, std::uint16_t type, std::uint16_t rclass,
                            NegativeKind kind, const RRset& soa, Time now) {
  if (soa.type != rrtype::kSOA || soa.empty()) return false;
  const auto minimum = soa_minimum(*soa.begin());
  if (!minimum) return false;
  std::uint32_t ttl = std::min({soa.ttl, *minimum, settings_.max_negative_ttl});
  ttl = std::min(clamp_ttl(ttl), settings_.max_negative_ttl);
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
  Entry e;
  e.inserted = now;
  e.original_ttl = ttl;
  e.expires = now + std::chrono::seconds(ttl);
  e.trust = Trust::Answer;
  e.wire.assign(wire.begin(), wire.end());
  e.ttl_offsets.assign(ttl_offsets.begin(), ttl_offsets.end());
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

std::size_t Cache::flush() {
  const std::size_t n = map_.size();
  map_.clear();
  lru_.clear();
  bytes_ = 0;
  return n;
}

std::size_t Cache::flush_name(const Name& name) {
  std::size_t n = 0;
  for (auto it = map_.begin(); it != map_.end();) {
    if (it->first.name.is_subdomain_of(name)) {
      auto next = std::next(it);
      erase(it);
      it = next;
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

}  // namespace diode::resolver

#include "diode/resolver/rrset.hpp"

#include <algorithm>
#include <cstring>
#include <random>
#include <unordered_map>
#include <utility>

#include "rdata.hpp"

namespace diode::resolver {

namespace {

// A per-process seed, so the tables below cannot be flooded with colliding
// keys chosen in advance by whoever writes the message.
std::uint64_t process_seed() {
  static const std::uint64_t seed = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) ^ rd();
  }();
  return seed;
}

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

std::uint64_t bytes_hash(std::uint64_t seed, std::span<const std::uint8_t> data) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (std::uint8_t c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

void RRset::push_rdata(std::span<const std::uint8_t> rdata) {
  const std::size_t at = rdatas_.size();
  rdatas_.resize(at + 2 + rdata.size());
  detail::put16(rdatas_.data() + at, static_cast<std::uint16_t>(rdata.size()));
  if (!rdata.empty()) std::memcpy(rdatas_.data() + at + 2, rdata.data(), rdata.size());
  ++count_;
}

bool RRset::add_rdata(std::span<const std::uint8_t> rdata) {
  if (rdata.size() > 0xFFFF) return false;
  if (detail::check_uncompressed_rdata(type, rdata) != WireError::Ok) return false;
  for (auto existing : *this) {
    if (existing.size() == rdata.size() &&
        (rdata.empty() || std::memcmp(existing.data(), rdata.data(), rdata.size()) == 0)) {
      return true;
    }
  }
  push_rdata(rdata);
  return true;
}

bool collect_rrsets(const Message& m, Section s, std::vector<RRset>& out) {
  const std::size_t first = out.size();
  const std::size_t n = m.count(s);
  const std::uint64_t seed = process_seed();
  bool all_kept = true;
  std::vector<std::uint8_t> scratch;
  // (owner, type, class) hash -> index in `out`; RDATA hash -> (index in
  // `out`, offset of the RDATA's length prefix in that set's storage).
  std::unordered_multimap<std::uint64_t, std::size_t> sets;
  std::unordered_multimap<std::uint64_t, std::pair<std::size_t, std::size_t>> rdatas;
  sets.reserve(n);
  rdatas.reserve(n);
  out.reserve(first + n);
  for (std::size_t i = 0; i < n; ++i) {
    const RecordView r = m.record(s, i);
    const std::uint32_t ttl = r.ttl > 0x7FFFFFFFu ? 0 : r.ttl;
    const std::uint64_t key = mix(mix(mix(seed, r.owner.hash()), r.type), r.rclass);
    std::size_t idx = out.size();
    for (auto [it, end] = sets.equal_range(key); it != end; ++it) {
      const RRset& c = out[it->second];
      if (c.type == r.type && c.rclass == r.rclass && c.owner == r.owner) {
        idx = it->second;
        break;
      }
    }
    if (idx == out.size()) {
      out.emplace_back();
      RRset& fresh = out.back();
      fresh.owner = r.owner;
      fresh.type = r.type;
      fresh.rclass = r.rclass;
      fresh.ttl = ttl;
      sets.emplace(key, idx);
    } else if (ttl < out[idx].ttl) {
      out[idx].ttl = ttl;
    }
    scratch.clear();
    m.append_expanded_rdata(r, scratch);
    // parse() validated the layout; expansion can only make it too long.
    if (scratch.size() > 0xFFFF) {
      all_kept = false;
      continue;
    }
    RRset& target = out[idx];
    const std::uint64_t rkey = mix(bytes_hash(seed, scratch), idx);
    bool duplicate = false;
    for (auto [it, end] = rdatas.equal_range(rkey); it != end && !duplicate; ++it) {
      if (it->second.first != idx) continue;
      const std::uint8_t* p = target.rdatas_.data() + it->second.second;
      const std::size_t len = detail::get16(p);
      duplicate =
          len == scratch.size() && (len == 0 || std::memcmp(p + 2, scratch.data(), len) == 0);
    }
    if (duplicate) continue;
    rdatas.emplace(rkey, std::pair{idx, target.rdatas_.size()});
    target.push_rdata(scratch);
  }
  if (!all_kept) {
    const auto first_new = out.begin() + static_cast<std::ptrdiff_t>(first);
    out.erase(std::remove_if(first_new, out.end(), [](const RRset& r) { return r.empty(); }),
              out.end());
  }
  return all_kept;
}

}  // namespace diode::resolver

#include "diode/resolver/rrset.hpp"

#include <algorithm>
#include <cstring>

#include "rdata.hpp"

namespace diode::resolver {

bool RRset::add_rdata(std::span<const std::uint8_t> rdata) {
  if (rdata.size() > 0xFFFF) return false;
  if (detail::check_uncompressed_rdata(type, rdata) != WireError::Ok) return false;
  for (auto existing : *this) {
    if (existing.size() == rdata.size() &&
        (rdata.empty() || std::memcmp(existing.data(), rdata.data(), rdata.size()) == 0)) {
      return true;
    }
  }
  const std::size_t at = rdatas_.size();
  rdatas_.resize(at + 2 + rdata.size());
  detail::put16(rdatas_.data() + at, static_cast<std::uint16_t>(rdata.size()));
  if (!rdata.empty()) std::memcpy(rdatas_.data() + at + 2, rdata.data(), rdata.size());
  ++count_;
  return true;
}

bool collect_rrsets(const Message& m, Section s, std::vector<RRset>& out) {
  const std::size_t first = out.size();
  bool all_kept = true;
  std::vector<std::uint8_t> scratch;
  for (std::size_t i = 0; i < m.count(s); ++i) {
    const RecordView r = m.record(s, i);
    const std::uint32_t ttl = r.ttl > 0x7FFFFFFFu ? 0 : r.ttl;
    RRset* target = nullptr;
    for (std::size_t k = first; k < out.size(); ++k) {
      if (out[k].type == r.type && out[k].rclass == r.rclass && out[k].owner == r.owner) {
        target = &out[k];
        break;
      }
    }
    if (target == nullptr) {
      out.emplace_back();
      target = &out.back();
      target->owner = r.owner;
      target->type = r.type;
      target->rclass = r.rclass;
      target->ttl = ttl;
    } else if (ttl < target->ttl) {
      target->ttl = ttl;
    }
    scratch.clear();
    m.append_expanded_rdata(r, scratch);
    // parse() validated the layout; expansion can only make it too long.
    all_kept = target->add_rdata(scratch) && all_kept;
  }
  if (!all_kept) {
    const auto first_new = out.begin() + static_cast<std::ptrdiff_t>(first);
    out.erase(std::remove_if(first_new, out.end(), [](const RRset& r) { return r.empty(); }),
              out.end());
  }
  return all_kept;
}

}  // namespace diode::resolver

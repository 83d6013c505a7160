#include "diode/tools/matchset.hpp"

#include <algorithm>

namespace diode::tools {

using platform::Family;
using platform::IpAddress;
using sockd::AddressMatch;

// ---- NameSet ---------------------------------------------------------------

NameSet NameSet::of(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return NameSet{false, std::move(names)};
}

bool NameSet::contains(const std::string& n) const {
  const bool listed = std::binary_search(names.begin(), names.end(), n);
  return cofinite ? !listed : listed;
}

namespace {
std::vector<std::string> set_op(const std::vector<std::string>& a,
                                const std::vector<std::string>& b, int op) {
  std::vector<std::string> r;
  if (op == 0) std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(r));
  if (op == 1) std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(r));
  if (op == 2) std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(r));
  return r;
}
}  // namespace

NameSet intersect(const NameSet& a, const NameSet& b) {
  if (a.cofinite && b.cofinite) return {true, set_op(a.names, b.names, 1)};
  if (a.cofinite) return {false, set_op(b.names, a.names, 2)};
  if (b.cofinite) return {false, set_op(a.names, b.names, 2)};
  return {false, set_op(a.names, b.names, 0)};
}

NameSet subtract(const NameSet& a, const NameSet& b) {
  // a \ b = a ∩ complement(b)
  return intersect(a, NameSet{!b.cofinite, b.names});
}

// ---- PortSet ---------------------------------------------------------------

PortSet PortSet::of(const sockd::PortTest& t) {
  using sockd::PortOp;
  PortSet s;
  const unsigned lo = t.lo;
  const auto add = [&s](unsigned a, unsigned b) {
    if (a <= b && b <= 65535)
      s.ranges.emplace_back(static_cast<std::uint16_t>(a), static_cast<std::uint16_t>(b));
  };
  switch (t.op) {
    case PortOp::Any:
      add(0, 65535);
      break;
    case PortOp::Eq:
      add(lo, lo);
      break;
    case PortOp::Neq:
      if (lo > 0) add(0, lo - 1);
      add(lo + 1, 65535);
      break;
    case PortOp::Lt:
      if (lo > 0) add(0, lo - 1);
      break;
    case PortOp::Gt:
      add(lo + 1, 65535);
      break;
    case PortOp::Le:
      add(0, lo);
      break;
    case PortOp::Ge:
      add(lo, 65535);
      break;
    case PortOp::Range:
      add(lo, t.hi);
      break;
  }
  return s;
}

PortSet intersect(const PortSet& a, const PortSet& b) {
  PortSet r;
  for (const auto& x : a.ranges) {
    for (const auto& y : b.ranges) {
      const auto lo = std::max(x.first, y.first);
      const auto hi = std::min(x.second, y.second);
      if (lo <= hi) r.ranges.emplace_back(lo, hi);
    }
  }
  std::sort(r.ranges.begin(), r.ranges.end());
  return r;
}

PortSet subtract(const PortSet& a, const PortSet& b) {
  PortSet r;
  for (const auto& x : a.ranges) {
    unsigned lo = x.first;
    const unsigned hi = x.second;
    bool done = false;
    for (const auto& y : b.ranges) {
      if (y.second < lo || y.first > hi) continue;
      if (y.first > lo)
        r.ranges.emplace_back(static_cast<std::uint16_t>(lo),
                              static_cast<std::uint16_t>(y.first - 1));
      if (y.second >= hi) {
        done = true;
        break;
      }
      lo = static_cast<unsigned>(y.second) + 1;
    }
    if (!done)
      r.ranges.emplace_back(static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi));
  }
  return r;
}

// ---- Cube / AddrSet --------------------------------------------------------

Cube Cube::of(const platform::MaskedAddress& m) {
  Cube c;
  c.family = m.addr.family;
  for (std::size_t i = 0; i < m.addr.size(); ++i) {
    c.care[i] = m.mask.bytes[i];
    c.value[i] = static_cast<std::uint8_t>(m.addr.bytes[i] & m.mask.bytes[i]);
  }
  return c;
}

bool Cube::contains(const IpAddress& a) const {
  if (a.family != family) return false;
  for (std::size_t i = 0; i < 16; ++i) {
    if (((a.bytes[i] ^ value[i]) & care[i]) != 0) return false;
  }
  return true;
}

namespace {

std::optional<Cube> intersect_cube(const Cube& a, const Cube& b) {
  if (a.family != b.family) return std::nullopt;
  Cube r;
  r.family = a.family;
  for (std::size_t i = 0; i < 16; ++i) {
    if (((a.value[i] ^ b.value[i]) & a.care[i] & b.care[i]) != 0) return std::nullopt;
    r.care[i] = static_cast<std::uint8_t>(a.care[i] | b.care[i]);
    r.value[i] = static_cast<std::uint8_t>((a.value[i] & a.care[i]) | (b.value[i] & b.care[i]));
  }
  return r;
}

// a \ b as disjoint cubes: fix, one at a time, each bit that b cares about
// and a does not, taking the branch that leaves b.
void subtract_cube(const Cube& a, const Cube& b, std::vector<Cube>& out) {
  const auto c = intersect_cube(a, b);
  if (!c) {
    out.push_back(a);
    return;
  }
  std::array<std::uint8_t, 16> done{};
  for (std::size_t i = 0; i < 16; ++i) {
    const auto extra = static_cast<std::uint8_t>(c->care[i] & ~a.care[i]);
    for (int bit = 7; bit >= 0; --bit) {
      const auto m = static_cast<std::uint8_t>(1U << bit);
      if ((extra & m) == 0) continue;
      Cube p = a;
      for (std::size_t j = 0; j < 16; ++j) {
        p.care[j] = static_cast<std::uint8_t>(a.care[j] | done[j]);
        p.value[j] = static_cast<std::uint8_t>((a.value[j] & a.care[j]) | (c->value[j] & done[j]));
      }
      p.care[i] = static_cast<std::uint8_t>(p.care[i] | m);
      p.value[i] = static_cast<std::uint8_t>((p.value[i] & ~m) | (~c->value[i] & m));
      out.push_back(p);
      done[i] = static_cast<std::uint8_t>(done[i] | m);
    }
  }
}

}  // namespace

AddrSet AddrSet::all(bool with_none) {
  return AddrSet{with_none, {Cube::whole(Family::V4), Cube::whole(Family::V6)}};
}

bool AddrSet::covers_family(Family f) const {
  AddrSet whole{false, {Cube::whole(f)}};
  return subtract(whole, AddrSet{false, cubes}).empty();
}

AddrSet intersect(const AddrSet& a, const AddrSet& b) {
  AddrSet r;
  r.none = a.none && b.none;
  for (const auto& x : a.cubes) {
    for (const auto& y : b.cubes) {
      if (auto c = intersect_cube(x, y)) r.cubes.push_back(*c);
    }
  }
  return r;
}

AddrSet subtract(const AddrSet& a, const AddrSet& b) {
  AddrSet r;
  r.none = a.none && !b.none;
  std::vector<Cube> pieces = a.cubes;
  for (const auto& y : b.cubes) {
    std::vector<Cube> next;
    for (const auto& p : pieces) subtract_cube(p, y, next);
    if (next.size() > kMaxCubes) {
      // Too fragmented: keep a superset (a itself), which only ever hides a
      // finding, never invents one.
      r.cubes = a.cubes;
      return r;
    }
    pieces = std::move(next);
    if (pieces.empty()) break;
  }
  r.cubes = std::move(pieces);
  return r;
}

// ---- DomainSet -------------------------------------------------------------

namespace {

bool name_covers(const NameMatch& outer, const NameMatch& inner) {
  if (outer.name == inner.name) return outer.zone || !inner.zone;
  if (!outer.zone) return false;
  const auto& n = inner.name;
  return n.size() > outer.name.size() &&
         n.compare(n.size() - outer.name.size(), outer.name.size(), outer.name) == 0 &&
         n[n.size() - outer.name.size() - 1] == '.';
}

}  // namespace

DomainSet intersect(const DomainSet& a, const DomainSet& b) {
  DomainSet r;
  r.none = a.none && b.none;
  if (a.all && b.all) return r;
  r.all = false;
  if (a.all) {
    r.items = b.items;
  } else if (b.all) {
    r.items = a.items;
  } else {
    for (const auto& x : a.items) {
      for (const auto& y : b.items) {
        if (name_covers(x, y)) {
          r.items.push_back(y);
        } else if (name_covers(y, x)) {
          r.items.push_back(x);
        }
      }
    }
  }
  return r;
}

DomainSet subtract(const DomainSet& a, const DomainSet& b) {
  DomainSet r;
  r.none = a.none && !b.none;
  r.all = false;
  if (b.all) return r;
  if (a.all) {
    // Every name minus some zones: not representable; keep every name.
    r.all = true;
    return r;
  }
  for (const auto& x : a.items) {
    const bool gone = std::any_of(b.items.begin(), b.items.end(),
                                  [&](const NameMatch& y) { return name_covers(y, x); });
    if (!gone) r.items.push_back(x);
  }
  return r;
}

// ---- Box -------------------------------------------------------------------

bool Box::empty() const {
  return iface.empty() || commands == 0 || methods == 0 || users.empty() || src_addr.empty() ||
         src_name.empty() || dst_addr.empty() || dst_name.empty() || port.empty();
}

bool Box::is_universe() const {
  return iface.full() && commands == sockd::kAllCommands && methods == sockd::kAllMethods &&
         users.full() && subtract(AddrSet::all(false), src_addr).empty() && src_name.full() &&
         subtract(AddrSet::all(true), dst_addr).empty() && dst_name.full() && port.full();
}

namespace {

void restrict_side(AddrSet& addr, DomainSet& name, const AddressMatch& m, bool with_none) {
  switch (m.kind) {
    case AddressMatch::Kind::Any:
      addr = AddrSet::all(with_none);
      name = DomainSet::any();
      break;
    case AddressMatch::Kind::Masked:
      addr = AddrSet{false, {Cube::of(m.masked)}};
      name = DomainSet::any();
      break;
    case AddressMatch::Kind::Domain:
      addr = AddrSet::all(with_none);
      name = DomainSet{false, false, {NameMatch{m.domain, m.zone}}};
      break;
  }
}

}  // namespace

void restrict_dst(Box& b, const AddressMatch& m) {
  restrict_side(b.dst_addr, b.dst_name, m, true);
}

Box box_of(const sockd::Rule& r) {
  Box b;
  if (!r.interfaces.empty()) b.iface = NameSet::of(r.interfaces);
  b.commands = r.commands;
  b.methods = r.methods;
  if (!r.users.any) {
    std::vector<std::string> names = r.users.names;
    names.insert(names.end(), r.users.file_users.begin(), r.users.file_users.end());
    b.users = NameSet::of(std::move(names));
  }
  restrict_side(b.src_addr, b.src_name, r.src, false);
  restrict_side(b.dst_addr, b.dst_name, r.dst, true);
  b.port = PortSet::of(r.port);
  return b;
}

std::optional<Box> intersect(const Box& a, const Box& b) {
  Box r;
  r.commands = a.commands & b.commands;
  if (r.commands == 0) return std::nullopt;
  r.methods = a.methods & b.methods;
  if (r.methods == 0) return std::nullopt;
  r.port = intersect(a.port, b.port);
  if (r.port.empty()) return std::nullopt;
  r.iface = intersect(a.iface, b.iface);
  if (r.iface.empty()) return std::nullopt;
  r.users = intersect(a.users, b.users);
  if (r.users.empty()) return std::nullopt;
  r.src_addr = intersect(a.src_addr, b.src_addr);
  if (r.src_addr.empty()) return std::nullopt;
  r.dst_addr = intersect(a.dst_addr, b.dst_addr);
  if (r.dst_addr.empty()) return std::nullopt;
  r.src_name = intersect(a.src_name, b.src_name);
  if (r.src_name.empty()) return std::nullopt;
  r.dst_name = intersect(a.dst_name, b.dst_name);
  if (r.dst_name.empty()) return std::nullopt;
  return r;
}

namespace {

// Overlap tests that build nothing: the coverage scan calls them for every
// candidate pair, so they must not allocate.
bool overlaps(const NameSet& a, const NameSet& b) {
  if (a.cofinite && b.cofinite) return true;  // both infinite
  if (a.cofinite)
    return std::any_of(b.names.begin(), b.names.end(),
                       [&a](const std::string& n) { return a.contains(n); });
  if (b.cofinite)
    return std::any_of(a.names.begin(), a.names.end(),
                       [&b](const std::string& n) { return b.contains(n); });
  for (const auto& n : a.names) {
    if (std::binary_search(b.names.begin(), b.names.end(), n)) return true;
  }
  return false;
}

bool overlaps(const PortSet& a, const PortSet& b) {
  for (const auto& x : a.ranges) {
    for (const auto& y : b.ranges) {
      if (x.first <= y.second && y.first <= x.second) return true;
    }
  }
  return false;
}

bool cubes_overlap(const Cube& a, const Cube& b) {
  if (a.family != b.family) return false;
  for (std::size_t i = 0; i < 16; ++i) {
    if (((a.value[i] ^ b.value[i]) & a.care[i] & b.care[i]) != 0) return false;
  }
  return true;
}

bool overlaps(const AddrSet& a, const AddrSet& b) {
  if (a.none && b.none) return true;
  for (const auto& x : a.cubes) {
    for (const auto& y : b.cubes) {
      if (cubes_overlap(x, y)) return true;
    }
  }
  return false;
}

bool overlaps(const DomainSet& a, const DomainSet& b) {
  if (a.none && b.none) return true;
  if (a.all && b.all) return true;
  if (a.all) return !b.items.empty();
  if (b.all) return !a.items.empty();
  for (const auto& x : a.items) {
    for (const auto& y : b.items) {
      if (name_covers(x, y) || name_covers(y, x)) return true;
    }
  }
  return false;
}

}  // namespace

bool intersects(const Box& a, const Box& b) {
  return (a.commands & b.commands) != 0 && (a.methods & b.methods) != 0 &&
         overlaps(a.port, b.port) && overlaps(a.dst_addr, b.dst_addr) &&
         overlaps(a.src_addr, b.src_addr) && overlaps(a.iface, b.iface) &&
         overlaps(a.users, b.users) && overlaps(a.src_name, b.src_name) &&
         overlaps(a.dst_name, b.dst_name);
}

std::vector<Box> subtract(const Box& a, const Box& b) {
  std::vector<Box> out;
  if (!intersects(a, b)) {
    out.push_back(a);
    return out;
  }
  // Field by field: the part of `a` that leaves b on this field while
  // staying inside b on the fields before it. The pieces are disjoint.
  Box prefix = a;
  const auto emit = [&out](const Box& piece) {
    if (!piece.empty()) out.push_back(piece);
  };
  {
    Box p = prefix;
    p.commands = a.commands & static_cast<std::uint8_t>(~b.commands);
    emit(p);
    prefix.commands = a.commands & b.commands;
  }
  {
    Box p = prefix;
    p.methods = a.methods & static_cast<std::uint8_t>(~b.methods);
    emit(p);
    prefix.methods = a.methods & b.methods;
  }
  {
    Box p = prefix;
    p.iface = subtract(a.iface, b.iface);
    emit(p);
    prefix.iface = intersect(a.iface, b.iface);
  }
  {
    Box p = prefix;
    p.users = subtract(a.users, b.users);
    emit(p);
    prefix.users = intersect(a.users, b.users);
  }
  {
    Box p = prefix;
    p.port = subtract(a.port, b.port);
    emit(p);
    prefix.port = intersect(a.port, b.port);
  }
  {
    Box p = prefix;
    p.src_name = subtract(a.src_name, b.src_name);
    emit(p);
    prefix.src_name = intersect(a.src_name, b.src_name);
  }
  {
    Box p = prefix;
    p.dst_name = subtract(a.dst_name, b.dst_name);
    emit(p);
    prefix.dst_name = intersect(a.dst_name, b.dst_name);
  }
  {
    Box p = prefix;
    p.src_addr = subtract(a.src_addr, b.src_addr);
    emit(p);
    prefix.src_addr = intersect(a.src_addr, b.src_addr);
  }
  {
    Box p = prefix;
    p.dst_addr = subtract(a.dst_addr, b.dst_addr);
    emit(p);
  }
  return out;
}

// ---- describe --------------------------------------------------------------

namespace {

std::string describe_cube(const Cube& c) {
  IpAddress addr;
  addr.family = c.family;
  IpAddress mask;
  mask.family = c.family;
  bool any_care = false;
  for (std::size_t i = 0; i < addr.size(); ++i) {
    addr.bytes[i] = c.value[i];
    mask.bytes[i] = c.care[i];
    any_care = any_care || c.care[i] != 0;
  }
  if (!any_care) return c.family == Family::V4 ? "any-ipv4" : "any-ipv6";
  const platform::MaskedAddress m{addr, mask};
  if (auto len = m.prefix_length()) {
    if (*len == addr.bits()) return addr.to_string();
    return addr.to_string() + "/" + std::to_string(*len);
  }
  return addr.to_string() + "/" + mask.to_string();
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += sep;
    s += x;
  }
  return s;
}

std::string describe_names(const NameSet& n) {
  if (n.cofinite) return "any-except:" + join(n.names, ",");
  return join(n.names, ",");
}

std::string describe_domains(const DomainSet& d) {
  std::vector<std::string> parts;
  if (d.all) {
    parts.emplace_back("any-name");
  } else {
    for (const auto& i : d.items) parts.push_back((i.zone ? "." : "") + i.name);
  }
  if (d.none) parts.emplace_back("(no-name)");
  return join(parts, ",");
}

std::string describe_side(const AddrSet& a, const DomainSet& d, bool with_none) {
  const AddrSet complement = subtract(AddrSet::all(with_none), a);
  std::vector<std::string> parts;
  if (!complement.empty()) {
    // "Everything but X" reads better than the pieces that make it up.
    const bool shorter =
        complement.cubes.size() + (complement.none ? 1 : 0) < a.cubes.size() + (a.none ? 1 : 0);
    parts.push_back(shorter ? "any-except:" + describe(complement) : describe(a));
  }
  if (!d.full()) {
    // A name test: which names, and (if restricted) which addresses.
    parts.push_back(describe_domains(d));
  }
  return join(parts, " and ");
}

}  // namespace

std::string describe(const AddrSet& a) {
  std::vector<std::string> parts;
  parts.reserve(a.cubes.size() + 1);
  for (const auto& c : a.cubes) parts.push_back(describe_cube(c));
  if (a.none) parts.emplace_back("(unresolved)");
  return join(parts, ",");
}

std::string describe(const PortSet& p) {
  std::vector<std::string> parts;
  for (const auto& [lo, hi] : p.ranges) {
    parts.push_back(lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi));
  }
  return join(parts, ",");
}

std::string describe(const Box& b) {
  std::vector<std::string> parts;
  if (!b.iface.full()) parts.push_back("iface=" + describe_names(b.iface));
  if (auto s = describe_side(b.src_addr, b.src_name, false); !s.empty())
    parts.push_back("from=" + s);
  if (auto s = describe_side(b.dst_addr, b.dst_name, true); !s.empty()) parts.push_back("to=" + s);
  if (!b.port.full()) parts.push_back("port=" + describe(b.port));
  if (!b.users.full()) parts.push_back("user=" + describe_names(b.users));
  if (b.commands != sockd::kAllCommands) {
    std::vector<std::string> c;
    if ((b.commands & 1) != 0) c.emplace_back("connect");
    if ((b.commands & 2) != 0) c.emplace_back("bind");
    if ((b.commands & 4) != 0) c.emplace_back("udp");
    parts.push_back("command=" + join(c, ","));
  }
  if (b.methods != sockd::kAllMethods) {
    parts.push_back(std::string("auth=") + ((b.methods & 1) != 0 ? "none" : "userpass"));
  }
  if (parts.empty()) return "any request";
  return join(parts, " ");
}

// ---- partition -------------------------------------------------------------

std::optional<std::vector<Region>> partition(const sockd::RuleSet& rs, const Box& within,
                                             std::size_t max_pieces) {
  std::vector<Region> regions;
  std::vector<Box> remaining{within};
  for (std::size_t i = 0; i < rs.rules.size() && !remaining.empty(); ++i) {
    const Box r = box_of(rs.rules[i]);
    if (r.empty()) continue;
    std::vector<Box> next;
    for (const auto& p : remaining) {
      auto inter = intersect(p, r);
      if (!inter) {
        next.push_back(p);
        continue;
      }
      regions.push_back(Region{std::move(*inter), i, rs.rules[i].action});
      auto rest = subtract(p, r);
      next.insert(next.end(), std::make_move_iterator(rest.begin()),
                  std::make_move_iterator(rest.end()));
    }
    remaining = std::move(next);
    if (regions.size() + remaining.size() > max_pieces) return std::nullopt;
  }
  for (auto& p : remaining)
    regions.push_back(Region{std::move(p), std::nullopt, sockd::Action::Deny});
  return regions;
}

}  // namespace diode::tools

// The compiled form of a sockd.conf: a two-level tuple-space index.
//
// Each rule side falls in a class: any, IPv4 with a given mask, IPv6 with a
// given mask, an exact name or a zone. Level one groups rules by source
// class and hashes (source & mask) to a level-two index; level two groups
// those rules by destination class and hashes (destination & mask) to the
// ascending list of rule indices. Any mask works, contiguous or not, because
// a key is just the masked bits. A request probes each class once (each name
// suffix for zones), groups are visited in the order of their smallest rule
// index, and a group whose smallest index is past the best match so far is
// skipped: the first match is exactly the linear scan's.
#include <algorithm>
#include <limits>
#include <unordered_map>

#include "diode/sockd/engine.hpp"
#include "engine_internal.hpp"

namespace diode::sockd {
namespace {

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t hash_name(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

struct Key {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  std::size_t operator()(const Key& k) const {
    return static_cast<std::size_t>(mix(k.a ^ mix(k.b + 0x9e3779b97f4a7c15ULL)));
  }
};

enum class SideKind : std::uint8_t { Any, V4, V6, Exact, Zone };

struct SideClass {
  SideKind kind = SideKind::Any;
  std::uint64_t m0 = 0;
  std::uint64_t m1 = 0;
  bool operator==(const SideClass&) const = default;
};

struct SideClassHash {
  std::size_t operator()(const SideClass& c) const {
    return static_cast<std::size_t>(mix(static_cast<std::uint64_t>(c.kind) ^ mix(c.m0) ^ (c.m1 * 31)));
  }
};

std::uint64_t high64(const IpAddress& a) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | a.bytes[i];
  return v;
}

std::uint64_t low64(const IpAddress& a) {
  std::uint64_t v = 0;
  for (std::size_t i = 8; i < 16; ++i) v = (v << 8) | a.bytes[i];
  return v;
}

std::pair<SideClass, Key> classify(const AddressMatch& m) {
  switch (m.kind) {
    case AddressMatch::Kind::Any: return {SideClass{}, Key{}};
    case AddressMatch::Kind::Masked: {
      const IpAddress& addr = m.masked.addr;
      const IpAddress& mask = m.masked.mask;
      if (addr.family == platform::Family::V4) {
        const std::uint64_t mk = mask.v4_value();
        return {SideClass{SideKind::V4, mk, 0}, Key{addr.v4_value() & mk, 0}};
      }
      const std::uint64_t m0 = high64(mask);
      const std::uint64_t m1 = low64(mask);
      return {SideClass{SideKind::V6, m0, m1}, Key{high64(addr) & m0, low64(addr) & m1}};
    }
    case AddressMatch::Kind::Domain:
      return {SideClass{m.zone ? SideKind::Zone : SideKind::Exact, 0, 0},
              Key{hash_name(m.domain), 0}};
  }
  return {SideClass{}, Key{}};
}

struct Slot {
  Key key;
  std::uint32_t begin = 0;  // rules in the pool, or a DstIndex for level one
  std::uint32_t count = 0;  // 0 marks an empty slot
};

/// Open addressing with linear probing at load ≤ 1/2. Every table lives in
/// one shared slot vector, in build order, so the tables a request probes
/// one after the other sit close together in memory.
struct SlotTable {
  std::uint32_t begin = 0;
  std::uint32_t mask = 0;  // capacity - 1; capacity 0 means no table
  bool present = false;
};

SlotTable build_table(const std::vector<Slot>& entries, std::vector<Slot>& slots) {
  std::size_t cap = 2;
  while (cap < entries.size() * 2) cap *= 2;
  SlotTable t{static_cast<std::uint32_t>(slots.size()), static_cast<std::uint32_t>(cap - 1), true};
  slots.resize(slots.size() + cap);
  Slot* base = slots.data() + t.begin;
  for (const Slot& e : entries) {
    std::size_t i = KeyHash{}(e.key) & t.mask;
    while (base[i].count != 0) i = (i + 1) & t.mask;
    base[i] = e;
  }
  return t;
}

/// Starts loading the slot `k` would be found at: a request probes ten to
/// twenty tables, and issuing their cache misses together instead of one
/// after another is most of a decision's speed on a large rule set.
void prefetch(const SlotTable& t, const Slot* slots, const Key& k) {
  if (t.present) __builtin_prefetch(slots + t.begin + (KeyHash{}(k) & t.mask));
}

const Slot* find(const SlotTable& t, const Slot* slots, const Key& k) {
  if (!t.present) return nullptr;
  const Slot* base = slots + t.begin;
  std::size_t i = KeyHash{}(k) & t.mask;
  for (;;) {
    const Slot& s = base[i];
    if (s.count == 0) return nullptr;
    if (s.key == k) return &s;
    i = (i + 1) & t.mask;
  }
}

struct DstGroup {
  SideClass cls;
  std::uint32_t min_index = kNone;
  std::uint32_t any_begin = 0;  // SideKind::Any: the rules, in the pool
  std::uint32_t any_count = 0;
  SlotTable table;              // otherwise: key → rules, in the pool
};

struct DstIndex {
  std::uint32_t first = 0;  // its groups in CompiledIndex::dst_groups, by ascending min_index
  std::uint32_t count = 0;
};

struct SrcGroup {
  SideClass cls;
  std::uint32_t min_index = kNone;
  std::uint32_t any_dst = kNone;  // SideKind::Any: its DstIndex
  SlotTable table;                // otherwise: key → DstIndex (in Slot::begin)
};

/// The fields a candidate still has to pass once its address keys matched,
/// packed so the check rarely touches the Rule itself. Exact keys (IPv4 and
/// IPv6 masked bits) prove the address match; names are hashed, so rules
/// with a name side are checked in full.
struct Residual {
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  PortOp op = PortOp::Any;
  std::uint8_t commands = 0;
  std::uint8_t methods = 0;
  std::uint8_t flags = 0;
};
constexpr std::uint8_t kCheckFull = 1;   // a name side: verify everything
constexpr std::uint8_t kCheckLists = 2;  // users or interfaces: verify on the Rule

bool port_ok(const Residual& r, std::uint16_t port) {
  switch (r.op) {
    case PortOp::Any: return true;
    case PortOp::Eq: return port == r.lo;
    case PortOp::Neq: return port != r.lo;
    case PortOp::Lt: return port < r.lo;
    case PortOp::Gt: return port > r.lo;
    case PortOp::Le: return port <= r.lo;
    case PortOp::Ge: return port >= r.lo;
    case PortOp::Range: return port >= r.lo && port <= r.hi;
  }
  return false;
}

/// What one side of a request offers to the classes: its masked bits and
/// the hashes of its name and every suffix of it.
struct SideKeys {
  bool has_v4 = false;
  bool has_v6 = false;
  std::uint64_t v4 = 0;
  std::uint64_t v6_hi = 0;
  std::uint64_t v6_lo = 0;
  bool has_name = false;
  std::uint64_t name_hash = 0;
  std::vector<std::uint64_t> suffix_hashes;  // the name itself first

  void set(const std::optional<IpAddress>& addr, const std::optional<std::string>& name,
           bool want_names) {
    if (addr) {
      if (addr->family == platform::Family::V4) {
        has_v4 = true;
        v4 = addr->v4_value();
      } else {
        has_v6 = true;
        v6_hi = high64(*addr);
        v6_lo = low64(*addr);
      }
    }
    if (name && want_names) {
      has_name = true;
      const std::string_view n = *name;
      name_hash = hash_name(n);
      suffix_hashes.push_back(name_hash);
      for (std::size_t i = 0; i < n.size(); ++i) {
        if (n[i] == '.') suffix_hashes.push_back(hash_name(n.substr(i + 1)));
      }
    }
  }

  /// The one key of an address or exact-name class, if this side has it.
  bool single_key(const SideClass& c, Key& k) const {
    switch (c.kind) {
      case SideKind::V4: k = Key{v4 & c.m0, 0}; return has_v4;
      case SideKind::V6: k = Key{v6_hi & c.m0, v6_lo & c.m1}; return has_v6;
      case SideKind::Exact: k = Key{name_hash, 0}; return has_name;
      case SideKind::Any:
      case SideKind::Zone:
        return false;
    }
    return false;
  }

  template <class F>
  void for_each_key(const SideClass& c, F&& f) const {
    switch (c.kind) {
      case SideKind::Any: f(Key{}); return;
      case SideKind::V4:
        if (has_v4) f(Key{v4 & c.m0, 0});
        return;
      case SideKind::V6:
        if (has_v6) f(Key{v6_hi & c.m0, v6_lo & c.m1});
        return;
      case SideKind::Exact:
        if (has_name) f(Key{name_hash, 0});
        return;
      case SideKind::Zone:
        for (const std::uint64_t h : suffix_hashes) f(Key{h, 0});
        return;
    }
  }
};

}  // namespace

struct CompiledIndex {
  std::vector<SrcGroup> src_groups;  // by ascending min_index
  std::vector<DstIndex> dst_indexes;
  std::vector<DstGroup> dst_groups;
  std::vector<Slot> slots;
  std::vector<std::uint32_t> pool;
  std::vector<Residual> residuals;  // one per rule
  bool src_names = false;  // some source side is a name or zone
  bool dst_names = false;
};

namespace {

/// One rule's place in the index; sorting these lays the index out in order.
struct Entry {
  std::uint32_t src_class;
  std::uint32_t dst_class;
  Key src_key;
  Key dst_key;
  std::uint32_t index;
};

bool entry_less(const Entry& a, const Entry& b) {
  if (a.src_class != b.src_class) return a.src_class < b.src_class;
  if (a.src_key.a != b.src_key.a) return a.src_key.a < b.src_key.a;
  if (a.src_key.b != b.src_key.b) return a.src_key.b < b.src_key.b;
  if (a.dst_class != b.dst_class) return a.dst_class < b.dst_class;
  if (a.dst_key.a != b.dst_key.a) return a.dst_key.a < b.dst_key.a;
  if (a.dst_key.b != b.dst_key.b) return a.dst_key.b < b.dst_key.b;
  return a.index < b.index;
}

// Sorting instead of nested hash maps: a 100,000-rule file compiles with a
// handful of allocations per class rather than several per rule.
std::unique_ptr<CompiledIndex> compile(const RuleSet& rs) {
  auto out = std::make_unique<CompiledIndex>();
  std::unordered_map<SideClass, std::uint32_t, SideClassHash> class_ids;
  std::vector<SideClass> classes;
  const auto class_id = [&](const SideClass& c) {
    auto [it, fresh] = class_ids.try_emplace(c, static_cast<std::uint32_t>(classes.size()));
    if (fresh) classes.push_back(c);
    return it->second;
  };
  std::vector<Entry> entries;
  entries.reserve(rs.rules.size());
  out->residuals.reserve(rs.rules.size());
  for (std::size_t i = 0; i < rs.rules.size(); ++i) {
    const Rule& r = rs.rules[i];
    const auto [sc, sk] = classify(r.src);
    const auto [dc, dk] = classify(r.dst);
    out->src_names = out->src_names || r.src.kind == AddressMatch::Kind::Domain;
    out->dst_names = out->dst_names || r.dst.kind == AddressMatch::Kind::Domain;
    entries.push_back(Entry{class_id(sc), class_id(dc), sk, dk, static_cast<std::uint32_t>(i)});
    Residual res;
    res.op = r.port.op;
    res.lo = r.port.lo;
    res.hi = r.port.hi;
    res.commands = r.commands;
    res.methods = r.methods;
    if (r.src.kind == AddressMatch::Kind::Domain || r.dst.kind == AddressMatch::Kind::Domain) {
      res.flags |= kCheckFull;
    }
    if (!r.users.any || !r.interfaces.empty()) res.flags |= kCheckLists;
    out->residuals.push_back(res);
  }
  std::sort(entries.begin(), entries.end(), entry_less);
  out->pool.reserve(entries.size());

  const auto by_min = [](const auto& a, const auto& b) { return a.min_index < b.min_index; };
  std::size_t e = 0;
  while (e < entries.size()) {  // one source class
    const std::uint32_t sc = entries[e].src_class;
    SrcGroup sg;
    sg.cls = classes[sc];
    std::vector<Slot> src_slots;
    while (e < entries.size() && entries[e].src_class == sc) {  // one source key
      const Key sk = entries[e].src_key;
      const auto di_id = static_cast<std::uint32_t>(out->dst_indexes.size());
      out->dst_indexes.emplace_back();
      std::vector<DstGroup> groups;
      while (e < entries.size() && entries[e].src_class == sc && entries[e].src_key == sk) {
        const std::uint32_t dc = entries[e].dst_class;  // one destination class
        DstGroup g;
        g.cls = classes[dc];
        std::vector<Slot> slots;
        while (e < entries.size() && entries[e].src_class == sc && entries[e].src_key == sk &&
               entries[e].dst_class == dc) {
          const Key dk = entries[e].dst_key;  // one destination key: its rules, ascending
          Slot slot{dk, static_cast<std::uint32_t>(out->pool.size()), 0};
          while (e < entries.size() && entries[e].src_class == sc && entries[e].src_key == sk &&
                 entries[e].dst_class == dc && entries[e].dst_key == dk) {
            g.min_index = std::min(g.min_index, entries[e].index);
            out->pool.push_back(entries[e].index);
            ++slot.count;
            ++e;
          }
          slots.push_back(slot);
        }
        if (g.cls.kind == SideKind::Any) {  // one key only: classify gives Any the zero key
          g.any_begin = slots[0].begin;
          g.any_count = slots[0].count;
        } else {
          g.table = build_table(slots, out->slots);
        }
        sg.min_index = std::min(sg.min_index, g.min_index);
        groups.push_back(std::move(g));
      }
      std::sort(groups.begin(), groups.end(), by_min);
      out->dst_indexes[di_id] = DstIndex{static_cast<std::uint32_t>(out->dst_groups.size()),
                                         static_cast<std::uint32_t>(groups.size())};
      out->dst_groups.insert(out->dst_groups.end(), groups.begin(), groups.end());
      if (sg.cls.kind == SideKind::Any) sg.any_dst = di_id;
      src_slots.push_back(Slot{sk, di_id, 1});
    }
    if (sg.cls.kind != SideKind::Any) sg.table = build_table(src_slots, out->slots);
    out->src_groups.push_back(std::move(sg));
  }
  std::sort(out->src_groups.begin(), out->src_groups.end(), by_min);
  return out;
}

}  // namespace

Engine::Engine(std::shared_ptr<const RuleSet> rules, std::shared_ptr<const RouteTable> routes)
    : rules_(rules ? std::move(rules) : std::make_shared<const RuleSet>()),
      routes_(std::move(routes)),
      index_(compile(*rules_)) {}

Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

std::optional<std::size_t> Engine::first_match(const RuleRequest& q) const {
  const detail::PreparedRequest p(q);
  SideKeys src;
  SideKeys dst;
  src.set(p.src_addr, p.src_name, index_->src_names);
  dst.set(p.dst_addr, p.dst_name, index_->dst_names);
  const std::vector<Rule>& rules = rules_->rules;
  const std::uint32_t* pool = index_->pool.data();
  const Slot* slots = index_->slots.data();
  const Residual* residuals = index_->residuals.data();
  const auto cmd = static_cast<std::uint8_t>(q.command);
  const auto method = static_cast<std::uint8_t>(q.method);
  std::uint32_t best = kNone;

  const auto candidate = [&](std::uint32_t i) {
    const Residual& r = residuals[i];
    if ((r.flags & kCheckFull) != 0) return detail::prepared_matches(rules[i], p, nullptr);
    if ((r.commands & cmd) == 0 || (r.methods & method) == 0 || !port_ok(r, q.dst_port)) return false;
    return (r.flags & kCheckLists) == 0 || detail::prepared_matches(rules[i], p, nullptr);
  };
  const auto scan = [&](std::uint32_t begin, std::uint32_t count) {
    for (std::uint32_t k = begin; k < begin + count; ++k) {
      const std::uint32_t i = pool[k];
      if (i >= best) return;
      if (candidate(i)) {
        best = i;
        return;
      }
    }
  };
  const auto probe_dst = [&](const DstIndex& di) {
    for (std::uint32_t n = 0; n < di.count; ++n) {
      const DstGroup& g = index_->dst_groups[di.first + n];
      if (g.min_index >= best) break;
      Key k;
      if (dst.single_key(g.cls, k)) prefetch(g.table, slots, k);
    }
    for (std::uint32_t n = 0; n < di.count; ++n) {
      const DstGroup& g = index_->dst_groups[di.first + n];
      if (g.min_index >= best) return;
      if (g.cls.kind == SideKind::Any) {
        scan(g.any_begin, g.any_count);
        continue;
      }
      dst.for_each_key(g.cls, [&](const Key& k) {
        if (const Slot* s = find(g.table, slots, k)) scan(s->begin, s->count);
      });
    }
  };
  for (const SrcGroup& g : index_->src_groups) {
    Key k;
    if (src.single_key(g.cls, k)) prefetch(g.table, slots, k);
  }
  for (const SrcGroup& g : index_->src_groups) {
    if (g.min_index >= best) break;
    if (g.cls.kind == SideKind::Any) {
      probe_dst(index_->dst_indexes[g.any_dst]);
      continue;
    }
    src.for_each_key(g.cls, [&](const Key& k) {
      if (const Slot* s = find(g.table, slots, k)) probe_dst(index_->dst_indexes[s->begin]);
    });
  }
  if (best == kNone) return std::nullopt;
  return best;
}

}  // namespace diode::sockd

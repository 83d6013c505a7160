#pragma once
// Match sets of sockd.conf rules as boxes: one set per request field
// (interface, command, method, user, source address and name, destination
// address and name, port). Lint (shadowing, redundancy, protection) and diff
// are computed by intersecting and subtracting boxes.
//
// Every operation is exact except two, which over-approximate (keep more
// than the true difference) and so can only make lint miss a "shadowed"
// finding, never invent one: subtracting name zones that partly overlap
// (`.example.test` minus `www.example.test`), and an address set that would
// grow past kMaxCubes pieces.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/sockd/rules.hpp"

namespace diode::tools {

/// A finite set of names, or every name but a finite list (interfaces, users).
struct NameSet {
  bool cofinite = true;            // true: all names except `names`
  std::vector<std::string> names;  // sorted, unique

  static NameSet all() { return {}; }
  /// Exactly these names (sorted and deduplicated here).
  static NameSet of(std::vector<std::string> names);
  bool empty() const { return !cofinite && names.empty(); }
  bool full() const { return cofinite && names.empty(); }
  bool contains(const std::string& n) const;
  bool operator==(const NameSet&) const = default;
};
/// a ∩ b and a \ b, exact (finite and co-finite sets are closed under both).
NameSet intersect(const NameSet& a, const NameSet& b);
NameSet subtract(const NameSet& a, const NameSet& b);

/// Destination ports as sorted, disjoint, inclusive intervals.
struct PortSet {
  std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;

  static PortSet all() { return {{{0, 65535}}}; }
  /// The ports a rule's port test accepts (possibly none).
  static PortSet of(const sockd::PortTest& t);
  bool empty() const { return ranges.empty(); }
  bool full() const {
    return ranges.size() == 1 && ranges[0].first == 0 && ranges[0].second == 65535;
  }
  bool operator==(const PortSet&) const = default;
};
/// a ∩ b and a \ b over the interval lists, exact.
PortSet intersect(const PortSet& a, const PortSet& b);
PortSet subtract(const PortSet& a, const PortSet& b);

/// Addresses of one family agreeing with `value` on the bits set in `care`
/// (NEC's mask test; a prefix is a cube whose care bits are leading ones).
struct Cube {
  platform::Family family = platform::Family::V4;
  std::array<std::uint8_t, 16> value{};
  std::array<std::uint8_t, 16> care{};

  static Cube whole(platform::Family f) { return Cube{f, {}, {}}; }
  /// The cube of an address/mask pair (host bits outside the mask dropped).
  static Cube of(const platform::MaskedAddress& m);
  bool contains(const platform::IpAddress& a) const;
  bool operator==(const Cube&) const = default;
};

/// A union of cubes, plus "no address" (a destination name not resolved).
struct AddrSet {
  bool none = false;
  std::vector<Cube> cubes;

  /// Every address of both families, and (if `with_none`) no address.
  static AddrSet all(bool with_none);
  bool empty() const { return !none && cubes.empty(); }
  bool covers_family(platform::Family f) const;  // holds a whole-family cube
  bool operator==(const AddrSet&) const = default;
};
inline constexpr std::size_t kMaxCubes = 512;
/// a ∩ b, exact (cube by cube).
AddrSet intersect(const AddrSet& a, const AddrSet& b);
/// a \ b as disjoint cubes; beyond kMaxCubes pieces it returns a itself
/// (a superset of the difference).
AddrSet subtract(const AddrSet& a, const AddrSet& b);

/// Host names: every name (and "no name"), or a list of names and zones.
struct NameMatch {
  std::string name;
  bool zone = false;  // `.name`: the name and everything below it
  bool operator==(const NameMatch&) const = default;
};
struct DomainSet {
  bool none = true;              // requests that carry no name
  bool all = true;               // every name
  std::vector<NameMatch> items;  // when !all

  static DomainSet any() { return {}; }
  bool empty() const { return !none && !all && items.empty(); }
  bool full() const { return none && all; }
  bool operator==(const DomainSet&) const = default;
};
/// a ∩ b, exact; a \ b, exact except that a zone minus a part of it (and
/// every name minus some) stays whole.
DomainSet intersect(const DomainSet& a, const DomainSet& b);
DomainSet subtract(const DomainSet& a, const DomainSet& b);

/// The set of requests one rule (or one region of requests) matches.
struct Box {
  NameSet iface = NameSet::all();
  std::uint8_t commands = sockd::kAllCommands;
  std::uint8_t methods = sockd::kAllMethods;
  NameSet users = NameSet::all();
  AddrSet src_addr = AddrSet::all(false);
  DomainSet src_name;
  AddrSet dst_addr = AddrSet::all(true);
  DomainSet dst_name;
  PortSet port = PortSet::all();

  /// Every request.
  static Box universe() { return Box{}; }
  bool empty() const;
  bool is_universe() const;
  bool operator==(const Box&) const = default;
};

/// The requests a rule matches (all its fields, not the identd test).
Box box_of(const sockd::Rule& r);
/// The requests whose destination one AddressMatch accepts (for routes).
void restrict_dst(Box& b, const sockd::AddressMatch& m);

/// Whether a and b share a request (allocates nothing: the coverage scan's hot path).
bool intersects(const Box& a, const Box& b);
/// a ∩ b, or nullopt when empty.
std::optional<Box> intersect(const Box& a, const Box& b);
/// a minus b as disjoint boxes (exact but for the over-approximations above).
std::vector<Box> subtract(const Box& a, const Box& b);

/// A readable request pattern: `from=192.0.2.0/24 to=198.51.100.7 port=80-443
/// user=alice command=connect`; fields that are unrestricted are left out,
/// and a box of every request reads `any request`.
std::string describe(const Box& b);
std::string describe(const AddrSet& a);
std::string describe(const PortSet& p);

/// One region of a first-match partition: requests decided by rule `rule`
/// (nullopt: by the implicit deny).
struct Region {
  Box box;
  std::optional<std::size_t> rule;
  sockd::Action action = sockd::Action::Deny;
};

/// Splits the request space (or `within`) into the regions each rule
/// decides, in first-match order. Returns nullopt if more than `max_pieces`
/// pieces would be needed (the file is too fragmented to compute exactly).
std::optional<std::vector<Region>> partition(const sockd::RuleSet& rs, const Box& within,
                                             std::size_t max_pieces = 50000);

}  // namespace diode::tools

#pragma once
// Deciding requests against a sockd.conf rule set and a sockd.route table.
// rule_matches / first_match_linear are the reference semantics (NEC's
// Validate(): the first line whose every field matches wins); Engine is a
// compiled index over the same rules that must always agree with them.

#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "diode/sockd/rules.hpp"

namespace diode::sockd {

/// True when every field of `r` matches `q`, tested in the order Iface,
/// Command, Method, User, Src, Dst, Port; on a miss `*stopped_by` names the
/// first field that failed (Field::None on a match).
bool rule_matches(const Rule& r, const RuleRequest& q, Field* stopped_by = nullptr);

/// True when one address side of a rule or route matches an address and/or
/// name (Any matches everything, Masked needs an address, Domain a name).
bool address_matches(const AddressMatch& m, const std::optional<IpAddress>& addr,
                     const std::optional<std::string>& name);

/// Index of the first rule matching `q` by a plain scan, or nullopt.
std::optional<std::size_t> first_match_linear(const RuleSet& rs, const RuleRequest& q);

/// Every rule examined up to and including the first match (all of them
/// when none matches), with the field that stopped each miss.
std::vector<RuleTrace> explain(const RuleSet& rs, const RuleRequest& q);

/// The first route line whose destination matches `q`, or null.
const Route* find_route(const RouteTable& rt, const RuleRequest& q);

/// The first socks.conf line whose user list, destination and port match
/// `q` (q.user is the local user), or nullopt: the client library then
/// connects directly, as NEC's did with no matching line.
std::optional<std::size_t> first_client_match(const ClientRuleSet& cs, const RuleRequest& q);

/// The decision for a request once its matching rule index is known (shared
/// by Engine::decide and tools that find the rule another way).
Decision decide_with(const RuleSet& rs, const RouteTable* routes, std::optional<std::size_t> index,
                     const RuleRequest& q, IdentMode global_ident);

struct CompiledIndex;  // engine.cpp

/// The compiled rule set: immutable once built, shareable across threads.
/// Tuple-space search over (source mask, destination mask) classes; see
/// docs/performance.md.
class Engine {
 public:
  explicit Engine(std::shared_ptr<const RuleSet> rules,
                  std::shared_ptr<const RouteTable> routes = nullptr);
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// The first matching rule's index; always equal to first_match_linear.
  std::optional<std::size_t> first_match(const RuleRequest& q) const;
  /// The full decision: rule, identd outcome and hooks, route, expanded command.
  Decision decide(const RuleRequest& q, IdentMode global_ident = IdentMode::Off) const;
  const RuleSet& rules() const { return *rules_; }
  const RouteTable* routes() const { return routes_.get(); }

 private:
  std::shared_ptr<const RuleSet> rules_;
  std::shared_ptr<const RouteTable> routes_;
  std::unique_ptr<CompiledIndex> index_;
};

}  // namespace diode::sockd

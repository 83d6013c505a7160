// Reference semantics of sockd.conf / sockd.route (NEC SOCKS 4.2 Validate()
// and sockd_route(), extended) and the decision built on a matching rule.
// The compiled index lives in engine_index.cpp.
#include <algorithm>

#include "diode/sockd/engine.hpp"
#include "diode/sockd/expand.hpp"
#include "engine_internal.hpp"

namespace diode::sockd {
namespace detail {

std::string normalise_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool domain_matches(const AddressMatch& m, std::string_view name) {
  if (name.size() == m.domain.size()) return name == m.domain;
  if (!m.zone || name.size() < m.domain.size() + 1) return false;
  const std::size_t cut = name.size() - m.domain.size();
  return name[cut - 1] == '.' && name.substr(cut) == m.domain;
}

bool side_matches(const AddressMatch& m, const std::optional<IpAddress>& addr,
                  const std::optional<std::string>& name) {
  switch (m.kind) {
    case AddressMatch::Kind::Any: return true;
    case AddressMatch::Kind::Masked: return addr.has_value() && m.masked.matches(*addr);
    case AddressMatch::Kind::Domain: return name.has_value() && domain_matches(m, *name);
  }
  return false;
}

PreparedRequest::PreparedRequest(const RuleRequest& q) : request(&q) {
  src_addr = q.src_addr.unmapped();
  if (q.src_name) src_name = normalise_name(*q.src_name);
  if (q.dst_addr) dst_addr = q.dst_addr->unmapped();
  if (q.dst_name) dst_name = normalise_name(*q.dst_name);
}

bool prepared_matches(const Rule& r, const PreparedRequest& p, Field* stopped_by) {
  const RuleRequest& q = *p.request;
  const auto stop = [stopped_by](Field f) {
    if (stopped_by != nullptr) *stopped_by = f;
    return false;
  };
  if (!r.interfaces.empty() &&
      std::find(r.interfaces.begin(), r.interfaces.end(), q.iface) == r.interfaces.end()) {
    return stop(Field::Iface);
  }
  if ((r.commands & static_cast<std::uint8_t>(q.command)) == 0) return stop(Field::Command);
  if ((r.methods & static_cast<std::uint8_t>(q.method)) == 0) return stop(Field::Method);
  if (!r.users.contains(q.user)) return stop(Field::User);
  if (!side_matches(r.src, p.src_addr, p.src_name)) return stop(Field::Src);
  if (!side_matches(r.dst, p.dst_addr, p.dst_name)) return stop(Field::Dst);
  if (!r.port.matches(q.dst_port)) return stop(Field::Port);
  if (stopped_by != nullptr) *stopped_by = Field::None;
  return true;
}

}  // namespace detail

bool rule_matches(const Rule& r, const RuleRequest& q, Field* stopped_by) {
  return detail::prepared_matches(r, detail::PreparedRequest(q), stopped_by);
}

bool address_matches(const AddressMatch& m, const std::optional<IpAddress>& addr,
                     const std::optional<std::string>& name) {
  std::optional<IpAddress> a;
  if (addr) a = addr->unmapped();
  std::optional<std::string> n;
  if (name) n = detail::normalise_name(*name);
  return detail::side_matches(m, a, n);
}

std::optional<std::size_t> first_match_linear(const RuleSet& rs, const RuleRequest& q) {
  const detail::PreparedRequest p(q);
  for (std::size_t i = 0; i < rs.rules.size(); ++i) {
    if (detail::prepared_matches(rs.rules[i], p, nullptr)) return i;
  }
  return std::nullopt;
}

std::vector<RuleTrace> explain(const RuleSet& rs, const RuleRequest& q) {
  const detail::PreparedRequest p(q);
  std::vector<RuleTrace> out;
  for (std::size_t i = 0; i < rs.rules.size(); ++i) {
    Field f = Field::None;
    const bool m = detail::prepared_matches(rs.rules[i], p, &f);
    out.push_back(RuleTrace{i, m, f});
    if (m) break;
  }
  return out;
}

const Route* find_route(const RouteTable& rt, const RuleRequest& q) {
  const detail::PreparedRequest p(q);
  for (const Route& r : rt.routes) {
    if (detail::side_matches(r.dst, p.dst_addr, p.dst_name)) return &r;
  }
  return nullptr;
}

std::optional<std::size_t> first_client_match(const ClientRuleSet& cs, const RuleRequest& q) {
  const detail::PreparedRequest p(q);
  for (std::size_t i = 0; i < cs.rules.size(); ++i) {
    const ClientRule& r = cs.rules[i];
    if (r.users.contains(q.user) && detail::side_matches(r.dst, p.dst_addr, p.dst_name) &&
        r.port.matches(q.dst_port)) {
      return i;
    }
  }
  return std::nullopt;
}

Decision decide_with(const RuleSet& rs, const RouteTable* routes, std::optional<std::size_t> index,
                     const RuleRequest& q, IdentMode global_ident) {
  Decision d;
  if (!index || *index >= rs.rules.size()) {
    d.verdict = Verdict::Deny;
    d.reason = DenyReason::NoMatch;
    return d;
  }
  const Rule& rule = rs.rules[*index];
  d.rule = &rule;
  d.rule_index = index;
  // NEC runs the matched line's command for deny lines too ("mail on reject").
  if (rule.shell_cmd) d.command = expand_command(*rule.shell_cmd, context_for(q));
  if (rule.action == Action::Deny) {
    d.verdict = Verdict::Deny;
    d.reason = DenyReason::Rule;
    return d;
  }
  const IdentMode mode = rule.ident == IdentMode::Default ? global_ident : rule.ident;
  d.verdict = Verdict::Permit;
  d.reason = DenyReason::None;
  if (mode == IdentMode::Strict || mode == IdentMode::Lenient) {
    d.ident_required = true;
    const HookLine* no_identd = rs.no_identd ? &*rs.no_identd : nullptr;
    const HookLine* bad_id = rs.bad_id ? &*rs.bad_id : nullptr;
    switch (q.ident) {
      case IdentResult::NotAsked:  // the relay asks identd before finalising; see docs
      case IdentResult::Ok:
        break;
      case IdentResult::Unreachable:
        d.ident_hook = no_identd;
        if (mode == IdentMode::Strict) {
          d.verdict = Verdict::Deny;
          d.reason = DenyReason::IdentUnreachable;
          return d;
        }
        break;
      case IdentResult::Mismatch:
        d.ident_hook = bad_id;
        d.verdict = Verdict::Deny;
        d.reason = DenyReason::IdentMismatch;
        return d;
    }
  }
  if (routes != nullptr) {
    d.route = find_route(*routes, q);
    if (d.route == nullptr) {
      d.verdict = Verdict::Deny;
      d.reason = DenyReason::NoRoute;
    }
  }
  return d;
}

Decision Engine::decide(const RuleRequest& q, IdentMode global_ident) const {
  return decide_with(*rules_, routes_.get(), first_match(q), q, global_ident);
}

}  // namespace diode::sockd

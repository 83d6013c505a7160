#pragma once
// sockd-check's static analyses over parsed files: mask oddities, dead port
// tests, shadowed / redundant / correlated rules, rules after a catch-all,
// an open relay, unprotected gateway and internal addresses, identd hooks,
// shell hooks, unknown or unauthenticated users, and the route table. Each finding is one
// Diagnostic with a stable `code` (listed in docs/sockd-check.md).

#include <cstddef>
#include <string>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/diagnostics.hpp"
#include "diode/sockd/rule_hits.hpp"
#include "diode/sockd/rules.hpp"
#include "diode/sockd/users.hpp"

namespace diode::tools {

/// What lint knows about the gateway (from gateway.toml, --interfaces or
/// the live interfaces); empty lists mean "unknown" and skip those checks.
struct LintContext {
  std::vector<platform::IpAddress> gateway_addresses;
  std::string addresses_source;  // "gateway.toml", "--interfaces", "the live interfaces"
  std::vector<platform::Prefix> internal_networks;
  /// Interfaces the relays listen on, with their addresses (from gateway.toml).
  struct Listener {
    std::string name;
    std::vector<platform::Prefix> addresses;
  };
  std::vector<Listener> internal_interfaces;
  std::vector<std::string> interface_names;  // every configured interface
  const sockd::UsersFile* users = nullptr;   // --users / files.users, if read
  sockd::IdentMode global_ident = sockd::IdentMode::Off;
  /// gateway.toml's sockd.methods offers "none" (sockd's default does): then
  /// SOCKS4/4a and SOCKS5 without authentication reach the rules with a user
  /// name that is only the client's claim.
  bool offers_none = true;
  /// gateway.toml's sockd.protect_internal: the relay itself refuses
  /// loopback, its own addresses and the internal networks unless a rule
  /// names them, so the unprotected-* findings become notes.
  bool protect_internal = false;
  /// Upper bound on box operations per rule in the coverage analysis; past
  /// it the rule is left unclassified (never reported as shadowed).
  std::size_t max_ops_per_rule = 20000;
  /// Upper bound on box operations for the whole file; past it, later rules
  /// are not checked for shadowing (a `coverage-budget` note says where).
  std::size_t max_ops_total = 100'000'000;
};

/// Every finding about a parsed sockd.conf, appended to `out`.
void lint_rules(const sockd::RuleSet& rs, const LintContext& ctx, platform::Diagnostics& out);

/// Findings from a `hits` report (sockd's control command, possibly several
/// processes' added) about the rule file it was taken from: rules that
/// decided nothing (`never-hit`), lines it counts that are no rule now
/// (`hits-stale`), rules it does not know (`hits-missing`), a report about
/// another file (`hits-other-file`). Lines match when the report's file is
/// `rs.file` or has the same base name (the daemon's /etc path against a
/// copy); `hits_file` names the report in messages.
void lint_hits(const sockd::RuleSet& rs, const sockd::HitsReport& hits,
               const std::string& hits_file, platform::Diagnostics& out);

/// Every finding about a parsed sockd.route, appended to `out`.
void lint_routes(const sockd::RouteTable& rt, const LintContext& ctx, platform::Diagnostics& out);

/// Findings about a parsed client socks.conf (servers that are not the gateway).
void lint_client(const sockd::ClientRuleSet& cs, const LintContext& ctx,
                 platform::Diagnostics& out);

/// Findings about one shell command (`%` tokens, metacharacters, relative
/// path, `#` passed to the shell); `pos` is where the command starts.
void lint_shell_command(const std::string& cmd, const platform::SourcePos& pos,
                        platform::Diagnostics& out);

}  // namespace diode::tools

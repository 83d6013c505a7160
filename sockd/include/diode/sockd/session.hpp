#pragma once
// The sans-I/O parts of a relay session: the policy a session decides with
// (rules, routes, users, the protected destinations), turning a parsed
// handshake into a rule-engine request, and the verdict for one candidate
// destination address, with the reply code to send when it is refused.
// The coroutine in server.cpp only moves bytes around these.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/config.hpp"
#include "diode/platform/diagnostics.hpp"
#include "diode/sockd/engine.hpp"
#include "diode/sockd/rule_hits.hpp"
#include "diode/sockd/host_address_set.hpp"
#include "diode/sockd/rules.hpp"
#include "diode/sockd/socks_proto.hpp"
#include "diode/sockd/users.hpp"

namespace diode::sockd {

/// Destinations the relay refuses unless a rule names them explicitly
/// (gateway.toml `protect_internal`): loopback, 0.0.0.0/8 and ::, link-local,
/// multicast, broadcast, the gateway's own addresses and its internal
/// networks, and every address the kernel reports for the host.
struct ProtectedSet {
  bool enabled = true;
  std::vector<platform::Prefix> prefixes;
  std::shared_ptr<const HostAddresses> host;  // the kernel's, kept current by the daemon; may be null

  /// True when `addr` (IPv4-mapped IPv6 taken as IPv4) is protected.
  bool contains(const IpAddress& addr) const;
};

/// The protected destinations for a configuration (empty when
/// protect_internal is false), with the host's addresses from `host` if given.
ProtectedSet protected_destinations(const platform::GatewayConfig& cfg,
                                    std::shared_ptr<const HostAddresses> host = nullptr);

/// Everything a session decides with. Immutable once built; SIGHUP builds a
/// new one and swaps it in, running sessions keep theirs.
struct RelayPolicy {
  std::shared_ptr<const Engine> engine;
  std::shared_ptr<const UsersFile> users;  // null: no users file, no password logins
  ProtectedSet protect;
  IdentMode global_ident = IdentMode::Off;
  /// [sockd] of the gateway.toml this policy was built from: limits,
  /// timeouts, methods and identd apply to the sessions that start under it.
  platform::SockdSettings settings;
  /// How often each rule decided a request under this policy (control
  /// `hits`). The policy is shared const; the counters are the one part
  /// that changes, through this pointer. Never null once loaded.
  std::shared_ptr<RuleHits> hits;
};

/// Counts a decision under `policy` for the deciding `rule` (null: no rule
/// decided, the default deny), as of now, or of `when` (a session loop's
/// clock, read once per tick; the hits keep whole seconds).
void record_decision(const RelayPolicy& policy, const Rule* rule) noexcept;
void record_decision(const RelayPolicy& policy, const Rule* rule,
                     std::chrono::system_clock::time_point when) noexcept;

/// sockd's built-in sockd.conf, used when [files] sockd_conf is "": permit
/// clients on loopback to reach anything not protected.
std::string_view builtin_sockd_conf();

/// Loads the rule set (or the built-in one), the route table and the users
/// file named by `cfg`. Every error goes to `diags`; nullopt if there was any
/// (the caller keeps its old policy). `host`: the daemon's live set of the
/// host's addresses, for protect_internal.
std::shared_ptr<const RelayPolicy> load_policy(const platform::GatewayConfig& cfg,
                                          platform::Diagnostics& diags,
                                          std::shared_ptr<const HostAddresses> host = nullptr);

/// The rule-engine request for a finished handshake from `client` on the
/// listener of interface `iface`; dst_addr is set for address requests
/// and left empty for names until they are resolved.
RuleRequest make_rule_request(const proto::Request& hs, const platform::Endpoint& client,
                          const std::string& iface);

/// The verdict on one destination address.
struct Check {
  bool permitted = false;
  proto::ReplyKind reply = proto::ReplyKind::NotAllowed;  // when refused
  std::string reason;          // log text when refused ("no matching rule", ...)
  const Rule* rule = nullptr;  // the deciding rule, if any
  const Route* route = nullptr;
  std::optional<std::string> command;        // the deciding rule's `: command`, %-expanded
  std::optional<std::string> ident_command;  // #NO_IDENTD / #BAD_ID, %-expanded
  std::string ident_origin;                  // its file:line
  bool needs_ident = false;  // the permit depends on identd: ask it, set q.ident, decide again
};

/// Decides `q` (with dst_addr set to the candidate address) under `policy`:
/// the rule engine first; a permit that depends on identd (`?=I`, `?=i`, or
/// the global mode) while q.ident is NotAsked comes back with needs_ident
/// (not permitted yet); for UDP, the permit must name cmd=udp; then
/// protect_internal, which a permit only passes when its destination is an
/// address range that contains the address.
Check check_destination(const RelayPolicy& policy, const RuleRequest& q);

/// True when `rule`'s destination is written as an address range (not
/// "any", not a name) that contains `addr`: NEC's explicit permission.
bool explicitly_allows(const Rule& rule, const IpAddress& addr);

/// True when `rule` names `cmd` in a written `cmd=` list. UDP needs that;
/// CONNECT and BIND are allowed by a line without cmd=, as NEC allowed them.
bool names_command(const Rule& rule, RuleCommand cmd);

/// True when some permit line with cmd=udp could apply to this client (its
/// interface, method, user and source): the condition for granting a UDP
/// association at all; each datagram is then decided on its own.
bool may_use_udp(const RelayPolicy& policy, const RuleRequest& q);

/// The key a client's sessions are counted under for max_sessions_per_client:
/// an IPv4 address (IPv4-mapped taken as IPv4) whole, an IPv6 address by its
/// /64, which one host (SLAAC, privacy addresses) usually has to itself.
platform::IpAddress client_limit_key(const platform::IpAddress& addr);

/// Open sessions per client key (client_limit_key), for
/// max_sessions_per_client. Not thread-safe: the server holds a lock around
/// it. A key whose count falls to zero keeps its entry (a client that came
/// once usually comes again, so no entry is made and dropped per session)
/// until kIdleKept keys are at zero; they are then dropped at once.
class ClientCounts {
 public:
  static constexpr std::size_t kIdleKept = 1024;

  /// Counts one more session from `key` unless `refuse(open from key)`
  /// gives a reason (a C string), which is returned with nothing counted.
  template <class Refuse>
  const char* add(const platform::IpAddress& key, Refuse&& refuse) {
    const auto [it, made] = counts_.try_emplace(key, 0);
    if (const char* why = refuse(it->second)) {
      if (made) counts_.erase(it);
      return why;
    }
    if (it->second == 0 && !made) --idle_;
    ++it->second;
    return nullptr;
  }
  /// One session from `key` ended.
  void remove(const platform::IpAddress& key);
  /// Sessions open from `key`.
  std::uint32_t open(const platform::IpAddress& key) const;
  /// Keys held, at zero or not (for tests).
  std::size_t keys() const { return counts_.size(); }

 private:
  std::map<platform::IpAddress, std::uint32_t> counts_;
  std::size_t idle_ = 0;  // keys at zero
};

/// `file:line` of a rule for logs.
std::string rule_label(const Rule& rule);

/// Lower-case name of a SOCKS version / command / method for logs.
std::string_view version_name(proto::Version v);
std::string_view command_name(proto::Command c);

}  // namespace diode::sockd

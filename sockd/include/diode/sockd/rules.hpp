#pragma once
// The rule model of sockd.conf, sockd.route and socks.conf (NEC SOCKS 4.2
// grammar plus Diode's extensions), and the decision function over it.
// Parsing lives in parse.hpp, the compiled engine in engine.hpp; everything
// here is plain data.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/diagnostics.hpp"

namespace diode::sockd {

using platform::IpAddress;
using platform::MaskedAddress;
using platform::SourcePos;

enum class Action : std::uint8_t { Permit, Deny };

/// `?=` field. Absent means: use the daemon's global identd setting.
enum class IdentMode : std::uint8_t { Default, Off /* n */, Lenient /* i */, Strict /* I */ };

/// SOCKS commands, usable as a bit set.
enum class RuleCommand : std::uint8_t { Connect = 1, Bind = 2, Udp = 4 };
inline constexpr std::uint8_t kAllCommands = 1 | 2 | 4;

/// Authentication methods, usable as a bit set.
enum class AuthMethod : std::uint8_t { None = 1, UserPass = 2 };
inline constexpr std::uint8_t kAllMethods = 1 | 2;

enum class PortOp : std::uint8_t { Any, Eq, Neq, Lt, Gt, Le, Ge, Range };

/// A destination port test: `eq 80`, `range 1024-65535`, or none (Any).
struct PortTest {
  PortOp op = PortOp::Any;
  std::uint16_t lo = 0;  // the operand; for Range the lower bound
  std::uint16_t hi = 0;  // for Range the upper bound
  SourcePos pos;         // where the operator was written (for lint)
  bool matches(std::uint16_t port) const;
};

/// One side of a rule: any host, an address with a mask (NEC, CIDR, IPv6),
/// or a domain name / `.zone`.
struct AddressMatch {
  enum class Kind : std::uint8_t { Any, Masked, Domain };
  Kind kind = Kind::Any;
  MaskedAddress masked;  // Kind::Masked
  std::string domain;    // Kind::Domain, lower case, no leading or trailing dot
  bool zone = false;     // Kind::Domain: written `.zone` (matches the zone and below)
  SourcePos pos;         // where it was written (for lint)
};

/// `*=` field: names and absolute file names; `files_users` is what the
/// files held when the rule set was loaded.
struct UserList {
  bool any = true;                 // no `*=`, or a bare `*=`
  std::vector<std::string> names;  // as written, in order
  std::vector<std::string> files;  // absolute paths, as written
  std::vector<std::string> file_users;
  SourcePos pos;  // where `*=` was written
  bool contains(std::string_view user) const;
};

/// One `permit` / `deny` line of sockd.conf.
struct Rule {
  Action action = Action::Deny;
  IdentMode ident = IdentMode::Default;
  UserList users;
  std::uint8_t commands = kAllCommands;  // extension `cmd=connect,bind,udp`
  std::uint8_t methods = kAllMethods;    // extension `auth=none,userpass`
  std::vector<std::string> interfaces;   // extension `iface=eth1,eth2`; empty = any
  AddressMatch src;
  AddressMatch dst;
  PortTest port;
  std::optional<std::string> shell_cmd;  // text after ':' (trimmed), unexpanded
  SourcePos shell_cmd_pos;               // column of the command's first character
  SourcePos pos;                         // file, line, column 1
  std::string text;                      // the original line
};

/// A `#NO_IDENTD:` or `#BAD_ID:` line.
struct HookLine {
  std::string shell_cmd;
  SourcePos pos;
  std::string text;
};

/// A parsed sockd.conf.
struct RuleSet {
  std::string file;
  std::vector<Rule> rules;
  std::optional<HookLine> no_identd;  // the first one in the file
  std::optional<HookLine> bad_id;
};

/// One line of sockd.route: egress (interface address or interface name) for
/// a destination.
struct Route {
  std::optional<IpAddress> egress_addr;  // `192.0.2.1` / `2001:db8::1`
  std::string egress_iface;              // extension: an interface name instead
  AddressMatch dst;
  SourcePos pos;
  std::string text;
};

struct RouteTable {
  std::string file;
  std::vector<Route> routes;
};

/// The client side: socks.conf.
enum class ClientAction : std::uint8_t { Deny, Direct, Sockd };

struct ClientRule {
  ClientAction action = ClientAction::Deny;
  std::vector<std::string> servers;  // `@=` list: names or addresses, optional :port
  UserList users;
  // Extension `cmd=connect,bind,udp`: which requests the line applies to.
  // Without it every command, except that UDP goes through a server only on
  // a sockd line whose cmd= lists udp (docs/socks.conf.md).
  std::uint8_t commands = kAllCommands;
  bool commands_given = false;
  AddressMatch dst;
  PortTest port;
  std::optional<std::string> shell_cmd;
  SourcePos pos;
  std::string text;
};

struct ClientRuleSet {
  std::string file;
  std::vector<ClientRule> rules;
};

/// What identd said about the client (RFC 1413), as far as the decision is concerned.
enum class IdentResult : std::uint8_t { NotAsked, Ok, Unreachable, Mismatch };

/// One request as the relay sees it after the handshake (and, for names,
/// after resolution: rules written for addresses apply to `dst_addr`).
struct RuleRequest {
  std::string iface;                   // the listener's interface name; empty = unknown
  IpAddress src_addr;
  std::uint16_t src_port = 0;
  std::string user;                    // SOCKS4 USERID or RFC 1929 UNAME
  AuthMethod method = AuthMethod::None;
  RuleCommand command = RuleCommand::Connect;
  std::optional<std::string> dst_name;  // as asked (SOCKS4a / SOCKS5 domain), lower case
  std::optional<IpAddress> dst_addr;    // as asked, or as resolved
  std::uint16_t dst_port = 0;
  IdentResult ident = IdentResult::NotAsked;
  std::string ident_user;               // what identd reported, for Mismatch
  std::optional<std::string> src_name;  // client's host name if known (for domain source rules)
};

enum class Verdict : std::uint8_t { Permit, Deny };

/// Why a request was denied, mapped to the SOCKS reply codes by the relay.
enum class DenyReason : std::uint8_t {
  None,            // permitted
  NoMatch,         // implicit deny
  Rule,            // a deny rule matched
  IdentUnreachable,  // ?=I and identd unreachable → SOCKS4 92
  IdentMismatch,     // identd reported another user → SOCKS4 93
  NoRoute,           // permitted, but no sockd.route line matches
};

/// The outcome of deciding one request.
struct Decision {
  Verdict verdict = Verdict::Deny;
  DenyReason reason = DenyReason::NoMatch;
  const Rule* rule = nullptr;          // the deciding rule, null for the implicit deny
  std::optional<std::size_t> rule_index;
  const HookLine* ident_hook = nullptr;  // #NO_IDENTD / #BAD_ID that fires, if any
  const Route* route = nullptr;          // for permits, when a route table is given
  std::optional<std::string> command;    // the rule's shell command, %-expanded (not run)
  bool ident_required = false;           // the permit depends on identd (?=I / ?=i or global mode)
};

/// Per-field outcome of testing one rule against one request (for --explain).
enum class Field : std::uint8_t { None, Iface, Command, Method, User, Src, Dst, Port };

struct RuleTrace {
  std::size_t rule_index;
  bool matched;
  Field stopped_by;  // Field::None when matched
};

}  // namespace diode::sockd

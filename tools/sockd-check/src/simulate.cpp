// sockd-check simulate: one request through the phases a relay goes
// through (packet-tracer style), or a batch file of requests with
// expectations. Decisions come from sockd's own Engine, so the checker and
// the daemon cannot disagree.
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <map>
#include <set>
#include <memory>
#include <ostream>
#include <sstream>
#include <variant>

#include "cli.hpp"
#include "diode/sockd/engine.hpp"
#include "diode/sockd/expand.hpp"
#include "diode/sockd/parse.hpp"
#include "diode/sockd/plan.hpp"
#include "diode/sockd/resolve.hpp"
#include "diode/sockd/session.hpp"
#include "diode/sockd/socks_proto.hpp"
#include "diode/tools/json.hpp"

namespace diode::tools::cli {

using platform::Diagnostics;
using platform::IpAddress;
using sockd::RuleRequest;
using sockd::Rule;
namespace proto = sockd::proto;

namespace {

// The request as the user wrote it: key → value (keys as in the batch file).
using Spec = std::map<std::string, std::string>;

using ResolveMap = std::map<std::string, std::vector<IpAddress>>;

struct Built {
  RuleRequest req;
  std::string to_text;  // normalised destination, with the service name
  std::vector<std::string> notes;
  proto::Version version = proto::Version::Socks5;
  std::optional<std::string> ident;  // what identd answers (--ident), if given
  std::set<IpAddress> fails;         // addresses whose connection is refused (--connect-fails)
  ResolveMap resolve;                // what names resolve to (--resolve)
};

struct BuildError {
  std::string key;
  std::string message;
};

std::string service_name(std::uint16_t port) {
  servent ent{};
  servent* result = nullptr;
  std::array<char, 4096> buf{};
  if (getservbyport_r(htons(port), "tcp", &ent, buf.data(), buf.size(), &result) == 0 &&
      result != nullptr) {
    return result->s_name;
  }
  return {};
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// Builds the RuleRequest from a spec; `resolve` maps names to addresses.
std::variant<Built, BuildError> build_request(const Spec& spec, const ResolveMap& resolve,
                                              const std::vector<std::string>& fails) {
  Built b;
  b.resolve = resolve;
  for (const auto& text : fails) {
    std::size_t at = 0;
    while (at <= text.size()) {
      const auto comma = std::min(text.find(',', at), text.size());
      const auto a = IpAddress::parse(text.substr(at, comma - at));
      if (!a) return BuildError{"connect-fails", "invalid address in '" + text + "'"};
      b.fails.insert(a->unmapped());
      at = comma + 1;
    }
  }
  RuleRequest& q = b.req;
  const auto get = [&spec](const char* k) -> std::optional<std::string> {
    const auto it = spec.find(k);
    if (it == spec.end()) return std::nullopt;
    return it->second;
  };
  // from=ADDR[:PORT]
  const auto from = get("from");
  if (!from) return BuildError{"from", "missing the client address (from=ADDR[:PORT])"};
  if (auto ep = platform::Endpoint::parse(*from)) {
    q.src_addr = ep->addr;
    q.src_port = ep->port;
  } else if (auto a = IpAddress::parse(*from)) {
    q.src_addr = *a;
  } else if (auto a6 = from->size() > 2 && from->front() == '[' && from->back() == ']'
                           ? IpAddress::parse_v6(from->substr(1, from->size() - 2))
                           : std::nullopt) {
    q.src_addr = *a6;
  } else {
    return BuildError{
        "from", "invalid client address '" + *from + "' (expected ADDR, ADDR:PORT or [V6]:PORT)"};
  }
  // to=HOST:PORT, or dst=HOST port=PORT
  std::string host;
  std::string port_text;
  if (const auto to = get("to")) {
    if (!to->empty() && to->front() == '[') {
      const auto close = to->find("]:");
      if (close == std::string::npos)
        return BuildError{"to", "invalid destination '" + *to + "' (expected [V6]:PORT)"};
      host = to->substr(1, close - 1);
      port_text = to->substr(close + 2);
      if (!platform::IpAddress::parse_v6(host))
        return BuildError{"to", "invalid IPv6 address '" + host + "'"};
    } else {
      const auto colon = to->rfind(':');
      if (colon == std::string::npos)
        return BuildError{"to", "missing port in '" + *to + "' (expected HOST:PORT)"};
      host = to->substr(0, colon);
      port_text = to->substr(colon + 1);
      if (host.find(':') != std::string::npos) {
        return BuildError{"to", "write an IPv6 destination as [ADDR]:PORT, not '" + *to + "'"};
      }
    }
  } else {
    const auto dst = get("dst");
    const auto port = get("port");
    if (!dst || !port)
      return BuildError{"to", "missing the destination (to=HOST:PORT, or dst=HOST and port=PORT)"};
    host = *dst;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    port_text = *port;
  }
  const auto port = sockd::parse_port_operand(port_text);
  if (!port)
    return BuildError{
        get("to") ? "to" : "port",
        "invalid port '" + port_text + "' (a number below 65536 or a tcp service name)"};
  q.dst_port = *port;
  if (auto a = IpAddress::parse(host)) {
    q.dst_addr = *a;
  } else if (!host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
               return (c >= '0' && c <= '9') || c == '.';
             })) {
    return BuildError{get("to") ? "to" : "dst", "invalid IPv4 address '" + host + "'"};
  } else {
    std::string name = lower(host);
    if (!name.empty() && name.back() == '.') name.pop_back();
    if (!platform::is_valid_domain_name(name)) {
      return BuildError{get("to") ? "to" : "dst",
                        "invalid destination '" + host + "' (not an address or a host name)"};
    }
    q.dst_name = name;
    if (auto it = resolve.find(name); it != resolve.end()) {
      std::string list;
      for (const auto& r : it->second) list += (list.empty() ? "" : ", ") + r.to_string();
      b.notes.push_back(name + " resolves to " + list + " (--resolve)");
    } else if (!sockd::special_use_addresses(name)) {
      b.notes.push_back(name + " is not resolved (no --resolve " + name +
                        "=ADDR; no live DNS): sockd would answer `cannot resolve`");
    }
  }
  const std::string svc = service_name(q.dst_port);
  b.to_text = (q.dst_name ? *q.dst_name
                          : (q.dst_addr->family == platform::Family::V6
                                 ? "[" + q.dst_addr->to_string() + "]"
                                 : q.dst_addr->to_string())) +
              ":" + std::to_string(q.dst_port) + (svc.empty() ? "" : " (" + svc + ")");

  if (auto u = get("user")) q.user = *u;
  if (auto i = get("iface")) q.iface = *i;
  if (auto c = get("command")) {
    if (*c == "connect") {
      q.command = sockd::RuleCommand::Connect;
    } else if (*c == "bind") {
      q.command = sockd::RuleCommand::Bind;
    } else if (*c == "udp") {
      q.command = sockd::RuleCommand::Udp;
    } else {
      return BuildError{"command", "unknown command '" + *c + "' (connect, bind or udp)"};
    }
  }
  if (auto a = get("auth")) {
    if (*a == "none") {
      q.method = sockd::AuthMethod::None;
    } else if (*a == "userpass") {
      q.method = sockd::AuthMethod::UserPass;
      if (q.user.empty()) return BuildError{"auth", "auth=userpass needs a user name (user=NAME)"};
    } else {
      return BuildError{"auth", "unknown authentication '" + *a + "' (none or userpass)"};
    }
  }
  if (auto id = get("ident")) {
    // ok, none, mismatch:NAME, or the user identd reports.
    const bool mismatch = id->rfind("mismatch:", 0) == 0;
    if (id->empty() || (mismatch && id->size() == 9) ||
        (!mismatch && id->find_first_of(" \t:") != std::string::npos)) {
      return BuildError{"ident", "invalid identd answer '" + *id +
                                     "' (ok, none, mismatch:NAME or the user identd reports)"};
    }
    b.ident = *id;
  }
  // Only SOCKS4 carries a user without a password: a user with auth=none
  // is a SOCKS4 USERID unless the version is given.
  if (!q.user.empty() && q.method == sockd::AuthMethod::None && q.command != sockd::RuleCommand::Udp &&
      !(q.dst_addr && q.dst_addr->family == platform::Family::V6)) {
    b.version = q.dst_name ? proto::Version::Socks4a : proto::Version::Socks4;
  }
  if (auto v = get("socks")) {
    if (*v == "5") {
      b.version = proto::Version::Socks5;
    } else if (*v == "4" || *v == "4a") {
      b.version = q.dst_name ? proto::Version::Socks4a : proto::Version::Socks4;
    } else {
      return BuildError{"socks", "unknown SOCKS version '" + *v + "' (4, 4a or 5)"};
    }
  }
  return b;
}

std::optional<sockd::IdentMode> parse_ident_mode(const std::string& s) {
  if (s == "off") return sockd::IdentMode::Off;
  if (s == "lenient") return sockd::IdentMode::Lenient;
  if (s == "strict") return sockd::IdentMode::Strict;
  return std::nullopt;
}

const char* field_name(sockd::Field f) {
  switch (f) {
    case sockd::Field::None:
      return "none";
    case sockd::Field::Iface:
      return "iface";
    case sockd::Field::Command:
      return "command";
    case sockd::Field::Method:
      return "auth";
    case sockd::Field::User:
      return "user";
    case sockd::Field::Src:
      return "from";
    case sockd::Field::Dst:
      return "to";
    case sockd::Field::Port:
      return "port";
  }
  return "?";
}

// Every field of `r` that `q` fails (rule_matches reports only the first).
std::vector<sockd::Field> failing_fields(const Rule& r, const RuleRequest& q) {
  using sockd::Field;
  std::vector<Field> f;
  if (!r.interfaces.empty() &&
      std::find(r.interfaces.begin(), r.interfaces.end(), q.iface) == r.interfaces.end()) {
    f.push_back(Field::Iface);
  }
  if ((r.commands & static_cast<std::uint8_t>(q.command)) == 0) f.push_back(Field::Command);
  if ((r.methods & static_cast<std::uint8_t>(q.method)) == 0) f.push_back(Field::Method);
  if (!r.users.contains(q.user)) f.push_back(Field::User);
  if (!sockd::address_matches(r.src, q.src_addr, q.src_name)) f.push_back(Field::Src);
  if (!sockd::address_matches(r.dst, q.dst_addr, q.dst_name)) f.push_back(Field::Dst);
  if (!r.port.matches(q.dst_port)) f.push_back(Field::Port);
  return f;
}

struct Phase {
  std::string title;
  std::string result;
  std::vector<std::string> lines;
};

struct Outcome {
  std::vector<Phase> phases;
  std::vector<std::string> steps;  // the plan's steps, as executed with the given outcomes
  bool permit = false;
  std::string reason;  // listener, auth, socks4-needs-none, no-acceptable-method, rule,
                       // implicit, identd-unreachable, identd-mismatch, no-route,
                       // udp-needs-cmd, protected-destination, unresolved, connect-failed,
                       // bind-failed, permit
  const Rule* rule = nullptr;
  const sockd::Route* route = nullptr;
  std::string socks4, socks5;
  int reply = -1;  // the code sent in the request's version; -1 when nothing is sent
  proto::Version version = proto::Version::Socks5;
  std::string log;  // the decision part of sockd's log line
};

std::string where(const std::string& file, std::uint32_t line) {
  return file + ":" + std::to_string(line);
}

struct EvalOptions {
  bool explain = false;
  bool nearest = false;
};

std::string socks4_text(proto::ReplyKind k) {
  const auto c = static_cast<unsigned>(proto::to_socks4(k));
  switch (proto::to_socks4(k)) {
    case proto::Socks4Reply::Granted:
      return std::to_string(c) + " (request granted)";
    case proto::Socks4Reply::Rejected:
      return std::to_string(c) + " (rejected)";
    case proto::Socks4Reply::IdentUnreachable:
      return std::to_string(c) + " (cannot connect to identd)";
    case proto::Socks4Reply::IdentMismatch:
      return std::to_string(c) + " (user-id does not agree with identd)";
  }
  return std::to_string(c);
}
std::string socks5_text(proto::ReplyKind k) {
  static constexpr std::array<const char*, 9> kNames = {"succeeded",
                                                        "general SOCKS server failure",
                                                        "connection not allowed by ruleset",
                                                        "network unreachable",
                                                        "host unreachable",
                                                        "connection refused",
                                                        "TTL expired",
                                                        "command not supported",
                                                        "address type not supported"};
  const auto c = static_cast<unsigned>(proto::to_socks5(k));
  std::string hex = "0x0" + std::to_string(c);
  return c < kNames.size() ? hex + " (" + kNames[c] + ")" : hex;
}

void set_deny(Outcome& o, std::string reason, std::string v4, std::string v5) {
  o.permit = false;
  o.reason = std::move(reason);
  o.socks4 = std::move(v4);
  o.socks5 = std::move(v5);
}

// The plan's log reason as the short code of the JSON `reason`.
std::string reason_code(const sockd::SessionPlan& plan) {
  if (plan.step() == sockd::PlanStep::Relay || plan.step() == sockd::PlanStep::Send ||
      plan.step() == sockd::PlanStep::Associate) {
    return "permit";
  }
  if (plan.step() == sockd::PlanStep::Failed) {
    return plan.reason().rfind("bind:", 0) == 0 ? "bind-failed" : "connect-failed";
  }
  const std::string& r = plan.reason();
  if (r == "no matching rule") return "implicit";
  if (r == "denied by rule") return "rule";
  if (r == "cannot connect to identd") return "identd-unreachable";
  if (r == "identd reports another user") return "identd-mismatch";
  if (r.rfind("no sockd.route line", 0) == 0) return "no-route";
  if (r == "udp needs a rule with cmd=udp") return "udp-needs-cmd";
  if (r == "protected destination") return "protected-destination";
  if (r.rfind("cannot resolve", 0) == 0) return "unresolved";
  return r;
}

std::string egress_text(const sockd::Route* r) {
  if (r == nullptr) return "the kernel's choice";
  return r->egress_addr ? r->egress_addr->to_string() : "interface " + r->egress_iface;
}

std::string endpoint_text(const IpAddress& a, std::uint16_t port) {
  return platform::Endpoint{a, port}.to_string();
}

// The simulator's stand-in for identd: the --ident value against the claimed user.
std::pair<sockd::IdentResult, std::string> ident_answer(const std::optional<std::string>& spec,
                                                        const std::string& claimed) {
  if (!spec || *spec == "none") return {sockd::IdentResult::Unreachable, ""};
  if (*spec == "ok") return {sockd::IdentResult::Ok, claimed};
  if (spec->rfind("mismatch:", 0) == 0) return {sockd::IdentResult::Mismatch, spec->substr(9)};
  // As sockd's client compares: the same bytes, or another user.
  return {*spec == claimed ? sockd::IdentResult::Ok : sockd::IdentResult::Mismatch, *spec};
}

// Answers the plan's Resolve and AskIdent steps from the simulator's inputs,
// one step line each, until the plan asks for something else.
void answer_lookups(sockd::SessionPlan& plan, const Built& b, std::vector<std::string>& steps) {
  while (plan.step() == sockd::PlanStep::Resolve || plan.step() == sockd::PlanStep::AskIdent) {
    if (plan.step() == sockd::PlanStep::Resolve) {
      const std::string name = plan.name();
      std::vector<IpAddress> addrs;
      if (const auto it = b.resolve.find(name); it != b.resolve.end()) addrs = it->second;
      // RFC 6761 names are loopback without DNS, in sockd's resolver too.
      if (addrs.empty()) {
        if (auto special = sockd::special_use_addresses(name)) addrs = *special;
      }
      std::string text;
      for (const auto& a : addrs) text += (text.empty() ? "" : ", ") + a.to_string();
      steps.push_back("resolve " + name + ": " +
                      (addrs.empty() ? "no address (no --resolve " + name + "=ADDR; no live DNS)"
                                     : text));
      plan.resolved(std::move(addrs), "no --resolve " + name + "=ADDR given (no live DNS)");
    } else {
      const auto [result, user] = ident_answer(b.ident, plan.user());
      std::string text;
      switch (result) {
        case sockd::IdentResult::Ok: text = "answers `" + user + "` (the same user)"; break;
        case sockd::IdentResult::Mismatch: text = "answers `" + user + "` (another user)"; break;
        default:
          text = b.ident ? "unreachable (--ident none)"
                         : "not given (--ident): taken as unreachable, as sockd finds a client "
                           "host that runs no identd";
          break;
      }
      steps.push_back("ask identd (RFC 1413) of the client about `" + plan.user() + "`: " + text);
      plan.ident(result, user);
    }
  }
}

void hook_steps(const sockd::SessionPlan& plan, std::vector<std::string>& steps) {
  if (plan.decided() == nullptr) return;
  for (const auto& [cmd, origin] : sockd::hooks_of(*plan.decided())) {
    steps.push_back("run hook of " + origin + " (not run here): " + cmd);
  }
}

// Drives the plan of one request to its end with the simulator's outcomes:
// --resolve answers, --ident answers, --connect-fails refusals; every
// BIND peer is the expected one.
void drive(sockd::SessionPlan& plan, const Built& b, std::vector<std::string>& steps) {
  answer_lookups(plan, b, steps);
  const std::uint16_t port = plan.request().dst_port;
  if (plan.step() == sockd::PlanStep::Connect) {
    const auto& c = plan.candidates();
    std::size_t i = 0;
    for (; i < c.size(); ++i) {
      const bool fails = b.fails.count(c[i].addr) != 0;
      steps.push_back("connect " + endpoint_text(c[i].addr, port) + " via " +
                      egress_text(c[i].check.route) + ": " +
                      (fails ? "refused (--connect-fails)" : "connected"));
      if (!fails) break;
    }
    if (i < c.size()) {
      plan.connected(i);
    } else {
      plan.connect_failed(c.size() - 1, ECONNREFUSED, false);
    }
  } else if (plan.step() == sockd::PlanStep::Bind) {
    const auto& front = plan.candidates().front();
    steps.push_back("bind: listen toward " + front.addr.to_string() + " via " +
                    egress_text(front.check.route) + "; only a peer at a permitted address of " +
                    "the request is accepted");
    plan.bind_accepted(front.addr);
    steps.push_back("bind: " + front.addr.to_string() + " connects");
  }
  switch (plan.step()) {
    case sockd::PlanStep::Deny:
      steps.push_back("deny: " + plan.reason());
      hook_steps(plan, steps);
      break;
    case sockd::PlanStep::Failed:
      steps.push_back("failed: " + plan.reason());
      hook_steps(plan, steps);
      break;
    case sockd::PlanStep::Relay:
      hook_steps(plan, steps);
      steps.push_back("relay");
      break;
    case sockd::PlanStep::Send:
      steps.push_back("send the datagram to " + endpoint_text(plan.target(), port) + " via " +
                      egress_text(plan.decided()->route));
      break;
    default:
      break;
  }
}

// The users file's answer for a login (the password itself is never checked).
bool password_verdict(const Loaded& f, const std::string& user, Phase& p) {
  if (!f.users) {
    p.lines.push_back("no users file given: the password is taken as right");
    return true;
  }
  const auto* e = f.users->find(user);
  if (e == nullptr) {
    p.lines.push_back("user `" + user + "` is not in " + f.users->file + ": authentication fails");
    return false;
  }
  if (e->locked) {
    p.lines.push_back("user `" + user + "` is locked in " + where(f.users->file, e->pos.line));
    return false;
  }
  p.lines.push_back("user `" + user + "` is in " + where(f.users->file, e->pos.line) +
                    " (the password itself is not checked)");
  return true;
}

std::string method_name(std::uint8_t m) {
  return m == proto::kMethodUserPass ? "username/password (RFC 1929)" : "no authentication";
}

Outcome evaluate(const Loaded& f, const sockd::RelayPolicy& policy, Built& b, const EvalOptions& opt) {
  Outcome o;
  o.version = b.version;
  RuleRequest& q = b.req;
  const sockd::Engine& engine = *policy.engine;
  // 1 LISTENER
  {
    Phase p{"LISTENER", "ALLOW", {}};
    if (f.config) {
      const platform::InterfaceConfig* ifc = nullptr;
      if (!q.iface.empty()) {
        for (const auto& i : f.config->interfaces) {
          if (i.name == q.iface) ifc = &i;
        }
      } else {
        for (const auto& i : f.config->interfaces) {
          if (i.role != platform::InterfaceRole::Internal || i.socks_port == 0) continue;
          if (std::any_of(i.addresses.begin(), i.addresses.end(),
                          [&](const auto& a) { return a.contains(q.src_addr.unmapped()); })) {
            ifc = &i;
            break;
          }
        }
        if (ifc != nullptr) {
          q.iface = ifc->name;
          p.lines.push_back("interface " + ifc->name +
                            " chosen: its network holds the client (no --iface given)");
        }
      }
      if (ifc == nullptr) {
        p.result = "DROP";
        p.lines.push_back(q.iface.empty() ? "no internal interface of " + f.config_path +
                                                " has the client " + q.src_addr.to_string() +
                                                " on its network (give --iface to pick one)"
                                          : "no interface " + q.iface + " in " + f.config_path);
      } else if (ifc->role != platform::InterfaceRole::Internal || ifc->socks_port == 0) {
        p.result = "DROP";
        p.lines.push_back("no relay listens on " + ifc->name + " (" +
                          (ifc->role == platform::InterfaceRole::External ? "external interface"
                                                                          : "socks_port = 0") +
                          "): the connection is refused");
      } else {
        std::string addrs;
        bool inside = false;
        for (const auto& a : ifc->addresses) {
          addrs += (addrs.empty() ? "" : ", ") + a.to_string();
          inside = inside || a.contains(q.src_addr.unmapped());
        }
        p.lines.push_back("relay on " + ifc->name + " port " + std::to_string(ifc->socks_port) +
                          " (" + addrs + ")");
        p.lines.push_back(inside ? "client " + q.src_addr.to_string() + " is on " + ifc->name +
                                       "'s network"
                                 : "client " + q.src_addr.to_string() + " is not on " + ifc->name +
                                       "'s networks: it can reach the relay only through a router");
      }
    } else {
      p.lines.push_back("no gateway.toml given (--config): listener not checked; interface " +
                        (q.iface.empty() ? std::string("unknown") : q.iface));
    }
    const bool drop = p.result == "DROP";
    o.phases.push_back(std::move(p));
    if (drop) {
      set_deny(o, "listener", "none (connection refused)", "none (connection refused)");
      o.steps.push_back("no relay: the connection is refused");
      return o;
    }
  }
  // 2 AUTHENTICATION: sockd's own handshake machine, with the methods sockd
  // offers (handshake_options), fed the bytes such a client sends.
  RuleRequest session_q;
  {
    Phase p{"AUTHENTICATION/IDENTD", "ALLOW", {}};
    // Without a users file the simulator assumes one that knows the user.
    const auto options = sockd::handshake_options(policy.settings, policy.users != nullptr || !f.users);
    proto::ServerHandshake hs(options);
    const bool udp = q.command == sockd::RuleCommand::Udp;
    const proto::Command cmd = q.command == sockd::RuleCommand::Bind ? proto::Command::Bind
                               : udp                             ? proto::Command::UdpAssociate
                                                                 : proto::Command::Connect;
    // UDP ASSOCIATE names the client's own datagram address; --to is where
    // its datagram goes, decided on its own below.
    std::optional<proto::Address> dst;
    if (udp) {
      dst = proto::Address::from_ip(IpAddress::v4(0), 0);
    } else if (q.dst_addr) {
      dst = proto::Address::from_ip(*q.dst_addr, q.dst_port);
    } else {
      dst = proto::Address::from_name(*q.dst_name, q.dst_port);
    }
    proto::Step step;
    const bool v5 = b.version == proto::Version::Socks5;
    std::string failure;
    if (v5) {
      std::vector<std::uint8_t> offer{proto::kMethodNone};
      if (q.method == sockd::AuthMethod::UserPass) offer.push_back(proto::kMethodUserPass);
      step = hs.feed(proto::encode_greeting(offer)->view());
      p.lines.push_back(std::string("the client offers ") +
                        (offer.size() == 2 ? "no authentication and username/password"
                                           : "no authentication"));
      if (step.kind == proto::StepKind::Send && step.reply.size() == 2) {
        p.lines.push_back("sockd chooses " + method_name(step.reply[1]) + " (sockd.methods order)");
        if (step.reply[1] == proto::kMethodUserPass) {
          p.lines.push_back("method: username/password (RFC 1929), user `" + q.user + "`");
          step = hs.feed(proto::encode_auth(q.user, "x")->view());
          if (step.kind == proto::StepKind::Authenticate) {
            o.steps.push_back("verify the password of `" + q.user + "`");
            step = hs.accept_auth(password_verdict(f, q.user, p));
          }
        }
      }
      if (step.kind == proto::StepKind::Send) {
        step = hs.feed(proto::encode_socks5_request(cmd, *dst)->view());
      }
    } else {
      auto enc = proto::encode_socks4_request(cmd, *dst, q.user);
      if (!enc) {
        failure = "SOCKS4 cannot carry this request (IPv6 destination or UDP)";
      } else {
        step = hs.feed(enc->view());
      }
    }
    if (failure.empty() && step.kind == proto::StepKind::Malformed) {
      failure = std::string(proto::to_string(step.failure));
    }
    if (!failure.empty()) {
      p.result = "DROP";
      p.lines.push_back("the handshake ends: " + failure);
      o.phases.push_back(std::move(p));
      o.steps.push_back("refuse the handshake: " + failure);
      const int code = step.reply.size() >= 2 ? step.reply[1] : -1;
      o.reply = code;
      if (step.failure == proto::Failure::AuthRejected) {
        set_deny(o, "auth", "91 (rejected)",
                 "RFC 1929 status 0x01 (authentication failure), connection closed");
      } else if (step.failure == proto::Failure::Socks4NeedsNoAuth) {
        set_deny(o, "socks4-needs-none", "91 (rejected)", "-");
      } else if (step.failure == proto::Failure::NoAcceptableMethod) {
        set_deny(o, "no-acceptable-method", "-", "method 0xFF (no acceptable methods)");
      } else {
        set_deny(o, "handshake", "-", "-");
      }
      if (sockd::handshake_denied(step.failure)) o.log = "verdict=deny reason=\"" + failure + "\"";
      return o;
    }
    const proto::Request& req = hs.request();
    if (b.version != proto::Version::Socks5) o.version = req.version;
    session_q = sockd::make_rule_request(req, platform::Endpoint{q.src_addr, q.src_port}, q.iface);
    if (v5 && req.method != proto::kMethodUserPass && q.method == sockd::AuthMethod::UserPass) {
      p.lines.push_back("so the user name is not sent: the rules see no user");
    }
    if (!v5 || req.method == proto::kMethodNone) {
      p.lines.push_back("method: none (SOCKS4 USERID or SOCKS5 no authentication); user " +
                        (session_q.user.empty() ? std::string("(empty)") : "`" + session_q.user + "`") +
                        " as the client sent it");
    }
    // What the rules see is what the handshake gave (user and method).
    q.user = session_q.user;
    q.method = session_q.method;
    p.lines.push_back(b.ident ? "identd: answers per --ident " + *b.ident +
                                    ", asked only when the deciding permit needs it"
                              : "identd: asked only when the deciding permit needs it; without "
                                "--ident it is taken as unreachable");
    o.phases.push_back(std::move(p));
  }

  // The plan: sockd's own decision, driven with the simulator's outcomes.
  sockd::SessionPlan plan(policy, session_q);
  std::optional<sockd::SessionPlan> datagram;
  const sockd::SessionPlan* last = &plan;
  RuleRequest dq = q;  // the request the phases explain (for UDP: the datagram)
  if (plan.step() == sockd::PlanStep::Associate) {
    o.steps.push_back("grant the UDP association (a cmd=udp line may apply to this client)");
    dq.ident = session_q.ident;
    datagram.emplace(policy, dq, sockd::SessionPlan::Mode::Datagram);
    o.steps.push_back("a datagram to " + b.to_text + ":");
    drive(*datagram, b, o.steps);
    last = &*datagram;
  } else {
    drive(plan, b, o.steps);
  }
  if (q.command == sockd::RuleCommand::Udp && last == &plan) {
    o.steps.push_back("refuse the UDP association: " + plan.reason() +
                      " (no permit line with cmd=udp can apply to this client)");
  }
  // The request as decided (its address and the identd answer), for the phases.
  if (last->request().dst_addr || datagram) dq = last->request();
  if (!dq.dst_addr && dq.dst_name) {
    if (auto it = b.resolve.find(*dq.dst_name); it != b.resolve.end()) dq.dst_addr = it->second.front();
  }
  if (last == &plan && plan.request().ident != sockd::IdentResult::NotAsked) dq.ident = plan.request().ident;

  // 3 RULES
  const sockd::RuleSet& rs = engine.rules();
  const auto idx = engine.first_match(dq);
  const sockd::Decision d = engine.decide(dq, policy.global_ident);
  std::optional<sockd::Check> post;
  if (d.verdict == sockd::Verdict::Permit) {
    post = sockd::check_destination(policy, dq);
    if (post->permitted || post->needs_ident) post.reset();
  }
  {
    Phase p{"RULES", "", {}};
    if (opt.explain) {
      for (const auto& t : sockd::explain(rs, dq)) {
        const Rule& r = rs.rules[t.rule_index];
        p.lines.push_back(where(rs.file, r.pos.line) + ": " + r.text);
        p.lines.push_back(t.matched ? "    -> MATCH"
                                    : std::string("    -> no match: stopped by ") +
                                          field_name(t.stopped_by));
      }
    }
    if (idx) {
      const Rule& r = rs.rules[*idx];
      p.result = r.action == sockd::Action::Permit ? "ALLOW" : "DROP";
      p.lines.push_back("deciding rule " + where(rs.file, r.pos.line) + ": " + r.text);
    } else {
      p.result = "DROP";
      p.lines.push_back("implicit deny (no rule matched)");
    }
    if (post) {
      p.result = "DROP";
      p.lines.push_back(
          "but sockd refuses it after the rules: " + post->reason +
          (post->reason == "protected destination"
               ? " (sockd.protect_internal: permitted only by a rule whose destination is an "
                 "address range holding it)"
               : post->reason == "udp needs a rule with cmd=udp"
                   ? std::string(" (a line without cmd= permits connect and bind only)")
                   : std::string()));
    }
    if (opt.nearest) {
      // The non-matching rule with the fewest failing fields (earliest on a
      // tie), preferring rules whose verdict differs from the outcome.
      const bool permitted = idx && rs.rules[*idx].action == sockd::Action::Permit && !post;
      // A later rule of the other verdict that matches too: the order decides.
      for (std::size_t i = idx ? *idx + 1 : rs.rules.size(); i < rs.rules.size(); ++i) {
        const Rule& r = rs.rules[i];
        if ((r.action == sockd::Action::Permit) == permitted || !failing_fields(r, dq).empty())
          continue;
        p.lines.push_back("later rule " + where(rs.file, r.pos.line) + " would " +
                          (permitted ? "deny" : "permit") +
                          " it too, but the deciding rule comes first: " + r.text);
        break;
      }
      std::optional<std::size_t> best;
      std::vector<sockd::Field> best_fields;
      for (int pass = 0; pass < 2 && !best; ++pass) {
        for (std::size_t i = 0; i < rs.rules.size(); ++i) {
          if (idx && i == *idx) continue;
          const Rule& r = rs.rules[i];
          const bool differs = (r.action == sockd::Action::Permit) != permitted;
          if (pass == 0 && !differs) continue;
          auto ff = failing_fields(r, dq);
          if (ff.empty()) continue;  // matches, but after the deciding rule
          if (!best || ff.size() < best_fields.size()) {
            best = i;
            best_fields = std::move(ff);
          }
        }
      }
      if (best) {
        const Rule& r = rs.rules[*best];
        std::string fields;
        for (const auto fl : best_fields)
          fields += (fields.empty() ? "" : ", ") + std::string(field_name(fl));
        p.lines.push_back("nearest rule that did not match: " + where(rs.file, r.pos.line) + ": " +
                          r.text);
        p.lines.push_back("    stopped by: " + fields);
      } else {
        p.lines.push_back("nearest rule that did not match: none");
      }
    }
    o.phases.push_back(std::move(p));
  }
  // 4 IDENTD
  {
    Phase p{"IDENTD", "ALLOW", {}};
    if (d.rule != nullptr && d.rule->action == sockd::Action::Permit && !post) {
      const sockd::IdentMode m =
          d.rule->ident == sockd::IdentMode::Default ? policy.global_ident : d.rule->ident;
      const char* mode = m == sockd::IdentMode::Strict    ? "strict (?=I)"
                         : m == sockd::IdentMode::Lenient ? "lenient (?=i)"
                                                          : "off";
      p.lines.push_back(
          std::string("mode: ") + mode +
          (d.rule->ident == sockd::IdentMode::Default ? " (global setting)" : " (the rule's ?=)"));
      if (m != sockd::IdentMode::Off && !b.ident) {
        p.lines.push_back("identd not given (--ident): taken as unreachable, as sockd's identd "
                          "client finds a client host that runs no identd");
      }
      if (d.reason == sockd::DenyReason::IdentUnreachable ||
          d.reason == sockd::DenyReason::IdentMismatch)
        p.result = "DROP";
      if (d.ident_hook != nullptr) {
        p.lines.push_back("fires " + where(rs.file, d.ident_hook->pos.line) + ": " +
                          d.ident_hook->text);
      } else if (dq.ident == sockd::IdentResult::Unreachable && m != sockd::IdentMode::Off) {
        p.lines.push_back("no #NO_IDENTD: line: nothing runs");
      } else if (dq.ident == sockd::IdentResult::Mismatch && m != sockd::IdentMode::Off) {
        p.lines.push_back("no #BAD_ID: line: nothing runs");
      }
    } else {
      p.result = "-";
      p.lines.push_back(post ? "not reached (refused after the rules)"
                             : "not reached (identd is asked only for a permit)");
    }
    o.phases.push_back(std::move(p));
  }
  // 5 ROUTE
  {
    Phase p{"ROUTE", "-", {}};
    const sockd::Route* route = last->decided() != nullptr ? last->decided()->route : nullptr;
    const bool permitted = last->step() == sockd::PlanStep::Relay ||
                           last->step() == sockd::PlanStep::Send ||
                           last->step() == sockd::PlanStep::Failed;
    if (permitted || d.reason == sockd::DenyReason::NoRoute ||
        last->reason().rfind("no sockd.route line", 0) == 0) {
      if (engine.routes() == nullptr) {
        p.result = "ALLOW";
        p.lines.push_back("no sockd.route given: the kernel's routing table picks the egress");
      } else if (route != nullptr && permitted) {
        p.result = "ALLOW";
        p.lines.push_back(where(engine.routes()->file, route->pos.line) + ": " + route->text);
        p.lines.push_back("egress " + (route->egress_addr ? route->egress_addr->to_string()
                                                          : route->egress_iface));
      } else {
        p.result = "DROP";
        p.lines.push_back("no sockd.route line matches the destination: the request fails");
      }
    } else {
      p.lines.push_back("not reached");
    }
    o.phases.push_back(std::move(p));
  }
  // 6 HOOK
  {
    Phase p{"HOOK", "-", {}};
    if (d.command) p.lines.push_back("rule command (not run): " + *d.command);
    if (d.ident_hook != nullptr) {
      p.lines.push_back("identd command (not run): " +
                        sockd::expand_command(d.ident_hook->shell_cmd, sockd::context_for(dq)));
    }
    if (p.lines.empty()) p.lines.push_back("no command");
    o.phases.push_back(std::move(p));
  }
  // 7 RESULT: the plan's, with the reply codes from the protocol library's mapping.
  const proto::ReplyKind kind = last->reply();
  o.reason = reason_code(*last);
  o.permit = o.reason == "permit" || last->step() == sockd::PlanStep::Failed;
  if (last->decided() != nullptr) {
    o.rule = last->decided()->rule;
    if (o.permit) o.route = last->decided()->route;
  }
  o.socks4 = socks4_text(kind);
  o.socks5 = socks5_text(kind);
  // For UDP the client is told the association's reply; a datagram refused
  // is dropped without one.
  const proto::ReplyKind sent = datagram ? proto::ReplyKind::Granted : kind;
  o.reply = o.version == proto::Version::Socks5 ? static_cast<int>(proto::to_socks5(sent))
                                                : static_cast<int>(proto::to_socks4(sent));
  sockd::SessionRecord rec;
  rec.event = "";
  last->describe(rec);
  if (datagram) {
    rec.verdict = "permit";
    rec.rule = o.permit && o.rule != nullptr ? sockd::rule_label(*o.rule) : "";
    rec.addr.clear();
    rec.reason.clear();
  }
  o.log = (rec.event.empty() ? "" : "event=" + rec.event + " ") + "verdict=" +
          (rec.verdict.empty() ? "-" : rec.verdict) + " rule=" + (rec.rule.empty() ? "-" : rec.rule) +
          (rec.addr.empty() ? "" : " addr=" + rec.addr) +
          (rec.reason.empty() ? "" : " reason=" + sockd::quote_value(rec.reason));
  return o;
}

void print_outcome(const Built& b, const Outcome& o, std::ostream& out) {
  const RuleRequest& q = b.req;
  out << "Request:\n";
  out << "  interface:   " << (q.iface.empty() ? std::string("(unknown)") : q.iface) << '\n';
  out << "  client:      " << q.src_addr.to_string()
      << (q.src_port != 0 ? ":" + std::to_string(q.src_port) : "") << '\n';
  out << "  user:        " << (q.user.empty() ? std::string("(none)") : q.user) << '\n';
  const char* cmd = q.command == sockd::RuleCommand::Connect ? "connect"
                    : q.command == sockd::RuleCommand::Bind  ? "bind"
                                                         : "udp";
  out << "  command:     " << cmd << '\n';
  out << "  version:     " << sockd::version_name(o.version) << '\n';
  out << "  auth:        " << (q.method == sockd::AuthMethod::UserPass ? "userpass" : "none")
      << '\n';
  out << "  destination: " << b.to_text << '\n';
  for (const auto& n : b.notes) out << "  note:        " << n << '\n';
  int n = 1;
  for (const auto& p : o.phases) {
    out << '\n' << "Phase " << n++ << ": " << p.title << '\n';
    for (const auto& l : p.lines) out << "  " << l << '\n';
    out << "  Result: " << p.result << '\n';
  }
  out << '\n' << "Phase " << n << ": RESULT\n";
  out << "  Action: " << (o.permit ? "permit" : "deny") << " (" << o.reason << ")\n";
  out << "  Reply: SOCKS4 " << o.socks4 << "; SOCKS5 " << o.socks5 << '\n';
  out << '\n' << "Steps (sockd's session plan):\n";
  int i = 1;
  for (const auto& s : o.steps) out << "  " << i++ << ". " << s << '\n';
  if (!o.log.empty()) out << "  log: " << o.log << '\n';
}

std::string json_outcome(const std::string& file, std::uint32_t line, const Loaded& f,
                         const Outcome& o, const std::optional<std::string>& expect) {
  std::ostringstream s;
  s << "{\"file\":" << json_string(file) << ",\"request_line\":" << line << ",\"verdict\":\""
    << (o.permit ? "permit" : "deny") << "\",\"reason\":" << json_string(o.reason)
    << ",\"rule_file\":" << (o.rule != nullptr && f.rules ? json_string(f.rules->file) : "null")
    << ",\"line\":" << (o.rule != nullptr ? std::to_string(o.rule->pos.line) : "null")
    << ",\"route\":";
  if (o.route != nullptr) {
    s << json_string(o.route->egress_addr ? o.route->egress_addr->to_string()
                                          : o.route->egress_iface);
  } else {
    s << "null";
  }
  s << ",\"route_line\":" << (o.route != nullptr ? std::to_string(o.route->pos.line) : "null");
  s << ",\"socks4\":" << json_string(o.socks4) << ",\"socks5\":" << json_string(o.socks5);
  s << ",\"expect\":" << (expect ? json_string(*expect) : "null") << ",\"ok\":";
  if (expect) {
    s << (((*expect == "permit") == o.permit) ? "true" : "false");
  } else {
    s << "null";
  }
  s << ",\"version\":" << json_string(std::string(sockd::version_name(o.version)))
    << ",\"reply\":" << (o.reply >= 0 ? std::to_string(o.reply) : "null")
    << ",\"rule\":" << (o.rule != nullptr ? json_string(sockd::rule_label(*o.rule)) : "null")
    << ",\"log\":" << json_string(o.log) << ",\"steps\":[";
  for (std::size_t i = 0; i < o.steps.size(); ++i) s << (i ? "," : "") << json_string(o.steps[i]);
  s << "]}";
  return s.str();
}

struct Token {
  std::string text;
  std::uint32_t col;
};

// NAME=ADDR[,ADDR...] into `into`; false when it does not read so.
bool parse_resolve(const std::string& text, ResolveMap& into) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  std::vector<IpAddress> addrs;
  std::size_t at = eq + 1;
  while (at <= text.size()) {
    const auto comma = std::min(text.find(',', at), text.size());
    const auto a = IpAddress::parse(text.substr(at, comma - at));
    if (!a) return false;
    addrs.push_back(a->unmapped());
    at = comma + 1;
  }
  auto& list = into[lower(text.substr(0, eq))];
  list.insert(list.end(), addrs.begin(), addrs.end());
  return true;
}

int run_batch(const std::string& path, const Loaded& f, const sockd::RelayPolicy& policy,
              const ResolveMap& resolve, const std::vector<std::string>& fails,
              const EvalOptions& opt, bool json, std::ostream& out, std::ostream& err) {
  std::string error;
  const auto text = read_text_file(path, std::size_t{64} * 1024 * 1024, error);
  if (!text) {
    err << path << ": error: " << error << '\n';
    return kExitConfig;
  }
  const std::vector<std::string> keys = {"from",  "to",    "dst",    "port",    "user",
                                         "command", "auth", "ident", "iface", "expect",
                                         "resolve", "socks", "connect-fails"};
  Diagnostics diags;
  std::size_t requests = 0;
  std::size_t expectations = 0;
  std::size_t failed = 0;
  std::uint32_t line_no = 0;
  std::size_t start = 0;
  while (start < text->size()) {
    auto end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.size() > 4096) {
      diags.error({path, line_no, 1}, "line is longer than 4096 bytes", "syntax");
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (const auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::vector<Token> tokens;
    for (std::size_t i = 0; i < line.size();) {
      if (line[i] == ' ' || line[i] == '\t') {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
      tokens.push_back({line.substr(i, j - i), static_cast<std::uint32_t>(i + 1)});
      i = j;
    }
    if (tokens.empty()) continue;
    Spec spec;
    std::map<std::string, std::uint32_t> cols;
    ResolveMap line_resolve = resolve;
    std::vector<std::string> line_fails = fails;
    bool bad = false;
    for (const auto& t : tokens) {
      const auto eq = t.text.find('=');
      const std::string key = eq == std::string::npos ? t.text : t.text.substr(0, eq);
      if (eq == std::string::npos || std::find(keys.begin(), keys.end(), key) == keys.end()) {
        diags.error(
            {path, line_no, t.col},
            "unknown field '" + t.text +
                "' (from= to= dst= port= user= command= auth= ident= iface= socks= resolve= "
                "connect-fails= expect=)",
            "syntax");
        bad = true;
        break;
      }
      const std::string value = t.text.substr(eq + 1);
      if (key == "resolve") {
        if (!parse_resolve(value, line_resolve)) {
          diags.error({path, line_no, t.col},
                      "invalid resolve= (expected resolve=NAME=ADDR[,ADDR...])", "syntax");
          bad = true;
          break;
        }
        continue;
      }
      if (key == "connect-fails") {
        line_fails.push_back(value);
        cols[key] = t.col;
        continue;
      }
      if (spec.count(key) != 0) {
        diags.error({path, line_no, t.col}, "duplicate field '" + key + "='", "syntax");
        bad = true;
        break;
      }
      spec[key] = value;
      cols[key] = t.col;
    }
    if (bad) continue;
    std::optional<std::string> expect;
    if (auto it = spec.find("expect"); it != spec.end()) {
      if (it->second != "permit" && it->second != "deny") {
        diags.error({path, line_no, cols["expect"]}, "expect= must be permit or deny", "syntax");
        continue;
      }
      expect = it->second;
    }
    auto built = build_request(spec, line_resolve, line_fails);
    if (auto* e = std::get_if<BuildError>(&built)) {
      const auto c = cols.count(e->key) != 0 ? cols[e->key] : 1U;
      diags.error({path, line_no, c}, e->message, "syntax");
      continue;
    }
    auto& b = std::get<Built>(built);
    const Outcome o = evaluate(f, policy, b, opt);
    ++requests;
    bool ok = true;
    if (expect) {
      ++expectations;
      ok = (*expect == "permit") == o.permit;
      if (!ok) ++failed;
    }
    if (json) {
      out << json_outcome(path, line_no, f, o, expect) << '\n';
    } else {
      out << path << ':' << line_no << ": " << (o.permit ? "permit" : "deny");
      if (o.rule != nullptr) {
        out << " by " << where(f.rules->file, o.rule->pos.line);
      } else {
        out << " (" << o.reason << ")";
      }
      if (o.route != nullptr) {
        out << ", egress "
            << (o.route->egress_addr ? o.route->egress_addr->to_string() : o.route->egress_iface);
      }
      if (expect) out << (ok ? ", as expected" : ", EXPECTED " + *expect);
      out << '\n';
    }
  }
  for (const auto& d : diags.items()) err << d.format() << '\n';
  if (!json) {
    out << "sockd-check: " << requests << " request(s), " << expectations << " expectation(s), "
        << failed << " failed"
        << (diags.empty() ? "" : ", " + std::to_string(diags.items().size()) + " bad line(s)")
        << '\n';
  }
  if (!diags.empty()) return kExitConfig;
  return failed == 0 ? 0 : 1;
}

}  // namespace

int simulate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const auto o = parse_options(
      args, 1,
      {"--config", "--rules", "--routes", "--users", "--iface", "--from", "--to", "--dst", "--port",
       "--user", "--command", "--auth", "--ident", "--resolve", "--global-ident", "--batch",
       "--socks", "--connect-fails"},
      {"--explain", "--nearest", "--json"}, "simulate", err);
  if (!o) return kExitUsage;
  if (!o->positional.empty()) {
    err << "sockd-check simulate: unexpected argument '" << o->positional.front() << "'\n";
    return kExitUsage;
  }
  if (!o->has("--config") && !o->has("--rules")) {
    err << "sockd-check simulate: give the rules with --rules sockd.conf or --config "
           "gateway.toml\n";
    return kExitUsage;
  }
  ResolveMap resolve;
  for (const auto& r : o->all("--resolve")) {
    if (!parse_resolve(r, resolve)) {
      err << "sockd-check simulate: --resolve '" << r << "': expected NAME=ADDR[,ADDR...]\n";
      return kExitUsage;
    }
  }
  const std::vector<std::string> fails = o->all("--connect-fails");
  EvalOptions opt;
  opt.explain = o->has("--explain");
  opt.nearest = o->has("--nearest");
  std::optional<sockd::IdentMode> global_ident;
  if (auto g = o->get("--global-ident")) {
    global_ident = parse_ident_mode(*g);
    if (!global_ident) {
      err << "sockd-check simulate: --global-ident must be off, lenient or strict\n";
      return kExitUsage;
    }
  }
  // Build the single request before loading files, so usage errors come first.
  std::optional<Built> single;
  if (o->has("--batch")) {
    for (const char* k : {"--from", "--to", "--dst", "--port", "--user", "--command", "--auth",
                          "--ident", "--iface", "--socks", "--explain", "--nearest"}) {
      if (o->has(k)) {
        err << "sockd-check simulate: " << k
            << " does not go with --batch (write the request's fields in the file)\n";
        return kExitUsage;
      }
    }
  } else {
    Spec spec;
    for (const char* k :
         {"from", "to", "dst", "port", "user", "command", "auth", "ident", "iface", "socks"}) {
      if (auto v = o->get(std::string("--") + k)) spec[k] = *v;
    }
    auto built = build_request(spec, resolve, fails);
    if (auto* e = std::get_if<BuildError>(&built)) {
      err << "sockd-check simulate: --" << e->key << ": " << e->message << '\n';
      return kExitUsage;
    }
    single = std::get<Built>(std::move(built));
  }

  Diagnostics diags;
  const Loaded f = load_files(*o, diags);
  if (diags.has_errors() || !f.rules) {
    print_diagnostics(diags, f, err);
    if (!f.rules && !diags.has_errors())
      err << "sockd-check simulate: gateway.toml names no sockd.conf\n";
    err << "sockd-check simulate: configuration errors; nothing simulated\n";
    return kExitConfig;
  }
  // The policy sockd would build from the same files (load_policy's parts):
  // without gateway.toml, sockd's defaults (protect_internal on, no
  // interfaces known, methods userpass then none).
  const platform::GatewayConfig cfg = f.config ? *f.config : platform::GatewayConfig{};
  sockd::RelayPolicy policy;
  policy.engine = std::make_shared<const sockd::Engine>(
      std::make_shared<const sockd::RuleSet>(*f.rules),
      f.routes ? std::make_shared<const sockd::RouteTable>(*f.routes) : nullptr);
  if (f.users) policy.users = std::make_shared<const sockd::UsersFile>(*f.users);
  policy.protect = sockd::protected_destinations(cfg);
  policy.settings = cfg.sockd;
  switch (cfg.sockd.identd) {
    case platform::IdentdMode::Off: policy.global_ident = sockd::IdentMode::Off; break;
    case platform::IdentdMode::Lenient: policy.global_ident = sockd::IdentMode::Lenient; break;
    case platform::IdentdMode::Strict: policy.global_ident = sockd::IdentMode::Strict; break;
  }
  if (global_ident) policy.global_ident = *global_ident;
  if (auto batch = o->get("--batch")) {
    return run_batch(*batch, f, policy, resolve, fails, opt, o->has("--json"), out, err);
  }
  const Outcome outcome = evaluate(f, policy, *single, opt);
  if (o->has("--json")) {
    out << json_outcome("-", 0, f, outcome, std::nullopt) << '\n';
  } else {
    print_outcome(*single, outcome, out);
  }
  return outcome.permit ? 1 : 0;
}

}  // namespace diode::tools::cli

// sockd-check simulate: one request through the phases a relay goes
// through (packet-tracer style), or a batch file of requests with
// expectations. Decisions come from sockd's own Engine, so the checker and
// the daemon cannot disagree.
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <variant>

#include "cli.hpp"
#include "diode/sockd/engine.hpp"
#include "diode/sockd/expand.hpp"
#include "diode/sockd/parse.hpp"
#include "diode/sockd/session.hpp"
#include "diode/sockd/socks_proto.hpp"
#include "diode/tools/json.hpp"

namespace diode::tools::cli {

using platform::Diagnostics;
using platform::IpAddress;
using sockd::Request;
using sockd::Rule;
namespace proto = sockd::proto;

namespace {

// The request as the user wrote it: key → value (keys as in the batch file).
using Spec = std::map<std::string, std::string>;

struct Built {
  Request req;
  std::string to_text;  // normalised destination, with the service name
  std::vector<std::string> notes;
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

// Builds the Request from a spec; `resolve` maps names to addresses.
std::variant<Built, BuildError> build_request(const Spec& spec,
                                              const std::map<std::string, IpAddress>& resolve) {
  Built b;
  Request& q = b.req;
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
      q.dst_addr = it->second;
      b.notes.push_back(name + " resolves to " + it->second.to_string() + " (--resolve)");
    } else {
      b.notes.push_back(name + " is not resolved (no --resolve " + name +
                        "=ADDR; no live DNS): rules written for addresses do not match it");
    }
  }
  const std::string svc = service_name(q.dst_port);
  b.to_text = (q.dst_name ? *q.dst_name
                          : (q.dst_addr->family == platform::Family::V6
                                 ? "[" + q.dst_addr->to_string() + "]"
                                 : q.dst_addr->to_string())) +
              ":" + std::to_string(q.dst_port) + (svc.empty() ? "" : " (" + svc + ")");
  if (q.dst_name && q.dst_addr) b.to_text += " = " + q.dst_addr->to_string();

  if (auto u = get("user")) q.user = *u;
  if (auto i = get("iface")) q.iface = *i;
  if (auto c = get("command")) {
    if (*c == "connect") {
      q.command = sockd::Command::Connect;
    } else if (*c == "bind") {
      q.command = sockd::Command::Bind;
    } else if (*c == "udp") {
      q.command = sockd::Command::Udp;
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
    if (*id == "ok") {
      q.ident = sockd::IdentResult::Ok;
      q.ident_user = q.user;
    } else if (*id == "none") {
      q.ident = sockd::IdentResult::Unreachable;
    } else if (id->rfind("mismatch:", 0) == 0 && id->size() > 9) {
      q.ident = sockd::IdentResult::Mismatch;
      q.ident_user = id->substr(9);
    } else {
      return BuildError{"ident", "invalid identd result '" + *id + "' (ok, none or mismatch:NAME)"};
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
std::vector<sockd::Field> failing_fields(const Rule& r, const Request& q) {
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
  bool permit = false;
  std::string reason;  // listener, auth, rule, implicit, identd-unreachable, identd-mismatch,
                       // no-route, permit
  const Rule* rule = nullptr;
  const sockd::Route* route = nullptr;
  std::string socks4, socks5;
};

std::string where(const std::string& file, std::uint32_t line) {
  return file + ":" + std::to_string(line);
}

struct EvalOptions {
  bool explain = false;
  bool nearest = false;
  sockd::IdentMode global_ident = sockd::IdentMode::Off;
  // The daemon's policy over the same rules with every identd mode off: its
  // check_destination then applies only sockd's post-rule checks (UDP needs
  // cmd=udp, protect_internal), while identd follows --ident.
  const sockd::Policy* post_policy = nullptr;
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

Outcome evaluate(const Loaded& f, const sockd::Engine& engine, Built& b, const EvalOptions& opt) {
  Outcome o;
  Request& q = b.req;
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
      return o;
    }
  }
  // 2 AUTHENTICATION / IDENTD
  {
    Phase p{"AUTHENTICATION/IDENTD", "ALLOW", {}};
    if (q.method == sockd::AuthMethod::UserPass) {
      p.lines.push_back("method: username/password (RFC 1929), user `" + q.user + "`");
      if (f.users) {
        const auto* e = f.users->find(q.user);
        if (e == nullptr) {
          p.result = "DROP";
          p.lines.push_back("user `" + q.user + "` is not in " + f.users->file +
                            ": authentication fails");
        } else if (e->locked) {
          p.result = "DROP";
          p.lines.push_back("user `" + q.user + "` is locked in " +
                            where(f.users->file, e->pos.line));
        } else {
          p.lines.push_back("user `" + q.user + "` is in " + where(f.users->file, e->pos.line) +
                            " (the password itself is not checked)");
        }
      } else {
        p.lines.push_back("no users file given: the password is not checked");
      }
    } else {
      p.lines.push_back("method: none (SOCKS4 USERID or SOCKS5 no authentication); user " +
                        (q.user.empty() ? std::string("(empty)") : "`" + q.user + "`") +
                        " as the client sent it");
    }
    switch (q.ident) {
      case sockd::IdentResult::NotAsked:
        p.lines.push_back(
            "identd: not simulated (--ident ok|none|mismatch:NAME); treated as agreeing");
        break;
      case sockd::IdentResult::Ok:
        p.lines.push_back("identd: answers `" + q.user + "`");
        break;
      case sockd::IdentResult::Unreachable:
        p.lines.push_back("identd: unreachable");
        break;
      case sockd::IdentResult::Mismatch:
        p.lines.push_back("identd: reports `" + q.ident_user + "`, the client sent `" + q.user +
                          "`");
        break;
    }
    const bool drop = p.result == "DROP";
    o.phases.push_back(std::move(p));
    if (drop) {
      set_deny(o, "auth", "91 (rejected)",
               "RFC 1929 status 0x01 (authentication failure), connection closed");
      return o;
    }
  }
  // 3 RULES
  const sockd::RuleSet& rs = engine.rules();
  const auto idx = engine.first_match(q);
  sockd::Decision d = engine.decide(q, opt.global_ident);
  std::string ident_note;
  if (d.ident_required && d.verdict == sockd::Verdict::Permit &&
      q.ident == sockd::IdentResult::NotAsked) {
    // What sockd does today: it has no identd client, so a rule that needs
    // identd sees it as unreachable (docs/sockd.md).
    q.ident = sockd::IdentResult::Unreachable;
    ident_note =
        "identd not simulated (--ident): taken as unreachable, as sockd (which has no identd "
        "client yet) does";
    d = engine.decide(q, opt.global_ident);
  }
  std::optional<sockd::Check> post;
  if (d.verdict == sockd::Verdict::Permit && opt.post_policy != nullptr) {
    post = sockd::check_destination(*opt.post_policy, q);
    if (post->permitted) post.reset();
  }
  {
    Phase p{"RULES", "", {}};
    if (opt.explain) {
      for (const auto& t : sockd::explain(rs, q)) {
        const Rule& r = rs.rules[t.rule_index];
        p.lines.push_back(where(rs.file, r.pos.line) + ": " + r.text);
        p.lines.push_back(t.matched ? "    -> MATCH"
                                    : std::string("    -> no match: stopped by ") +
                                          field_name(t.stopped_by));
      }
    }
    if (idx) {
      const Rule& r = rs.rules[*idx];
      o.rule = &r;
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
               : std::string(" (a line without cmd= permits connect and bind only)")));
    }
    if (opt.nearest) {
      // The non-matching rule with the fewest failing fields (earliest on a
      // tie), preferring rules whose verdict differs from the outcome.
      const bool permitted = idx && rs.rules[*idx].action == sockd::Action::Permit && !post;
      // A later rule of the other verdict that matches too: the order decides.
      for (std::size_t i = idx ? *idx + 1 : rs.rules.size(); i < rs.rules.size(); ++i) {
        const Rule& r = rs.rules[i];
        if ((r.action == sockd::Action::Permit) == permitted || !failing_fields(r, q).empty())
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
          auto ff = failing_fields(r, q);
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
          d.rule->ident == sockd::IdentMode::Default ? opt.global_ident : d.rule->ident;
      const char* mode = m == sockd::IdentMode::Strict    ? "strict (?=I)"
                         : m == sockd::IdentMode::Lenient ? "lenient (?=i)"
                                                          : "off";
      p.lines.push_back(
          std::string("mode: ") + mode +
          (d.rule->ident == sockd::IdentMode::Default ? " (global setting)" : " (the rule's ?=)"));
      if (!ident_note.empty()) p.lines.push_back(ident_note);
      if (d.reason == sockd::DenyReason::IdentUnreachable ||
          d.reason == sockd::DenyReason::IdentMismatch)
        p.result = "DROP";
      if (d.ident_hook != nullptr) {
        p.lines.push_back("fires " + where(rs.file, d.ident_hook->pos.line) + ": " +
                          d.ident_hook->text);
      } else if (q.ident == sockd::IdentResult::Unreachable && m != sockd::IdentMode::Off) {
        p.lines.push_back("no #NO_IDENTD: line: nothing runs");
      } else if (q.ident == sockd::IdentResult::Mismatch && m != sockd::IdentMode::Off) {
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
    o.route = d.route;
    if ((d.verdict == sockd::Verdict::Permit && !post) || d.reason == sockd::DenyReason::NoRoute) {
      if (engine.routes() == nullptr) {
        p.result = "ALLOW";
        p.lines.push_back("no sockd.route given: the kernel's routing table picks the egress");
      } else if (d.route != nullptr) {
        p.result = "ALLOW";
        p.lines.push_back(where(engine.routes()->file, d.route->pos.line) + ": " + d.route->text);
        p.lines.push_back("egress " + (d.route->egress_addr ? d.route->egress_addr->to_string()
                                                            : d.route->egress_iface));
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
                        sockd::expand_command(d.ident_hook->shell_cmd, sockd::context_for(q)));
    }
    if (p.lines.empty()) p.lines.push_back("no command");
    o.phases.push_back(std::move(p));
  }
  // 7 RESULT, with the reply codes from the protocol library's mapping.
  proto::ReplyKind kind = proto::ReplyKind::NotAllowed;
  if (post) {
    kind = post->reply;
    o.reason = post->reason == "protected destination" ? "protected-destination" : "udp-needs-cmd";
  } else {
    switch (d.reason) {
      case sockd::DenyReason::None:
        kind = proto::ReplyKind::Granted;
        o.reason = "permit";
        break;
      case sockd::DenyReason::NoMatch:
        o.reason = "implicit";
        break;
      case sockd::DenyReason::Rule:
        o.reason = "rule";
        break;
      case sockd::DenyReason::IdentUnreachable:
        kind = proto::ReplyKind::IdentUnreachable;
        o.reason = "identd-unreachable";
        break;
      case sockd::DenyReason::IdentMismatch:
        kind = proto::ReplyKind::IdentMismatch;
        o.reason = "identd-mismatch";
        break;
      case sockd::DenyReason::NoRoute:
        kind = proto::ReplyKind::NetUnreachable;
        o.reason = "no-route";
        break;
    }
  }
  o.permit = kind == proto::ReplyKind::Granted;
  if (!o.permit) o.route = nullptr;
  o.socks4 = socks4_text(kind);
  o.socks5 = socks5_text(kind);
  return o;
}

void print_outcome(const Built& b, const Outcome& o, std::ostream& out) {
  const Request& q = b.req;
  out << "Request:\n";
  out << "  interface:   " << (q.iface.empty() ? std::string("(unknown)") : q.iface) << '\n';
  out << "  client:      " << q.src_addr.to_string()
      << (q.src_port != 0 ? ":" + std::to_string(q.src_port) : "") << '\n';
  out << "  user:        " << (q.user.empty() ? std::string("(none)") : q.user) << '\n';
  const char* cmd = q.command == sockd::Command::Connect ? "connect"
                    : q.command == sockd::Command::Bind  ? "bind"
                                                         : "udp";
  out << "  command:     " << cmd << '\n';
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
  s << "}";
  return s.str();
}

struct Token {
  std::string text;
  std::uint32_t col;
};

int run_batch(const std::string& path, const Loaded& f, const sockd::Engine& engine,
              const std::map<std::string, IpAddress>& resolve, const EvalOptions& opt, bool json,
              std::ostream& out, std::ostream& err) {
  std::string error;
  const auto text = read_text_file(path, std::size_t{64} * 1024 * 1024, error);
  if (!text) {
    err << path << ": error: " << error << '\n';
    return kExitConfig;
  }
  const std::vector<std::string> keys = {"from", "to",    "dst",   "port",   "user",   "command",
                                         "auth", "ident", "iface", "expect", "resolve"};
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
    std::map<std::string, IpAddress> line_resolve = resolve;
    bool bad = false;
    for (const auto& t : tokens) {
      const auto eq = t.text.find('=');
      const std::string key = eq == std::string::npos ? t.text : t.text.substr(0, eq);
      if (eq == std::string::npos || std::find(keys.begin(), keys.end(), key) == keys.end()) {
        diags.error(
            {path, line_no, t.col},
            "unknown field '" + t.text +
                "' (from= to= dst= port= user= command= auth= ident= iface= resolve= expect=)",
            "syntax");
        bad = true;
        break;
      }
      const std::string value = t.text.substr(eq + 1);
      if (key == "resolve") {
        const auto e2 = value.find('=');
        const auto a =
            e2 == std::string::npos ? std::nullopt : IpAddress::parse(value.substr(e2 + 1));
        if (!a) {
          diags.error({path, line_no, t.col}, "invalid resolve= (expected resolve=NAME=ADDR)",
                      "syntax");
          bad = true;
          break;
        }
        line_resolve[lower(value.substr(0, e2))] = *a;
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
    auto built = build_request(spec, line_resolve);
    if (auto* e = std::get_if<BuildError>(&built)) {
      const auto c = cols.count(e->key) != 0 ? cols[e->key] : 1U;
      diags.error({path, line_no, c}, e->message, "syntax");
      continue;
    }
    auto& b = std::get<Built>(built);
    const Outcome o = evaluate(f, engine, b, opt);
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
       "--user", "--command", "--auth", "--ident", "--resolve", "--global-ident", "--batch"},
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
  std::map<std::string, IpAddress> resolve;
  for (const auto& r : o->all("--resolve")) {
    const auto eq = r.find('=');
    const auto a = eq == std::string::npos ? std::nullopt : IpAddress::parse(r.substr(eq + 1));
    if (!a || eq == 0) {
      err << "sockd-check simulate: --resolve '" << r << "': expected NAME=ADDR\n";
      return kExitUsage;
    }
    resolve[lower(r.substr(0, eq))] = *a;
  }
  EvalOptions opt;
  opt.explain = o->has("--explain");
  opt.nearest = o->has("--nearest");
  if (auto g = o->get("--global-ident")) {
    const auto m = parse_ident_mode(*g);
    if (!m) {
      err << "sockd-check simulate: --global-ident must be off, lenient or strict\n";
      return kExitUsage;
    }
    opt.global_ident = *m;
  }
  // Build the single request before loading files, so usage errors come first.
  std::optional<Built> single;
  if (o->has("--batch")) {
    for (const char* k : {"--from", "--to", "--dst", "--port", "--user", "--command", "--auth",
                          "--ident", "--iface", "--explain", "--nearest"}) {
      if (o->has(k)) {
        err << "sockd-check simulate: " << k
            << " does not go with --batch (write the request's fields in the file)\n";
        return kExitUsage;
      }
    }
  } else {
    Spec spec;
    for (const char* k :
         {"from", "to", "dst", "port", "user", "command", "auth", "ident", "iface"}) {
      if (auto v = o->get(std::string("--") + k)) spec[k] = *v;
    }
    auto built = build_request(spec, resolve);
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
  if (f.config && !o->has("--global-ident")) {
    switch (f.config->sockd.identd) {
      case platform::IdentdMode::Off:
        opt.global_ident = sockd::IdentMode::Off;
        break;
      case platform::IdentdMode::Lenient:
        opt.global_ident = sockd::IdentMode::Lenient;
        break;
      case platform::IdentdMode::Strict:
        opt.global_ident = sockd::IdentMode::Strict;
        break;
    }
  }
  const sockd::Engine engine(
      std::make_shared<const sockd::RuleSet>(*f.rules),
      f.routes ? std::make_shared<const sockd::RouteTable>(*f.routes) : nullptr);
  // sockd's post-rule checks, over the same rules with identd off (see EvalOptions).
  auto no_ident = std::make_shared<sockd::RuleSet>(*f.rules);
  for (auto& r : no_ident->rules) r.ident = sockd::IdentMode::Off;
  sockd::Policy post_policy;
  post_policy.engine = std::make_shared<const sockd::Engine>(
      no_ident, f.routes ? std::make_shared<const sockd::RouteTable>(*f.routes) : nullptr);
  post_policy.global_ident = sockd::IdentMode::Off;
  // Without gateway.toml: sockd's defaults (protect_internal on), no interfaces.
  post_policy.protect =
      sockd::protected_destinations(f.config ? *f.config : platform::GatewayConfig{});
  opt.post_policy = &post_policy;
  if (auto batch = o->get("--batch")) {
    return run_batch(*batch, f, engine, resolve, opt, o->has("--json"), out, err);
  }
  const Outcome outcome = evaluate(f, engine, *single, opt);
  if (o->has("--json")) {
    out << json_outcome("-", 0, f, outcome, std::nullopt) << '\n';
  } else {
    print_outcome(*single, outcome, out);
  }
  return outcome.permit ? 1 : 0;
}

}  // namespace diode::tools::cli

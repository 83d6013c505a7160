#include "diode/sockd/session.hpp"

#include <algorithm>
#include <chrono>
#include <functional>

#include "diode/sockd/expand.hpp"
#include "diode/sockd/parse.hpp"

namespace diode::sockd {

namespace {

using platform::Prefix;

void add_prefix(std::vector<Prefix>& out, std::string_view text) {
  if (auto p = Prefix::parse(text)) out.push_back(*p);
}

IdentMode to_ident_mode(platform::IdentdMode m) {
  switch (m) {
    case platform::IdentdMode::Off: return IdentMode::Off;
    case platform::IdentdMode::Lenient: return IdentMode::Lenient;
    case platform::IdentdMode::Strict: return IdentMode::Strict;
  }
  return IdentMode::Off;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

bool ProtectedSet::contains(const IpAddress& addr) const {
  if (!enabled) return false;
  const IpAddress a = addr.unmapped();
  for (const Prefix& p : prefixes) {
    if (p.contains(a)) return true;
  }
  return host != nullptr && host->contains(a);
}

ProtectedSet protected_destinations(const platform::GatewayConfig& cfg,
                                    std::shared_ptr<const HostAddresses> host) {
  ProtectedSet s;
  s.enabled = cfg.sockd.protect_internal;
  if (!s.enabled) return s;
  s.host = std::move(host);
  // Connecting to 0.0.0.0 or :: reaches this host, like loopback; multicast
  // and broadcast reach every host of a link the gateway is on.
  for (auto text : {"127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128", "169.254.0.0/16",
                    "fe80::/10", "224.0.0.0/4", "ff00::/8", "255.255.255.255/32"}) {
    add_prefix(s.prefixes, text);
  }
  for (const IpAddress& a : platform::gateway_addresses(cfg)) {
    s.prefixes.push_back(Prefix{a, static_cast<unsigned>(a.bits())});
  }
  for (const Prefix& p : platform::internal_networks(cfg)) s.prefixes.push_back(p);
  return s;
}

std::string_view builtin_sockd_conf() {
  return "# sockd's built-in policy: clients on this host may reach any destination\n"
         "# that protect_internal does not shield.\n"
         "permit 127.0.0.0 255.0.0.0\n"
         "permit ::1/128\n";
}

std::shared_ptr<const RelayPolicy> load_policy(const platform::GatewayConfig& cfg,
                                          platform::Diagnostics& diags,
                                          std::shared_ptr<const HostAddresses> host) {
  std::optional<RuleSet> rules;
  if (cfg.files.sockd_conf.empty()) {
    rules = parse_sockd_conf(builtin_sockd_conf(), "<built-in sockd.conf>", diags);
  } else {
    rules = load_sockd_conf(cfg.files.sockd_conf, diags);
  }
  std::optional<RouteTable> routes;
  if (!cfg.files.sockd_route.empty()) routes = load_sockd_route(cfg.files.sockd_route, diags);
  std::optional<UsersFile> users;
  if (!cfg.files.users.empty()) users = load_users_file(cfg.files.users, diags);
  if (diags.has_errors() || !rules) return nullptr;
  if (!cfg.files.sockd_route.empty() && !routes) return nullptr;
  if (!cfg.files.users.empty() && !users) return nullptr;

  auto p = std::make_shared<RelayPolicy>();
  std::shared_ptr<const RouteTable> rt;
  if (routes) rt = std::make_shared<const RouteTable>(std::move(*routes));
  p->engine = std::make_shared<const Engine>(std::make_shared<const RuleSet>(std::move(*rules)), rt);
  if (users) p->users = std::make_shared<const UsersFile>(std::move(*users));
  p->protect = protected_destinations(cfg, std::move(host));
  p->global_ident = to_ident_mode(cfg.sockd.identd);
  p->settings = cfg.sockd;
  p->hits = std::make_shared<RuleHits>(p->engine->rules().rules.size());
  return p;
}

void record_decision(const RelayPolicy& policy, const Rule* rule) noexcept {
  record_decision(policy, rule, std::chrono::system_clock::now());
}

void record_decision(const RelayPolicy& policy, const Rule* rule,
                     std::chrono::system_clock::time_point when) noexcept {
  if (!policy.hits) return;
  std::optional<std::size_t> index;
  const auto& rules = policy.engine->rules().rules;
  // The decision's rule points into this policy's own rule set.
  const std::less_equal<const Rule*> le;
  if (rule != nullptr && !rules.empty() && le(rules.data(), rule) && le(rule, &rules.back())) {
    index = static_cast<std::size_t>(rule - rules.data());
  }
  policy.hits->record(index, when);
}

RuleRequest make_rule_request(const proto::Request& hs, const platform::Endpoint& client,
                          const std::string& iface) {
  RuleRequest q;
  q.iface = iface;
  q.src_addr = client.addr.unmapped();
  q.src_port = client.port;
  if (hs.version == proto::Version::Socks5) {
    q.user = std::string(hs.username.view());
    q.method = hs.method == proto::kMethodUserPass ? AuthMethod::UserPass : AuthMethod::None;
  } else {
    q.user = std::string(hs.userid.view());
    q.method = AuthMethod::None;
  }
  switch (hs.command) {
    case proto::Command::Connect: q.command = RuleCommand::Connect; break;
    case proto::Command::Bind: q.command = RuleCommand::Bind; break;
    case proto::Command::UdpAssociate: q.command = RuleCommand::Udp; break;
  }
  if (hs.destination.type == proto::AddressType::Domain) {
    q.dst_name = lower(hs.destination.name.view());
  } else {
    q.dst_addr = hs.destination.ip.unmapped();
  }
  q.dst_port = hs.destination.port;
  return q;
}

bool explicitly_allows(const Rule& rule, const IpAddress& addr) {
  return rule.dst.kind == AddressMatch::Kind::Masked && rule.dst.masked.matches(addr.unmapped());
}

bool names_command(const Rule& rule, RuleCommand cmd) {
  if ((rule.commands & static_cast<std::uint8_t>(cmd)) == 0) return false;
  // The model keeps "all commands" for a line without cmd=; only the text
  // (before any shell command) tells whether cmd= was written.
  std::string_view text = rule.text;
  if (rule.shell_cmd && rule.shell_cmd_pos.column > 0 && rule.shell_cmd_pos.column <= text.size()) {
    text = text.substr(0, rule.shell_cmd_pos.column - 1);
  }
  if (const auto hash = text.find('#'); hash != std::string_view::npos) text = text.substr(0, hash);
  for (std::size_t at = text.find("cmd="); at != std::string_view::npos; at = text.find("cmd=", at + 1)) {
    if (at == 0 || text[at - 1] == ' ' || text[at - 1] == '\t') return true;
  }
  return false;
}

bool may_use_udp(const RelayPolicy& policy, const RuleRequest& q) {
  for (const Rule& r : policy.engine->rules().rules) {
    if (r.action != Action::Permit || !names_command(r, RuleCommand::Udp)) continue;
    if (!r.interfaces.empty() &&
        std::find(r.interfaces.begin(), r.interfaces.end(), q.iface) == r.interfaces.end()) {
      continue;
    }
    if ((r.methods & static_cast<std::uint8_t>(q.method)) == 0 || !r.users.contains(q.user)) continue;
    if (address_matches(r.src, q.src_addr, q.src_name)) return true;
  }
  return false;
}

platform::IpAddress client_limit_key(const platform::IpAddress& addr) {
  platform::IpAddress k = addr.unmapped();
  if (k.family == platform::Family::V6) std::fill(k.bytes.begin() + 8, k.bytes.end(), 0);
  return k;
}

void ClientCounts::remove(const platform::IpAddress& key) {
  auto it = counts_.find(key);
  if (it == counts_.end() || it->second == 0) return;
  if (--it->second == 0 && ++idle_ > kIdleKept) {
    std::erase_if(counts_, [](const auto& e) { return e.second == 0; });
    idle_ = 0;
  }
}

std::uint32_t ClientCounts::open(const platform::IpAddress& key) const {
  const auto it = counts_.find(key);
  return it == counts_.end() ? 0 : it->second;
}

std::string rule_label(const Rule& rule) {
  return rule.pos.file + ":" + std::to_string(rule.pos.line);
}

Check check_destination(const RelayPolicy& policy, const RuleRequest& q) {
  Check c;
  const Decision d = policy.engine->decide(q, policy.global_ident);
  if (d.ident_required && d.verdict == Verdict::Permit && q.ident == IdentResult::NotAsked) {
    // The caller asks identd and decides again with the answer.
    c.needs_ident = true;
    c.rule = d.rule;
    c.reason = "identd not asked";
    return c;
  }
  c.rule = d.rule;
  c.route = d.route;
  if (c.route != nullptr && c.route->egress_addr && q.dst_addr &&
      c.route->egress_addr->family != q.dst_addr->unmapped().family) {
    // NEC's "0.0.0.0 0.0.0.0" matches every destination, IPv6 too; an IPv4
    // egress cannot carry IPv6: take the first matching line that can.
    c.route = nullptr;
    for (const Route& r : policy.engine->routes()->routes) {
      if (r.egress_addr && r.egress_addr->family != q.dst_addr->unmapped().family) continue;
      if (address_matches(r.dst, q.dst_addr, q.dst_name)) {
        c.route = &r;
        break;
      }
    }
    if (c.route == nullptr && d.verdict == Verdict::Permit) {
      c.reply = proto::ReplyKind::NetUnreachable;
      c.reason = "no sockd.route line for the destination's address family";
      return c;
    }
  }
  c.command = d.command;
  if (d.ident_hook != nullptr) {
    ExpandContext ctx = context_for(q);
    c.ident_command = expand_command(d.ident_hook->shell_cmd, ctx);
    c.ident_origin = d.ident_hook->pos.file + ":" + std::to_string(d.ident_hook->pos.line);
  }
  if (d.verdict == Verdict::Deny) {
    switch (d.reason) {
      case DenyReason::None:
      case DenyReason::NoMatch:
        c.reply = proto::ReplyKind::NotAllowed;
        c.reason = "no matching rule";
        break;
      case DenyReason::Rule:
        c.reply = proto::ReplyKind::NotAllowed;
        c.reason = "denied by rule";
        break;
      case DenyReason::IdentUnreachable:
        c.reply = proto::ReplyKind::IdentUnreachable;
        c.reason = "cannot connect to identd";
        break;
      case DenyReason::IdentMismatch:
        c.reply = proto::ReplyKind::IdentMismatch;
        c.reason = "identd reports another user";
        break;
      case DenyReason::NoRoute:
        c.reply = proto::ReplyKind::NetUnreachable;
        c.reason = "no sockd.route line for the destination";
        break;
    }
    return c;
  }
  if (q.command == RuleCommand::Udp && (d.rule == nullptr || !names_command(*d.rule, RuleCommand::Udp))) {
    c.reply = proto::ReplyKind::NotAllowed;
    c.reason = "udp needs a rule with cmd=udp";
    return c;
  }
  if (q.dst_addr && policy.protect.contains(*q.dst_addr) &&
      (d.rule == nullptr || !explicitly_allows(*d.rule, *q.dst_addr))) {
    c.reply = proto::ReplyKind::NotAllowed;
    c.reason = "protected destination";
    return c;
  }
  c.permitted = true;
  c.reply = proto::ReplyKind::Granted;
  return c;
}

std::string_view version_name(proto::Version v) {
  switch (v) {
    case proto::Version::Socks4: return "socks4";
    case proto::Version::Socks4a: return "socks4a";
    case proto::Version::Socks5: return "socks5";
  }
  return "?";
}

std::string_view command_name(proto::Command c) {
  switch (c) {
    case proto::Command::Connect: return "connect";
    case proto::Command::Bind: return "bind";
    case proto::Command::UdpAssociate: return "udp";
  }
  return "?";
}

}  // namespace diode::sockd

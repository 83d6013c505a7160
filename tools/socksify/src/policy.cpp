// diode-socksify's decisions (policy.hpp): settings, routes, fake names.

#include "diode/socksify/policy.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "diode/sockd/engine.hpp"
#include "diode/sockd/parse.hpp"

namespace diode::socksify {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

platform::SourcePos env_pos(const char* name) {
  return platform::SourcePos{std::string("$") + name, 0, 0};
}

// A masked destination that every address of its family matches.
bool matches_every_address(const sockd::AddressMatch& m) {
  if (m.kind == sockd::AddressMatch::Kind::Any) return true;
  if (m.kind != sockd::AddressMatch::Kind::Masked) return false;
  for (std::size_t i = 0; i < m.masked.mask.size(); ++i) {
    if (m.masked.mask.bytes[i] != 0) return false;
  }
  return true;
}

bool name_in_domain(const sockd::AddressMatch& m, const std::string& name) {
  if (m.kind != sockd::AddressMatch::Kind::Domain) return false;
  if (name == m.domain) return true;
  // `.zone` matches the zone and every name below it; a bare name only itself.
  return m.zone && name.size() > m.domain.size() &&
         name.compare(name.size() - m.domain.size(), m.domain.size(), m.domain) == 0 &&
         name[name.size() - m.domain.size() - 1] == '.';
}

Decision decision_for(const Settings& s, std::optional<std::size_t> index) {
  Decision d;
  if (!index) {
    if (!s.conf_present && !s.default_servers.empty()) {
      d.route = Route::Sockd;
      d.servers = &s.default_servers;
    }
    return d;
  }
  const sockd::ClientRule* r = &s.rules.rules[*index];
  d.rule = r;
  switch (r->action) {
    case sockd::ClientAction::Deny:
      d.route = Route::Deny;
      break;
    case sockd::ClientAction::Direct:
      d.route = Route::Direct;
      break;
    case sockd::ClientAction::Sockd:
      d.route = Route::Sockd;
      d.servers = r->servers.empty() ? &s.default_servers : &s.line_servers[*index];
      break;
  }
  return d;
}

}  // namespace

std::string Server::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<Server> parse_server(std::string_view s) {
  if (s.empty()) return std::nullopt;
  Server out;
  if (s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || !IpAddress::parse_v6(s.substr(1, close - 1))) {
      return std::nullopt;
    }
    out.host = std::string(s.substr(1, close - 1));
    if (close + 1 == s.size()) return out;
    if (s[close + 1] != ':') return std::nullopt;
    const auto p = platform::parse_port_number(s.substr(close + 2));
    if (!p || *p == 0) return std::nullopt;
    out.port = *p;
    return out;
  }
  if (IpAddress::parse_v6(s)) {
    out.host = std::string(s);
    return out;
  }
  std::string_view host = s;
  const auto colon = s.rfind(':');
  if (colon != std::string_view::npos) {
    const auto p = platform::parse_port_number(s.substr(colon + 1));
    if (!p || *p == 0) return std::nullopt;
    out.port = *p;
    host = s.substr(0, colon);
  }
  if (!IpAddress::parse_v4(host)) {
    bool numeric = true;
    for (const char c : host) numeric = numeric && ((c >= '0' && c <= '9') || c == '.');
    if (numeric || !platform::is_valid_domain_name(host)) return std::nullopt;
  }
  out.host = std::string(host);
  return out;
}

std::optional<Settings> load_settings(const GetEnv& getenv, platform::Diagnostics& diags) {
  Settings s;
  bool ok = true;
  const char* v = getenv("SOCKS_CONF");
  s.conf_path = (v != nullptr && *v != '\0') ? v : kDefaultConf;

  if (const char* srv = getenv("SOCKS_SERVER"); srv != nullptr && *srv != '\0') {
    std::string_view rest = srv;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      if (auto server = parse_server(item)) {
        s.default_servers.push_back(*server);
      } else {
        diags.error(env_pos("SOCKS_SERVER"),
                    "invalid server '" + std::string(item) +
                        "' (name or address, optional :port, IPv6 as [addr]:port)");
        ok = false;
      }
    }
  }
  if (const char* ns = getenv("SOCKS_NS"); ns != nullptr && *ns != '\0') {
    // IPv4 only: glibc's resolver state (_res) names IPv4 servers.
    s.nameserver = IpAddress::parse_v4(ns);
    if (!s.nameserver) {
      diags.error(env_pos("SOCKS_NS"),
                  "invalid nameserver '" + std::string(ns) + "' (an IPv4 address)");
      ok = false;
    }
  }
  if (const char* u = getenv("SOCKS_USER"); u != nullptr) s.user = u;
  if (const char* p = getenv("SOCKS_PASSWORD"); p != nullptr) s.password = p;
  if (const char* pf = getenv("SOCKS_PASSWORD_FILE"); pf != nullptr && *pf != '\0') {
    std::ifstream in(pf);
    if (!in || !std::getline(in, s.password)) {
      diags.error(env_pos("SOCKS_PASSWORD_FILE"),
                  std::string("cannot read the password from '") + pf + "'");
      ok = false;
    }
    if (!s.password.empty() && s.password.back() == '\r') s.password.pop_back();
  }
  if (s.user.size() > 255 || s.password.size() > 255) {
    diags.error(env_pos("SOCKS_USER"),
                "user name and password are at most 255 bytes each (RFC 1929)");
    ok = false;
  }
  if (!s.password.empty() && s.user.empty()) {
    diags.error(env_pos("SOCKS_USER"), "a password is given but SOCKS_USER is not set");
    ok = false;
  }
  if (const char* d = getenv("SOCKS_DEBUG"); d != nullptr) s.debug = std::strcmp(d, "1") == 0;

  struct stat st {};
  if (::stat(s.conf_path.c_str(), &st) != 0 && errno == ENOENT) {
    s.conf_present = false;
  } else {
    s.conf_present = true;
    auto rules = sockd::load_socks_conf(s.conf_path, diags);
    if (!rules) {
      ok = false;
    } else {
      s.rules = std::move(*rules);
    }
  }
  // Each line's servers, parsed once; a sockd line without @= needs SOCKS_SERVER.
  for (const auto& r : s.rules.rules) {
    std::vector<Server> servers;
    for (const auto& item : r.servers) {
      if (auto server = parse_server(item)) servers.push_back(*server);
    }
    s.line_servers.push_back(std::move(servers));
    if (r.action == sockd::ClientAction::Sockd && r.servers.empty() && s.default_servers.empty()) {
      diags.error(r.pos, "this sockd line has no @= and SOCKS_SERVER is not set");
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return s;
}

std::string_view to_string(Route r) {
  switch (r) {
    case Route::Direct:
      return "direct";
    case Route::Sockd:
      return "sockd";
    case Route::Deny:
      return "deny";
  }
  return "?";
}

std::string Decision::where() const {
  if (rule == nullptr) return route == Route::Sockd ? "SOCKS_SERVER" : "no-match";
  return rule->pos.file + ":" + std::to_string(rule->pos.line);
}

bool line_applies(const sockd::ClientRule& r, sockd::RuleCommand cmd) {
  if ((r.commands & static_cast<std::uint8_t>(cmd)) == 0) return false;
  if (cmd == sockd::RuleCommand::Udp && r.action == sockd::ClientAction::Sockd) return r.commands_given;
  return true;
}

Decision decide_address(const Settings& s, const IpAddress& addr, std::uint16_t port,
                        std::string_view local_user, sockd::RuleCommand cmd) {
  const std::optional<IpAddress> a = addr.unmapped();
  for (std::size_t i = 0; i < s.rules.rules.size(); ++i) {
    const auto& r = s.rules.rules[i];
    if (!line_applies(r, cmd) || !r.users.contains(local_user)) continue;
    if (!sockd::address_matches(r.dst, a, std::nullopt) || !r.port.matches(port)) continue;
    return decision_for(s, i);
  }
  if (cmd == sockd::RuleCommand::Udp) return Decision{};  // SOCKS_SERVER alone carries no UDP
  return decision_for(s, std::nullopt);
}

Decision decide_name(const Settings& s, std::string_view name, std::optional<std::uint16_t> port,
                     std::string_view local_user, sockd::RuleCommand cmd) {
  const std::string n = lower(name);
  for (std::size_t i = 0; i < s.rules.rules.size(); ++i) {
    const auto& r = s.rules.rules[i];
    if (!line_applies(r, cmd) || !r.users.contains(local_user)) continue;
    if (!matches_every_address(r.dst) && !name_in_domain(r.dst, n)) continue;
    if (port && !r.port.matches(*port)) continue;
    return decision_for(s, i);
  }
  if (cmd == sockd::RuleCommand::Udp) return Decision{};
  return decision_for(s, std::nullopt);
}

FakeNames::~FakeNames() {
  for (auto& n : names_) std::free(const_cast<char*>(n.load(std::memory_order_relaxed)));
}

std::optional<std::uint32_t> FakeNames::intern(std::string_view name) {
  std::string key = lower(name);
  const std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = index_.find(key); it != index_.end()) return it->second;
  if (used_ + 1 >= kCapacity) return std::nullopt;
  const std::uint32_t slot = ++used_;  // 240.0.0.0 itself is never handed out
  char* copy = static_cast<char*>(std::malloc(key.size() + 1));
  if (copy == nullptr) return std::nullopt;
  std::memcpy(copy, key.c_str(), key.size() + 1);
  names_[slot].store(copy, std::memory_order_release);
  const std::uint32_t addr = kBase | slot;
  index_.emplace(std::move(key), addr);
  return addr;
}

const char* FakeNames::lookup(std::uint32_t v4) const {
  if (!is_fake(v4)) return nullptr;
  const std::uint32_t slot = v4 - kBase;
  if (slot == 0 || slot >= kCapacity) return nullptr;
  return names_[slot].load(std::memory_order_acquire);
}

int errno_for_reply(std::uint8_t rep) {
  switch (rep) {
    case 0x03:
      return ENETUNREACH;
    case 0x04:
      return EHOSTUNREACH;
    case 0x06:
      return ETIMEDOUT;
    default:
      return ECONNREFUSED;  // 01, 02 (not allowed), 05, 07, 08 and the unknown
  }
}

}  // namespace diode::socksify

// sockd.conf (NEC sockd.conf(5)), sockd.route (sockd.route(5)) and
// socks.conf (socks.conf(5)) parsers, with Diode's extensions. The grammar
// is documented in docs/sockd.conf.md, docs/sockd.route.md, docs/socks.conf.md.
#include "diode/sockd/parse.hpp"

#include <algorithm>

#include "parse_common.hpp"

namespace diode::sockd {
namespace {

using detail::ErrorSink;
using detail::LineTokens;
using detail::Token;

constexpr std::string_view kNoIdentd = "#NO_IDENTD:";
constexpr std::string_view kBadId = "#BAD_ID:";

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool is_option_word(std::string_view w) {
  return starts_with(w, "?=") || starts_with(w, "*=") || starts_with(w, "@=") ||
         starts_with(w, "cmd=") || starts_with(w, "auth=") || starts_with(w, "iface=");
}

/// Calls fn(item, column) for each comma-separated item of `value`.
template <class F>
void for_each_item(std::string_view value, std::uint32_t col, F&& fn) {
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    fn(value.substr(start, comma - start), static_cast<std::uint32_t>(col + start));
    start = comma + 1;
  }
}

/// Parses the address at tokens[i] into `out`, stamping its position.
/// Returns the number of words consumed (at least 1 so parsing moves on).
std::size_t address_at(const std::vector<Token>& tokens, std::size_t i, std::uint32_t line,
                       ErrorSink& sink, AddressMatch& out) {
  auto r = detail::parse_address_tokens(tokens, i);
  if (!r.match) {
    sink.error(line, r.error_col, std::move(r.error));
    return r.consumed;
  }
  out = std::move(*r.match);
  out.pos.file = sink.file();
  out.pos.line = line;
  return r.consumed;
}

void set_shell(const LineTokens& lt, std::optional<std::string>& cmd) {
  // NEC hands even an empty command to the shell; it does nothing, so keep none.
  if (lt.has_shell && !lt.shell.empty()) cmd = std::string(lt.shell);
}

std::uint8_t parse_commands(std::string_view value, std::uint32_t col, std::uint32_t line,
                            ErrorSink& sink) {
  std::uint8_t bits = 0;
  for_each_item(value, col, [&](std::string_view item, std::uint32_t c) {
    const std::string w = detail::lower(item);
    if (w == "connect") bits |= static_cast<std::uint8_t>(RuleCommand::Connect);
    else if (w == "bind") bits |= static_cast<std::uint8_t>(RuleCommand::Bind);
    else if (w == "udp") bits |= static_cast<std::uint8_t>(RuleCommand::Udp);
    else sink.error(line, c, "unknown command '" + std::string(item) + "' in cmd= (connect, bind, udp)");
  });
  return bits;
}

std::uint8_t parse_methods(std::string_view value, std::uint32_t col, std::uint32_t line,
                           ErrorSink& sink) {
  std::uint8_t bits = 0;
  for_each_item(value, col, [&](std::string_view item, std::uint32_t c) {
    const std::string w = detail::lower(item);
    if (w == "none") bits |= static_cast<std::uint8_t>(AuthMethod::None);
    else if (w == "userpass") bits |= static_cast<std::uint8_t>(AuthMethod::UserPass);
    else sink.error(line, c, "unknown method '" + std::string(item) + "' in auth= (none, userpass)");
  });
  return bits;
}

/// Options shared by the line kinds, in any order before the address.
struct OptionState {
  bool seen_ident = false, seen_users = false, seen_cmd = false, seen_auth = false,
       seen_iface = false, seen_servers = false;
};

bool duplicate(bool& seen, const Token& t, std::string_view what, std::uint32_t line, ErrorSink& sink) {
  if (seen) {
    sink.error(line, t.col, "duplicate " + std::string(what) + " field");
    return true;
  }
  seen = true;
  return false;
}

/// The words after an address that cannot be there.
void trailing_words(const std::vector<Token>& tokens, std::size_t i, std::uint32_t line,
                    ErrorSink& sink) {
  if (i >= tokens.size()) return;
  const Token& t = tokens[i];
  if (is_option_word(t.text)) {
    sink.error(line, t.col, "'" + std::string(t.text) + "' must come before the address");
  } else {
    sink.error(line, t.col, "unexpected '" + std::string(t.text) + "' (too many fields)");
  }
}

/// `dst [op port]` tail shared by sockd.conf (after the source) and socks.conf.
std::size_t port_at(const std::vector<Token>& tokens, std::size_t i, std::uint32_t line,
                    const LineTokens& lt, ErrorSink& sink, PortTest& port) {
  if (i < tokens.size() && detail::is_port_op(tokens[i].text)) {
    return i + detail::parse_port_test(tokens, i, line, lt.end_col, sink, port);
  }
  return i;
}

void parse_rule_line(std::string_view text, std::uint32_t line, const ParseOptions& opts,
                     detail::UserFileCache& cache, ErrorSink& sink, RuleSet& rs) {
  if (starts_with(text, kNoIdentd) || starts_with(text, kBadId)) {
    const bool no_identd = starts_with(text, kNoIdentd);
    const std::size_t skip = no_identd ? kNoIdentd.size() : kBadId.size();
    std::size_t s = skip;
    while (s < text.size() && (text[s] == ' ' || text[s] == '\t')) ++s;
    std::string_view cmd = text.substr(s);
    while (!cmd.empty() && (cmd.back() == ' ' || cmd.back() == '\t')) cmd.remove_suffix(1);
    auto& slot = no_identd ? rs.no_identd : rs.bad_id;
    if (!slot) {  // NEC searches from the top: the first one is used
      slot = HookLine{std::string(cmd), sink.pos(line, 1), std::string(text)};
    }
    return;
  }
  const LineTokens& lt = detail::tokenize(text, detail::ColonRule::ShellCommand);
  const auto& tk = lt.tokens;
  if (tk.empty()) {
    if (lt.has_shell) sink.error(line, lt.colon_col, "shell command without a rule");
    return;
  }
  Rule r;
  r.pos = sink.pos(line, 1);
  r.text = std::string(text);
  if (tk[0].text == "permit") {
    r.action = Action::Permit;
  } else if (tk[0].text == "deny") {
    r.action = Action::Deny;
  } else {
    sink.error(line, tk[0].col, "unknown action '" + std::string(tk[0].text) + "' (permit or deny)");
    return;
  }
  OptionState seen;
  std::size_t i = 1;
  for (; i < tk.size() && is_option_word(tk[i].text); ++i) {
    const Token& t = tk[i];
    const std::string_view w = t.text;
    if (starts_with(w, "?=")) {
      if (duplicate(seen.seen_ident, t, "?=", line, sink)) continue;
      const std::string_view v = w.substr(2);
      if (v.empty() || v == "n") r.ident = IdentMode::Off;  // NEC: a bare ?= means n
      else if (v == "i") r.ident = IdentMode::Lenient;
      else if (v == "I") r.ident = IdentMode::Strict;
      else sink.error(line, t.col + 2, "invalid ?= value '" + std::string(v) + "' (I, i or n)");
    } else if (starts_with(w, "*=")) {
      if (duplicate(seen.seen_users, t, "*=", line, sink)) continue;
      detail::parse_user_list(w.substr(2), t.col + 2, line, opts, cache, sink, r.users);
    } else if (starts_with(w, "cmd=")) {
      if (duplicate(seen.seen_cmd, t, "cmd=", line, sink)) continue;
      r.commands = parse_commands(w.substr(4), t.col + 4, line, sink);
    } else if (starts_with(w, "auth=")) {
      if (duplicate(seen.seen_auth, t, "auth=", line, sink)) continue;
      r.methods = parse_methods(w.substr(5), t.col + 5, line, sink);
    } else if (starts_with(w, "iface=")) {
      if (duplicate(seen.seen_iface, t, "iface=", line, sink)) continue;
      for_each_item(w.substr(6), t.col + 6, [&](std::string_view item, std::uint32_t c) {
        if (!detail::is_interface_name(item)) {
          sink.error(line, c, "invalid interface name '" + std::string(item) + "'");
        } else {
          r.interfaces.emplace_back(item);
        }
      });
    } else {
      sink.error(line, t.col, "'@=' belongs in socks.conf, not sockd.conf");
    }
  }
  if (i >= tk.size() || detail::is_port_op(tk[i].text)) {
    sink.error(line, i >= tk.size() ? lt.end_col : tk[i].col, "missing source address");
    return;
  }
  i += address_at(tk, i, line, sink, r.src);
  if (i < tk.size() && !detail::is_port_op(tk[i].text) && !is_option_word(tk[i].text)) {
    i += address_at(tk, i, line, sink, r.dst);
  }
  i = port_at(tk, i, line, lt, sink, r.port);
  trailing_words(tk, i, line, sink);
  set_shell(lt, r.shell_cmd);
  if (lt.has_shell) r.shell_cmd_pos = sink.pos(line, lt.shell_col);
  rs.rules.push_back(std::move(r));
}

void parse_route_line(std::string_view text, std::uint32_t line, ErrorSink& sink, RouteTable& rt) {
  const LineTokens& lt = detail::tokenize(text, detail::ColonRule::Plain);
  const auto& tk = lt.tokens;
  if (tk.empty()) return;
  Route r;
  r.pos = sink.pos(line, 1);
  r.text = std::string(text);
  const Token& e = tk[0];
  if (auto a = IpAddress::parse(e.text)) {
    r.egress_addr = a->unmapped();
  } else if (detail::is_interface_name(e.text)) {
    r.egress_iface = std::string(e.text);
  } else {
    sink.error(line, e.col, "invalid egress '" + std::string(e.text) +
                                "' (an interface address or an interface name)");
  }
  if (tk.size() < 2) {
    sink.error(line, lt.end_col, "missing destination address");
    return;
  }
  std::size_t i = 1 + address_at(tk, 1, line, sink, r.dst);
  trailing_words(tk, i, line, sink);
  rt.routes.push_back(std::move(r));
}

bool valid_server(std::string_view s) {
  if (s.empty()) return false;
  if (s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    if (!IpAddress::parse_v6(s.substr(1, close - 1))) return false;
    if (close + 1 == s.size()) return true;
    return s[close + 1] == ':' && platform::parse_port_number(s.substr(close + 2)).has_value();
  }
  if (IpAddress::parse_v6(s)) return true;  // a bare IPv6 address, no port
  std::string_view host = s;
  const auto colon = s.rfind(':');
  if (colon != std::string_view::npos) {
    if (!platform::parse_port_number(s.substr(colon + 1))) return false;
    host = s.substr(0, colon);
  }
  if (IpAddress::parse_v4(host)) return true;
  bool numeric = true;
  for (const char c : host) numeric = numeric && ((c >= '0' && c <= '9') || c == '.');
  return !numeric && platform::is_valid_domain_name(host);
}

void parse_client_line(std::string_view text, std::uint32_t line, const ParseOptions& opts,
                       detail::UserFileCache& cache, ErrorSink& sink, ClientRuleSet& cs) {
  const LineTokens& lt = detail::tokenize(text, detail::ColonRule::ShellCommandListAt);
  const auto& tk = lt.tokens;
  if (tk.empty()) {
    if (lt.has_shell) sink.error(line, lt.colon_col, "shell command without a rule");
    return;
  }
  ClientRule r;
  r.pos = sink.pos(line, 1);
  r.text = std::string(text);
  if (tk[0].text == "deny") {
    r.action = ClientAction::Deny;
  } else if (tk[0].text == "direct") {
    r.action = ClientAction::Direct;
  } else if (tk[0].text == "sockd") {
    r.action = ClientAction::Sockd;
  } else {
    sink.error(line, tk[0].col, "unknown action '" + std::string(tk[0].text) + "' (deny, direct or sockd)");
    return;
  }
  OptionState seen;
  std::size_t i = 1;
  for (; i < tk.size() && is_option_word(tk[i].text); ++i) {
    const Token& t = tk[i];
    const std::string_view w = t.text;
    if (starts_with(w, "@=")) {
      if (duplicate(seen.seen_servers, t, "@=", line, sink)) continue;
      if (r.action != ClientAction::Sockd) {
        sink.error(line, t.col, "@= is only valid on sockd lines");
        continue;
      }
      for_each_item(w.substr(2), t.col + 2, [&](std::string_view item, std::uint32_t c) {
        if (!valid_server(item)) {
          sink.error(line, c, "invalid server '" + std::string(item) +
                                  "' (name or address, optional :port, IPv6 as [addr]:port)");
        } else {
          r.servers.emplace_back(item);
        }
      });
    } else if (starts_with(w, "*=")) {
      if (duplicate(seen.seen_users, t, "*=", line, sink)) continue;
      detail::parse_user_list(w.substr(2), t.col + 2, line, opts, cache, sink, r.users);
    } else if (starts_with(w, "cmd=")) {
      if (duplicate(seen.seen_cmd, t, "cmd=", line, sink)) continue;
      r.commands = parse_commands(w.substr(4), t.col + 4, line, sink);
      r.commands_given = true;
    } else {
      sink.error(line, t.col, "'" + std::string(w.substr(0, w.find('=') + 1)) +
                                  "' belongs in sockd.conf, not socks.conf");
    }
  }
  if (i >= tk.size() || detail::is_port_op(tk[i].text)) {
    sink.error(line, i >= tk.size() ? lt.end_col : tk[i].col, "missing destination address");
    return;
  }
  i += address_at(tk, i, line, sink, r.dst);
  i = port_at(tk, i, line, lt, sink, r.port);
  trailing_words(tk, i, line, sink);
  set_shell(lt, r.shell_cmd);
  cs.rules.push_back(std::move(r));
}

}  // namespace

std::optional<RuleSet> parse_sockd_conf(std::string_view text, const std::string& file,
                                        platform::Diagnostics& diags, const ParseOptions& opts) {
  ErrorSink sink(diags, file);
  detail::UserFileCache cache;
  RuleSet rs;
  rs.file = file;
  // Growing a vector of 100,000 rules by doubling moves them all ~17 times.
  rs.rules.reserve(std::min<std::size_t>(
      static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1, 262144));
  detail::for_each_line(text, sink, [&](std::string_view line, std::uint32_t number) {
    parse_rule_line(line, number, opts, cache, sink, rs);
  });
  if (sink.any()) return std::nullopt;
  return rs;
}

std::optional<RouteTable> parse_sockd_route(std::string_view text, const std::string& file,
                                            platform::Diagnostics& diags) {
  ErrorSink sink(diags, file);
  RouteTable rt;
  rt.file = file;
  detail::for_each_line(text, sink, [&](std::string_view line, std::uint32_t number) {
    parse_route_line(line, number, sink, rt);
  });
  if (sink.any()) return std::nullopt;
  return rt;
}

std::optional<ClientRuleSet> parse_socks_conf(std::string_view text, const std::string& file,
                                              platform::Diagnostics& diags,
                                              const ParseOptions& opts) {
  ErrorSink sink(diags, file);
  detail::UserFileCache cache;
  ClientRuleSet cs;
  cs.file = file;
  detail::for_each_line(text, sink, [&](std::string_view line, std::uint32_t number) {
    parse_client_line(line, number, opts, cache, sink, cs);
  });
  if (sink.any()) return std::nullopt;
  return cs;
}

std::optional<RuleSet> load_sockd_conf(const std::string& path, platform::Diagnostics& diags,
                                       const ParseOptions& opts) {
  const auto text = detail::read_config_file(path, diags);
  if (!text) return std::nullopt;
  return parse_sockd_conf(*text, path, diags, opts);
}

std::optional<RouteTable> load_sockd_route(const std::string& path, platform::Diagnostics& diags) {
  const auto text = detail::read_config_file(path, diags);
  if (!text) return std::nullopt;
  return parse_sockd_route(*text, path, diags);
}

std::optional<ClientRuleSet> load_socks_conf(const std::string& path, platform::Diagnostics& diags,
                                             const ParseOptions& opts) {
  const auto text = detail::read_config_file(path, diags);
  if (!text) return std::nullopt;
  return parse_socks_conf(*text, path, diags, opts);
}

}  // namespace diode::sockd

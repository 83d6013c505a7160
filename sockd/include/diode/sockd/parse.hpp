#pragma once
// Parsers for sockd.conf, sockd.route and socks.conf: the NEC SOCKS 4.2
// grammar (sockd.conf(5), sockd.route(5), socks.conf(5)) plus Diode's
// extensions, documented in docs/sockd.conf.md, docs/sockd.route.md and
// docs/socks.conf.md. Unlike NEC, a malformed line is an error, never skipped.

#include <optional>
#include <string>
#include <string_view>

#include "diode/platform/diagnostics.hpp"
#include "diode/sockd/rules.hpp"

namespace diode::sockd {

struct ParseOptions {
  bool read_user_files = true;  // read `*=/file` lists at parse time (fuzzers turn this off)
};

/// Parses a sockd.conf text; every error goes to `diags` as `file:line:col`.
/// Returns nullopt iff this call reported an error.
std::optional<RuleSet> parse_sockd_conf(std::string_view text, const std::string& file,
                                        platform::Diagnostics& diags, const ParseOptions& opts = {});

/// Parses a sockd.route text (`egress dst [mask]` lines).
std::optional<RouteTable> parse_sockd_route(std::string_view text, const std::string& file,
                                            platform::Diagnostics& diags);

/// Parses a client socks.conf text (`deny|direct|sockd ...` lines).
std::optional<ClientRuleSet> parse_socks_conf(std::string_view text, const std::string& file,
                                              platform::Diagnostics& diags,
                                              const ParseOptions& opts = {});

/// load_*: read the file first (missing, unreadable, a directory or over
/// 64 MiB is one clear error), then parse it as above.
std::optional<RuleSet> load_sockd_conf(const std::string& path, platform::Diagnostics& diags,
                                       const ParseOptions& opts = {});
std::optional<RouteTable> load_sockd_route(const std::string& path, platform::Diagnostics& diags);
std::optional<ClientRuleSet> load_socks_conf(const std::string& path,
                                             platform::Diagnostics& diags,
                                             const ParseOptions& opts = {});

/// Parses one address field as the rule files write it (used by tools for
/// command-line input too): `a.b.c.d m.m.m.m`, `a.b.c.d/len`, `2001:db8::1`,
/// `2001:db8::/32`, `host.example.test [mask]` or `.example.test [mask]`
/// (one or two blank-separated words). On failure returns nullopt and, if
/// `error` is given, stores a message there.
std::optional<AddressMatch> parse_address_field(std::string_view text,
                                                std::string* error = nullptr);

/// Resolves a port operand as the files write it: a number below 65536 or a
/// TCP service name (getservbyname, cached per thread).
std::optional<std::uint16_t> parse_port_operand(std::string_view text);

/// Reads a `*=` user file: names separated by blanks, tabs, commas or
/// newlines, `#` comments. Returns nullopt (and sets `error`) if unreadable.
std::optional<std::vector<std::string>> read_user_file(const std::string& path,
                                                       std::string* error = nullptr);

}  // namespace diode::sockd

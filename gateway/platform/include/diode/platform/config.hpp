#pragma once
// The gateway configuration model: gateway.toml (TOML, read with toml++)
// turned into validated, typed structs. Every setting is described once, in
// one table (key, type, default, doc) that drives parsing, the defaults shown
// by `--dump-defaults` and the check of docs/configuration.md. Parsing is
// all-or-nothing: any error (unknown key, wrong type, bad value, cross-field
// mistake) is collected into Diagnostics as `file:line:col: error: message`
// and the result is std::nullopt, so nothing is ever half-applied.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/diagnostics.hpp"

namespace diode::platform {

enum class InterfaceRole : std::uint8_t { Internal, External };

/// One [[interface]] table. Defaults are those of an internal interface;
/// an external interface always has both ports 0 after parsing.
struct InterfaceConfig {
  std::string name;
  InterfaceRole role = InterfaceRole::Internal;
  std::vector<Prefix> addresses;    // the interface's own addresses, with prefix length
  std::uint16_t socks_port = 1080;  // 0 = no relay on this interface
  std::uint16_t dns_port = 53;      // 0 = no resolver listener on this interface

  bool operator==(const InterfaceConfig&) const = default;
};

/// [gateway]: who the children run as, and how the supervisor runs them.
struct GatewaySection {
  std::string user = "diode";
  std::string group = "diode";
  std::string runtime_dir = "/run/diode";  // control sockets live here
  std::chrono::milliseconds drain_timeout{std::chrono::seconds{10}};
  unsigned restart_limit = 10;             // restarts of one child per minute
  std::chrono::milliseconds check_timeout{std::chrono::seconds{30}};  // one reload's checkers
  std::optional<Endpoint> metrics_listen;  // nullopt = no metrics endpoint

  bool operator==(const GatewaySection&) const = default;
};

/// [files]: the other configuration files. Relative paths are resolved
/// against the directory of gateway.toml by load_gateway_config.
struct FilesConfig {
  std::string sockd_conf = "/etc/diode/sockd.conf";    // "" = sockd's built-in policy
  std::string sockd_route = "/etc/diode/sockd.route";  // "" = kernel routing decides egress
  std::string users = "/etc/diode/users";              // "" = no username/password users
  std::string root_hints = "/usr/share/dns/root.hints";
  std::string trust_anchor = "/usr/share/dns/root.key";  // DNSSEC anchors (resolver.dnssec)
  // RFC 5011 state of the anchors, kept by the resolver; "" = no automated updates
  std::string trust_anchor_state = "/var/lib/diode/root.key.state";

  bool operator==(const FilesConfig&) const = default;
};

enum class IdentdMode : std::uint8_t { Off, Lenient, Strict };
/// SOCKS5 authentication methods the relay may offer (RFC 1928 section 3).
enum class SocksMethod : std::uint8_t { None, UserPass };
/// How the relay does its session I/O: io_uring where the kernel allows it
/// (auto), io_uring or nothing (uring), or an epoll loop (epoll).
enum class IoPath : std::uint8_t { Auto, Uring, Epoll };

/// [sockd]: the SOCKS relay's limits and behaviour.
struct SockdSettings {
  unsigned threads = 0;  // 0 = one per core
  IoPath io = IoPath::Auto;
  IdentdMode identd = IdentdMode::Off;
  std::chrono::milliseconds identd_timeout{std::chrono::seconds{15}};
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds{30}};
  std::chrono::milliseconds connect_timeout{std::chrono::minutes{2}};
  std::chrono::milliseconds idle_timeout{std::chrono::hours{2}};
  std::uint32_t max_sessions = 10000;
  std::uint32_t max_sessions_per_client = 512;
  std::vector<SocksMethod> methods{SocksMethod::UserPass, SocksMethod::None};
  std::optional<Endpoint> nameserver;  // nullopt = the gateway's own resolver
  std::chrono::milliseconds auth_cache_ttl{std::chrono::minutes{5}};
  unsigned auth_max_pending = 64;  // password checks queued or running at once
  unsigned hook_max_running = 8;
  std::chrono::milliseconds hook_timeout{std::chrono::seconds{30}};
  bool protect_internal = true;

  bool operator==(const SockdSettings&) const = default;
};

/// [resolver]: the caching recursive resolver.
struct ResolverSettings {
  unsigned threads = 1;                            // 0 = one per core
  std::vector<Prefix> allow;                       // empty = internal networks plus loopback
  bool allow_open = false;                         // an allow prefix of length 0 is meant
  std::uint64_t cache_size = 64ULL * 1024 * 1024;  // bytes
  std::uint16_t edns_buffer_size = 1232;
  bool qname_minimisation = true;
  bool prefetch = true;
  bool serve_stale = true;
  std::chrono::milliseconds stale_answer_ttl{std::chrono::seconds{30}};
  std::chrono::milliseconds max_stale{std::chrono::hours{24}};
  std::chrono::milliseconds min_ttl{0};
  std::chrono::milliseconds max_ttl{std::chrono::hours{24}};
  std::chrono::milliseconds max_negative_ttl{std::chrono::hours{1}};
  std::chrono::milliseconds upstream_timeout{1500};
  unsigned max_upstream_queries = 64;
  unsigned max_referral_depth = 16;
  unsigned max_cname_chain = 12;
  unsigned max_ns_names_resolved = 6;
  std::chrono::milliseconds tcp_idle_timeout{std::chrono::seconds{10}};
  bool query_documentation_addresses = false;
  bool builtin_local_zones = true;
  std::vector<IpAddress> outgoing_address;  // empty = external addresses or the kernel's choice
  std::string cache_file = "/var/lib/diode/resolver.cache";  // "" = the cache is not kept across restarts
  bool dnssec = true;                          // validate from files.trust_anchor
  bool aggressive_nsec = true;                 // RFC 8198: deny from validated NSEC/NSEC3
  std::vector<std::string> insecure_domains;   // negative trust anchors, as written (no final dot needed)
  std::chrono::milliseconds trust_anchor_hold_down{std::chrono::hours{30 * 24}};  // RFC 5011 §2.4

  bool operator==(const ResolverSettings&) const = default;
};

enum class LogFormat : std::uint8_t { Text, Json };
enum class LogTarget : std::uint8_t { Stderr, Syslog };
enum class LogLevel : std::uint8_t { Debug, Info, Notice, Warning, Error };

/// [log]
struct LogSettings {
  LogFormat format = LogFormat::Text;
  LogTarget target = LogTarget::Stderr;
  LogLevel level = LogLevel::Info;

  bool operator==(const LogSettings&) const = default;
};

/// The whole of gateway.toml. Every field has its documented default; a
/// GatewayConfig returned by the parser has also passed every check.
struct GatewayConfig {
  GatewaySection gateway;
  std::vector<InterfaceConfig> interfaces;
  FilesConfig files;
  SockdSettings sockd;
  ResolverSettings resolver;
  LogSettings log;

  bool operator==(const GatewayConfig&) const = default;
};

/// Parses and validates gateway.toml text; `file_name` is used in
/// diagnostics only. Returns nullopt if any error was added to `diags`.
/// Paths in [files] are returned as written.
std::optional<GatewayConfig> parse_gateway_config(std::string_view text,
                                                  const std::string& file_name, Diagnostics& diags);

/// Reads `path` and parses it; relative paths in [files] are made relative
/// to the directory of `path`. An unreadable file is an error in `diags`.
std::optional<GatewayConfig> load_gateway_config(const std::string& path, Diagnostics& diags);

/// The built-in gateway.toml: one internal interface "lo" (127.0.0.1/8,
/// SOCKS on 1080, DNS on 5353), no external interface, sockd's built-in
/// policy. It parses cleanly.
std::string_view embedded_default_config();

/// One setting as documented: `key` is "section.name" ("interface.name" for
/// keys of [[interface]] tables); `default_value` is TOML text ("" for a
/// required key); `range` lists the valid values ("" if any value of the
/// type is accepted).
struct ConfigKey {
  std::string key;
  std::string type;
  std::string default_value;
  std::string doc;
  std::string range;
};

/// Every key, described once, in file order; defaults come from the
/// structs' initialisers above, so they cannot drift from the parser.
const std::vector<ConfigKey>& config_keys();

/// The effective configuration as gateway.toml text (every key, defaults
/// included); parsing it again gives an equal GatewayConfig.
std::string format_gateway_config(const GatewayConfig& cfg);

/// Every address of every interface, internal and external, in file order.
std::vector<IpAddress> gateway_addresses(const GatewayConfig& cfg);

/// The networks of the internal interfaces (host bits cleared), deduplicated.
std::vector<Prefix> internal_networks(const GatewayConfig& cfg);

/// The external interface, or nullptr if there is none.
const InterfaceConfig* external_interface(const GatewayConfig& cfg);

/// Where sockd sends its DNS queries: sockd.nameserver if set, else the
/// first address of the first internal interface with a dns_port.
std::optional<Endpoint> effective_nameserver(const GatewayConfig& cfg);

/// Who may query the resolver: resolver.allow if set, else the internal
/// networks plus 127.0.0.0/8 and ::1/128.
std::vector<Prefix> effective_resolver_allow(const GatewayConfig& cfg);

std::string_view to_string(InterfaceRole r);
std::string_view to_string(IdentdMode m);
std::string_view to_string(IoPath p);
std::string_view to_string(SocksMethod m);
std::string_view to_string(LogFormat f);
std::string_view to_string(LogTarget t);
std::string_view to_string(LogLevel l);

/// A whole number and one unit: "500ms", "30s", "2m", "2h", "1d". nullopt
/// on anything else (a unitless "30" too) or on overflow. (In gateway.toml an
/// integer value, not a string, is a number of seconds.)
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
/// Shortest exact text for a duration, e.g. "1500ms", "2h".
std::string format_duration(std::chrono::milliseconds d);
/// A whole number and one binary unit: "512KiB", "64MiB", "1GiB", "1TiB";
/// nullopt otherwise or on overflow. (In gateway.toml an integer value is
/// a number of bytes.)
std::optional<std::uint64_t> parse_size(std::string_view text);
/// Shortest exact text for a size, e.g. "64MiB"; a size that is not a
/// whole number of KiB is written as its decimal number of bytes.
std::string format_size(std::uint64_t bytes);

}  // namespace diode::platform

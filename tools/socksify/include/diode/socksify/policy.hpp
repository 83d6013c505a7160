#pragma once
// diode-socksify's decisions, with no I/O: the settings read from the
// environment and socks.conf (socks.conf(5)), which route a destination
// takes (direct, through a SOCKS server, or refused), and the fake-address
// map that keeps proxied names names. The preloaded library
// (preload.cpp) and the wrapper (main.cpp) share them; docs/socksify.md
// describes every variable and behaviour.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/diagnostics.hpp"
#include "diode/sockd/rules.hpp"

namespace diode::socksify {

using platform::IpAddress;

inline constexpr const char* kDefaultConf = "/etc/diode/socks.conf";
inline constexpr std::uint16_t kDefaultPort = 1080;

/// A SOCKS server as `@=` or SOCKS_SERVER name it: a host name or address
/// and a port.
struct Server {
  std::string host;
  std::uint16_t port = kDefaultPort;
  std::string to_string() const;
};

/// `name`, `name:port`, `a.b.c.d[:port]`, `2001:db8::1` or
/// `[2001:db8::1]:port` (the grammar of socks.conf's `@=` items).
std::optional<Server> parse_server(std::string_view text);

/// Everything the library acts on; immutable once loaded.
struct Settings {
  std::string conf_path;
  bool conf_present = false;                      // false: no file at conf_path
  sockd::ClientRuleSet rules;                     // empty when the file is absent
  std::vector<std::vector<Server>> line_servers;  // each line's `@=`, parsed (same index)
  std::vector<Server> default_servers;            // SOCKS_SERVER (comma-separated)
  std::optional<IpAddress> nameserver;            // SOCKS_NS
  std::string user;                               // SOCKS_USER (RFC 1929)
  std::string password;  // SOCKS_PASSWORD or the first line of SOCKS_PASSWORD_FILE
  bool debug = false;    // SOCKS_DEBUG=1
};

using GetEnv = std::function<const char*(const char*)>;

/// Reads SOCKS_CONF, SOCKS_SERVER, SOCKS_NS, SOCKS_USER, SOCKS_PASSWORD,
/// SOCKS_PASSWORD_FILE and SOCKS_DEBUG through `getenv`, then socks.conf.
/// Every problem goes to `diags` as `file:line:col: error: ...` (the
/// variables as `$NAME: error: ...`); nullopt iff there was an error.
std::optional<Settings> load_settings(const GetEnv& getenv, platform::Diagnostics& diags);

enum class Route : std::uint8_t { Direct, Sockd, Deny };

std::string_view to_string(Route r);

/// Where one destination goes, and by which line.
struct Decision {
  Route route = Route::Direct;
  const sockd::ClientRule* rule = nullptr;  // null: no line matched (or no file)
  /// Sockd: the servers to try in order (the line's `@=`, else SOCKS_SERVER).
  const std::vector<Server>* servers = nullptr;
  /// `file:line`, or a short reason when no line decided.
  std::string where() const;
};

/// The route for an address destination: the first socks.conf line whose
/// user list, destination and port match, among the lines that apply to
/// `cmd`. No matching line: direct. No
/// socks.conf but SOCKS_SERVER set: every destination goes through it.
Decision decide_address(const Settings& s, const IpAddress& addr, std::uint16_t port,
                        std::string_view local_user, sockd::RuleCommand cmd = sockd::RuleCommand::Connect);

/// The route for a name that the program has not resolved (and that must not
/// be resolved here): lines written for names (`host`, `.zone`) match by
/// name, and lines for every address (`0.0.0.0/0`, `::/0`, `0.0.0.0
/// 0.0.0.0`) match any name; lines for narrower networks cannot be decided
/// without a lookup and are passed over. `port` nullopt: the port tests
/// are passed over too (the lookup gave no service).
Decision decide_name(const Settings& s, std::string_view name, std::optional<std::uint16_t> port,
                     std::string_view local_user, sockd::RuleCommand cmd = sockd::RuleCommand::Connect);

/// Whether a socks.conf line applies to a request of `cmd`: its `cmd=` list
/// when given, else every command, except that a sockd line carries UDP only
/// when its cmd= lists udp.
bool line_applies(const sockd::ClientRule& r, sockd::RuleCommand cmd);

/// The per-process map from proxied names to fake IPv4 addresses in
/// 240.0.0.0/4 (reserved, never routed: the address never goes on the wire,
/// only the name does, in the SOCKS5 request). Thread-safe: intern() takes a
/// mutex; lookup() takes none and never allocates, so connect() can read it
/// anywhere.
class FakeNames {
 public:
  FakeNames() = default;
  /// Frees the names. The library never destroys its map: a name handed out
  /// must stay readable for the process's life.
  ~FakeNames();
  FakeNames(const FakeNames&) = delete;
  FakeNames& operator=(const FakeNames&) = delete;

  static constexpr std::uint32_t kBase = 0xF0000000u;  // 240.0.0.0
  static constexpr std::uint32_t kCapacity = 1u << 16;

  /// The fake address (host order) for `name` (lower-cased), the same one
  /// each time; nullopt when the map is full.
  std::optional<std::uint32_t> intern(std::string_view name);
  /// The name behind a fake address, or null.
  const char* lookup(std::uint32_t v4_host_order) const;
  static bool is_fake(std::uint32_t v4_host_order) { return (v4_host_order >> 28) == 0xF; }

  /// For fork(): held across it so the child never inherits a held lock.
  void lock() { mutex_.lock(); }
  void unlock() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::uint32_t> index_;
  std::atomic<const char*> names_[kCapacity] = {};
  std::uint32_t used_ = 0;
};

/// The errno a socksified connect() reports for a SOCKS5 REP code.
int errno_for_reply(std::uint8_t rep);

}  // namespace diode::socksify

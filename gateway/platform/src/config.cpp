// gateway.toml → GatewayConfig. One schema table per section describes each
// key once (name, type, range, doc, how to read it, how to print it); the
// parser, config_keys() and format_gateway_config() are all driven by it, and
// the defaults are the structs' initialisers, so none of them can disagree.
#include "diode/platform/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>

namespace diode::platform {
namespace {

using std::chrono::milliseconds;

// Collects diagnostics of one parse with positions in `file`.
struct Ctx {
  const std::string& file;
  Diagnostics diags;

  SourcePos pos(const toml::source_region& r) const { return {file, r.begin.line, r.begin.column}; }
  void error(const toml::source_region& r, std::string message) {
    diags.error(pos(r), std::move(message), "config");
  }
  void error_with(const toml::source_region& r, std::string message,
                  const toml::source_region& related) {
    Diagnostic d{pos(r), Severity::Error, "config", std::move(message), {pos(related)}};
    diags.add(std::move(d));
  }
};

std::string describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// A TOML basic string, escaped so any byte sequence round-trips.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// A key as written, with control characters escaped: quoted TOML keys may
// hold any of them, and a diagnostic must stay one line.
std::string printable(std::string_view s) {
  const std::string q = quote(s);
  return q.substr(1, q.size() - 2);
}

// toml++'s own message, with control characters escaped: it quotes the
// offending input, which may be a newline, and a diagnostic is one line.
std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

template <class T, class F>
std::string join_array(const std::vector<T>& items, F&& show_one) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ", ";
    out += show_one(items[i]);
  }
  out += ']';
  return out;
}

// One key of one section: how to read it into Owner and how to print it.
template <class Owner>
struct KeyDef {
  std::string_view name;
  std::string type;
  std::string range;
  std::string doc;
  bool required = false;
  std::function<void(const toml::node&, const std::string& key, Owner&, Ctx&)> apply;
  std::function<std::string(const Owner&)> show;
};

template <class Owner>
KeyDef<Owner> boolean_key(std::string_view name, bool Owner::*field, std::string doc) {
  return {name,
          "boolean",
          "true, false",
          std::move(doc),
          false,
          [field](const toml::node& n, const std::string& key, Owner& o, Ctx& ctx) {
            if (const auto* v = n.as_boolean()) {
              o.*field = v->get();
            } else {
              ctx.error(n.source(), "'" + key + "' expects a boolean, got " + describe(n));
            }
          },
          [field](const Owner& o) { return std::string{o.*field ? "true" : "false"}; }};
}

template <class Owner, class Int>
KeyDef<Owner> integer_key(std::string_view name, Int Owner::*field, std::int64_t lo,
                          std::int64_t hi, std::string doc) {
  return {name,
          "integer",
          std::to_string(lo) + ".." + std::to_string(hi),
          std::move(doc),
          false,
          [field, lo, hi](const toml::node& n, const std::string& key, Owner& o, Ctx& ctx) {
            const auto* v = n.as_integer();
            if (v == nullptr) {
              ctx.error(n.source(), "'" + key + "' expects an integer, got " + describe(n));
              return;
            }
            const std::int64_t x = v->get();
            if (x < lo || x > hi) {
              ctx.error(n.source(), "'" + key + "' must be in " + std::to_string(lo) + ".." +
                                        std::to_string(hi) + ", got " + std::to_string(x));
              return;
            }
            o.*field = static_cast<Int>(x);
          },
          [field](const Owner& o) { return std::to_string(o.*field); }};
}

template <class Owner>
KeyDef<Owner> duration_key(std::string_view name, milliseconds Owner::*field, milliseconds lo,
                           milliseconds hi, std::string doc) {
  return {name,
          "duration",
          format_duration(lo) + ".." + format_duration(hi),
          std::move(doc),
          false,
          [field, lo, hi](const toml::node& n, const std::string& key, Owner& o, Ctx& ctx) {
            std::optional<milliseconds> d;
            std::string shown;
            if (const auto* i = n.as_integer()) {
              // An integer is seconds. Values beyond 2^40 s (far above any
              // range) become "too large" so that the product cannot overflow.
              shown = std::to_string(i->get());
              if (i->get() > std::int64_t{1} << 40) {
                d = milliseconds::max();
              } else if (i->get() >= 0) {
                d = milliseconds{i->get() * 1000};
              }
            } else if (const auto* s = n.as_string()) {
              shown = quote(s->get());
              d = parse_duration(s->get());
            } else {
              ctx.error(n.source(), "'" + key +
                                        "' expects a duration (a string such as \"30s\" or an "
                                        "integer of seconds), got " +
                                        describe(n));
              return;
            }
            if (!d) {
              ctx.error(n.source(), "'" + key + "': " + shown +
                                        " is not a duration (a whole number with one of the "
                                        "units ms, s, m, h, d, or an integer of seconds)");
              return;
            }
            if (*d < lo || *d > hi) {
              ctx.error(n.source(), "'" + key + "' must be in " + format_duration(lo) + ".." +
                                        format_duration(hi) + ", got " + shown);
              return;
            }
            o.*field = *d;
          },
          [field](const Owner& o) { return quote(format_duration(o.*field)); }};
}

template <class Owner>
KeyDef<Owner> size_key(std::string_view name, std::uint64_t Owner::*field, std::uint64_t lo,
                       std::uint64_t hi, std::string doc) {
  return {name,
          "size",
          format_size(lo) + ".." + format_size(hi),
          std::move(doc),
          false,
          [field, lo, hi](const toml::node& n, const std::string& key, Owner& o, Ctx& ctx) {
            std::optional<std::uint64_t> v;
            std::string shown;
            if (const auto* i = n.as_integer()) {
              shown = std::to_string(i->get());
              if (i->get() >= 0) v = static_cast<std::uint64_t>(i->get());
            } else if (const auto* s = n.as_string()) {
              shown = quote(s->get());
              v = parse_size(s->get());
            } else {
              ctx.error(n.source(), "'" + key +
                                        "' expects a size (an integer of bytes or a string such "
                                        "as \"64MiB\"), got " +
                                        describe(n));
              return;
            }
            if (!v) {
              ctx.error(n.source(), "'" + key + "': " + shown +
                                        " is not a size (an integer of bytes, or a whole "
                                        "number with one of the units KiB, MiB, GiB, TiB)");
              return;
            }
            if (*v < lo || *v > hi) {
              ctx.error(n.source(), "'" + key + "' must be in " + format_size(lo) + ".." +
                                        format_size(hi) + ", got " + shown);
              return;
            }
            o.*field = *v;
          },
          [field](const Owner& o) {
            const std::string s = format_size(o.*field);
            return s.back() == 'B' ? quote(s) : s;
          }};
}

// A string checked by `check`, which returns an error message or "".
using StringCheck = std::string (*)(std::string_view);

template <class Owner>
KeyDef<Owner> string_key(std::string_view name, std::string Owner::*field, StringCheck check,
                         std::string range, std::string doc) {
  return {name,
          "string",
          std::move(range),
          std::move(doc),
          false,
          [field, check](const toml::node& n, const std::string& key, Owner& o, Ctx& ctx) {
            const auto* s = n.as_string();
            if (s == nullptr) {
              ctx.error(n.source(), "'" + key + "' expects a string, got " + describe(n));
              return;
            }
            if (std::string problem = check(s->get()); !problem.empty()) {
              ctx.error(n.source(), "'" + key + "': " + problem);
              return;
            }
            o.*field = s->get();
          },
          [field](const Owner& o) { return quote(o.*field); }};
}

template <class E, std::size_t N>
std::string choices_text(const std::array<E, N>& values, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i != 0) out += sep;
    out += to_string(values[i]);
  }
  return out;
}

template <class E, std::size_t N>
std::optional<E> find_choice(const std::array<E, N>& values, std::string_view text) {
  for (const E v : values) {
    if (to_string(v) == text) return v;
  }
  return std::nullopt;
}

template <class Owner, class E, std::size_t N>
KeyDef<Owner> enum_key(std::string_view name, E Owner::*field, std::array<E, N> values,
                       std::string doc) {
  return {name,
          "string",
          choices_text(values, ", "),
          std::move(doc),
          false,
          [field, values](const toml::node& n, const std::string& key, Owner& o, Ctx& ctx) {
            const auto* s = n.as_string();
            if (s == nullptr) {
              ctx.error(n.source(), "'" + key + "' expects a string, got " + describe(n));
              return;
            }
            if (auto v = find_choice(values, s->get())) {
              o.*field = *v;
            } else {
              ctx.error(n.source(), "'" + key + "' must be one of " + choices_text(values, ", ") +
                                        "; got " + quote(s->get()));
            }
          },
          [field](const Owner& o) { return quote(to_string(o.*field)); }};
}

// An array whose elements are read by `read_one` (which reports its own
// errors and returns nullopt on them).
template <class Owner, class T>
KeyDef<Owner> array_key(
    std::string_view name, std::vector<T> Owner::*field, std::string type, std::string range,
    std::function<std::optional<T>(const toml::node&, const std::string&, Ctx&)> read_one,
    std::function<std::string(const T&)> show_one, std::string doc) {
  return {name,
          std::move(type),
          std::move(range),
          std::move(doc),
          false,
          [field, read_one](const toml::node& n, const std::string& key, Owner& o, Ctx& ctx) {
            const auto* arr = n.as_array();
            if (arr == nullptr) {
              ctx.error(n.source(), "'" + key + "' expects an array, got " + describe(n));
              return;
            }
            std::vector<T> out;
            bool ok = true;
            for (const auto& e : *arr) {
              if (auto v = read_one(e, key, ctx)) {
                out.push_back(std::move(*v));
              } else {
                ok = false;
              }
            }
            if (ok) o.*field = std::move(out);
          },
          [field, show_one](const Owner& o) { return join_array(o.*field, show_one); }};
}

const std::string* element_string(const toml::node& e, const std::string& key, Ctx& ctx) {
  const auto* s = e.as_string();
  if (s == nullptr) {
    ctx.error(e.source(), "'" + key + "' expects strings, got " + describe(e));
    return nullptr;
  }
  return &s->get();
}

// --- checks of single values ---------------------------------------------

// Linux's dev_valid_name(): 1–15 bytes, not "." or "..", no '/', ':' or blanks.
std::string check_interface_name(std::string_view s) {
  if (s.empty() || s.size() > 15) return "an interface name has 1 to 15 characters";
  if (s == "." || s == "..") return "\"" + std::string{s} + "\" is not an interface name";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == ':' || u <= 0x20 || u == 0x7f) {
      return "an interface name has no '/', ':', blanks or control characters";
    }
  }
  return {};
}

// Names that useradd would accept; the supervisor looks them up at start.
std::string check_account_name(std::string_view s) {
  if (s.empty() || s.size() > 32) return "a user or group name has 1 to 32 characters";
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return "a user or group name has only letters, digits, '_', '-' and '.'";
  }
  if (s.front() == '-') return "a user or group name does not start with '-'";
  return {};
}

// A domain name in presentation form: labels of 1 to 63 letters, digits,
// hyphens or underscores, 253 octets at most, an optional final dot; "."
// is the root.
bool is_domain_name(std::string_view s) {
  if (s == ".") return true;
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty() || s.size() > 253) return false;
  std::size_t label = 0;
  for (const char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label != 0;
}

std::string check_path(std::string_view s) {
  if (s.find('\0') != std::string_view::npos) return "a path has no NUL character";
  return {};
}

std::string check_required_path(std::string_view s) {
  if (s.empty()) return "a file name is required here";
  return check_path(s);
}

std::optional<Prefix> read_prefix(const toml::node& e, const std::string& key, Ctx& ctx,
                                  bool require_length) {
  const std::string* s = element_string(e, key, ctx);
  if (s == nullptr) return std::nullopt;
  auto p = Prefix::parse(*s);
  if (!p) {
    ctx.error(e.source(), "'" + key + "': " + quote(*s) +
                              " is not an address with a prefix length (e.g. \"192.0.2.1/24\")");
    return std::nullopt;
  }
  if (require_length && s->find('/') == std::string::npos) {
    ctx.error(e.source(), "'" + key + "': " + quote(*s) + " needs its prefix length (e.g. \"" + *s +
                              (p->addr.family == Family::V4 ? "/24" : "/64") + "\")");
    return std::nullopt;
  }
  return p;
}

std::optional<Endpoint> parse_nameserver(std::string_view s) {
  if (auto a = IpAddress::parse(s)) return Endpoint{*a, 53};
  return Endpoint::parse(s);
}

// --- the schema ------------------------------------------------------------

struct Schema {
  std::vector<KeyDef<GatewaySection>> gateway;
  std::vector<KeyDef<InterfaceConfig>> interface;
  std::vector<KeyDef<FilesConfig>> files;
  std::vector<KeyDef<SockdSettings>> sockd;
  std::vector<KeyDef<ResolverSettings>> resolver;
  std::vector<KeyDef<LogSettings>> log;
};

constexpr milliseconds kSecond{1000};
constexpr milliseconds kMinute{60 * kSecond};
constexpr milliseconds kHour{60 * kMinute};
constexpr milliseconds kDay{24 * kHour};
constexpr std::uint64_t kMiB = 1ULL << 20;
constexpr std::uint64_t kGiB = 1ULL << 30;

Schema make_schema() {
  Schema s;
  using G = GatewaySection;
  s.gateway = {
      string_key<G>("user", &G::user, check_account_name, "a user name",
                    "Unprivileged user the relay and the resolver run as."),
      string_key<G>("group", &G::group, check_account_name, "a group name",
                    "Group the relay and the resolver run as."),
      string_key<G>("runtime_dir", &G::runtime_dir, check_required_path, "a path",
                    "Where diode-gateway keeps its control socket (`control`, root only) and "
                    "one control socket per child."),
      duration_key<G>("drain_timeout", &G::drain_timeout, milliseconds{0}, kHour,
                      "On SIGTERM, how long running sessions may go on before they are closed."),
      integer_key<G>("restart_limit", &G::restart_limit, 1, 1000,
                     "Restarts of one child within a minute; beyond it the next restart waits "
                     "until the oldest is a minute old."),
      duration_key<G>("check_timeout", &G::check_timeout, milliseconds{100}, kHour,
                      "How long the checkers of a reload (`sockd --check`, `diode-resolver "
                      "--check-config`) may run; past it they are killed and the reload fails."),
      {"metrics_listen", "string", "\"\", ADDR:PORT or [V6]:PORT",
       "Where diode-gateway serves Prometheus metrics over HTTP (`GET /metrics`); \"\" = "
       "nowhere. Use a loopback address unless a firewall guards the port.",
       false,
       [](const toml::node& n, const std::string& key, G& o, Ctx& ctx) {
         const auto* str = n.as_string();
         if (str == nullptr) {
           ctx.error(n.source(), "'" + key + "' expects a string, got " + describe(n));
           return;
         }
         if (str->get().empty()) {
           o.metrics_listen.reset();
           return;
         }
         auto ep = Endpoint::parse(str->get());
         if (!ep || ep->port == 0) {
           ctx.error(n.source(), "'" + key + "': " + quote(str->get()) +
                                     " is not ADDR:PORT or [V6]:PORT with a port above 0");
           return;
         }
         o.metrics_listen = *ep;
       },
       [](const G& o) {
         return o.metrics_listen ? quote(o.metrics_listen->to_string()) : std::string{"\"\""};
       }},
  };

  using I = InterfaceConfig;
  auto name = string_key<I>("name", &I::name, check_interface_name, "1 to 15 characters",
                            "Required. The kernel's name of the interface (`ip link`).");
  name.required = true;
  auto role =
      enum_key<I>("role", &I::role, std::array{InterfaceRole::Internal, InterfaceRole::External},
                  "Required. `internal` serves clients; `external` faces the internet "
                  "(at most one).");
  role.required = true;
  s.interface = {
      std::move(name),
      std::move(role),
      array_key<I, Prefix>(
          "addresses", &I::addresses, "array of strings", "addresses with prefix length",
          [](const toml::node& e, const std::string& key, Ctx& ctx) -> std::optional<Prefix> {
            auto p = read_prefix(e, key, ctx, true);
            if (p && p->addr.is_unspecified()) {
              ctx.error(e.source(), "'" + key +
                                        "': the unspecified address is not an "
                                        "interface address");
              return std::nullopt;
            }
            return p;
          },
          [](const Prefix& p) { return quote(p.to_string()); },
          "The interface's own addresses, IPv4 and IPv6, each with its prefix length; the "
          "prefix also defines the interface's network. An internal interface needs at least "
          "one."),
      integer_key<I>("socks_port", &I::socks_port, 0, 65535,
                     "Internal interfaces only: the SOCKS relay's TCP port on each of the "
                     "interface's addresses; 0 = no relay here."),
      integer_key<I>("dns_port", &I::dns_port, 0, 65535,
                     "Internal interfaces only: the resolver's UDP and TCP port on each of the "
                     "interface's addresses; 0 = no resolver listener here."),
  };

  using F = FilesConfig;
  s.files = {
      string_key<F>("sockd_conf", &F::sockd_conf, check_path, "a path or \"\"",
                    "The relay's permit/deny rules; \"\" = the relay's built-in policy."),
      string_key<F>("sockd_route", &F::sockd_route, check_path, "a path or \"\"",
                    "Which outgoing interface or address serves which destination; \"\" = none: "
                    "egress follows the kernel's routing."),
      string_key<F>("users", &F::users, check_path, "a path or \"\"",
                    "Username/password users for SOCKS5; \"\" = none."),
      string_key<F>("root_hints", &F::root_hints, check_required_path, "a path",
                    "The resolver's root hints, in the classic named.root format."),
      string_key<F>("trust_anchor", &F::trust_anchor, check_required_path, "a path",
                    "The resolver's DNSSEC trust anchors: DS and/or DNSKEY records in "
                    "presentation format, like Debian's /usr/share/dns/root.key; read only with "
                    "resolver.dnssec = true."),
      string_key<F>("trust_anchor_state", &F::trust_anchor_state, check_path, "a path or \"\"",
                    "Where the resolver keeps its trust anchors up to date (RFC 5011 automated "
                    "updates, docs/resolver.md): read at start in place of files.trust_anchor when "
                    "it is valid, rewritten when a key changes state; its directory must be "
                    "writable by gateway.user; \"\" = no automated updates."),
  };

  using S = SockdSettings;
  s.sockd = {
      integer_key<S>("threads", &S::threads, 0, 1024,
                     "Relay threads per process; 0 = one per "
                     "core."),
      enum_key<S>("io", &S::io, std::array{IoPath::Auto, IoPath::Uring, IoPath::Epoll},
                  "How sessions do their I/O: `uring` = io_uring (a ring per thread), an error "
                  "at start if the kernel refuses it; `epoll` = an epoll loop per thread; `auto` = "
                  "io_uring when the kernel allows it, else epoll. The choice is logged at start "
                  "(`event=io`). Both loops hand names, identd, passwords, BIND and UDP to the "
                  "thread's Asio path (docs/sockd.md, \"I/O paths\")."),
      enum_key<S>("identd", &S::identd,
                  std::array{IdentdMode::Off, IdentdMode::Lenient, IdentdMode::Strict},
                  "RFC 1413 ident checks for rules without `?=` (like NEC's `-i`/`-I`): "
                  "`off`; `lenient` refuses only when identd names another user than the "
                  "client claims; `strict` also refuses when identd cannot be reached."),
      duration_key<S>("identd_timeout", &S::identd_timeout, milliseconds{100}, 10 * kMinute,
                      "How long an ident query may take."),
      duration_key<S>("handshake_timeout", &S::handshake_timeout, kSecond, 10 * kMinute,
                      "From accept to a complete SOCKS request (and authentication); does not "
                      "move on traffic."),
      duration_key<S>("connect_timeout", &S::connect_timeout, kSecond, kHour,
                      "How long the outgoing connect (or a BIND's incoming one) may take."),
      duration_key<S>("idle_timeout", &S::idle_timeout, kSecond, 30 * kDay,
                      "A tunnel with no traffic either way for this long is closed."),
      integer_key<S>("max_sessions", &S::max_sessions, 1, 1'000'000,
                     "Sessions at once per relay process; more are refused."),
      integer_key<S>("max_sessions_per_client", &S::max_sessions_per_client, 1, 1'000'000,
                     "Sessions at once from one client (an IPv4 address, an IPv6 /64); at most max_sessions."),
      array_key<S, SocksMethod>(
          "methods", &S::methods, "array of strings", "none, userpass; at least one",
          [](const toml::node& e, const std::string& key, Ctx& ctx) -> std::optional<SocksMethod> {
            const std::string* str = element_string(e, key, ctx);
            if (str == nullptr) return std::nullopt;
            auto m = find_choice(std::array{SocksMethod::None, SocksMethod::UserPass}, *str);
            if (!m) {
              ctx.error(e.source(), "'" + key + "': unknown method " + quote(*str) +
                                        " (known: none, userpass)");
            }
            return m;
          },
          [](const SocksMethod& m) { return quote(to_string(m)); },
          "SOCKS5 authentication methods offered to clients (RFC 1928 section 3), in order of "
          "preference: of the methods a client offers, the first one listed here is chosen; "
          "`userpass` is RFC 1929 and needs `files.users`. Without `none`, SOCKS4 "
          "and 4a (which cannot authenticate) are refused."),
      {"nameserver", "string", "\"\", ADDR, ADDR:PORT or [V6]:PORT",
       "Where the relay resolves names (SOCKS4a, SOCKS5 domain names, sockd.conf names): \"\" = "
       "the gateway's own resolver (the first address of the first internal interface with a "
       "dns_port); else an address, with port 53 unless given.",
       false,
       [](const toml::node& n, const std::string& key, S& o, Ctx& ctx) {
         const auto* str = n.as_string();
         if (str == nullptr) {
           ctx.error(n.source(), "'" + key + "' expects a string, got " + describe(n));
           return;
         }
         if (str->get().empty()) {
           o.nameserver.reset();
           return;
         }
         auto ep = parse_nameserver(str->get());
         if (!ep || ep->port == 0 || ep->addr.is_unspecified()) {
           ctx.error(n.source(), "'" + key + "': " + quote(str->get()) +
                                     " is not ADDR, ADDR:PORT or [V6]:PORT with a port above 0");
           return;
         }
         o.nameserver = *ep;
       },
       [](const S& o) {
         if (!o.nameserver) return std::string{"\"\""};
         if (o.nameserver->port == 53) return quote(o.nameserver->addr.to_string());
         return quote(o.nameserver->to_string());
       }},
      duration_key<S>("auth_cache_ttl", &S::auth_cache_ttl, milliseconds{0}, kDay,
                      "How long a verified username/password is remembered; 0 = check every "
                      "time."),
      integer_key<S>("auth_max_pending", &S::auth_max_pending, 1, 65536,
                     "Password checks waiting for or running on the two hash threads at once; a "
                     "login beyond it fails at once (RFC 1929 failure status)."),
      integer_key<S>("hook_max_running", &S::hook_max_running, 1, 1024,
                     "sockd.conf `: shell command` hooks running at once; more wait."),
      duration_key<S>("hook_timeout", &S::hook_timeout, kSecond, kHour,
                      "A hook still running after this long is killed."),
      boolean_key<S>("protect_internal", &S::protect_internal,
                     "Loopback, link-local, multicast, broadcast, the host's own addresses "
                     "(from gateway.toml and from the kernel) and the internal networks are "
                     "unreachable through the relay unless a rule names them explicitly."),
  };

  using R = ResolverSettings;
  s.resolver = {
      integer_key<R>("threads", &R::threads, 0, 256, "Resolver threads; 0 = one per core."),
      array_key<R, Prefix>(
          "allow", &R::allow, "array of strings", "prefixes",
          [](const toml::node& e, const std::string& key, Ctx& ctx) {
            return read_prefix(e, key, ctx, false);
          },
          [](const Prefix& p) { return quote(p.to_string()); },
          "Client networks allowed to query; [] = the internal interfaces' networks plus "
          "loopback. A bare address is a single host."),
      boolean_key<R>("allow_open", &R::allow_open,
                     "Allow an `allow` prefix of length 0 (0.0.0.0/0, ::/0), which admits every "
                     "address: an open resolver, which the internet abuses for amplification."),
      size_key<R>("cache_size", &R::cache_size, kMiB, 64 * kGiB,
                  "Memory for cached records and messages."),
      integer_key<R>("edns_buffer_size", &R::edns_buffer_size, 512, 4096,
                     "EDNS(0) UDP payload size advertised and accepted (RFC 6891 section 6.2.5); "
                     "1232 avoids IP fragmentation."),
      boolean_key<R>("qname_minimisation", &R::qname_minimisation,
                     "Send each server only the labels it needs (RFC 9156)."),
      boolean_key<R>("prefetch", &R::prefetch,
                     "Refresh a popular record shortly before it expires."),
      boolean_key<R>("serve_stale", &R::serve_stale,
                     "Answer from expired records when upstream servers fail (RFC 8767)."),
      duration_key<R>("stale_answer_ttl", &R::stale_answer_ttl, kSecond, kHour,
                      "TTL of a stale answer (RFC 8767 section 4 suggests 30 s)."),
      duration_key<R>("max_stale", &R::max_stale, kSecond, 30 * kDay,
                      "How long past expiry a record may still be served stale."),
      duration_key<R>("min_ttl", &R::min_ttl, milliseconds{0}, kDay,
                      "Records are cached at least this long; at most max_ttl."),
      duration_key<R>("max_ttl", &R::max_ttl, kSecond, 30 * kDay,
                      "Records are cached at most this long."),
      duration_key<R>("max_negative_ttl", &R::max_negative_ttl, kSecond, kDay,
                      "NXDOMAIN and NODATA answers are cached at most this long (RFC 2308)."),
      duration_key<R>("upstream_timeout", &R::upstream_timeout, milliseconds{10}, 30 * kSecond,
                      "Initial timeout of one query to an authoritative server."),
      integer_key<R>("max_upstream_queries", &R::max_upstream_queries, 1, 1000,
                     "Upstream queries one client query may cause (NXNS defence)."),
      integer_key<R>("max_referral_depth", &R::max_referral_depth, 1, 64,
                     "Referrals followed for one name."),
      integer_key<R>("max_cname_chain", &R::max_cname_chain, 1, 64,
                     "CNAMEs followed for one "
                     "query."),
      integer_key<R>("max_ns_names_resolved", &R::max_ns_names_resolved, 0, 64,
                     "Glueless name server names resolved per referral."),
      duration_key<R>("tcp_idle_timeout", &R::tcp_idle_timeout, milliseconds{100}, 10 * kMinute,
                      "A client's idle DNS-over-TCP connection is closed after this long "
                      "(RFC 7766 section 6.2.3)."),
      boolean_key<R>("query_documentation_addresses", &R::query_documentation_addresses,
                     "Allow querying servers at 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 "
                     "and 2001:db8::/32 (the test bed needs it)."),
      boolean_key<R>("builtin_local_zones", &R::builtin_local_zones,
                     "Answer test., invalid., localhost. and the documentation reverse zones "
                     "locally (RFC 6761); false for the test bed."),
      array_key<R, IpAddress>(
          "outgoing_address", &R::outgoing_address, "array of strings",
          "addresses inside an interface's prefix",
          [](const toml::node& e, const std::string& key, Ctx& ctx) -> std::optional<IpAddress> {
            const std::string* str = element_string(e, key, ctx);
            if (str == nullptr) return std::nullopt;
            auto a = IpAddress::parse(*str);
            if (!a || a->is_unspecified()) {
              ctx.error(e.source(), "'" + key + "': " + quote(*str) + " is not an address");
              return std::nullopt;
            }
            return a;
          },
          [](const IpAddress& a) { return quote(a.to_string()); },
          "Source addresses of upstream queries; [] = the external interface's addresses (or "
          "the kernel's choice)."),
      string_key<R>("cache_file", &R::cache_file, check_path, "a path or \"\"",
                    "Where the cache is written when the resolver stops and read back when it "
                    "starts (TTLs reduced by the time that passed); its directory must be "
                    "writable by gateway.user; \"\" = the cache starts empty after every "
                    "restart."),
      boolean_key<R>("dnssec", &R::dnssec,
                     "Validate answers with DNSSEC (RFC 4033-4035) from the anchors in "
                     "files.trust_anchor: secure answers get AD, bogus ones SERVFAIL with an "
                     "Extended DNS Error (RFC 8914)."),
      boolean_key<R>("aggressive_nsec", &R::aggressive_nsec,
                     "Answer NXDOMAIN and NODATA without asking upstream for names that "
                     "validated NSEC or NSEC3 records already prove absent (RFC 8198), with AD; "
                     "only with resolver.dnssec = true. NSEC3 opt-out spans never deny."),
      array_key<R, std::string>(
          "insecure_domains", &R::insecure_domains, "array of strings", "domain names",
          [](const toml::node& e, const std::string& key, Ctx& ctx) -> std::optional<std::string> {
            const std::string* str = element_string(e, key, ctx);
            if (str == nullptr) return std::nullopt;
            if (!is_domain_name(*str)) {
              ctx.error(e.source(), "'" + key + "': " + quote(*str) + " is not a domain name");
              return std::nullopt;
            }
            return *str;
          },
          [](const std::string& d) { return quote(d); },
          "Negative trust anchors (RFC 7646): answers for these names and the names below "
          "them are not validated, as if the zones were unsigned."),
      duration_key<R>("trust_anchor_hold_down", &R::trust_anchor_hold_down, kSecond, 365 * kDay,
                      "RFC 5011 add and remove hold-down: a new root key is trusted only after "
                      "it was seen this long, a revoked one forgotten after this long. Keep the "
                      "RFC's 30 days; shorter values are for tests only."),
  };

  using L = LogSettings;
  s.log = {
      enum_key<L>("format", &L::format, std::array{LogFormat::Text, LogFormat::Json},
                  "`text`: key=value lines; `json`: one JSON object per line."),
      enum_key<L>("target", &L::target, std::array{LogTarget::Stderr, LogTarget::Syslog},
                  "`stderr` (the journal under systemd) or `syslog`."),
      enum_key<L>("level", &L::level,
                  std::array{LogLevel::Debug, LogLevel::Info, LogLevel::Notice, LogLevel::Warning,
                             LogLevel::Error},
                  "Least severe level logged."),
  };
  return s;
}

const Schema& schema() {
  static const Schema s = make_schema();
  return s;
}

// Levenshtein distance, for "did you mean" on a misspelt key.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

template <class Names>
std::string suggestion(std::string_view unknown, const Names& names) {
  std::string_view best;
  std::size_t best_d = 3;  // suggest only close misspellings
  for (std::string_view n : names) {
    if (unknown.size() > 64) break;  // not a typo of any of ours
    const std::size_t d = edit_distance(unknown, n);
    if (d < best_d) {
      best_d = d;
      best = n;
    }
  }
  if (best.empty()) return {};
  return " (did you mean '" + std::string{best} + "'?)";
}

template <class Owner>
void apply_table(const toml::table& t, std::string_view section,
                 const std::vector<KeyDef<Owner>>& defs, Owner& out, Ctx& ctx) {
  for (auto&& [k, v] : t) {
    const auto def = std::find_if(defs.begin(), defs.end(),
                                  [&k = k](const KeyDef<Owner>& d) { return d.name == k.str(); });
    const std::string full = std::string{section} + "." + printable(k.str());
    if (def == defs.end()) {
      std::vector<std::string_view> names;
      for (const auto& d : defs) names.push_back(d.name);
      ctx.error(k.source(), "unknown key '" + full + "'" + suggestion(k.str(), names));
      continue;
    }
    def->apply(v, full, out, ctx);
  }
}

template <class Owner>
const toml::table* section_table(const toml::table& root, std::string_view name,
                                 const std::vector<KeyDef<Owner>>& defs, Owner& out, Ctx& ctx) {
  const toml::node* n = root.get(name);
  if (n == nullptr) return nullptr;
  const auto* t = n->as_table();
  if (t == nullptr) {
    ctx.error(n->source(), "'" + std::string{name} + "' must be a table [" + std::string{name} +
                               "], got " + describe(*n));
    return nullptr;
  }
  apply_table(*t, name, defs, out, ctx);
  return t;
}

// The region of `key`'s value in `t`, or of `t` itself when the key is absent.
toml::source_region where(const toml::table* t, std::string_view key,
                          const toml::source_region& fallback) {
  if (t == nullptr) return fallback;
  if (const toml::node* n = t->get(key)) return n->source();
  return t->source();
}

// The region of the index-th element of array `key` in `t`.
toml::source_region element_where(const toml::table* t, std::string_view key, std::size_t index,
                                  const toml::source_region& fallback) {
  if (t != nullptr) {
    if (const auto* arr = t->get_as<toml::array>(key); arr != nullptr && index < arr->size()) {
      return (*arr)[index].source();
    }
  }
  return where(t, key, fallback);
}

toml::source_region file_start() {
  toml::source_region r;
  r.begin = {1, 1};
  r.end = {1, 1};
  return r;
}

struct InterfaceSource {
  const toml::table* table;
};

// Rules that involve more than one key; each error points at the key that
// most likely holds the mistake.
void check_cross_fields(const GatewayConfig& cfg, const std::vector<InterfaceSource>& itf_src,
                        const toml::table* files_t, const toml::table* sockd_t,
                        const toml::table* resolver_t, Ctx& ctx) {
  const auto start = file_start();
  std::size_t internal_count = 0;
  std::optional<std::size_t> first_external;
  // Maps, not pairwise loops: a large file must not cost quadratic time.
  std::map<std::string, std::size_t> first_with_name;
  std::map<IpAddress, std::pair<std::size_t, std::size_t>> first_with_address;
  for (std::size_t i = 0; i < cfg.interfaces.size(); ++i) {
    const auto& itf = cfg.interfaces[i];
    const toml::table* t = itf_src[i].table;
    if (itf.role == InterfaceRole::Internal) {
      ++internal_count;
      // Anything but an absent key or [] that left no address has had its
      // own error reported already.
      const toml::node* given = t->get("addresses");
      const bool reported = given != nullptr && !(given->is_array() && given->as_array()->empty());
      if (itf.addresses.empty() && !reported) {
        ctx.error(where(t, "addresses", t->source()), "internal interface '" + itf.name +
                                                          "' needs at least one address in "
                                                          "'interface.addresses'");
      }
      if (itf.socks_port != 0 && itf.socks_port == itf.dns_port) {
        ctx.error(where(t, "dns_port", t->source()),
                  "interface '" + itf.name + "': socks_port and dns_port are both " +
                      std::to_string(itf.dns_port) + " (both listen on TCP)");
      }
    } else if (first_external) {
      ctx.error_with(where(t, "role", t->source()),
                     "a second external interface '" + itf.name + "'; at most one is allowed",
                     itf_src[*first_external].table->source());
    } else {
      first_external = i;
    }
    if (auto [it, fresh] = first_with_name.try_emplace(itf.name, i); !fresh) {
      ctx.error_with(where(t, "name", t->source()),
                     "interface '" + itf.name + "' is described twice",
                     itf_src[it->second].table->source());
    }
    // An address belongs to exactly one interface.
    for (std::size_t a = 0; a < itf.addresses.size(); ++a) {
      const IpAddress& addr = itf.addresses[a].addr;
      const auto [it, fresh] = first_with_address.try_emplace(addr, std::pair{i, a});
      if (fresh) continue;
      const auto [j, b] = it->second;
      ctx.error_with(element_where(t, "addresses", a, t->source()),
                     "address " + addr.to_string() + " is given twice (also on interface '" +
                         cfg.interfaces[j].name + "')",
                     element_where(itf_src[j].table, "addresses", b, start));
    }
  }
  if (internal_count == 0) {
    ctx.error(cfg.interfaces.empty() ? start : itf_src.front().table->source(),
              "no internal interface: at least one [[interface]] with role = \"internal\" is "
              "required");
  }

  const auto& sk = cfg.sockd;
  if (sk.max_sessions_per_client > sk.max_sessions) {
    const bool per_client_set = sockd_t != nullptr && sockd_t->contains("max_sessions_per_client");
    ctx.error(where(sockd_t, per_client_set ? "max_sessions_per_client" : "max_sessions", start),
              "'sockd.max_sessions_per_client' (" + std::to_string(sk.max_sessions_per_client) +
                  ") is above 'sockd.max_sessions' (" + std::to_string(sk.max_sessions) + ")");
  }
  if (sk.methods.empty()) {
    ctx.error(where(sockd_t, "methods", start), "'sockd.methods' must offer at least one method");
  }
  std::set<SocksMethod> methods_seen;
  for (std::size_t i = 0; i < sk.methods.size(); ++i) {
    if (!methods_seen.insert(sk.methods[i]).second) {
      ctx.error(element_where(sockd_t, "methods", i, start),
                "'sockd.methods' lists \"" + std::string{to_string(sk.methods[i])} + "\" twice");
    }
  }
  const bool userpass =
      std::find(sk.methods.begin(), sk.methods.end(), SocksMethod::UserPass) != sk.methods.end();
  if (userpass && cfg.files.users.empty()) {
    const toml::table* at = sockd_t != nullptr && sockd_t->contains("methods") ? sockd_t : files_t;
    ctx.error(where(at, at == sockd_t ? "methods" : "users", start),
              "'sockd.methods' offers \"userpass\" but 'files.users' is empty: no one could "
              "log in");
  }
  // (Only the ports count here: a missing address is its own error.)
  const bool resolver_listens =
      std::any_of(cfg.interfaces.begin(), cfg.interfaces.end(), [](const InterfaceConfig& i) {
        return i.role == InterfaceRole::Internal && i.dns_port != 0;
      });
  if (!sk.nameserver && internal_count != 0 && !resolver_listens) {
    toml::source_region r = where(sockd_t, "nameserver", start);
    if (sockd_t == nullptr || !sockd_t->contains("nameserver")) {
      for (std::size_t i = 0; i < cfg.interfaces.size(); ++i) {
        if (cfg.interfaces[i].role == InterfaceRole::Internal) {
          r = where(itf_src[i].table, "dns_port", itf_src[i].table->source());
          break;
        }
      }
    }
    ctx.error(r,
              "'sockd.nameserver' is empty but no internal interface has a dns_port: set "
              "one of them");
  }

  const auto& rs = cfg.resolver;
  if (rs.min_ttl > rs.max_ttl) {
    ctx.error(where(resolver_t, "min_ttl", start),
              "'resolver.min_ttl' (" + format_duration(rs.min_ttl) +
                  ") is above 'resolver.max_ttl' (" + format_duration(rs.max_ttl) + ")");
  }
  // Never an open resolver by accident: a /0 admits the whole internet.
  for (std::size_t i = 0; i < rs.allow.size() && !rs.allow_open; ++i) {
    if (rs.allow[i].length == 0) {
      ctx.error(element_where(resolver_t, "allow", i, start),
                "'resolver.allow': " + quote(rs.allow[i].to_string()) +
                    " admits every address (an open resolver); set 'resolver.allow_open = "
                    "true' if that is meant");
    }
  }
  // allow = [] means the internal networks: one written /0 is every address too.
  for (std::size_t i = 0; i < cfg.interfaces.size() && rs.allow.empty() && !rs.allow_open; ++i) {
    const auto& itf = cfg.interfaces[i];
    if (itf.role != InterfaceRole::Internal || i >= itf_src.size()) continue;
    for (std::size_t a = 0; a < itf.addresses.size(); ++a) {
      if (itf.addresses[a].length != 0) continue;
      ctx.error(element_where(itf_src[i].table, "addresses", a, itf_src[i].table->source()),
                "internal interface '" + itf.name + "': " + quote(itf.addresses[a].to_string()) +
                    " makes the resolver's default 'allow' admit every address (an open "
                    "resolver); give its real prefix length, or set 'resolver.allow' (or "
                    "'resolver.allow_open = true' if that is meant)");
    }
  }
  for (std::size_t i = 0; i < rs.outgoing_address.size(); ++i) {
    const IpAddress& a = rs.outgoing_address[i];
    bool ours = false;
    for (const auto& itf : cfg.interfaces) {
      for (const auto& p : itf.addresses) ours = ours || p.contains(a);
    }
    if (!ours) {
      ctx.error(element_where(resolver_t, "outgoing_address", i, start),
                "'resolver.outgoing_address': " + a.to_string() +
                    " is not inside any interface's prefix");
    }
  }
}

std::optional<GatewayConfig> parse_table(const toml::table& root, Ctx& ctx) {
  const Schema& sc = schema();
  GatewayConfig cfg;
  static constexpr std::array<std::string_view, 6> kSections{"gateway", "interface", "files",
                                                             "sockd",   "resolver",  "log"};
  for (auto&& [k, v] : root) {
    if (std::find(kSections.begin(), kSections.end(), k.str()) != kSections.end()) continue;
    const std::string name = printable(k.str());
    std::string what = "unknown top-level key '" + name + "'";
    if (v.is_table()) what = "unknown table [" + name + "]";
    if (v.is_array_of_tables()) what = "unknown table [[" + name + "]]";
    ctx.error(k.source(), what + suggestion(k.str(), kSections));
  }

  section_table(root, "gateway", sc.gateway, cfg.gateway, ctx);
  const toml::table* files_t = section_table(root, "files", sc.files, cfg.files, ctx);
  const toml::table* sockd_t = section_table(root, "sockd", sc.sockd, cfg.sockd, ctx);
  const toml::table* resolver_t = section_table(root, "resolver", sc.resolver, cfg.resolver, ctx);
  section_table(root, "log", sc.log, cfg.log, ctx);

  std::vector<InterfaceSource> itf_src;
  if (const toml::node* n = root.get("interface")) {
    const auto* arr = n->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      ctx.error(n->source(), "'interface' must be an array of tables, written [[interface]]; got " +
                                 describe(*n));
    } else {
      for (const auto& e : *arr) {
        const auto* t = e.as_table();
        InterfaceConfig itf;
        apply_table(*t, "interface", sc.interface, itf, ctx);
        for (const auto& def : sc.interface) {
          if (def.required && !t->contains(def.name)) {
            ctx.error(t->source(), "[[interface]] has no '" + std::string{def.name} + "'");
          }
        }
        if (itf.role == InterfaceRole::External) {
          for (std::string_view port : {"socks_port", "dns_port"}) {
            if (const toml::node* p = t->get(port)) {
              ctx.error(p->source(), "the external interface must not set '" + std::string{port} +
                                         "': the relay and the resolver listen only on internal "
                                         "interfaces");
            }
          }
          itf.socks_port = 0;
          itf.dns_port = 0;
        }
        cfg.interfaces.push_back(std::move(itf));
        itf_src.push_back({t});
      }
    }
  }

  // Cross-field checks need every value read; they run even after other
  // errors so that one pass reports as much as it can.
  check_cross_fields(cfg, itf_src, files_t, sockd_t, resolver_t, ctx);
  if (ctx.diags.has_errors()) return std::nullopt;
  return cfg;
}

template <class Owner>
void add_keys(std::vector<ConfigKey>& out, std::string_view section,
              const std::vector<KeyDef<Owner>>& defs) {
  const Owner defaults{};
  for (const auto& d : defs) {
    out.push_back({std::string{section} + "." + std::string{d.name}, d.type,
                   d.required ? std::string{} : d.show(defaults), d.doc, d.range});
  }
}

template <class Owner>
void format_keys(std::string& out, const std::vector<KeyDef<Owner>>& defs, const Owner& o,
                 std::initializer_list<std::string_view> skip = {}) {
  for (const auto& d : defs) {
    if (std::find(skip.begin(), skip.end(), d.name) != skip.end()) continue;
    out += d.name;
    out += " = ";
    out += d.show(o);
    out += '\n';
  }
}

}  // namespace

std::optional<GatewayConfig> parse_gateway_config(std::string_view text,
                                                  const std::string& file_name,
                                                  Diagnostics& diags) {
  Ctx ctx{file_name, {}};
  std::optional<GatewayConfig> result;
  // toml++ reports syntax errors by exception; they stop at this boundary.
#if TOML_EXCEPTIONS
  try {
    const toml::table root = toml::parse(text, std::string_view{file_name});
    result = parse_table(root, ctx);
  } catch (const toml::parse_error& e) {
    ctx.error(e.source(), one_line(e.description()));
  }
#else
  toml::parse_result parsed = toml::parse(text, std::string_view{file_name});
  if (parsed) {
    result = parse_table(parsed.table(), ctx);
  } else {
    ctx.error(parsed.error().source(), one_line(parsed.error().description()));
  }
#endif
  // File order, whatever order the checks ran in.
  auto& items = ctx.diags.items();
  std::stable_sort(items.begin(), items.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair{a.pos.line, a.pos.column} < std::pair{b.pos.line, b.pos.column};
  });
  diags.append(ctx.diags);
  if (ctx.diags.has_errors()) return std::nullopt;
  return result;
}

std::optional<GatewayConfig> load_gateway_config(const std::string& path, Diagnostics& diags) {
  // A configuration larger than this is not one; refuse it before reading.
  constexpr std::size_t kMaxBytes = 4 * 1024 * 1024;
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  errno = 0;
  std::unique_ptr<std::FILE, Closer> f{std::fopen(path.c_str(), "rb")};
  if (!f) {
    diags.error({path, 0, 0}, std::string{"cannot open: "} + std::strerror(errno), "config");
    return std::nullopt;
  }
  std::string text;
  std::array<char, 16384> buf{};
  for (;;) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    text.append(buf.data(), n);
    if (text.size() > kMaxBytes) {
      diags.error({path, 0, 0}, "file is larger than 4 MiB", "config");
      return std::nullopt;
    }
    if (n < buf.size()) break;
  }
  if (std::ferror(f.get()) != 0) {
    diags.error({path, 0, 0}, std::string{"cannot read: "} + std::strerror(errno), "config");
    return std::nullopt;
  }
  auto cfg = parse_gateway_config(text, path, diags);
  if (!cfg) return std::nullopt;
  const std::filesystem::path dir = std::filesystem::path{path}.parent_path();
  for (std::string* p : {&cfg->files.sockd_conf, &cfg->files.sockd_route, &cfg->files.users,
                         &cfg->files.root_hints, &cfg->files.trust_anchor,
                         &cfg->files.trust_anchor_state, &cfg->resolver.cache_file}) {
    if (!p->empty() && std::filesystem::path{*p}.is_relative() && !dir.empty()) {
      *p = (dir / *p).string();
    }
  }
  return cfg;
}

std::string_view embedded_default_config() {
  return R"toml(# Diode's built-in gateway.toml: a loopback-only gateway to try Diode
# without touching a network. A real gateway describes its interfaces in
# /etc/diode/gateway.toml (see docs/configuration.md).
[gateway]
user = "diode"
group = "diode"

[[interface]]
name = "lo"
role = "internal"
addresses = ["127.0.0.1/8"]
socks_port = 1080
dns_port = 5353

[files]
sockd_conf = ""      # the relay's built-in policy
sockd_route = ""     # egress follows the kernel's routing
users = ""           # no username/password users
root_hints = "/usr/share/dns/root.hints"
trust_anchor = "/usr/share/dns/root.key"   # DNSSEC validation is on by default
trust_anchor_state = ""   # nor may it keep the anchor's state there

[sockd]
methods = ["none"]   # no users file, so no username/password method

[resolver]
cache_file = ""      # whoever tries it may not write /var/lib/diode
)toml";
}

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = [] {
    const Schema& sc = schema();
    std::vector<ConfigKey> out;
    add_keys(out, "gateway", sc.gateway);
    add_keys(out, "interface", sc.interface);
    add_keys(out, "files", sc.files);
    add_keys(out, "sockd", sc.sockd);
    add_keys(out, "resolver", sc.resolver);
    add_keys(out, "log", sc.log);
    return out;
  }();
  return keys;
}

std::string format_gateway_config(const GatewayConfig& cfg) {
  const Schema& sc = schema();
  std::string out = "[gateway]\n";
  format_keys(out, sc.gateway, cfg.gateway);
  for (const auto& itf : cfg.interfaces) {
    out += "\n[[interface]]\n";
    if (itf.role == InterfaceRole::External) {
      format_keys(out, sc.interface, itf, {"socks_port", "dns_port"});
    } else {
      format_keys(out, sc.interface, itf);
    }
  }
  out += "\n[files]\n";
  format_keys(out, sc.files, cfg.files);
  out += "\n[sockd]\n";
  format_keys(out, sc.sockd, cfg.sockd);
  out += "\n[resolver]\n";
  format_keys(out, sc.resolver, cfg.resolver);
  out += "\n[log]\n";
  format_keys(out, sc.log, cfg.log);
  return out;
}

}  // namespace diode::platform

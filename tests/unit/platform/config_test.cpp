#include "diode/platform/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace diode::platform;
using namespace std::chrono_literals;

namespace {

// One internal interface, appended after the text under test so that the
// text's own line numbers start at 1.
constexpr std::string_view kInterface = R"(
[[interface]]
name = "eth1"
role = "internal"
addresses = ["192.0.2.1/24"]
)";

std::string with_interface(std::string_view text) {
  return std::string{text} + std::string{kInterface};
}

// The formatted diagnostics of parsing `text` as "t.toml". Checks the
// all-or-nothing rule on the way: a result exactly when there is no error.
std::vector<std::string> errors_of(const std::string& text) {
  Diagnostics d;
  const auto cfg = parse_gateway_config(text, "t.toml", d);
  std::vector<std::string> out;
  for (const auto& item : d.items()) out.push_back(item.format());
  CHECK(cfg.has_value() == !d.has_errors());
  return out;
}

GatewayConfig parse_ok(const std::string& text) {
  Diagnostics d;
  auto cfg = parse_gateway_config(text, "t.toml", d);
  INFO(d.format());
  REQUIRE(cfg.has_value());
  CHECK(d.empty());
  return *cfg;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::filesystem::path kSource{DIODE_SOURCE_DIR};

Prefix prefix(std::string_view s) {
  auto p = Prefix::parse(s);
  REQUIRE(p.has_value());
  return *p;
}

IpAddress address(std::string_view s) {
  auto a = IpAddress::parse(s);
  REQUIRE(a.has_value());
  return *a;
}

using Strings = std::vector<std::string>;

}  // namespace

// ---------------------------------------------------------------------------
// The shipped texts

TEST_CASE("the embedded default parses cleanly and is the loopback gateway", "[platform][config]") {
  const GatewayConfig cfg = parse_ok(std::string{embedded_default_config()});
  REQUIRE(cfg.interfaces.size() == 1);
  const auto& lo = cfg.interfaces[0];
  CHECK(lo.name == "lo");
  CHECK(lo.role == InterfaceRole::Internal);
  CHECK(lo.addresses == std::vector<Prefix>{prefix("127.0.0.1/8")});
  CHECK(lo.socks_port == 1080);
  CHECK(lo.dns_port == 5353);
  CHECK(external_interface(cfg) == nullptr);
  CHECK(cfg.files.sockd_conf.empty());
  CHECK(cfg.files.sockd_route.empty());
  CHECK(cfg.files.users.empty());
  CHECK(cfg.files.root_hints == "/usr/share/dns/root.hints");
  CHECK(cfg.sockd.methods == std::vector<SocksMethod>{SocksMethod::None});
  CHECK(effective_nameserver(cfg) == Endpoint{address("127.0.0.1"), 5353});
  CHECK(effective_resolver_allow(cfg) ==
        std::vector<Prefix>{prefix("127.0.0.0/8"), prefix("::1/128")});
}

TEST_CASE("conf/gateway.toml loads and is the test-bed shape", "[platform][config]") {
  Diagnostics d;
  const auto cfg = load_gateway_config((kSource / "conf/gateway.toml").string(), d);
  INFO(d.format());
  REQUIRE(cfg.has_value());
  CHECK(d.empty());
  REQUIRE(cfg->interfaces.size() == 2);
  const auto& eth1 = cfg->interfaces[0];
  CHECK(eth1.name == "eth1");
  CHECK(eth1.role == InterfaceRole::Internal);
  CHECK(eth1.addresses == std::vector<Prefix>{prefix("192.0.2.1/24"), prefix("2001:db8:1::1/64")});
  CHECK(eth1.socks_port == 1080);
  CHECK(eth1.dns_port == 53);
  const InterfaceConfig* eth0 = external_interface(*cfg);
  REQUIRE(eth0 != nullptr);
  CHECK(eth0->name == "eth0");
  CHECK(eth0->addresses ==
        std::vector<Prefix>{prefix("198.51.100.1/24"), prefix("2001:db8:2::1/64")});
  CHECK(eth0->socks_port == 0);
  CHECK(eth0->dns_port == 0);
  // The sample writes every other key out with its default value.
  CHECK(cfg->gateway == GatewaySection{});
  CHECK(cfg->files == FilesConfig{});
  CHECK(cfg->sockd == SockdSettings{});
  CHECK(cfg->resolver == ResolverSettings{});
  CHECK(cfg->log == LogSettings{});
  CHECK(gateway_addresses(*cfg) ==
        std::vector<IpAddress>{address("192.0.2.1"), address("2001:db8:1::1"),
                               address("198.51.100.1"), address("2001:db8:2::1")});
  CHECK(internal_networks(*cfg) ==
        std::vector<Prefix>{prefix("192.0.2.0/24"), prefix("2001:db8:1::/64")});
  CHECK(effective_nameserver(*cfg) == Endpoint{address("192.0.2.1"), 53});
  CHECK(effective_resolver_allow(*cfg) ==
        std::vector<Prefix>{prefix("192.0.2.0/24"), prefix("2001:db8:1::/64"),
                            prefix("127.0.0.0/8"), prefix("::1/128")});
}

TEST_CASE("format_gateway_config round-trips", "[platform][config]") {
  for (const std::string& text :
       {std::string{embedded_default_config()}, read_file(kSource / "conf/gateway.toml"),
        with_interface("[sockd]\nnameserver = \"[2001:db8:1::53]:5300\"\n"
                       "auth_cache_ttl = \"1500ms\"\n[resolver]\ncache_size = 1048577\n"
                       "allow = [\"192.0.2.0/25\", \"2001:db8::1\"]\n"
                       "outgoing_address = [\"192.0.2.1\"]\n"
                       "[files]\nusers = \"a \\\"quoted\\\" \\\\ name\\u0001\"\n")}) {
    const GatewayConfig cfg = parse_ok(text);
    const std::string printed = format_gateway_config(cfg);
    INFO(printed);
    CHECK(parse_ok(printed) == cfg);
  }
}

// ---------------------------------------------------------------------------
// docs/configuration.md

namespace {

struct Block {
  std::string lang;
  std::string text;
  std::size_t line;       // of the opening fence
  std::string preceding;  // the non-empty line before the fence
};

std::vector<Block> fenced_blocks(const std::string& doc) {
  std::vector<Block> out;
  std::istringstream in(doc);
  std::string line;
  std::string last_nonempty;
  std::size_t n = 0;
  std::optional<Block> open;
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind("```", 0) == 0) {
      if (open) {
        out.push_back(*open);
        open.reset();
      } else {
        open = Block{line.substr(3), {}, n, last_nonempty};
      }
      continue;
    }
    if (open) {
      open->text += line + "\n";
    } else if (!line.empty()) {
      last_nonempty = line;
    }
  }
  REQUIRE_FALSE(open.has_value());  // an unclosed fence
  return out;
}

}  // namespace

TEST_CASE("every toml block in docs/configuration.md loads", "[platform][config][docs]") {
  const auto blocks = fenced_blocks(read_file(kSource / "docs/configuration.md"));
  std::size_t toml_blocks = 0;
  for (const auto& b : blocks) {
    if (b.lang != "toml") continue;
    ++toml_blocks;
    Diagnostics d;
    const auto cfg = parse_gateway_config(b.text, "configuration.md:" + std::to_string(b.line), d);
    INFO(d.format());
    CHECK(cfg.has_value());
    CHECK(d.empty());
  }
  CHECK(toml_blocks >= 3);  // the complete, the small and the built-in example
}

TEST_CASE("the complete example in the docs is conf/gateway.toml, the built-in one is embedded",
          "[platform][config][docs]") {
  const auto blocks = fenced_blocks(read_file(kSource / "docs/configuration.md"));
  const std::string sample = read_file(kSource / "conf/gateway.toml");
  const auto has = [&](const std::string& text) {
    return std::any_of(blocks.begin(), blocks.end(),
                       [&](const Block& b) { return b.lang == "toml" && b.text == text; });
  };
  CHECK(has(sample));
  CHECK(has(std::string{embedded_default_config()}));
}

TEST_CASE("every key of config_keys() is documented with its type, default, range and meaning",
          "[platform][config][docs]") {
  const std::string doc = read_file(kSource / "docs/configuration.md");
  REQUIRE(config_keys().size() > 40);
  for (const auto& k : config_keys()) {
    const std::string row = "| `" + k.key + "` | " + k.type + " | " +
                            (k.default_value.empty() ? "required" : "`" + k.default_value + "`") +
                            " | " + k.range + " | " + k.doc + " |\n";
    INFO(row);
    CHECK(doc.find(row) != std::string::npos);
  }
}

TEST_CASE("the docs' key tables list no key the code does not know", "[platform][config][docs]") {
  std::istringstream doc(read_file(kSource / "docs/configuration.md"));
  std::set<std::string> known;
  for (const auto& k : config_keys()) known.insert(k.key);
  std::string line;
  std::size_t rows = 0;
  while (std::getline(doc, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    const auto end = line.find('`', 3);
    REQUIRE(end != std::string::npos);
    const std::string key = line.substr(3, end - 3);
    INFO(line);
    CHECK(known.count(key) == 1);
    ++rows;
  }
  CHECK(rows == known.size());
}

TEST_CASE("the error example in the docs is what the loader prints", "[platform][config][docs]") {
  const auto blocks = fenced_blocks(read_file(kSource / "docs/configuration.md"));
  bool found = false;
  for (std::size_t i = 0; i + 1 < blocks.size(); ++i) {
    if (blocks[i].preceding.find("<!-- check: errors") == std::string::npos) continue;
    found = true;
    Diagnostics d;
    CHECK_FALSE(parse_gateway_config(blocks[i].text, "gateway.toml", d).has_value());
    CHECK(d.count(Severity::Error) >= 3);
    CHECK(d.format() == blocks[i + 1].text);
  }
  CHECK(found);
}

// ---------------------------------------------------------------------------
// The key table

TEST_CASE("config_keys describes each key once, with a default the parser accepts",
          "[platform][config]") {
  std::set<std::string> seen;
  const GatewayConfig base = parse_ok(with_interface(""));
  for (const auto& k : config_keys()) {
    INFO(k.key);
    CHECK(seen.insert(k.key).second);
    CHECK_FALSE(k.type.empty());
    CHECK_FALSE(k.doc.empty());
    CHECK_FALSE(k.range.empty());
    const auto dot = k.key.find('.');
    REQUIRE(dot != std::string::npos);
    const std::string section = k.key.substr(0, dot);
    const std::string name = k.key.substr(dot + 1);
    if (section == "interface") continue;  // checked below
    // Writing a key with its documented default changes nothing.
    const GatewayConfig explicit_default =
        parse_ok(with_interface("[" + section + "]\n" + name + " = " + k.default_value + "\n"));
    CHECK(explicit_default == base);
  }
  const GatewayConfig itf = parse_ok(
      "[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = [\"192.0.2.1/24\"]\n"
      "socks_port = 1080\ndns_port = 53\n");
  CHECK(itf == base);
}

// ---------------------------------------------------------------------------
// Values

TEST_CASE("durations", "[platform][config]") {
  CHECK(parse_duration("500ms") == 500ms);
  CHECK(parse_duration("30s") == 30s);
  CHECK(parse_duration("2m") == 2min);
  CHECK(parse_duration("2h") == 2h);
  CHECK(parse_duration("1d") == 24h);
  CHECK(parse_duration("0s") == 0ms);
  for (const char* bad : {"", "30", "s", "-1s", "1.5s", "30 s", "1w", "1S", "1sec",
                          "99999999999999999999d", "9999999999999999999d"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
  CHECK(format_duration(1500ms) == "1500ms");
  CHECK(format_duration(90s) == "90s");
  CHECK(format_duration(120s) == "2m");
  CHECK(format_duration(48h) == "2d");
  CHECK(format_duration(0ms) == "0s");
  for (std::chrono::milliseconds d : std::vector<std::chrono::milliseconds>{
           1ms, 999ms, 61s, 25h, std::chrono::milliseconds{30 * 24h}}) {
    CHECK(parse_duration(format_duration(d)) == d);
  }
}

TEST_CASE("sizes", "[platform][config]") {
  CHECK(parse_size("512KiB") == 512u * 1024);
  CHECK(parse_size("64MiB") == 64u * 1024 * 1024);
  CHECK(parse_size("1GiB") == 1ULL << 30);
  CHECK(parse_size("2TiB") == 2ULL << 40);
  for (const char* bad :
       {"", "64", "64MB", "64mib", "MiB", "-1KiB", "1.5GiB", "64 MiB", "20000000TiB"}) {
    INFO(bad);
    CHECK_FALSE(parse_size(bad).has_value());
  }
  CHECK(format_size(64ULL << 20) == "64MiB");
  CHECK(format_size(1536) == "1536");  // 1.5 KiB: no exact unit, so bytes
  CHECK(format_size(1000) == "1000");
  CHECK(format_size(2048) == "2KiB");
}

TEST_CASE("values of each type are read", "[platform][config]") {
  const GatewayConfig cfg = parse_ok(with_interface(R"(
[gateway]
user = "_diode-gw"
group = "nogroup"
[sockd]
threads = 4
identd = "strict"
identd_timeout = 5
idle_timeout = "1d"
max_sessions = 100
max_sessions_per_client = 100
methods = ["userpass", "none"]
nameserver = "2001:db8:1::53"
auth_cache_ttl = 0
protect_internal = false
[resolver]
threads = 0
allow = ["192.0.2.0/24", "2001:db8:1::/64", "203.0.113.7"]
cache_size = 1048576
edns_buffer_size = 4096
prefetch = false
min_ttl = "1m"
max_ttl = "1m"
outgoing_address = ["192.0.2.1"]
[log]
format = "json"
target = "syslog"
level = "debug"
)"));
  CHECK(cfg.gateway.user == "_diode-gw");
  CHECK(cfg.gateway.group == "nogroup");
  CHECK(cfg.sockd.threads == 4);
  CHECK(cfg.sockd.identd == IdentdMode::Strict);
  CHECK(cfg.sockd.identd_timeout == 5s);
  CHECK(cfg.sockd.idle_timeout == 24h);
  CHECK(cfg.sockd.max_sessions == 100);
  CHECK(cfg.sockd.methods == std::vector<SocksMethod>{SocksMethod::UserPass, SocksMethod::None});
  CHECK(cfg.sockd.nameserver == Endpoint{address("2001:db8:1::53"), 53});
  CHECK(effective_nameserver(cfg) == Endpoint{address("2001:db8:1::53"), 53});
  CHECK(cfg.sockd.auth_cache_ttl == 0ms);
  CHECK_FALSE(cfg.sockd.protect_internal);
  CHECK(cfg.resolver.threads == 0);
  CHECK(cfg.resolver.allow == std::vector<Prefix>{prefix("192.0.2.0/24"), prefix("2001:db8:1::/64"),
                                                  prefix("203.0.113.7/32")});
  CHECK(effective_resolver_allow(cfg) == cfg.resolver.allow);
  CHECK(cfg.resolver.cache_size == 1048576);
  CHECK(cfg.resolver.edns_buffer_size == 4096);
  CHECK_FALSE(cfg.resolver.prefetch);
  CHECK(cfg.resolver.min_ttl == 1min);
  CHECK(cfg.resolver.outgoing_address == std::vector<IpAddress>{address("192.0.2.1")});
  CHECK(cfg.log.format == LogFormat::Json);
  CHECK(cfg.log.target == LogTarget::Syslog);
  CHECK(cfg.log.level == LogLevel::Debug);
}

TEST_CASE("nameserver forms", "[platform][config]") {
  const auto ns = [](const std::string& v) {
    return parse_ok(with_interface("[sockd]\nnameserver = \"" + v + "\"\n")).sockd.nameserver;
  };
  CHECK(ns("") == std::nullopt);
  CHECK(ns("192.0.2.53") == Endpoint{address("192.0.2.53"), 53});
  CHECK(ns("192.0.2.53:5300") == Endpoint{address("192.0.2.53"), 5300});
  CHECK(ns("[2001:db8::53]:5300") == Endpoint{address("2001:db8::53"), 5300});
  CHECK(errors_of(with_interface("[sockd]\nnameserver = \"ns.example\"\n")) ==
        Strings{"t.toml:2:14: error: 'sockd.nameserver': \"ns.example\" is not ADDR, ADDR:PORT "
                "or [V6]:PORT with a port above 0"});
  CHECK(errors_of(with_interface("[sockd]\nnameserver = \"192.0.2.53:0\"\n")).size() == 1);
  CHECK(errors_of(with_interface("[sockd]\nnameserver = \"192.0.2.53:65536\"\n")).size() == 1);
  CHECK(errors_of(with_interface("[sockd]\nnameserver = \"0.0.0.0\"\n")).size() == 1);
  CHECK(errors_of(with_interface("[sockd]\nnameserver = 53\n")) ==
        Strings{"t.toml:2:14: error: 'sockd.nameserver' expects a string, got an integer"});
}

// ---------------------------------------------------------------------------
// Errors, each at its exact position

TEST_CASE("syntax errors carry toml++'s position", "[platform][config]") {
  CHECK(errors_of("[sockd]\nthreads = [1,\n") ==
        Strings{"t.toml:2:15: error: Error while parsing array: encountered end-of-file"});
  CHECK(errors_of("[sockd]\nthreads = 1\nthreads = 2\n") ==
        Strings{"t.toml:3:11: error: Error while parsing key-value pair: cannot redefine "
                "existing integer 'threads'"});
  CHECK(errors_of(std::string{"[gateway]\nuser = \"\xff\"\n"}).size() == 1);
  CHECK(errors_of(std::string{"a = 1\0b = 2", 11}).size() == 1);
}

TEST_CASE("unknown keys and tables are errors at the key", "[platform][config]") {
  CHECK(errors_of(with_interface("[sockd]\nidle_timout = \"2h\"\n")) ==
        Strings{"t.toml:2:1: error: unknown key 'sockd.idle_timout' (did you mean "
                "'idle_timeout'?)"});
  CHECK(errors_of(with_interface("[resolver]\n  frobnicate = true\n")) ==
        Strings{"t.toml:2:3: error: unknown key 'resolver.frobnicate'"});
  CHECK(errors_of(with_interface("[sock]\nthreads = 1\n")) ==
        Strings{"t.toml:1:2: error: unknown table [sock] (did you mean 'sockd'?)"});
  CHECK(errors_of(with_interface("threads = 1\n")) ==
        Strings{"t.toml:1:1: error: unknown top-level key 'threads'"});
  CHECK(errors_of(with_interface("[[interfaces]]\nname = \"eth2\"\n")) ==
        Strings{"t.toml:1:3: error: unknown table [[interfaces]] (did you mean 'interface'?)"});
  // A quoted key may hold a newline; the message stays one line.
  CHECK(errors_of(with_interface("[log]\n\"a\\nb\" = 1\n")) ==
        Strings{"t.toml:2:1: error: unknown key 'log.a\\u000Ab'"});
  CHECK(errors_of(with_interface("[sockd.limits]\nx = 1\n")) ==
        Strings{"t.toml:1:8: error: unknown key 'sockd.limits'"});
  CHECK(errors_of(with_interface("[sockd]\nthreads = 1\nbogus = 1\n[log]\nlevl = \"info\"\n")) ==
        Strings{"t.toml:3:1: error: unknown key 'sockd.bogus'",
                "t.toml:5:1: error: unknown key 'log.levl' (did you mean 'level'?)"});
  CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = "
                  "[\"192.0.2.1/24\"]\nport = 1080\n") ==
        Strings{"t.toml:5:1: error: unknown key 'interface.port'"});
}

TEST_CASE("wrong types name the expected type", "[platform][config]") {
  CHECK(errors_of(with_interface("[sockd]\nthreads = \"4\"\n")) ==
        Strings{"t.toml:2:11: error: 'sockd.threads' expects an integer, got a string"});
  CHECK(errors_of(with_interface("[sockd]\nprotect_internal = \"yes\"\n")) ==
        Strings{"t.toml:2:20: error: 'sockd.protect_internal' expects a boolean, got a string"});
  CHECK(errors_of(with_interface("[sockd]\nidle_timeout = 1.5\n")) ==
        Strings{"t.toml:2:16: error: 'sockd.idle_timeout' expects a duration (a string such "
                "as \"30s\" or an integer of seconds), got a float"});
  CHECK(errors_of(with_interface("[resolver]\ncache_size = true\n")) ==
        Strings{"t.toml:2:14: error: 'resolver.cache_size' expects a size (an integer of "
                "bytes or a string such as \"64MiB\"), got a boolean"});
  CHECK(errors_of(with_interface("[log]\nlevel = 3\n")) ==
        Strings{"t.toml:2:9: error: 'log.level' expects a string, got an integer"});
  CHECK(errors_of(with_interface("[files]\nusers = []\n")) ==
        Strings{"t.toml:2:9: error: 'files.users' expects a string, got an array"});
  CHECK(errors_of(with_interface("[resolver]\nallow = \"192.0.2.0/24\"\n")) ==
        Strings{"t.toml:2:9: error: 'resolver.allow' expects an array, got a string"});
  CHECK(errors_of(with_interface("[resolver]\nallow = [\"192.0.2.0/24\", 7]\n")) ==
        Strings{"t.toml:2:26: error: 'resolver.allow' expects strings, got an integer"});
  CHECK(errors_of(with_interface("sockd = 5\n")) ==
        Strings{"t.toml:1:9: error: 'sockd' must be a table [sockd], got an integer"});
  CHECK(errors_of("[interface]\nname = \"eth1\"\n") ==
        Strings{"t.toml:1:1: error: 'interface' must be an array of tables, written "
                "[[interface]]; got a table",
                "t.toml:1:1: error: no internal interface: at least one [[interface]] with "
                "role = \"internal\" is required"});
}

TEST_CASE("values out of range", "[platform][config]") {
  CHECK(errors_of(with_interface("[sockd]\nthreads = 5000\n")) ==
        Strings{"t.toml:2:11: error: 'sockd.threads' must be in 0..1024, got 5000"});
  CHECK(errors_of(with_interface("[sockd]\nmax_sessions = 0\n")) ==
        Strings{"t.toml:2:16: error: 'sockd.max_sessions' must be in 1..1000000, got 0"});
  CHECK(errors_of(with_interface("[resolver]\nedns_buffer_size = 511\n")) ==
        Strings{"t.toml:2:20: error: 'resolver.edns_buffer_size' must be in 512..4096, got 511"});
  CHECK(errors_of(with_interface("[resolver]\nedns_buffer_size = 4097\n")).size() == 1);
  CHECK(errors_of(with_interface("[resolver]\nedns_buffer_size = 4096\n")).empty());
  CHECK(errors_of(with_interface("[sockd]\nidle_timeout = \"0s\"\n")) ==
        Strings{"t.toml:2:16: error: 'sockd.idle_timeout' must be in 1s..30d, got \"0s\""});
  CHECK(errors_of(with_interface("[sockd]\nidle_timeout = 0\n")) ==
        Strings{"t.toml:2:16: error: 'sockd.idle_timeout' must be in 1s..30d, got 0"});
  CHECK(errors_of(with_interface("[sockd]\nidle_timeout = 99999999999999\n")) ==
        Strings{"t.toml:2:16: error: 'sockd.idle_timeout' must be in 1s..30d, got "
                "99999999999999"});
  CHECK(errors_of(with_interface("[sockd]\nidle_timeout = \"31d\"\n")).size() == 1);
  CHECK(errors_of(with_interface("[sockd]\nidle_timeout = \"30d\"\n")).empty());
  CHECK(errors_of(with_interface("[sockd]\nconnect_timeout = -5\n")) ==
        Strings{"t.toml:2:19: error: 'sockd.connect_timeout': -5 is not a duration (a whole "
                "number with one of the units ms, s, m, h, d, or an integer of seconds)"});
  CHECK(errors_of(with_interface("[sockd]\nconnect_timeout = \"30\"\n")) ==
        Strings{"t.toml:2:19: error: 'sockd.connect_timeout': \"30\" is not a duration (a "
                "whole number with one of the units ms, s, m, h, d, or an integer of seconds)"});
  CHECK(errors_of(with_interface("[resolver]\nupstream_timeout = \"5ms\"\n")).size() == 1);
  CHECK(errors_of(with_interface("[resolver]\ncache_size = \"512KiB\"\n")) ==
        Strings{"t.toml:2:14: error: 'resolver.cache_size' must be in 1MiB..64GiB, got "
                "\"512KiB\""});
  CHECK(errors_of(with_interface("[resolver]\ncache_size = \"64MB\"\n")) ==
        Strings{"t.toml:2:14: error: 'resolver.cache_size': \"64MB\" is not a size (an integer "
                "of bytes, or a whole number with one of the units KiB, MiB, GiB, TiB)"});
  CHECK(errors_of(with_interface("[resolver]\ncache_size = -1\n")).size() == 1);
}

TEST_CASE("enumerations list their values", "[platform][config]") {
  CHECK(errors_of(with_interface("[sockd]\nidentd = \"yes\"\n")) ==
        Strings{"t.toml:2:10: error: 'sockd.identd' must be one of off, lenient, strict; got "
                "\"yes\""});
  CHECK(errors_of(with_interface("[log]\nlevel = \"verbose\"\n")) ==
        Strings{"t.toml:2:9: error: 'log.level' must be one of debug, info, notice, warning, "
                "error; got \"verbose\""});
  CHECK(errors_of(with_interface("[log]\nformat = \"Text\"\n")).size() == 1);  // case matters
  CHECK(errors_of(with_interface("[log]\ntarget = \"file\"\n")).size() == 1);
}

TEST_CASE("gateway user and group names", "[platform][config]") {
  CHECK(errors_of(with_interface("[gateway]\nuser = \"\"\n")) ==
        Strings{"t.toml:2:8: error: 'gateway.user': a user or group name has 1 to 32 "
                "characters"});
  CHECK(errors_of(with_interface("[gateway]\ngroup = \"di ode\"\n")) ==
        Strings{"t.toml:2:9: error: 'gateway.group': a user or group name has only letters, "
                "digits, '_', '-' and '.'"});
  CHECK(errors_of(with_interface("[gateway]\nuser = \"-x\"\n")).size() == 1);
}

TEST_CASE("files", "[platform][config]") {
  CHECK(errors_of(with_interface("[files]\nroot_hints = \"\"\n")) ==
        Strings{"t.toml:2:14: error: 'files.root_hints': a file name is required here"});
  CHECK(errors_of(with_interface("[files]\nsockd_conf = \"a\\u0000b\"\n")) ==
        Strings{"t.toml:2:14: error: 'files.sockd_conf': a path has no NUL character"});
  const auto cfg = parse_ok(with_interface("[files]\nsockd_conf = \"\"\nsockd_route = \"\"\n"));
  CHECK(cfg.files.sockd_conf.empty());
  CHECK(cfg.files.sockd_route.empty());
}

TEST_CASE("interface tables", "[platform][config]") {
  SECTION("name and role are required, at the table's header") {
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\naddresses = [\"192.0.2.1/24\"]\n") ==
          Strings{"t.toml:1:1: error: [[interface]] has no 'role'"});
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = "
                    "[\"192.0.2.1/24\"]\n\n[[interface]]\nrole = \"external\"\n") ==
          Strings{"t.toml:6:1: error: [[interface]] has no 'name'"});
  }
  SECTION("names are kernel interface names") {
    const auto name_error = [](const std::string& name) {
      return errors_of("[[interface]]\nname = \"" + name +
                       "\"\nrole = \"internal\"\naddresses = [\"192.0.2.1/24\"]\n");
    };
    CHECK(name_error("") ==
          Strings{"t.toml:2:8: error: 'interface.name': an interface name has 1 to 15 "
                  "characters"});
    CHECK(name_error("abcdefghijklmnop").size() == 1);
    CHECK(name_error("abcdefghijklmno").empty());
    CHECK(name_error("eth0/1") ==
          Strings{"t.toml:2:8: error: 'interface.name': an interface name has no '/', ':', "
                  "blanks or control characters"});
    CHECK(name_error("eth0:1").size() == 1);
    CHECK(name_error("eth 0").size() == 1);
    CHECK(name_error("..").size() == 1);
    CHECK(name_error("veth-gw.1@x").empty());
  }
  SECTION("roles") {
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"dmz\"\naddresses = "
                    "[\"192.0.2.1/24\"]\n") ==
          Strings{"t.toml:3:8: error: 'interface.role' must be one of internal, external; got "
                  "\"dmz\""});
  }
  SECTION("at least one internal, at most one external") {
    CHECK(errors_of("") ==
          Strings{"t.toml:1:1: error: no internal interface: at least one [[interface]] with "
                  "role = \"internal\" is required"});
    CHECK(errors_of("[[interface]]\nname = \"eth0\"\nrole = \"external\"\n") ==
          Strings{"t.toml:1:1: error: no internal interface: at least one [[interface]] with "
                  "role = \"internal\" is required"});
    Diagnostics d;
    CHECK_FALSE(parse_gateway_config(
                    with_interface("[[interface]]\nname = \"eth0\"\nrole = \"external\"\n\n"
                                   "[[interface]]\nname = \"eth2\"\nrole = \"external\"\n"),
                    "t.toml", d)
                    .has_value());
    REQUIRE(d.items().size() == 1);
    CHECK(d.items()[0].format() ==
          "t.toml:7:8: error: a second external interface 'eth2'; at most one is allowed");
    REQUIRE(d.items()[0].related.size() == 1);
    CHECK(d.items()[0].related[0].line == 1);
  }
  SECTION("names are unique") {
    CHECK(errors_of(with_interface("[[interface]]\nname = \"eth1\"\nrole = \"external\"\n")) ==
          Strings{"t.toml:6:8: error: interface 'eth1' is described twice"});
  }
  SECTION("addresses") {
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\n") ==
          Strings{"t.toml:1:1: error: internal interface 'eth1' needs at least one address in "
                  "'interface.addresses'"});
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = []\n") ==
          Strings{"t.toml:4:13: error: internal interface 'eth1' needs at least one address in "
                  "'interface.addresses'"});
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = "
                    "[\"192.0.2.1\", \"2001:db8::1/129\", \"0.0.0.0/0\"]\n") ==
          Strings{"t.toml:4:14: error: 'interface.addresses': \"192.0.2.1\" needs its prefix "
                  "length (e.g. \"192.0.2.1/24\")",
                  "t.toml:4:27: error: 'interface.addresses': \"2001:db8::1/129\" is not an "
                  "address with a prefix length (e.g. \"192.0.2.1/24\")",
                  "t.toml:4:46: error: 'interface.addresses': the unspecified address is not "
                  "an interface address"});
    // An external interface may leave the choice to the kernel.
    const auto cfg =
        parse_ok(with_interface("[[interface]]\nname = \"eth0\"\nrole = \"external\"\n"));
    CHECK(external_interface(cfg)->addresses.empty());
  }
  SECTION("an address belongs to one interface") {
    CHECK(errors_of(with_interface("[[interface]]\nname = \"eth0\"\nrole = \"external\"\n"
                                   "addresses = [\"198.51.100.1/24\", \"192.0.2.1/25\"]\n")) ==
          Strings{"t.toml:9:14: error: address 192.0.2.1 is given twice (also on interface "
                  "'eth0')"});
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\n"
                    "addresses = [\"2001:db8:1::1/64\", \"2001:db8:1:0::1/48\"]\n") ==
          Strings{"t.toml:4:34: error: address 2001:db8:1::1 is given twice (also on interface "
                  "'eth1')"});
  }
  SECTION("the external interface does not listen") {
    CHECK(errors_of(with_interface("[[interface]]\nname = \"eth0\"\nrole = \"external\"\n"
                                   "socks_port = 1080\ndns_port = 0\n")) ==
          Strings{"t.toml:4:14: error: the external interface must not set 'socks_port': the "
                  "relay and the resolver listen only on internal interfaces",
                  "t.toml:5:12: error: the external interface must not set 'dns_port': the "
                  "relay and the resolver listen only on internal interfaces"});
  }
  SECTION("ports") {
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = "
                    "[\"192.0.2.1/24\"]\nsocks_port = 65536\n") ==
          Strings{"t.toml:5:14: error: 'interface.socks_port' must be in 0..65535, got 65536"});
    CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = "
                    "[\"192.0.2.1/24\"]\nsocks_port = 53\n") ==
          Strings{"t.toml:1:1: error: interface 'eth1': socks_port and dns_port are both 53 "
                  "(both listen on TCP)"});
    const auto cfg = parse_ok(
        "[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = [\"192.0.2.1/24\"]\n"
        "socks_port = 0\ndns_port = 0\n[sockd]\nnameserver = \"198.51.100.53\"\n");
    CHECK(cfg.interfaces[0].socks_port == 0);
    CHECK(cfg.interfaces[0].dns_port == 0);
  }
}

TEST_CASE("cross-field rules of [sockd]", "[platform][config]") {
  CHECK(errors_of(with_interface("[sockd]\nmax_sessions = 100\nmax_sessions_per_client = 101\n")) ==
        Strings{"t.toml:3:27: error: 'sockd.max_sessions_per_client' (101) is above "
                "'sockd.max_sessions' (100)"});
  CHECK(errors_of(with_interface("[sockd]\nmax_sessions = 100\n")) ==
        Strings{"t.toml:2:16: error: 'sockd.max_sessions_per_client' (512) is above "
                "'sockd.max_sessions' (100)"});
  CHECK(errors_of(with_interface("[sockd]\nmethods = []\n")) ==
        Strings{"t.toml:2:11: error: 'sockd.methods' must offer at least one method"});
  CHECK(errors_of(with_interface("[sockd]\nmethods = [\"none\", \"none\"]\n")) ==
        Strings{"t.toml:2:20: error: 'sockd.methods' lists \"none\" twice"});
  CHECK(errors_of(with_interface("[sockd]\nmethods = [\"none\", \"gssapi\"]\n")) ==
        Strings{"t.toml:2:20: error: 'sockd.methods': unknown method \"gssapi\" (known: none, "
                "userpass)"});
  CHECK(errors_of(with_interface("[files]\nusers = \"\"\n")) ==
        Strings{"t.toml:2:9: error: 'sockd.methods' offers \"userpass\" but 'files.users' is "
                "empty: no one could log in"});
  CHECK(errors_of(with_interface("[files]\nusers = \"\"\n[sockd]\nmethods = [\"userpass\"]\n")) ==
        Strings{"t.toml:4:11: error: 'sockd.methods' offers \"userpass\" but 'files.users' is "
                "empty: no one could log in"});
  CHECK(
      errors_of(with_interface("[files]\nusers = \"\"\n[sockd]\nmethods = [\"none\"]\n")).empty());
  CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = "
                  "[\"192.0.2.1/24\"]\ndns_port = 0\n") ==
        Strings{"t.toml:5:12: error: 'sockd.nameserver' is empty but no internal interface has "
                "a dns_port: set one of them"});
}

TEST_CASE("cross-field rules of [resolver]", "[platform][config]") {
  CHECK(errors_of(with_interface("[resolver]\nmin_ttl = \"2h\"\nmax_ttl = \"1h\"\n")) ==
        Strings{"t.toml:2:11: error: 'resolver.min_ttl' (2h) is above 'resolver.max_ttl' (1h)"});
  CHECK(errors_of(with_interface("[resolver]\noutgoing_address = [\"192.0.2.9\", "
                                 "\"203.0.113.1\"]\n")) ==
        Strings{"t.toml:2:34: error: 'resolver.outgoing_address': 203.0.113.1 is not inside "
                "any interface's prefix"});
  CHECK(errors_of(with_interface("[resolver]\noutgoing_address = [\"::\"]\n")) ==
        Strings{"t.toml:2:21: error: 'resolver.outgoing_address': \"::\" is not an address"});
  CHECK(errors_of(with_interface("[resolver]\nallow = [\"192.0.2.0/33\"]\n")) ==
        Strings{"t.toml:2:10: error: 'resolver.allow': \"192.0.2.0/33\" is not an address with a "
                "prefix length (e.g. \"192.0.2.1/24\")"});
}

TEST_CASE("an allow that admits every address needs allow_open", "[platform][config]") {
  CHECK(errors_of(with_interface("[resolver]\nallow = [\"192.0.2.0/24\", \"0.0.0.0/0\"]\n")) ==
        Strings{"t.toml:2:26: error: 'resolver.allow': \"0.0.0.0/0\" admits every address (an "
                "open resolver); set 'resolver.allow_open = true' if that is meant"});
  CHECK(errors_of(with_interface("[resolver]\nallow = [\"::/0\"]\n")).size() == 1);
  CHECK(errors_of(with_interface("[resolver]\nallow = [\"10.1.2.3/0\"]\n")).size() == 1);
  CHECK(errors_of(with_interface("[resolver]\nallow = [\"2001:db8::1/0\"]\n")).size() == 1);
  // Meant: no error, and the prefix is kept.
  const auto open = parse_ok(with_interface("[resolver]\nallow = [\"0.0.0.0/0\", \"::/0\"]\n"
                                            "allow_open = true\n"));
  CHECK(open.resolver.allow_open);
  CHECK(open.resolver.allow.size() == 2);
  // allow_open alone changes nothing else; /1 is not every address.
  CHECK(errors_of(with_interface("[resolver]\nallow = [\"0.0.0.0/1\"]\n")).empty());
  // allow = [] takes the internal networks: one written /0 is every address.
  const auto errs = errors_of(
      "[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = [\"192.0.2.1/0\"]\n"
      "socks_port = 1080\ndns_port = 53\n");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].rfind("t.toml:4:14: error: internal interface 'eth1': ", 0) == 0);
  CHECK(errors_of("[[interface]]\nname = \"eth1\"\nrole = \"internal\"\naddresses = "
                  "[\"192.0.2.1/0\"]\nsocks_port = 1080\ndns_port = 53\n[resolver]\n"
                  "allow = [\"192.0.2.0/24\"]\n")
            .empty());
}

TEST_CASE("every error is reported, in file order, and nothing is applied", "[platform][config]") {
  Diagnostics d;
  d.warning({"other.conf", 1, 1}, "kept");  // the parser appends, never clears
  const auto cfg = parse_gateway_config(R"([log]
level = "loud"
[sockd]
threads = -1
bogus = 1
[[interface]]
name = "eth1"
role = "internal"
addresses = ["192.0.2.1/24"]
socks_port = 99999
)",
                                        "t.toml", d);
  CHECK_FALSE(cfg.has_value());
  CHECK(d.format() ==
        "other.conf:1:1: warning: kept\n"
        "t.toml:2:9: error: 'log.level' must be one of debug, info, notice, warning, error; got "
        "\"loud\"\n"
        "t.toml:4:11: error: 'sockd.threads' must be in 0..1024, got -1\n"
        "t.toml:5:1: error: unknown key 'sockd.bogus'\n"
        "t.toml:10:14: error: 'interface.socks_port' must be in 0..65535, got 99999\n");
}

// ---------------------------------------------------------------------------
// Files

TEST_CASE("load_gateway_config reads files and resolves relative paths", "[platform][config]") {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("diode-config-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "gateway.toml";
  {
    std::ofstream out(file);
    out << with_interface(
        "[files]\nsockd_conf = \"sockd.conf\"\nsockd_route = \"\"\n"
        "users = \"/etc/diode/users\"\nroot_hints = \"sub/root.hints\"\n");
  }
  Diagnostics d;
  const auto cfg = load_gateway_config(file.string(), d);
  INFO(d.format());
  REQUIRE(cfg.has_value());
  CHECK(cfg->files.sockd_conf == (dir / "sockd.conf").string());
  CHECK(cfg->files.sockd_route.empty());
  CHECK(cfg->files.users == "/etc/diode/users");
  CHECK(cfg->files.root_hints == (dir / "sub/root.hints").string());

  // Errors name the file as given.
  {
    std::ofstream out(file);
    out << "[sockd]\nthreads = true\n";
  }
  Diagnostics bad;
  CHECK_FALSE(load_gateway_config(file.string(), bad).has_value());
  CHECK(bad.format() == file.string() +
                            ":1:1: error: no internal interface: at least one "
                            "[[interface]] with role = \"internal\" is required\n" +
                            file.string() +
                            ":2:11: error: 'sockd.threads' expects an integer, got a boolean\n");

  // A file past the size limit is refused before it is parsed.
  {
    std::ofstream out(file);
    const std::string comment(1023, '#');
    for (int i = 0; i < 5 * 1024; ++i) out << comment << '\n';
  }
  Diagnostics huge;
  CHECK_FALSE(load_gateway_config(file.string(), huge).has_value());
  CHECK(huge.format() == file.string() + ": error: file is larger than 4 MiB\n");

  Diagnostics dir_diag;
  CHECK_FALSE(load_gateway_config(dir.string(), dir_diag).has_value());
  CHECK(dir_diag.format() == dir.string() + ": error: cannot read: Is a directory\n");
  fs::remove_all(dir);

  Diagnostics missing;
  CHECK_FALSE(load_gateway_config((dir / "absent.toml").string(), missing).has_value());
  CHECK(missing.format() ==
        (dir / "absent.toml").string() + ": error: cannot open: No such file or directory\n");
}

// ---------------------------------------------------------------------------
// Helpers

TEST_CASE("derived settings", "[platform][config]") {
  const GatewayConfig cfg = parse_ok(R"(
[[interface]]
name = "eth1"
role = "internal"
addresses = ["192.0.2.1/24", "192.0.2.2/24", "2001:db8:1::1/64"]
dns_port = 0
[[interface]]
name = "eth2"
role = "internal"
addresses = ["203.0.113.129/25"]
dns_port = 5353
[[interface]]
name = "eth0"
role = "external"
addresses = ["198.51.100.1/24"]
)");
  CHECK(gateway_addresses(cfg) ==
        std::vector<IpAddress>{address("192.0.2.1"), address("192.0.2.2"), address("2001:db8:1::1"),
                               address("203.0.113.129"), address("198.51.100.1")});
  CHECK(internal_networks(cfg) == std::vector<Prefix>{prefix("192.0.2.0/24"),
                                                      prefix("2001:db8:1::/64"),
                                                      prefix("203.0.113.128/25")});
  // eth1 has no resolver listener, so the relay asks eth2's.
  CHECK(effective_nameserver(cfg) == Endpoint{address("203.0.113.129"), 5353});
  CHECK(external_interface(cfg)->name == "eth0");
  CHECK(effective_resolver_allow(cfg) ==
        std::vector<Prefix>{prefix("192.0.2.0/24"), prefix("2001:db8:1::/64"),
                            prefix("203.0.113.128/25"), prefix("127.0.0.0/8"), prefix("::1/128")});
  CHECK(GatewayConfig{}.interfaces.empty());
  CHECK(effective_nameserver(GatewayConfig{}) == std::nullopt);
}

TEST_CASE("a toml++ syntax error quoting a newline is still one diagnostic line",
          "[platform][config]") {
  // Found by the config fuzz target: toml++ quotes the offending input, here
  // "n" and the line break after it.
  Diagnostics diags;
  const auto cfg = parse_gateway_config("[sockd]\nnameserver =n\n", "g.toml", diags);
  CHECK_FALSE(cfg);
  REQUIRE(diags.items().size() == 1);
  const std::string line = diags.items()[0].format();
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.rfind("g.toml:2:", 0) == 0);
  CHECK(line.find("\\n") != std::string::npos);
}

// Value syntax of gateway.toml (durations, sizes, enum names) and the
// helpers that derive effective settings from a validated GatewayConfig.
#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include "diode/platform/config.hpp"

namespace diode::platform {

std::string_view to_string(InterfaceRole r) {
  return r == InterfaceRole::Internal ? "internal" : "external";
}

std::string_view to_string(IdentdMode m) {
  switch (m) {
    case IdentdMode::Off:
      return "off";
    case IdentdMode::Lenient:
      return "lenient";
    case IdentdMode::Strict:
      return "strict";
  }
  return "off";
}

std::string_view to_string(IoPath p) {
  switch (p) {
    case IoPath::Auto:
      return "auto";
    case IoPath::Uring:
      return "uring";
    case IoPath::Epoll:
      return "epoll";
  }
  return "auto";
}

std::string_view to_string(SocksMethod m) {
  return m == SocksMethod::None ? "none" : "userpass";
}

std::string_view to_string(LogFormat f) {
  return f == LogFormat::Text ? "text" : "json";
}

std::string_view to_string(LogTarget t) {
  return t == LogTarget::Stderr ? "stderr" : "syslog";
}

std::string_view to_string(LogLevel l) {
  switch (l) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Notice:
      return "notice";
    case LogLevel::Warning:
      return "warning";
    case LogLevel::Error:
      return "error";
  }
  return "info";
}

namespace {

// Splits "123unit" into its decimal number and unit; nullopt when the number
// is missing, signed or does not fit 64 bits.
std::optional<std::pair<std::uint64_t, std::string_view>> split_number(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, n);
  if (ec != std::errc{} || ptr != text.data() + digits) return std::nullopt;
  return std::pair{n, text.substr(digits)};
}

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// Largest first, so formatting picks the largest exact unit.
constexpr std::array<Unit, 5> kDurationUnits{
    {{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};
constexpr std::array<Unit, 4> kSizeUnits{
    {{"TiB", 1ULL << 40}, {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}}};

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto split = split_number(text);
  if (!split) return std::nullopt;
  auto [n, unit] = *split;
  // A unit is required: "30" could as well be meant as milliseconds.
  std::uint64_t factor = 0;
  for (const auto& u : kDurationUnits) {
    if (u.name == unit) factor = u.factor;
  }
  if (factor == 0) return std::nullopt;
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (n > kMax / factor) return std::nullopt;
  return std::chrono::milliseconds{static_cast<std::int64_t>(n * factor)};
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms <= 0) return std::to_string(ms < 0 ? 0 : ms) + "s";
  const auto v = static_cast<std::uint64_t>(ms);
  for (const auto& u : kDurationUnits) {
    if (v % u.factor == 0) return std::to_string(v / u.factor) + std::string{u.name};
  }
  return std::to_string(v) + "ms";
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  auto split = split_number(text);
  if (!split) return std::nullopt;
  auto [n, unit] = *split;
  for (const auto& u : kSizeUnits) {
    if (u.name != unit) continue;
    if (n > std::numeric_limits<std::uint64_t>::max() / u.factor) return std::nullopt;
    return n * u.factor;
  }
  return std::nullopt;
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0) {
    for (const auto& u : kSizeUnits) {
      if (bytes % u.factor == 0) return std::to_string(bytes / u.factor) + std::string{u.name};
    }
  }
  return std::to_string(bytes);
}

std::vector<IpAddress> gateway_addresses(const GatewayConfig& cfg) {
  std::vector<IpAddress> out;
  for (const auto& itf : cfg.interfaces) {
    for (const auto& p : itf.addresses) out.push_back(p.addr);
  }
  return out;
}

std::vector<Prefix> internal_networks(const GatewayConfig& cfg) {
  std::vector<Prefix> out;
  for (const auto& itf : cfg.interfaces) {
    if (itf.role != InterfaceRole::Internal) continue;
    for (const auto& p : itf.addresses) {
      Prefix net = p;
      const IpAddress mask = mask_of_length(p.addr.family, p.length);
      for (std::size_t i = 0; i < net.addr.size(); ++i) {
        net.addr.bytes[i] = static_cast<std::uint8_t>(net.addr.bytes[i] & mask.bytes[i]);
      }
      if (std::find(out.begin(), out.end(), net) == out.end()) out.push_back(net);
    }
  }
  return out;
}

const InterfaceConfig* external_interface(const GatewayConfig& cfg) {
  for (const auto& itf : cfg.interfaces) {
    if (itf.role == InterfaceRole::External) return &itf;
  }
  return nullptr;
}

std::optional<Endpoint> effective_nameserver(const GatewayConfig& cfg) {
  if (cfg.sockd.nameserver) return cfg.sockd.nameserver;
  for (const auto& itf : cfg.interfaces) {
    if (itf.role == InterfaceRole::Internal && itf.dns_port != 0 && !itf.addresses.empty()) {
      return Endpoint{itf.addresses.front().addr, itf.dns_port};
    }
  }
  return std::nullopt;
}

std::vector<Prefix> effective_resolver_allow(const GatewayConfig& cfg) {
  if (!cfg.resolver.allow.empty()) return cfg.resolver.allow;
  std::vector<Prefix> out = internal_networks(cfg);
  for (auto text : {"127.0.0.0/8", "::1/128"}) {
    auto p = Prefix::parse(text);
    if (p && std::find(out.begin(), out.end(), *p) == out.end()) out.push_back(*p);
  }
  return out;
}

}  // namespace diode::platform

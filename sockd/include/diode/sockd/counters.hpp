#pragma once
// sockd's counters for its control socket (`stats`, `metrics`): sessions by
// outcome, reply codes, bytes, and the handshake and connect latencies.
// Each worker thread owns one SessionCounters and alone adds to it (relaxed
// atomics: no lock, no allocation, no shared cache line on the session
// path); a control command adds the workers' snapshots together.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "diode/platform/metrics.hpp"

namespace diode::sockd {

/// How a session ended, as its log line shows it (docs/sockd.md, "Counters").
enum class Outcome : std::uint8_t {
  Permitted,   // verdict=permit and relayed (or BIND/UDP granted)
  Denied,      // verdict=deny: a rule, the default deny, protect_internal, a failed password
  Failed,      // verdict=permit, but the destination could not be reached
  Malformed,   // a protocol error in the handshake
  Unresolved,  // the destination name did not resolve (no verdict)
  Incomplete,  // the client went away or timed out during the handshake
  Limited,     // refused at accept by max_sessions / max_sessions_per_client
};
inline constexpr std::size_t kOutcomes = 7;

/// One worker's counters.
struct SessionCounters {
  std::atomic<std::uint64_t> accepted{0};
  std::array<std::atomic<std::uint64_t>, kOutcomes> outcomes{};
  std::array<std::atomic<std::uint64_t>, 256> replies{};  // by the last reply code sent
  std::atomic<std::uint64_t> bytes_up{0};
  std::atomic<std::uint64_t> bytes_down{0};
  platform::metrics::LatencyHistogram handshake;  // accept → request parsed
  platform::metrics::LatencyHistogram connect;    // first connect attempt → connected

  void add_outcome(Outcome o) noexcept {
    outcomes[static_cast<std::size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  }
};

/// Several workers' counters added together, plus the daemon-wide values.
struct CounterTotals {
  std::uint64_t accepted = 0;
  std::array<std::uint64_t, kOutcomes> outcomes{};
  std::array<std::uint64_t, 256> replies{};
  std::uint64_t bytes_up = 0;
  std::uint64_t bytes_down = 0;
  platform::metrics::HistogramSnapshot handshake;
  platform::metrics::HistogramSnapshot connect;
  // Daemon-wide.
  std::uint64_t sessions_open = 0;
  std::uint64_t accept_errors = 0;
  std::uint64_t reloads = 0;
  std::uint64_t reload_failures = 0;
  std::uint64_t rules = 0;  // lines of the current sockd.conf
  std::uint64_t uptime_seconds = 0;

  void add(const SessionCounters& c);
  std::uint64_t outcome(Outcome o) const { return outcomes[static_cast<std::size_t>(o)]; }
};

/// The `stats` reply: one line of `key=value` pairs in a fixed order, ending
/// with a newline.
std::string format_stats(const CounterTotals& t);

/// The `metrics` reply: Prometheus text exposition format 0.0.4, names
/// prefixed `diode_sockd_`, no label naming the process (the supervisor
/// adds `child`).
std::string format_metrics(const CounterTotals& t);

}  // namespace diode::sockd

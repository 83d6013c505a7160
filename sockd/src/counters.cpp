#include "diode/sockd/counters.hpp"

namespace diode::sockd {

namespace {

using platform::metrics::label;

std::uint64_t load(const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); }

}  // namespace

void CounterTotals::add(const SessionCounters& c) {
  accepted += load(c.accepted);
  for (std::size_t i = 0; i < outcomes.size(); ++i) outcomes[i] += load(c.outcomes[i]);
  for (std::size_t i = 0; i < replies.size(); ++i) replies[i] += load(c.replies[i]);
  bytes_up += load(c.bytes_up);
  bytes_down += load(c.bytes_down);
  handshake += c.handshake.snapshot();
  connect += c.connect.snapshot();
}

std::string format_stats(const CounterTotals& t) {
  std::string out;
  const auto kv = [&out](const char* k, std::uint64_t v) {
    if (!out.empty()) out += ' ';
    out += k;
    out += '=';
    out += std::to_string(v);
  };
  kv("sessions_open", t.sessions_open);
  kv("sessions_total", t.accepted);
  kv("permitted", t.outcome(Outcome::Permitted));
  kv("denied", t.outcome(Outcome::Denied));
  kv("failed", t.outcome(Outcome::Failed));
  kv("malformed", t.outcome(Outcome::Malformed));
  kv("unresolved", t.outcome(Outcome::Unresolved));
  kv("incomplete", t.outcome(Outcome::Incomplete));
  kv("limited", t.outcome(Outcome::Limited));
  kv("bytes_up", t.bytes_up);
  kv("bytes_down", t.bytes_down);
  kv("handshakes", t.handshake.count());
  kv("connects", t.connect.count());
  kv("accept_errors", t.accept_errors);
  kv("reloads", t.reloads);
  kv("reload_failures", t.reload_failures);
  kv("rules", t.rules);
  kv("uptime_seconds", t.uptime_seconds);
  out += '\n';
  return out;
}

std::string format_metrics(const CounterTotals& t) {
  platform::metrics::TextWriter w;
  w.counter("diode_sockd_sessions_accepted_total", "Client connections accepted.", t.accepted);
  w.gauge("diode_sockd_sessions_open", "Sessions running now.", t.sessions_open);

  // The verdict label is the log line's verdict key; "none" when the
  // session ended before a decision.
  w.family("diode_sockd_sessions_total", "counter", "Finished sessions by verdict.");
  w.sample("diode_sockd_sessions_total", label("verdict", "permit"),
           t.outcome(Outcome::Permitted) + t.outcome(Outcome::Failed));
  w.sample("diode_sockd_sessions_total", label("verdict", "deny"), t.outcome(Outcome::Denied));
  w.sample("diode_sockd_sessions_total", label("verdict", "none"),
           t.outcome(Outcome::Malformed) + t.outcome(Outcome::Unresolved) +
               t.outcome(Outcome::Incomplete) + t.outcome(Outcome::Limited));
  w.counter("diode_sockd_connect_failures_total",
            "Permitted sessions whose destination could not be reached.", t.outcome(Outcome::Failed));
  w.family("diode_sockd_sessions_undecided_total", "counter",
           "Sessions that ended before a verdict, by reason.");
  w.sample("diode_sockd_sessions_undecided_total", label("reason", "malformed"),
           t.outcome(Outcome::Malformed));
  w.sample("diode_sockd_sessions_undecided_total", label("reason", "unresolved"),
           t.outcome(Outcome::Unresolved));
  w.sample("diode_sockd_sessions_undecided_total", label("reason", "incomplete"),
           t.outcome(Outcome::Incomplete));
  w.sample("diode_sockd_sessions_undecided_total", label("reason", "limit"),
           t.outcome(Outcome::Limited));

  w.family("diode_sockd_replies_total", "counter",
           "Sessions by the last reply code sent (SOCKS5 REP, or SOCKS4 CD 90-93).");
  for (std::size_t code = 0; code < t.replies.size(); ++code) {
    // Codes never sent are left out rather than listing 256 zeros; granted
    // (0 and 90) are always there so a dashboard has a series to start from.
    if (t.replies[code] == 0 && code != 0 && code != 90) continue;
    w.sample("diode_sockd_replies_total", label("code", std::to_string(code)), t.replies[code]);
  }

  w.family("diode_sockd_bytes_total", "counter",
           "Bytes relayed, counted when a session ends (up: client to destination).");
  w.sample("diode_sockd_bytes_total", label("direction", "up"), t.bytes_up);
  w.sample("diode_sockd_bytes_total", label("direction", "down"), t.bytes_down);

  w.histogram("diode_sockd_handshake_seconds",
              "Time from accept to a parsed request (authentication included).", t.handshake);
  w.histogram("diode_sockd_connect_seconds",
              "Time from the first connect attempt to a connected destination (CONNECT only).",
              t.connect);

  w.counter("diode_sockd_accept_errors_total", "Failed accept() calls.", t.accept_errors);
  w.counter("diode_sockd_reloads_total", "Successful reloads (SIGHUP).", t.reloads);
  w.counter("diode_sockd_reload_failures_total", "Reloads refused for an invalid configuration.",
            t.reload_failures);
  w.gauge("diode_sockd_rules", "Rule lines in the current sockd.conf.", t.rules);
  w.gauge("diode_sockd_uptime_seconds", "Seconds since the daemon started.", t.uptime_seconds);
  return w.text();
}

}  // namespace diode::sockd

#pragma once
// The one logger of every Diode process: structured
// `time=ISO8601 event=NAME key=value ...` lines (or one JSON object a line),
// to stderr (the journal) or syslog, filtered by level, honouring [log] of
// gateway.toml. Thread-safe: each line is written whole with one write(2).
// (It is sockd's former logger, line for line, so existing log readers and
// tests keep working.)

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "diode/platform/config.hpp"
#include "diode/platform/log_limit.hpp"

namespace diode::platform {

using LogFields = std::vector<std::pair<std::string, std::string>>;

class Logger {
 public:
  /// `program` is the syslog ident ("diode-gateway", "sockd", "diode-resolver").
  Logger(std::string program, LogSettings settings);
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  /// Applies a new [log] section (SIGHUP); format, target and level.
  void configure(LogSettings settings);
  LogSettings settings() const;
  /// Whether a line at `level` would be written, without the lock (the
  /// per-session callers ask before they format anything).
  bool enabled(LogLevel level) const noexcept {
    return !(level < level_.load(std::memory_order_relaxed));
  }

  /// `event=NAME` followed by the fields, at `level`; dropped below the
  /// configured level. Values are quoted by platform::quote_value (text) or
  /// json_string (JSON).
  void event(LogLevel level, std::string_view name, const LogFields& fields = {});
  /// event(), for lines that clients can cause: at most limiter.per_second()
  /// lines of event `name` a second; when lines were suppressed, first one
  /// `event=log_suppressed what=NAME count=N` line (see log_limit.hpp).
  void limited_event(LogRateLimiter& limiter, LogLevel level, std::string_view name,
                     const LogFields& fields = {});
  /// The log_suppressed lines of the windows that are over (all of them when
  /// `all`, at exit); call it about once a second.
  void report_suppressed(LogRateLimiter& limiter, bool all = false);
  /// Each line of `formatted` (file:line:col: error: ... lines) as its own
  /// line at level Error: as it stands in text, as
  /// {"event":"config_error","message":"..."} in JSON.
  void diagnostics(const std::string& formatted);
  /// A line already formatted (text or JSON, as format() says), at `level`.
  void write(LogLevel level, const std::string& line);

  LogFormat format() const;

 private:
  std::string program_;
  LogSettings settings_;
  std::atomic<LogLevel> level_;  // settings_.level, readable without mu_
  mutable std::mutex mu_;
};

}  // namespace diode::platform

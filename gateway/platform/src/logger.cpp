#include "diode/platform/logger.hpp"

#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "diode/platform/log_text.hpp"

namespace diode::platform {

namespace {

int syslog_priority(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return LOG_DEBUG;
    case LogLevel::Info: return LOG_INFO;
    case LogLevel::Notice: return LOG_NOTICE;
    case LogLevel::Warning: return LOG_WARNING;
    case LogLevel::Error: return LOG_ERR;
  }
  return LOG_NOTICE;
}

void write_stderr(const std::string& out) {
  const char* p = out.data();
  std::size_t left = out.size();
  for (int tries = 0; left > 0 && tries < 100; ++tries) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

Logger::Logger(std::string program, LogSettings settings)
    : program_(std::move(program)), settings_(settings), level_(settings.level) {
  // openlog keeps the pointer: program_ lives as long as the logger.
  if (settings_.target == LogTarget::Syslog) ::openlog(program_.c_str(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

Logger::~Logger() {
  if (settings_.target == LogTarget::Syslog) ::closelog();
}

void Logger::configure(LogSettings settings) {
  std::lock_guard lock(mu_);
  if (settings.target != settings_.target) {
    if (settings.target == LogTarget::Syslog) {
      ::openlog(program_.c_str(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
    } else {
      ::closelog();
    }
  }
  settings_ = settings;
  level_.store(settings.level, std::memory_order_relaxed);
}

LogSettings Logger::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

LogFormat Logger::format() const { return settings().format; }

void Logger::limited_event(LogRateLimiter& limiter, LogLevel level, std::string_view name,
                           const LogFields& fields) {
  const LogRateLimiter::Decision d = limiter.admit(name);
  if (d.suppressed > 0) {
    event(LogLevel::Notice, "log_suppressed",
          {{"what", std::string{name}}, {"count", std::to_string(d.suppressed)}});
  }
  if (d.write) event(level, name, fields);
}

void Logger::report_suppressed(LogRateLimiter& limiter, bool all) {
  for (const auto& [what, count] : all ? limiter.flush_all() : limiter.flush()) {
    event(LogLevel::Notice, "log_suppressed", {{"what", what}, {"count", std::to_string(count)}});
  }
}

void Logger::event(LogLevel level, std::string_view name, const LogFields& fields) {
  const LogSettings s = settings();
  if (level < s.level) return;  // not even formatted
  const std::string time = iso_time(std::chrono::system_clock::now());
  std::string line;
  if (s.format == LogFormat::Json) {
    line = "{\"time\":" + json_string(time) + ",\"event\":" + json_string(name);
    for (const auto& [k, v] : fields) line += "," + json_string(k) + ":" + json_string(v);
    line += '}';
  } else {
    line = "time=" + quote_value(time) + " event=" + quote_value(name);
    for (const auto& [k, v] : fields) line += " " + k + "=" + quote_value(v);
  }
  write(level, line);
}

void Logger::diagnostics(const std::string& formatted) {
  const bool json = format() == LogFormat::Json;
  std::size_t start = 0;
  while (start < formatted.size()) {
    std::size_t end = formatted.find('\n', start);
    if (end == std::string::npos) end = formatted.size();
    if (end > start) {
      std::string line = formatted.substr(start, end - start);
      if (json) line = "{\"event\":\"config_error\",\"message\":" + json_string(line) + "}";
      write(LogLevel::Error, line);
    }
    start = end + 1;
  }
}

void Logger::write(LogLevel level, const std::string& line) {
  // One lock for the check and the write: a line from several threads never
  // interleaves with another, and configure() never changes a target under it.
  std::lock_guard lock(mu_);
  if (level < settings_.level) return;
  if (settings_.target == LogTarget::Syslog) {
    ::syslog(syslog_priority(level), "%s", line.c_str());
    return;
  }
  write_stderr(line + '\n');
}

}  // namespace diode::platform

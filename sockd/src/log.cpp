#include "diode/sockd/log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "diode/platform/log_text.hpp"

namespace diode::sockd {

namespace {

using platform::LogFormat;
using platform::LogLevel;
using platform::LogTarget;

std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%.*s.%03dZ", static_cast<int>(n), buf,
                static_cast<int>(ms.count() % 1000));
  return out;
}

std::string seconds_text(std::chrono::milliseconds d) {
  char out[32];
  std::snprintf(out, sizeof out, "%lld.%03lld", static_cast<long long>(d.count() / 1000),
                static_cast<long long>(d.count() % 1000));
  return out;
}

using platform::json_string;

using Fields = std::vector<std::pair<std::string_view, std::string>>;

Fields fields_of(const SessionRecord& r) {
  Fields f;
  f.emplace_back("time", iso_time(r.start));
  f.emplace_back("event", r.event);
  f.emplace_back("client", r.client);
  if (!r.listener.empty()) f.emplace_back("listener", r.listener);
  f.emplace_back("version", r.version.empty() ? "-" : r.version);
  f.emplace_back("user", r.user.empty() ? "-" : r.user);
  f.emplace_back("method", r.method.empty() ? "-" : r.method);
  f.emplace_back("cmd", r.cmd.empty() ? "-" : r.cmd);
  f.emplace_back("dst", r.dst.empty() ? "-" : r.dst);
  f.emplace_back("addr", r.addr.empty() ? "-" : r.addr);
  f.emplace_back("rule", r.rule.empty() ? "-" : r.rule);
  f.emplace_back("verdict", r.verdict.empty() ? "-" : r.verdict);
  f.emplace_back("reply", r.reply < 0 ? "-" : std::to_string(r.reply));
  f.emplace_back("up", std::to_string(r.up));
  f.emplace_back("down", std::to_string(r.down));
  f.emplace_back("duration", seconds_text(r.duration));
  f.emplace_back("reason", r.reason.empty() ? "-" : r.reason);
  return f;
}

std::string join_text(const Fields& f) {
  std::string out;
  for (const auto& [k, v] : f) {
    if (!out.empty()) out += ' ';
    out += k;
    out += '=';
    out += quote_value(v);
  }
  return out;
}

std::string join_json(const Fields& f) {
  std::string out = "{";
  for (const auto& [k, v] : f) {
    if (out.size() > 1) out += ',';
    out += json_string(k);
    out += ':';
    out += json_string(v);
  }
  out += '}';
  return out;
}

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

}  // namespace

std::string format_text(const SessionRecord& r) { return join_text(fields_of(r)); }

std::string format_json(const SessionRecord& r) { return join_json(fields_of(r)); }

Logger::Logger(LogFormat format, LogTarget target, LogLevel level)
    : format_(format), target_(target), level_(level) {
  if (target_ == LogTarget::Syslog) ::openlog("sockd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

Logger::~Logger() {
  if (target_ == LogTarget::Syslog) ::closelog();
}

void Logger::session(const SessionRecord& r) {
  if (LogLevel::Info < level_) return;  // not even formatted
  write(LogLevel::Info, format_ == LogFormat::Json ? format_json(r) : format_text(r));
}

void Logger::event(LogLevel level, std::string_view name,
                   const std::vector<std::pair<std::string, std::string>>& fields) {
  if (level < level_) return;
  Fields f;
  f.emplace_back("time", iso_time(std::chrono::system_clock::now()));
  f.emplace_back("event", std::string(name));
  for (const auto& [k, v] : fields) f.emplace_back(k, v);
  write(level, format_ == LogFormat::Json ? join_json(f) : join_text(f));
}

void Logger::diagnostics(const std::string& formatted_lines) {
  std::size_t start = 0;
  while (start < formatted_lines.size()) {
    std::size_t end = formatted_lines.find('\n', start);
    if (end == std::string::npos) end = formatted_lines.size();
    if (end > start) {
      std::string line = formatted_lines.substr(start, end - start);
      if (format_ == LogFormat::Json) line = "{\"event\":\"config_error\",\"message\":" + json_string(line) + "}";
      write(LogLevel::Error, line);
    }
    start = end + 1;
  }
}

void Logger::write(LogLevel level, const std::string& line) {
  if (level < level_) return;
  if (target_ == LogTarget::Syslog) {
    ::syslog(syslog_priority(level), "%s", line.c_str());
    return;
  }
  std::string out = line;
  out += '\n';
  // One write(2) per line, under a lock: lines from several threads never
  // interleave.
  std::lock_guard lock(mu_);
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

}  // namespace diode::sockd

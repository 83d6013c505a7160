#include "diode/sockd/log.hpp"

#include <cstdio>

#include "diode/platform/log_text.hpp"

namespace diode::sockd {

namespace {

using platform::LogFormat;
using platform::LogLevel;

using platform::iso_time;

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

}  // namespace

std::string format_text(const SessionRecord& r) { return join_text(fields_of(r)); }

std::string format_json(const SessionRecord& r) { return join_json(fields_of(r)); }

void log_session(platform::Logger& log, const SessionRecord& r) {
  if (!log.enabled(LogLevel::Info)) return;
  const platform::LogSettings s = log.settings();
  if (LogLevel::Info < s.level) return;
  log.write(LogLevel::Info, s.format == LogFormat::Json ? format_json(r) : format_text(r));
}

}  // namespace diode::sockd

#include "diode/platform/log_text.hpp"

#include <cstdio>
#include <ctime>

namespace diode::platform {

namespace {

bool is_safe(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         c == '.' || c == ':' || c == '-' || c == '_' || c == '/' || c == '[' || c == ']' ||
         c == '@' || c == '+' || c == ',';
}

const char kHex[] = "0123456789abcdef";

// `v` in double quotes, with `"` and `\` escaped and every byte outside
// printable ASCII written as `hex_prefix` and two hex digits. Client-supplied
// bytes need not be UTF-8, so every non-ASCII byte is escaped: the line stays
// valid (text or JSON) and the byte value survives.
std::string quoted(std::string_view v, std::string_view hex_prefix) {
  std::string out = "\"";
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      out += hex_prefix;
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace

std::string quote_value(std::string_view v) {
  bool safe = !v.empty();
  for (char c : v) safe = safe && is_safe(c);
  if (safe) return std::string(v);
  return quoted(v, "\\x");
}

std::string json_string(std::string_view v) { return quoted(v, "\\u00"); }

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

}  // namespace diode::platform

#include "diode/sockd/rule_hits.hpp"

#include <charconv>
#include <ctime>

namespace diode::sockd {

namespace {

std::int64_t to_unix(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// "2024-05-01T12:00:00Z" (exactly what iso8601_utc writes), or "-" for 0.
bool parse_iso8601(std::string_view s, std::int64_t& out) {
  if (s == "-") {
    out = 0;
    return true;
  }
  if (s.size() != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != 'Z') {
    return false;
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  if (!parse_number(s.substr(0, 4), y) || !parse_number(s.substr(5, 2), mo) ||
      !parse_number(s.substr(8, 2), d) || !parse_number(s.substr(11, 2), h) ||
      !parse_number(s.substr(14, 2), mi) || !parse_number(s.substr(17, 2), se)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  out = static_cast<std::int64_t>(::timegm(&tm));
  return true;
}

// "hits=N last=T" after a line's label.
bool parse_counts(std::string_view rest, HitCount& out) {
  rest = trim(rest);
  if (rest.rfind("hits=", 0) != 0) return false;
  rest.remove_prefix(5);
  const auto sp = rest.find(' ');
  if (sp == std::string_view::npos) return false;
  if (!parse_number(rest.substr(0, sp), out.hits)) return false;
  rest = trim(rest.substr(sp + 1));
  if (rest.rfind("last=", 0) != 0) return false;
  return parse_iso8601(rest.substr(5), out.last);
}

void add(HitCount& into, const HitCount& c) {
  into.hits += c.hits;
  if (c.last > into.last) into.last = c.last;
}

}  // namespace

RuleHits::RuleHits(std::size_t rules, std::chrono::system_clock::time_point since)
    : n_(rules), slots_(std::make_unique<Slot[]>(rules + 1)), since_(since) {}

void RuleHits::record(std::optional<std::size_t> index,
                      std::chrono::system_clock::time_point now) noexcept {
  Slot& s = slots_[index && *index < n_ ? *index : n_];
  s.hits.fetch_add(1, std::memory_order_relaxed);
  // Last writer wins: threads racing within the same second agree anyway.
  s.last.store(to_unix(now), std::memory_order_relaxed);
}

HitCount RuleHits::rule(std::size_t index) const noexcept {
  const Slot& s = slots_[index < n_ ? index : n_];
  return {s.hits.load(std::memory_order_relaxed), s.last.load(std::memory_order_relaxed)};
}

HitCount RuleHits::fallback() const noexcept { return rule(n_); }

std::string iso8601_utc(std::int64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

std::string format_hits(const RuleSet& rules, const RuleHits& hits) {
  std::string out = "# hits since " + iso8601_utc(to_unix(hits.since())) + "\n";
  const auto line = [&out](const std::string& label, const HitCount& c) {
    out += label + " hits=" + std::to_string(c.hits) + " last=" + iso8601_utc(c.last) + "\n";
  };
  for (std::size_t i = 0; i < rules.rules.size(); ++i) {
    const Rule& r = rules.rules[i];
    line(r.pos.file + ":" + std::to_string(r.pos.line), hits.rule(i));
  }
  line("default", hits.fallback());
  return out;
}

std::optional<HitsReport> parse_hits(std::string_view text, const std::string& file,
                                     platform::Diagnostics& diags) {
  HitsReport rep;
  bool ok = true;
  std::uint32_t n = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++n;
    const std::string_view s = trim(raw);
    if (s.empty()) continue;
    if (s.front() == '#') {
      constexpr std::string_view kSince = "# hits since ";
      std::int64_t t = 0;
      if (s.rfind(kSince, 0) == 0 && parse_iso8601(trim(s.substr(kSince.size())), t) && t > rep.since) {
        rep.since = t;
      }
      continue;
    }
    const auto sp = s.find_first_of(" \t");
    const std::string_view label = s.substr(0, sp);
    HitCount c;
    const bool counts = sp != std::string_view::npos && parse_counts(s.substr(sp), c);
    std::optional<std::pair<std::string, std::uint32_t>> key;
    if (counts && label != "default") {
      // FILE:LINE; the file name itself may hold colons.
      const auto colon = label.rfind(':');
      std::uint32_t ln = 0;
      if (colon != std::string_view::npos && colon > 0 &&
          parse_number(label.substr(colon + 1), ln) && ln > 0) {
        key = std::make_pair(std::string(label.substr(0, colon)), ln);
      }
    }
    if (!counts || (label != "default" && !key)) {
      diags.error({file, n, 1},
                  "not a hits line (want 'FILE:LINE hits=N last=TIME' or 'default hits=N last=TIME')",
                  "hits-syntax");
      ok = false;
      continue;
    }
    if (key) {
      add(rep.rules[*key], c);
    } else {
      if (!rep.fallback) rep.fallback = HitCount{};
      add(*rep.fallback, c);
    }
  }
  if (!ok) return std::nullopt;
  return rep;
}

}  // namespace diode::sockd

#pragma once
// Per-rule hit counters: how many requests each sockd.conf line decided,
// and when it last did. They live beside one loaded rule set (a reload
// starts fresh: the line numbers then mean other rules), and are reported
// by sockd's `hits` control command in a text form that sockd-check reads
// back (`lint --hits`). Both sides of that text live here, so they cannot
// drift apart.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "diode/platform/diagnostics.hpp"
#include "diode/sockd/rules.hpp"

namespace diode::sockd {

/// One rule's (or the default's) count and the time of its last hit.
struct HitCount {
  std::uint64_t hits = 0;
  std::int64_t last = 0;  // seconds since the epoch (UTC); 0 = never
};

/// The counters of one rule set: one per rule, plus the default (requests
/// no rule decided). record() is wait-free (two relaxed atomic stores), for
/// the session path; any thread may record and read.
class RuleHits {
 public:
  explicit RuleHits(std::size_t rules,
                    std::chrono::system_clock::time_point since = std::chrono::system_clock::now());

  /// Counts a decision by rule `index` (nullopt: by no rule) at `now`.
  void record(std::optional<std::size_t> index, std::chrono::system_clock::time_point now) noexcept;
  HitCount rule(std::size_t index) const noexcept;
  HitCount fallback() const noexcept;
  std::size_t size() const { return n_; }
  std::chrono::system_clock::time_point since() const { return since_; }

 private:
  struct Slot {
    std::atomic<std::uint64_t> hits{0};
    std::atomic<std::int64_t> last{0};
  };
  std::size_t n_;
  std::unique_ptr<Slot[]> slots_;  // n_ rules, then the default
  std::chrono::system_clock::time_point since_;
};

/// `2024-05-01T12:00:00Z`, or "-" for 0 (never).
std::string iso8601_utc(std::int64_t unix_seconds);

/// The `hits` report: `# hits since ISO8601` (when counting began), one line
/// `FILE:LINE hits=N last=ISO8601|-` per rule in file order, then
/// `default hits=N last=...`. Ends with a newline.
std::string format_hits(const RuleSet& rules, const RuleHits& hits);

/// A `hits` report read back; several reports concatenated (one per sockd
/// process) are added up line by line.
struct HitsReport {
  std::map<std::pair<std::string, std::uint32_t>, HitCount> rules;  // (FILE, LINE)
  std::optional<HitCount> fallback;
  /// The latest `# hits since` of the reports: every process counted
  /// since then at least. 0 when no report said.
  std::int64_t since = 0;
};

/// Parses `text` (read from `file`, for diagnostics). Malformed lines are
/// errors at their line (code `hits-syntax`); nullopt if there was any.
std::optional<HitsReport> parse_hits(std::string_view text, const std::string& file,
                                     platform::Diagnostics& diags);

}  // namespace diode::sockd

#pragma once
// Latency histograms for the daemons' counters, and a writer of the
// Prometheus text exposition format (version 0.0.4) that their `metrics`
// control command answers with. Shared by sockd and diode-resolver so both
// speak the format the same way. Asio-free: the histogram is relaxed
// atomics, so a session pays a few uncontended adds, never a lock or an
// allocation.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace diode::platform::metrics {

/// Upper bounds, in seconds, of the latency histograms' buckets; the last
/// bucket (+Inf) is implicit. Fixed, so that histograms of several
/// processes (and several threads) can be added bucket by bucket.
inline constexpr std::array<double, 14> kLatencyBounds{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                       0.025,  0.05,  0.1,    0.25,  0.5,
                                                       1,      2.5,   5,      10};

/// What a LatencyHistogram held at one moment (or several added together).
struct HistogramSnapshot {
  /// Observations per bucket, not cumulative; the last one is above every bound.
  std::array<std::uint64_t, kLatencyBounds.size() + 1> buckets{};
  std::uint64_t sum_ns = 0;

  std::uint64_t count() const;
  HistogramSnapshot& operator+=(const HistogramSnapshot& o);
};

/// A latency histogram over kLatencyBounds. observe() is wait-free and may
/// be called from any thread; a thread of its own per histogram avoids
/// cache-line contention, snapshots are then added.
class LatencyHistogram {
 public:
  void observe(std::chrono::nanoseconds d) noexcept;
  /// The count is derived from the buckets, so `_count` always equals the
  /// `+Inf` bucket even while other threads observe.
  HistogramSnapshot snapshot() const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kLatencyBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

/// `key="value"` with the value escaped as the format wants (\\ \" \n).
std::string label(std::string_view key, std::string_view value);

/// A sample value: integers as integers, others in the shortest form that
/// reads back to the same double; +Inf, -Inf and NaN by name.
std::string format_number(double v);

/// Builds one exposition: for each metric family a `# HELP` and a `# TYPE`
/// line, then its samples. The caller keeps each family's samples together.
class TextWriter {
 public:
  /// `type` is counter, gauge or histogram; `help` is escaped here.
  void family(std::string_view name, std::string_view type, std::string_view help);
  /// One sample; `labels` is "" or comma-separated label() pairs, without braces.
  void sample(std::string_view name, std::string_view labels, std::uint64_t value);
  void sample(std::string_view name, std::string_view labels, double value);

  /// A family with one unlabelled sample.
  void counter(std::string_view name, std::string_view help, std::uint64_t value);
  void gauge(std::string_view name, std::string_view help, std::uint64_t value);
  /// `name_bucket{le=...}` (cumulative, ending at +Inf), `name_sum` in
  /// seconds and `name_count`.
  void histogram(std::string_view name, std::string_view help, const HistogramSnapshot& h);

  const std::string& text() const { return out_; }

 private:
  void sample_text(std::string_view name, std::string_view labels, const std::string& value);
  std::string out_;
};

}  // namespace diode::platform::metrics

#include "diode/platform/metrics.hpp"

#include <charconv>
#include <cmath>

namespace diode::platform::metrics {

std::uint64_t HistogramSnapshot::count() const {
  std::uint64_t n = 0;
  for (auto b : buckets) n += b;
  return n;
}

HistogramSnapshot& HistogramSnapshot::operator+=(const HistogramSnapshot& o) {
  for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i] += o.buckets[i];
  sum_ns += o.sum_ns;
  return *this;
}

void LatencyHistogram::observe(std::chrono::nanoseconds d) noexcept {
  const std::int64_t ns = d.count() < 0 ? 0 : d.count();
  // The bounds in nanoseconds, computed once: integer comparisons only.
  static const auto kBoundsNs = [] {
    std::array<std::int64_t, kLatencyBounds.size()> b{};
    for (std::size_t i = 0; i < b.size(); ++i) {
      b[i] = static_cast<std::int64_t>(std::llround(kLatencyBounds[i] * 1e9));
    }
    return b;
  }();
  std::size_t i = 0;
  while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;  // le: a value on a bound is in it
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

HistogramSnapshot LatencyHistogram::snapshot() const noexcept {
  HistogramSnapshot s;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  return s;
}

std::string label(std::string_view key, std::string_view value) {
  std::string out(key);
  out += "=\"";
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  out += '"';
  return out;
}

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::array<char, 64> buf{};
  // Plain decimals where they stay short (bucket bounds read "0.0005", not
  // "5e-04"); exponents only for the very small and the very large.
  const double mag = std::fabs(v);
  const bool plain = mag == 0.0 || (mag >= 1e-6 && mag < 1e15);
  const auto r = plain ? std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed)
                       : std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return std::string(buf.data(), r.ptr);
}

void TextWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  for (char c : help) {
    if (c == '\\') out_ += "\\\\";
    else if (c == '\n') out_ += "\\n";
    else out_ += c;
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void TextWriter::sample_text(std::string_view name, std::string_view labels,
                             const std::string& value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    out_ += labels;
    out_ += '}';
  }
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

void TextWriter::sample(std::string_view name, std::string_view labels, std::uint64_t value) {
  sample_text(name, labels, std::to_string(value));
}

void TextWriter::sample(std::string_view name, std::string_view labels, double value) {
  sample_text(name, labels, format_number(value));
}

void TextWriter::counter(std::string_view name, std::string_view help, std::uint64_t value) {
  family(name, "counter", help);
  sample(name, "", value);
}

void TextWriter::gauge(std::string_view name, std::string_view help, std::uint64_t value) {
  family(name, "gauge", help);
  sample(name, "", value);
}

void TextWriter::histogram(std::string_view name, std::string_view help,
                           const HistogramSnapshot& h) {
  family(name, "histogram", help);
  const std::string base(name);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    cumulative += h.buckets[i];
    const std::string le =
        i < kLatencyBounds.size() ? format_number(kLatencyBounds[i]) : std::string("+Inf");
    sample(base + "_bucket", label("le", le), cumulative);
  }
  sample(base + "_sum", "", static_cast<double>(h.sum_ns) / 1e9);
  sample(base + "_count", "", cumulative);
}

}  // namespace diode::platform::metrics

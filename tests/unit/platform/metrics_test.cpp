// The Prometheus text writer and the latency histogram: bucket edges,
// cumulative buckets ending at +Inf, _count equal to +Inf, escaping.
#include "diode/platform/metrics.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace diode::platform::metrics;
using namespace std::chrono_literals;

TEST_CASE("format_number: integers bare, shortest round-trip, infinities", "[metrics]") {
  CHECK(format_number(1) == "1");
  CHECK(format_number(0.0005) == "0.0005");
  CHECK(format_number(2.5) == "2.5");
  CHECK(format_number(10) == "10");
  CHECK(format_number(30.004) == "30.004");
  CHECK(format_number(1e20) == "1e+20");
  CHECK(format_number(1.0 / 0.0) == "+Inf");
}

TEST_CASE("label escapes backslash, quote and newline", "[metrics]") {
  CHECK(label("code", "0") == "code=\"0\"");
  CHECK(label("k", "a\"b\\c\nd") == "k=\"a\\\"b\\\\c\\nd\"");
}

TEST_CASE("a latency histogram: a value on a bound falls in that bucket", "[metrics]") {
  LatencyHistogram h;
  h.observe(500us);    // le 0.0005
  h.observe(501us);    // le 0.001
  h.observe(3ms);      // le 0.005
  h.observe(20s);      // +Inf
  h.observe(-5ns);     // a clock step back counts as zero
  const HistogramSnapshot s = h.snapshot();
  CHECK(s.count() == 5);
  CHECK(s.buckets[0] == 2);
  CHECK(s.buckets[1] == 1);
  CHECK(s.buckets[3] == 1);
  CHECK(s.buckets.back() == 1);
  CHECK(s.sum_ns == 500'000 + 501'000 + 3'000'000 + 20'000'000'000ULL);
  HistogramSnapshot twice = s;
  twice += s;
  CHECK(twice.count() == 10);
}

TEST_CASE("the text writer: HELP, TYPE, samples and a histogram", "[metrics]") {
  TextWriter w;
  w.family("diode_x_total", "counter", "Things.\nMore \\ things.");
  w.sample("diode_x_total", label("verdict", "permit"), std::uint64_t{3});
  w.gauge("diode_open", "Open now.", 2);
  LatencyHistogram h;
  h.observe(2ms);
  h.observe(2ms);
  h.observe(30s);
  w.histogram("diode_lat_seconds", "Latency.", h.snapshot());
  const std::string& t = w.text();
  CHECK(t.rfind("# HELP diode_x_total Things.\\nMore \\\\ things.\n"
                "# TYPE diode_x_total counter\n"
                "diode_x_total{verdict=\"permit\"} 3\n"
                "# HELP diode_open Open now.\n# TYPE diode_open gauge\ndiode_open 2\n"
                "# HELP diode_lat_seconds Latency.\n# TYPE diode_lat_seconds histogram\n"
                "diode_lat_seconds_bucket{le=\"0.0005\"} 0\n",
                0) == 0);
  CHECK(t.find("diode_lat_seconds_bucket{le=\"0.001\"} 0\n"
               "diode_lat_seconds_bucket{le=\"0.0025\"} 2\n") != std::string::npos);
  CHECK(t.find("diode_lat_seconds_bucket{le=\"10\"} 2\n"
               "diode_lat_seconds_bucket{le=\"+Inf\"} 3\n"
               "diode_lat_seconds_sum 30.004\n"
               "diode_lat_seconds_count 3\n") != std::string::npos);
}

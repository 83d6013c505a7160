// Merging the children's metrics pages into one exposition.
#include <catch2/catch.hpp>

#include "diode/gateway/prometheus.hpp"

using diode::gateway::add_label;
using diode::gateway::merge_metrics;

TEST_CASE("add_label puts the child first, with or without other labels", "[gateway]") {
  CHECK(add_label("up 1", "child", "resolver") == "up{child=\"resolver\"} 1");
  CHECK(add_label("x_total{code=\"0\"} 5", "child", "sockd-lan1") ==
        "x_total{child=\"sockd-lan1\",code=\"0\"} 5");
  CHECK(add_label("x{} 5", "child", "a") == "x{child=\"a\"} 5");
  CHECK(add_label("x 1", "child", "q\"\\") == "x{child=\"q\\\"\\\\\"} 1");
}

TEST_CASE("one HELP and TYPE per family, the samples of every child beneath", "[gateway]") {
  const std::string a =
      "# HELP s_total Sessions.\n# TYPE s_total counter\ns_total{verdict=\"permit\"} 3\n"
      "# HELP h_seconds Handshake.\n# TYPE h_seconds histogram\n"
      "h_seconds_bucket{le=\"0.1\"} 2\nh_seconds_bucket{le=\"+Inf\"} 3\n"
      "h_seconds_sum 0.2\nh_seconds_count 3\n";
  const std::string b =
      "# HELP s_total Sessions.\n# TYPE s_total counter\ns_total{verdict=\"permit\"} 4\n"
      "# HELP h_seconds Handshake.\n# TYPE h_seconds histogram\n"
      "h_seconds_bucket{le=\"0.1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 1\n"
      "h_seconds_sum 0.05\nh_seconds_count 1\ngarbage line\n";
  const std::string merged = merge_metrics({{"sockd-a", a}, {"sockd-b", b}});
  CHECK(merged ==
        "# HELP s_total Sessions.\n# TYPE s_total counter\n"
        "s_total{child=\"sockd-a\",verdict=\"permit\"} 3\n"
        "s_total{child=\"sockd-b\",verdict=\"permit\"} 4\n"
        "# HELP h_seconds Handshake.\n# TYPE h_seconds histogram\n"
        "h_seconds_bucket{child=\"sockd-a\",le=\"0.1\"} 2\n"
        "h_seconds_bucket{child=\"sockd-a\",le=\"+Inf\"} 3\n"
        "h_seconds_sum{child=\"sockd-a\"} 0.2\n"
        "h_seconds_count{child=\"sockd-a\"} 3\n"
        "h_seconds_bucket{child=\"sockd-b\",le=\"0.1\"} 1\n"
        "h_seconds_bucket{child=\"sockd-b\",le=\"+Inf\"} 1\n"
        "h_seconds_sum{child=\"sockd-b\"} 0.05\n"
        "h_seconds_count{child=\"sockd-b\"} 1\n");
}

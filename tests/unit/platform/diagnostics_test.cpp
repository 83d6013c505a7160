#include <catch2/catch.hpp>

#include "diode/platform/diagnostics.hpp"

using namespace diode::platform;

TEST_CASE("diagnostics format as file:line:col: severity: message", "[platform]") {
  Diagnostics d;
  d.error({"sockd.conf", 12, 9}, "bad mask");
  d.warning({"sockd.conf", 3, 0}, "no column");
  d.note({"gateway.toml", 0, 0}, "whole file");
  CHECK(d.items()[0].format() == "sockd.conf:12:9: error: bad mask");
  CHECK(d.items()[1].format() == "sockd.conf:3: warning: no column");
  CHECK(d.items()[2].format() == "gateway.toml: note: whole file");
  CHECK(d.has_errors());
  CHECK(d.count(Severity::Warning) == 1);
}

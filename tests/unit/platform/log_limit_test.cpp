// platform::LogRateLimiter with a clock the test moves.
#include "diode/platform/log_limit.hpp"

#include <catch2/catch.hpp>

using diode::platform::LogRateLimiter;
using namespace std::chrono_literals;

namespace {
struct FakeClock {
  std::chrono::steady_clock::time_point t{std::chrono::hours{1000}};
  LogRateLimiter::Clock fn() {
    return [this] { return t; };
  }
};
}  // namespace

TEST_CASE("at most N lines per kind a second, and the rest counted", "[platform][log]") {
  FakeClock clock;
  LogRateLimiter lim(10, clock.fn());
  unsigned written = 0;
  for (int i = 0; i < 500; ++i) {
    const auto d = lim.admit("servfail");
    CHECK(d.suppressed == 0);
    written += d.write ? 1 : 0;
  }
  CHECK(written == 10);
  // Another kind has its own budget.
  CHECK(lim.admit("refused").write);
  // Nothing is reported while the window lasts.
  clock.t += 999ms;
  CHECK(lim.flush().empty());
  CHECK_FALSE(lim.admit("servfail").write);  // the 501st, still suppressed
  // The next window: the first line comes with the count of the last one.
  clock.t += 1ms;
  const auto d = lim.admit("servfail");
  CHECK(d.write);
  CHECK(d.suppressed == 491);
  // Reported once only.
  clock.t += 2s;
  CHECK(lim.flush().empty());
  CHECK(lim.admit("servfail").suppressed == 0);
}

TEST_CASE("flush reports a flood that stopped", "[platform][log]") {
  FakeClock clock;
  LogRateLimiter lim(3, clock.fn());
  for (int i = 0; i < 7; ++i) (void)lim.admit("a");
  for (int i = 0; i < 4; ++i) (void)lim.admit("b");
  (void)lim.admit("c");
  clock.t += 1500ms;
  auto f = lim.flush();
  REQUIRE(f.size() == 2);
  CHECK(f[0] == std::pair<std::string, std::uint64_t>{"a", 4});
  CHECK(f[1] == std::pair<std::string, std::uint64_t>{"b", 1});
  CHECK(lim.flush().empty());
  // A full budget again after the window.
  for (int i = 0; i < 3; ++i) CHECK(lim.admit("a").write);
  CHECK_FALSE(lim.admit("a").write);
  // flush_all reports a window still open (at exit).
  CHECK(lim.flush().empty());
  f = lim.flush_all();
  REQUIRE(f.size() == 1);
  CHECK(f[0].second == 1);
}

TEST_CASE("a steady trickle below the limit is never suppressed", "[platform][log]") {
  FakeClock clock;
  LogRateLimiter lim(10, clock.fn());
  for (int i = 0; i < 1000; ++i) {
    const auto d = lim.admit("servfail");
    CHECK(d.write);
    CHECK(d.suppressed == 0);
    clock.t += 100ms;
  }
  CHECK(lim.flush_all().empty());
}

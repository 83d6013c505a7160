#include "diode/platform/log_limit.hpp"

namespace diode::platform {

namespace {
constexpr std::chrono::seconds kWindow{1};
constexpr std::size_t kMaxKinds = 1024;  // kinds are the callers' names, but bound them anyway
}  // namespace

LogRateLimiter::LogRateLimiter(unsigned per_second, Clock clock)
    : per_second_(per_second), clock_(std::move(clock)) {}

std::chrono::steady_clock::time_point LogRateLimiter::now() const {
  return clock_ ? clock_() : std::chrono::steady_clock::now();
}

LogRateLimiter::Decision LogRateLimiter::admit(std::string_view kind) {
  const auto t = now();
  std::lock_guard lock(mu_);
  auto it = windows_.find(kind);
  if (it == windows_.end()) {
    if (windows_.size() >= kMaxKinds) return Decision{false, 0};
    it = windows_.emplace(std::string{kind}, Window{t, 0, 0}).first;
  }
  Window& w = it->second;
  Decision d;
  if (t - w.start >= kWindow) {
    d.suppressed = w.suppressed;  // the last window's, reported before this line
    w = Window{t, 0, 0};
  }
  if (w.written < per_second_) {
    ++w.written;
    d.write = true;
  } else {
    ++w.suppressed;
  }
  return d;
}

std::vector<std::pair<std::string, std::uint64_t>> LogRateLimiter::take(bool all) {
  const auto t = now();
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (auto it = windows_.begin(); it != windows_.end();) {
    Window& w = it->second;
    const bool over = t - w.start >= kWindow;
    if ((over || all) && w.suppressed > 0) {
      out.emplace_back(it->first, w.suppressed);
      w.suppressed = 0;
    }
    if (over && w.suppressed == 0) {
      it = windows_.erase(it);  // a fresh window starts with the next line
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::uint64_t>> LogRateLimiter::flush() { return take(false); }
std::vector<std::pair<std::string, std::uint64_t>> LogRateLimiter::flush_all() { return take(true); }

}  // namespace diode::platform

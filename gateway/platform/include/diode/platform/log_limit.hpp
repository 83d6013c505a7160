#pragma once
// Rate limits for log lines that clients can cause (a SERVFAIL, a refused
// query, a failed login...): without one, a client that sends a flood of
// such requests writes a flood of lines, filling disks and the journal.
//
// At most `per_second` lines of each kind (the event name, or any key the
// caller picks) in each one-second window; the lines beyond are counted,
// not written, and one line says how many: `event=log_suppressed what=KIND
// count=N`, written before the next line of that kind that is allowed, or by
// flush() once the window is over (call it about once a second, and at
// exit). Thread-safe. The clock is a parameter so that tests can move it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace diode::platform {

class LogRateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  static constexpr unsigned kDefaultPerSecond = 10;

  explicit LogRateLimiter(unsigned per_second = kDefaultPerSecond, Clock clock = {});

  struct Decision {
    bool write = false;             // write this line
    std::uint64_t suppressed = 0;   // first write a log_suppressed line with this count
  };
  /// One line of `kind` about to be written.
  Decision admit(std::string_view kind);
  /// The kinds whose window is over with lines suppressed in it, and how
  /// many (each reported once): write one log_suppressed line each.
  std::vector<std::pair<std::string, std::uint64_t>> flush();
  /// As flush(), whether or not the windows are over (at exit).
  std::vector<std::pair<std::string, std::uint64_t>> flush_all();

  unsigned per_second() const { return per_second_; }

 private:
  struct Window {
    std::chrono::steady_clock::time_point start;
    unsigned written = 0;
    std::uint64_t suppressed = 0;
  };
  std::chrono::steady_clock::time_point now() const;
  std::vector<std::pair<std::string, std::uint64_t>> take(bool all);

  unsigned per_second_;
  Clock clock_;
  std::mutex mu_;
  std::map<std::string, Window, std::less<>> windows_;
};

}  // namespace diode::platform

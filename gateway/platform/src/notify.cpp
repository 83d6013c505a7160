#include "diode/platform/notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <string>

namespace diode::platform {

namespace {

// sd_notify: > 0 sent, 0 no NOTIFY_SOCKET (nothing to do), < 0 failed.
bool send(const std::string& state) { return ::sd_notify(0, state.c_str()) >= 0; }

}  // namespace

bool notify_ready(std::string_view status) {
  std::string s = "READY=1";
  if (!status.empty()) s += "\nSTATUS=" + std::string(status);
  return send(s);
}

bool notify_reloading() {
  // systemd (Type=notify-reload) wants the reload's start on CLOCK_MONOTONIC.
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const unsigned long long usec =
      static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL + static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool notify_stopping() { return send("STOPPING=1"); }

bool notify_status(std::string_view status) { return send("STATUS=" + std::string(status)); }

bool notify_watchdog() { return send("WATCHDOG=1"); }

std::optional<std::chrono::microseconds> watchdog_interval() {
  std::uint64_t usec = 0;
  // Left in the environment: every call gives the same answer.
  if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds{static_cast<std::int64_t>(usec / 2)};
}

}  // namespace diode::platform

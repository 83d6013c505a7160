#pragma once
// Readiness and state for the service manager (sd_notify(3), libsystemd).
// Every call is a no-op returning true when NOTIFY_SOCKET is unset; when it
// is set and sending fails, the call returns false (the caller logs it).

#include <chrono>
#include <optional>
#include <string_view>

namespace diode::platform {

/// READY=1 plus STATUS=`status` (if not empty).
bool notify_ready(std::string_view status = {});
/// RELOADING=1 with MONOTONIC_USEC= the current CLOCK_MONOTONIC time.
bool notify_reloading();
/// STOPPING=1.
bool notify_stopping();
/// STATUS=`status`.
bool notify_status(std::string_view status);
/// WATCHDOG=1.
bool notify_watchdog();
/// The interval at which to send WATCHDOG=1 (half of WATCHDOG_USEC), or
/// nullopt if the service manager asked for no watchdog.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace diode::platform

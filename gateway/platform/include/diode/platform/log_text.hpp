#pragma once
// Values for the daemons' log lines: the `key=value` text form and JSON.
// Shared by sockd and diode-resolver so that both escape the same way.

#include <chrono>
#include <string>
#include <string_view>

namespace diode::platform {

/// A value for a `key=value` line: bare if it is made only of safe printable
/// characters, else in double quotes with \" \\ and \xHH escapes (every byte
/// outside printable ASCII, so the line stays one line and the bytes survive).
std::string quote_value(std::string_view v);

/// A JSON string literal for `v`: \" \\ and \u00HH for every byte outside
/// printable ASCII.
std::string json_string(std::string_view v);

/// A log line's `time=` value: UTC, milliseconds, e.g.
/// "2026-12-06T19:31:40.123Z".
std::string iso_time(std::chrono::system_clock::time_point t);

}  // namespace diode::platform

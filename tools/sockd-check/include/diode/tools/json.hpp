#pragma once
// The little JSON sockd-check writes: strings escaped per RFC 8259 section 7.

#include <string>
#include <string_view>

namespace diode::tools {

/// `s` as a JSON string literal, quotes included; bytes that are not valid
/// printable ASCII are written as \u00XX so the output is always valid JSON.
std::string json_string(std::string_view s);

}  // namespace diode::tools

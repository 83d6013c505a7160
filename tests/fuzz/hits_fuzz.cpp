// Fuzzes the reader of `hits` reports (sockd-check lint --hits FILE, the
// output of diodectl hits or sockd's control socket, possibly edited by
// hand): all or nothing, and every time it read formats back.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "diode/sockd/rule_hits.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  diode::platform::Diagnostics diags;
  const auto rep = diode::sockd::parse_hits(text, "fuzz.hits", diags);
  if (rep.has_value() == diags.has_errors()) std::abort();  // all or nothing
  if (!rep) return 0;
  for (const auto& [key, count] : rep->rules) {
    (void)key;
    (void)diode::sockd::iso8601_utc(count.last);  // every time read formats back
  }
  (void)diode::sockd::iso8601_utc(rep->since);
  return 0;
}

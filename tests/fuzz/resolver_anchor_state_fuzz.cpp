// Fuzzes the RFC 5011 trust anchor state file reader (files.trust_anchor_state,
// anchor_state.hpp): no crash on any bytes, an error that names its line
// whenever the file is refused, and an accepted file that writes back to
// text which reads again to the same text (so a save never loses a key).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "diode/resolver/anchor_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diode::resolver::dnssec;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto t = AnchorTracker::parse(text, AnchorTimings{}, error);
  if (!t) {
    if (error.rfind("line ", 0) != 0) __builtin_trap();
    return 0;
  }
  if (t->points().empty()) __builtin_trap();
  const std::string once = t->to_text();
  std::string error2;
  const auto back = AnchorTracker::parse(once, AnchorTimings{}, error2);
  if (!back || back->to_text() != once) __builtin_trap();
  const TrustAnchors anchors = t->anchors();
  if (anchors.anchors().size() != t->points().size()) __builtin_trap();
  return 0;
}

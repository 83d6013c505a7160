// Fuzzes the root hints parser: no crash, hints exactly when there is no
// error, every diagnostic names the file, and accepted hints are usable
// (at least one server, every name printable and parseable).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "diode/resolver/root_hints.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diode::resolver;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  diode::platform::Diagnostics diags;
  const auto hints = parse_root_hints(text, "fuzz.hints", diags);
  if (hints.has_value() == diags.has_errors()) __builtin_trap();
  for (const auto& d : diags.items()) {
    if (d.pos.file != "fuzz.hints" || d.message.empty()) __builtin_trap();
  }
  if (hints) {
    if (hints->servers.empty()) __builtin_trap();
    for (const RootServer& s : hints->servers) {
      const auto back = Name::from_text(s.name.to_text());
      if (!back || !back->equals_exact(s.name)) __builtin_trap();
    }
  }
  return 0;
}

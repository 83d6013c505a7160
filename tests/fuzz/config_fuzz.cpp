// Fuzzes the gateway.toml layer: toml++'s parse plus every check of ours.
// Besides "no crash", it holds the loader to its contract: a result exactly
// when there is no error, every error on one line with a position, and a
// result that prints to text which parses back to the same configuration.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "diode/platform/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diode::platform;
  const std::string text(reinterpret_cast<const char*>(data), size);
  Diagnostics diags;
  const auto cfg = parse_gateway_config(text, "fuzz.toml", diags);
  if (cfg.has_value() == diags.has_errors()) __builtin_trap();
  for (const auto& d : diags.items()) {
    if (d.pos.file != "fuzz.toml" || d.pos.line == 0 || d.message.empty()) __builtin_trap();
    if (d.message.find('\n') != std::string::npos) __builtin_trap();  // one line each
  }
  if (cfg) {
    Diagnostics again;
    const auto reparsed = parse_gateway_config(format_gateway_config(*cfg), "fuzz.toml", again);
    if (!reparsed || !(*reparsed == *cfg)) __builtin_trap();
  }
  return 0;
}

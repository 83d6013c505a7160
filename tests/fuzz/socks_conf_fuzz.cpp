// Fuzzes the client socks.conf parser.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "diode/sockd/parse.hpp"

using namespace diode::sockd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  diode::platform::Diagnostics diags;
  const auto cs = parse_socks_conf(text, "fuzz.socks.conf", diags, ParseOptions{false});
  if (cs.has_value() == diags.has_errors()) std::abort();
  if (!cs) return 0;
  for (const ClientRule& r : cs->rules) {
    if (!r.servers.empty() && r.action != ClientAction::Sockd) std::abort();  // @= only on sockd lines
    if (r.port.op == PortOp::Range && r.port.lo > r.port.hi) std::abort();
  }
  return 0;
}

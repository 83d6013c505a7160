// Fuzzes the sockd.route parser; on what parses, find_route must agree with
// a direct scan of the table.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "diode/sockd/engine.hpp"
#include "diode/sockd/parse.hpp"

using namespace diode::sockd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  diode::platform::Diagnostics diags;
  const auto rt = parse_sockd_route(text, "fuzz.route", diags);
  if (rt.has_value() == diags.has_errors()) std::abort();
  if (!rt) return 0;
  for (const Route& r : rt->routes) {
    if (!r.egress_addr && r.egress_iface.empty()) std::abort();  // every line names its egress
    RuleRequest q;
    q.src_addr = *IpAddress::parse("192.0.2.10");
    if (r.dst.kind == AddressMatch::Kind::Masked) q.dst_addr = r.dst.masked.addr;
    if (r.dst.kind == AddressMatch::Kind::Domain) q.dst_name = r.dst.domain;
    const Route* found = find_route(*rt, q);
    if (found == nullptr) std::abort();  // at worst the line the request was built from
    if (found > &r) std::abort();        // and never a later one
  }
  return 0;
}

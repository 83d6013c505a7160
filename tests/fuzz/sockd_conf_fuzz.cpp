// Fuzzes the sockd.conf parser and, on what parses, checks that the
// compiled Engine agrees with the linear scan (first-match semantics) and
// that %-expansion of every command is total.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "diode/sockd/engine.hpp"
#include "diode/sockd/expand.hpp"
#include "diode/sockd/parse.hpp"

using namespace diode::sockd;

namespace {

std::vector<RuleRequest> requests_for(const RuleSet& rs) {
  std::vector<RuleRequest> out;
  RuleRequest base;
  base.src_addr = *IpAddress::parse("192.0.2.10");
  base.dst_addr = *IpAddress::parse("198.51.100.7");
  base.dst_port = 80;
  base.user = "alice";
  out.push_back(base);
  RuleRequest named = base;
  named.dst_addr.reset();
  named.dst_name = "www.example.test";
  out.push_back(named);
  RuleRequest six = base;
  six.src_addr = *IpAddress::parse("2001:db8::10");
  six.dst_addr = *IpAddress::parse("2001:db8:2::7");
  out.push_back(six);
  // Requests built from the rules themselves, so matches actually happen.
  for (std::size_t i = 0; i < rs.rules.size() && out.size() < 12; ++i) {
    const Rule& r = rs.rules[i];
    RuleRequest q = base;
    if (r.src.kind == AddressMatch::Kind::Masked) q.src_addr = r.src.masked.addr;
    if (r.src.kind == AddressMatch::Kind::Domain) q.src_name = "h." + r.src.domain;
    if (r.dst.kind == AddressMatch::Kind::Masked) q.dst_addr = r.dst.masked.addr;
    if (r.dst.kind == AddressMatch::Kind::Domain) q.dst_name = r.dst.domain;
    q.dst_port = r.port.lo;
    if (!r.users.names.empty()) q.user = r.users.names.front();
    if (!r.interfaces.empty()) q.iface = r.interfaces.front();
    out.push_back(q);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  diode::platform::Diagnostics diags;
  auto rs = parse_sockd_conf(text, "fuzz.conf", diags, ParseOptions{false});
  if (rs.has_value() == diags.has_errors()) std::abort();  // nullopt iff an error was reported
  if (diags.items().size() > 101) std::abort();            // the cap
  if (!rs) return 0;
  for (const Rule& r : rs->rules) {
    if (r.shell_cmd) (void)expand_command(*r.shell_cmd, ExpandContext{});
  }
  // The Engine path brings ~15,000 coverage features, and libFuzzer's
  // entropic scheduling slows down some thirtyfold when every run carries
  // them; checking one input size in eight keeps the parser fuzzed at full
  // speed and the Engine still checked on thousands of parsed files a minute.
  if (size % 8 != 0) return 0;
  auto shared = std::make_shared<const RuleSet>(std::move(*rs));
  const Engine engine(shared);
  for (const RuleRequest& q : requests_for(*shared)) {
    if (engine.first_match(q) != first_match_linear(*shared, q)) std::abort();
    const Decision d = engine.decide(q, IdentMode::Strict);
    if (d.verdict == Verdict::Permit && d.rule == nullptr) std::abort();
  }
  return 0;
}

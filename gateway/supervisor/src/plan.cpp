#include "diode/gateway/plan.hpp"

#include <algorithm>

namespace diode::gateway {

using platform::SocketPurpose;

std::vector<ChildPlan> plan_children(const platform::GatewayConfig& cfg) {
  std::vector<ChildPlan> out;
  ChildPlan resolver{"resolver", ChildKind::Resolver, {}, {}};
  for (const auto& spec : platform::implied_sockets(cfg)) {
    if (spec.purpose == SocketPurpose::Socks) {
      auto it = std::find_if(out.begin(), out.end(),
                             [&](const ChildPlan& c) { return c.iface == spec.iface; });
      if (it == out.end()) {
        out.push_back(ChildPlan{"sockd-" + spec.iface, ChildKind::Sockd, spec.iface, {}});
        it = out.end() - 1;
      }
      it->sockets.push_back(spec);
    } else if (spec.purpose == SocketPurpose::DnsUdp || spec.purpose == SocketPurpose::DnsTcp) {
      resolver.sockets.push_back(spec);
    }
  }
  if (!resolver.sockets.empty()) out.push_back(std::move(resolver));
  return out;
}

bool same_sockets(const std::vector<ChildPlan>& a, const std::vector<ChildPlan>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].sockets != b[i].sockets) return false;
  }
  return true;
}

}  // namespace diode::gateway

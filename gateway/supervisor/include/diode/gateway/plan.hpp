#pragma once
// What diode-gateway runs for a configuration: one sockd per internal
// interface with a SOCKS port, one diode-resolver if any internal interface
// has a DNS port, and which of the implied sockets each one gets. Sans-I/O,
// so the supervisor, its --check and the tests derive it the same way.

#include <string>
#include <vector>

#include "diode/platform/config.hpp"
#include "diode/platform/sockets.hpp"

namespace diode::gateway {

enum class ChildKind : std::uint8_t { Sockd, Resolver };

struct ChildPlan {
  std::string name;   // "sockd-eth1", "resolver": log key child=, control socket name
  ChildKind kind = ChildKind::Sockd;
  std::string iface;  // the interface of a sockd; "" for the resolver
  std::vector<platform::SocketSpec> sockets;  // its listening sockets, in file order
};

/// Every child `cfg` implies, sockd children first in interface order.
std::vector<ChildPlan> plan_children(const platform::GatewayConfig& cfg);

/// The children's sockets as a set, to tell whether a reload changes what
/// is listened on (which needs a restart).
bool same_sockets(const std::vector<ChildPlan>& a, const std::vector<ChildPlan>& b);

}  // namespace diode::gateway

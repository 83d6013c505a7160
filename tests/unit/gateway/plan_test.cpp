// The supervisor's child plan: which children a configuration implies and
// which sockets each one is handed.
#include <catch2/catch.hpp>

#include "diode/gateway/plan.hpp"

using namespace diode;
using diode::gateway::ChildKind;
using diode::gateway::plan_children;
using diode::platform::SocketPurpose;

namespace {

platform::GatewayConfig parse(const std::string& text) {
  platform::Diagnostics d;
  auto cfg = platform::parse_gateway_config(text, "test.toml", d);
  INFO(d.format());
  REQUIRE(cfg);
  return *cfg;
}

const char* kTwoLans = R"(
[[interface]]
name = "lan1"
role = "internal"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
socks_port = 1080
dns_port = 53

[[interface]]
name = "lan2"
role = "internal"
addresses = ["203.0.113.1/24"]
socks_port = 1081
dns_port = 5353

[[interface]]
name = "wan"
role = "external"
addresses = ["198.51.100.1/24"]
)";

}  // namespace

TEST_CASE("one sockd per internal interface, one resolver with every DNS socket", "[gateway]") {
  const auto plan = plan_children(parse(kTwoLans));
  REQUIRE(plan.size() == 3);
  CHECK(plan[0].name == "sockd-lan1");
  CHECK(plan[0].kind == ChildKind::Sockd);
  REQUIRE(plan[0].sockets.size() == 2);
  CHECK(plan[0].sockets[0].purpose == SocketPurpose::Socks);
  CHECK(plan[0].sockets[0].iface == "lan1");
  CHECK(plan[0].sockets[0].endpoint.to_string() == "192.0.2.1:1080");
  CHECK(plan[0].sockets[1].endpoint.to_string() == "[2001:db8:1::1]:1080");
  CHECK(plan[1].name == "sockd-lan2");
  REQUIRE(plan[1].sockets.size() == 1);
  CHECK(plan[1].sockets[0].endpoint.to_string() == "203.0.113.1:1081");
  CHECK(plan[2].name == "resolver");
  CHECK(plan[2].kind == ChildKind::Resolver);
  // UDP and TCP on each of the three internal addresses, none on wan.
  REQUIRE(plan[2].sockets.size() == 6);
  std::size_t udp = 0, tcp = 0;
  for (const auto& s : plan[2].sockets) {
    CHECK(s.endpoint.addr.to_string() != "198.51.100.1");
    udp += s.purpose == SocketPurpose::DnsUdp;
    tcp += s.purpose == SocketPurpose::DnsTcp;
  }
  CHECK(udp == 3);
  CHECK(tcp == 3);
}

TEST_CASE("an interface without ports implies no child; no DNS port, no resolver", "[gateway]") {
  const auto plan = plan_children(parse(R"(
[[interface]]
name = "lan1"
role = "internal"
addresses = ["192.0.2.1/24"]
socks_port = 1080
dns_port = 0

[[interface]]
name = "lan2"
role = "internal"
addresses = ["203.0.113.1/24"]
socks_port = 0
dns_port = 0

[sockd]
nameserver = "198.51.100.53"
)"));
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].name == "sockd-lan1");
}

TEST_CASE("the built-in configuration: a relay and a resolver on loopback", "[gateway]") {
  platform::Diagnostics d;
  auto cfg = platform::parse_gateway_config(platform::embedded_default_config(), "built-in", d);
  REQUIRE(cfg);
  const auto plan = plan_children(*cfg);
  REQUIRE(plan.size() == 2);
  CHECK(plan[0].name == "sockd-lo");
  CHECK(plan[0].sockets.at(0).endpoint.to_string() == "127.0.0.1:1080");
  CHECK(plan[1].name == "resolver");
  CHECK(plan[1].sockets.at(0).endpoint.to_string() == "127.0.0.1:5353");
}

TEST_CASE("same_sockets tells a reload that moves a listener from one that does not",
          "[gateway]") {
  auto cfg = parse(kTwoLans);
  const auto before = plan_children(cfg);
  cfg.sockd.max_sessions_per_client = 3;
  CHECK(gateway::same_sockets(before, plan_children(cfg)));
  cfg.interfaces[1].socks_port = 1082;
  CHECK_FALSE(gateway::same_sockets(before, plan_children(cfg)));
}

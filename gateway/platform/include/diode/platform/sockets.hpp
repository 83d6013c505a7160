#pragma once
// Which listening sockets a configuration implies, their names, and opening
// them. Derived once, here: the supervisor opens exactly these and hands
// each child its own; a daemon running alone opens the same ones itself.
// A socket's name says what it is for and on which interface, the form
// LISTEN_FDNAMES carries: "socks.eth1", "dns-udp.eth1", "dns-tcp.eth1",
// "control" (a listening AF_UNIX socket for the child's control commands).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/config.hpp"

namespace diode::platform {

enum class SocketPurpose : std::uint8_t { Socks, DnsUdp, DnsTcp, Control };

/// One socket a configuration asks for.
struct SocketSpec {
  SocketPurpose purpose = SocketPurpose::Socks;
  std::string iface;  // interface name from gateway.toml ("" for Control)
  Endpoint endpoint;  // address and port to bind (unused for Control)

  bool operator==(const SocketSpec&) const = default;
};

/// An open socket with its purpose and interface: inherited (LISTEN_FDS) or
/// opened by open_socket(). The fd is owned by whoever holds the struct.
struct NamedSocket {
  int fd = -1;
  SocketPurpose purpose = SocketPurpose::Socks;
  std::string iface;
};

/// "socks", "dns-udp", "dns-tcp", "control".
std::string_view to_string(SocketPurpose p);
/// The LISTEN_FDNAMES entry: "socks.eth1", "control". The purpose ends at
/// the first '.' (an interface name may hold more: "socks.eth0.100").
std::string socket_name(SocketPurpose p, std::string_view iface);
/// Parses a LISTEN_FDNAMES entry; nullopt if the purpose is unknown.
std::optional<std::pair<SocketPurpose, std::string>> parse_socket_name(std::string_view name);

/// Every socket `cfg` implies, in file order: for each internal interface
/// with a socks_port, a Socks socket per address; with a dns_port, a DnsUdp
/// and a DnsTcp socket per address. External interfaces imply none.
std::vector<SocketSpec> implied_sockets(const GatewayConfig& cfg);

/// Opens `spec` (not Control): SOCK_CLOEXEC|SOCK_NONBLOCK, SO_REUSEADDR,
/// IPV6_V6ONLY for v6, bound, and listening for TCP. Returns the fd, or -1
/// with `error` set to a sentence naming the endpoint and errno's text.
int open_socket(const SocketSpec& spec, std::string& error);

/// Opens a listening AF_UNIX stream socket at `path` (an old socket file
/// there is replaced), mode 0600. Returns the fd, or -1 with `error` set.
int open_control_socket(const std::string& path, std::string& error);

}  // namespace diode::platform

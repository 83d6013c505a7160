#pragma once
// The host's own addresses as the kernel knows them (rtnetlink), for
// protect_internal: an RTM_GETADDR dump at start, then RTM_NEWADDR and
// RTM_DELADDR notifications (RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR) read on
// the daemon's control io_context keep the set current. Workers read the set
// through one atomic shared_ptr; it is replaced whole, never edited.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/asio.hpp"
#include "diode/platform/logger.hpp"
#include "diode/sockd/host_address_set.hpp"

namespace diode::sockd {

namespace net = boost::asio;
using Logger = platform::Logger;

/// One address of the host as RTM_NEWADDR / RTM_DELADDR report it.
struct KernelAddress {
  int ifindex = 0;
  platform::IpAddress addr;  // IFA_LOCAL when present (IPv4, point-to-point), else IFA_ADDRESS
  unsigned prefix_len = 0;
  std::optional<platform::IpAddress> broadcast;  // IFA_BROADCAST (IPv4)
};

/// What one buffer of netlink messages said (rtnetlink(7), netlink(7)).
struct NetlinkAddrParse {
  struct Event {
    bool added = false;  // RTM_NEWADDR; false: RTM_DELADDR
    KernelAddress address;
  };
  std::vector<Event> events;  // AF_INET and AF_INET6 only
  bool done = false;          // NLMSG_DONE: a dump is complete
  bool malformed = false;     // a length did not fit: the rest was not read
  int error = 0;              // NLMSG_ERROR's errno (0 for none or an ACK)
};

/// Parses the messages of one recv(). Sans-I/O; every length is checked
/// against the buffer before anything is read.
NetlinkAddrParse parse_addr_messages(std::span<const std::uint8_t> buf);

/// Keeps a HostAddresses current. start() subscribes first and dumps after,
/// so no change falls between the two; attach() reads the notifications on
/// an io_context (the daemon's control one) until the watch is destroyed,
/// which must happen before that io_context goes.
class HostAddressWatch {
 public:
  /// Subscribes, dumps and publishes into `target`; null with `error` set
  /// when the kernel cannot be asked.
  static std::unique_ptr<HostAddressWatch> start(std::shared_ptr<HostAddresses> target,
                                                 Logger& log, std::string& error);
  ~HostAddressWatch();
  HostAddressWatch(const HostAddressWatch&) = delete;
  HostAddressWatch& operator=(const HostAddressWatch&) = delete;

  void attach(net::io_context& io);

 private:
  HostAddressWatch(int fd, std::shared_ptr<HostAddresses> target, Logger& log);
  bool redump(std::string& error);
  void read_pending();
  void wait();
  void publish();

  using Key = std::tuple<int, platform::IpAddress, unsigned>;
  int fd_;
  std::shared_ptr<HostAddresses> target_;
  Logger& log_;
  std::map<Key, KernelAddress> table_;
  std::unique_ptr<net::posix::stream_descriptor> desc_;
};

}  // namespace diode::sockd

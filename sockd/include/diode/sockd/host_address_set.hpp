#pragma once
// The host's own addresses, as one immutable set replaced whole (for
// protect_internal). Asio-free: the session plan reads it; the kernel
// watch that fills it lives in host_addresses.hpp.

#include <atomic>
#include <memory>
#include <vector>

#include "diode/platform/address.hpp"

namespace diode::sockd {

/// The set the workers read. Thread-safe.
class HostAddresses {
 public:
  /// True when `a` (IPv4-mapped taken as IPv4) is one of the host's
  /// addresses or a broadcast address of its interfaces.
  bool contains(const platform::IpAddress& a) const;
  /// Replaces the set.
  void publish(std::vector<platform::IpAddress> addrs);
  std::shared_ptr<const std::vector<platform::IpAddress>> snapshot() const { return set_.load(); }

 private:
  std::atomic<std::shared_ptr<const std::vector<platform::IpAddress>>> set_{
      std::make_shared<const std::vector<platform::IpAddress>>()};
};

}  // namespace diode::sockd

#include "diode/sockd/host_address_set.hpp"

#include <algorithm>

namespace diode::sockd {

using platform::IpAddress;

bool HostAddresses::contains(const IpAddress& a) const {
  const auto set = set_.load();
  return std::binary_search(set->begin(), set->end(), a.unmapped());
}

void HostAddresses::publish(std::vector<IpAddress> addrs) {
  for (auto& a : addrs) a = a.unmapped();
  std::sort(addrs.begin(), addrs.end());
  addrs.erase(std::unique(addrs.begin(), addrs.end()), addrs.end());
  set_.store(std::make_shared<const std::vector<IpAddress>>(std::move(addrs)));
}

}  // namespace diode::sockd

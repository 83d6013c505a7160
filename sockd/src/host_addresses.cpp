#include "diode/sockd/host_addresses.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "diode/sockd/log.hpp"

namespace diode::sockd {

namespace {

using platform::IpAddress;

constexpr std::size_t kRecvBuffer = 64 * 1024;
constexpr int kMaxDumpReads = 4096;  // a dump ends long before; bounds a kernel that never says DONE

template <typename T>
T read_as(std::span<const std::uint8_t> b, std::size_t at) {
  T v{};
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

std::optional<IpAddress> address_of(std::uint8_t family, std::span<const std::uint8_t> payload) {
  IpAddress a;
  if (family == AF_INET && payload.size() == 4) {
    std::memcpy(a.bytes.data(), payload.data(), 4);
    return a;
  }
  if (family == AF_INET6 && payload.size() == 16) {
    a.family = platform::Family::V6;
    std::memcpy(a.bytes.data(), payload.data(), 16);
    return a;
  }
  return std::nullopt;
}

// One RTM_NEWADDR / RTM_DELADDR body: struct ifaddrmsg, then rtattrs.
std::optional<KernelAddress> parse_ifaddr(std::span<const std::uint8_t> body) {
  if (body.size() < sizeof(ifaddrmsg)) return std::nullopt;
  const auto ifa = read_as<ifaddrmsg>(body, 0);
  if (ifa.ifa_family != AF_INET && ifa.ifa_family != AF_INET6) return std::nullopt;
  KernelAddress k;
  k.ifindex = static_cast<int>(ifa.ifa_index);
  k.prefix_len = ifa.ifa_prefixlen;
  std::optional<IpAddress> local;
  std::optional<IpAddress> address;
  std::size_t at = NLMSG_ALIGN(sizeof(ifaddrmsg));
  while (at + sizeof(rtattr) <= body.size()) {
    const auto rta = read_as<rtattr>(body, at);
    if (rta.rta_len < sizeof(rtattr) || rta.rta_len > body.size() - at) return std::nullopt;
    const auto payload = body.subspan(at + RTA_LENGTH(0), rta.rta_len - RTA_LENGTH(0));
    switch (rta.rta_type) {
      case IFA_LOCAL: local = address_of(ifa.ifa_family, payload); break;
      case IFA_ADDRESS: address = address_of(ifa.ifa_family, payload); break;
      case IFA_BROADCAST: k.broadcast = address_of(ifa.ifa_family, payload); break;
      default: break;
    }
    at += std::min<std::size_t>(RTA_ALIGN(rta.rta_len), body.size() - at);
  }
  // IPv4 point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours.
  if (local) {
    k.addr = *local;
  } else if (address) {
    k.addr = *address;
  } else {
    return std::nullopt;
  }
  return k;
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

Fd open_route_socket(std::uint32_t groups, std::string& error) {
  Fd s(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (s.fd < 0) {
    error = std::string("netlink socket: ") + std::strerror(errno);
    return s;
  }
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = groups;
  if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    error = std::string("netlink bind: ") + std::strerror(errno);
    return Fd{};
  }
  return s;
}

// One datagram from the kernel (port id 0) only; -1 with errno otherwise.
ssize_t recv_from_kernel(int fd, std::vector<std::uint8_t>& buf, int flags) {
  for (;;) {
    sockaddr_nl from{};
    socklen_t len = sizeof from;
    const ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), flags | MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return n;
    if (static_cast<std::size_t>(n) > buf.size()) {
      errno = ENOBUFS;  // truncated: the caller dumps again
      return -1;
    }
    if (len >= sizeof from && from.nl_pid == 0) return n;  // not from the kernel: ignored
  }
}

// RTM_GETADDR dump into `out`; false with `error` on failure.
bool dump(std::map<std::tuple<int, IpAddress, unsigned>, KernelAddress>& out, std::string& error) {
  Fd s = open_route_socket(0, error);
  if (s.fd < 0) return false;
  const timeval tv{2, 0};
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct {
    nlmsghdr h;
    ifaddrmsg ifa;
  } req{};
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
  req.h.nlmsg_type = RTM_GETADDR;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 1;
  req.ifa.ifa_family = AF_UNSPEC;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(s.fd, &req, req.h.nlmsg_len, 0, reinterpret_cast<const sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    error = std::string("netlink send: ") + std::strerror(errno);
    return false;
  }
  std::vector<std::uint8_t> buf(kRecvBuffer);
  out.clear();
  for (int i = 0; i < kMaxDumpReads; ++i) {
    const ssize_t n = recv_from_kernel(s.fd, buf, 0);
    if (n < 0) {
      error = std::string("netlink dump: ") + std::strerror(errno);
      return false;
    }
    const auto p = parse_addr_messages(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    for (const auto& e : p.events) {
      if (e.added) out[{e.address.ifindex, e.address.addr, e.address.prefix_len}] = e.address;
    }
    if (p.error != 0 || p.malformed) {
      error = p.error != 0 ? std::string("netlink dump: ") + std::strerror(p.error)
                           : std::string("netlink dump: malformed message");
      return false;
    }
    if (p.done) return true;
  }
  error = "netlink dump: no end";
  return false;
}

}  // namespace

NetlinkAddrParse parse_addr_messages(std::span<const std::uint8_t> buf) {
  NetlinkAddrParse out;
  std::size_t at = 0;
  while (at < buf.size()) {
    if (buf.size() - at < sizeof(nlmsghdr)) {
      out.malformed = true;
      break;
    }
    const auto h = read_as<nlmsghdr>(buf, at);
    if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > buf.size() - at) {
      out.malformed = true;
      break;
    }
    const auto body = buf.subspan(at + NLMSG_HDRLEN, h.nlmsg_len - std::min<std::size_t>(h.nlmsg_len, NLMSG_HDRLEN));
    if (h.nlmsg_type == NLMSG_DONE) {
      out.done = true;
      break;
    }
    if (h.nlmsg_type == NLMSG_ERROR) {
      if (body.size() < sizeof(int)) {
        out.malformed = true;
        break;
      }
      const int err = read_as<int>(body, 0);
      out.error = err < 0 ? -err : err;
      if (out.error != 0) break;
    } else if (h.nlmsg_type == RTM_NEWADDR || h.nlmsg_type == RTM_DELADDR) {
      if (auto k = parse_ifaddr(body)) out.events.push_back({h.nlmsg_type == RTM_NEWADDR, *k});
    }
    at += std::min<std::size_t>(NLMSG_ALIGN(h.nlmsg_len), buf.size() - at);
  }
  return out;
}

HostAddressWatch::HostAddressWatch(int fd, std::shared_ptr<HostAddresses> target, Logger& log)
    : fd_(fd), target_(std::move(target)), log_(log) {}

HostAddressWatch::~HostAddressWatch() {
  if (desc_) {
    desc_.reset();  // closes fd_
  } else if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::unique_ptr<HostAddressWatch> HostAddressWatch::start(std::shared_ptr<HostAddresses> target,
                                                          Logger& log, std::string& error) {
  Fd sub = open_route_socket(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR, error);
  if (sub.fd < 0) return nullptr;
  std::unique_ptr<HostAddressWatch> w(new HostAddressWatch(sub.release(), std::move(target), log));
  if (!w->redump(error)) return nullptr;
  return w;
}

bool HostAddressWatch::redump(std::string& error) {
  if (!dump(table_, error)) return false;
  publish();
  log_.event(platform::LogLevel::Info, "host_addresses", {{"count", std::to_string(table_.size())}});
  return true;
}

void HostAddressWatch::publish() {
  std::vector<IpAddress> addrs;
  addrs.reserve(table_.size() * 2);
  for (const auto& [key, k] : table_) {
    addrs.push_back(k.addr);
    if (k.broadcast) addrs.push_back(*k.broadcast);
  }
  target_->publish(std::move(addrs));
}

void HostAddressWatch::attach(net::io_context& io) {
  desc_ = std::make_unique<net::posix::stream_descriptor>(io, fd_);
  boost::system::error_code ec;
  desc_->non_blocking(true, ec);
  read_pending();  // what changed since start()
  wait();
}

void HostAddressWatch::wait() {
  desc_->async_wait(net::posix::descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;  // cancelled: the watch is going
    read_pending();
    wait();
  });
}

void HostAddressWatch::read_pending() {
  std::vector<std::uint8_t> buf(kRecvBuffer);
  std::vector<NetlinkAddrParse::Event> seen;
  bool changed = false;
  for (int i = 0; i < kMaxDumpReads; ++i) {
    const ssize_t n = recv_from_kernel(fd_, buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      // ENOBUFS: the kernel dropped notifications; only a new dump knows.
      std::string error;
      if (!redump(error)) log_.event(platform::LogLevel::Error, "host_addresses_error", {{"error", error}});
      changed = false;
      continue;
    }
    const auto p = parse_addr_messages(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    for (const auto& e : p.events) {
      const Key key{e.address.ifindex, e.address.addr, e.address.prefix_len};
      if (e.added) {
        table_[key] = e.address;
      } else {
        table_.erase(key);
      }
      changed = true;
      seen.push_back(e);
    }
  }
  if (changed) publish();
  // Logged once published: a line says the relay already acts on it.
  for (const auto& e : seen) {
    log_.event(platform::LogLevel::Info, "host_address",
               {{"change", e.added ? "added" : "removed"},
                {"addr", e.address.addr.to_string() + "/" + std::to_string(e.address.prefix_len)},
                {"ifindex", std::to_string(e.address.ifindex)}});
  }
}

}  // namespace diode::sockd

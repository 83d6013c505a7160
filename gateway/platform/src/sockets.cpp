#include "diode/platform/sockets.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace diode::platform {

namespace {

// `what` and errno's text, as open_socket's error sentences say it.
std::string failure(const std::string& what, int err) { return what + ": " + std::strerror(err); }

std::string describe(const SocketSpec& spec) {
  return std::string(to_string(spec.purpose)) + " socket " + spec.endpoint.to_string() +
         (spec.iface.empty() ? "" : " (" + spec.iface + ")");
}

}  // namespace

std::string_view to_string(SocketPurpose p) {
  switch (p) {
    case SocketPurpose::Socks: return "socks";
    case SocketPurpose::DnsUdp: return "dns-udp";
    case SocketPurpose::DnsTcp: return "dns-tcp";
    case SocketPurpose::Control: return "control";
  }
  return "socks";
}

std::string socket_name(SocketPurpose p, std::string_view iface) {
  std::string out(to_string(p));
  if (p != SocketPurpose::Control) {
    out += '.';
    out += iface;
  }
  return out;
}

std::optional<std::pair<SocketPurpose, std::string>> parse_socket_name(std::string_view name) {
  // The purpose has no '.', so the first one ends it; an interface name may
  // hold more ("eth0.100"). ':' never appears: it separates LISTEN_FDNAMES
  // and systemd's FileDescriptorName= refuses it.
  if (name.find(':') != std::string_view::npos) return std::nullopt;
  const std::size_t colon = name.find('.');
  const std::string_view head = name.substr(0, colon);
  const std::string iface = colon == std::string_view::npos ? "" : std::string(name.substr(colon + 1));
  for (auto p : {SocketPurpose::Socks, SocketPurpose::DnsUdp, SocketPurpose::DnsTcp,
                 SocketPurpose::Control}) {
    if (head != to_string(p)) continue;
    // "control" stands alone; the others need the interface they serve
    // (rules and logs name it).
    if (p == SocketPurpose::Control) {
      if (colon != std::string_view::npos) return std::nullopt;
    } else if (iface.empty()) {
      return std::nullopt;
    }
    return std::pair{p, iface};
  }
  return std::nullopt;
}

std::vector<SocketSpec> implied_sockets(const GatewayConfig& cfg) {
  std::vector<SocketSpec> out;
  for (const auto& itf : cfg.interfaces) {
    if (itf.role != InterfaceRole::Internal) continue;
    if (itf.socks_port != 0) {
      for (const auto& p : itf.addresses) {
        out.push_back(SocketSpec{SocketPurpose::Socks, itf.name, Endpoint{p.addr, itf.socks_port}});
      }
    }
    if (itf.dns_port != 0) {
      for (const auto& p : itf.addresses) {
        out.push_back(SocketSpec{SocketPurpose::DnsUdp, itf.name, Endpoint{p.addr, itf.dns_port}});
        out.push_back(SocketSpec{SocketPurpose::DnsTcp, itf.name, Endpoint{p.addr, itf.dns_port}});
      }
    }
  }
  return out;
}

int open_socket(const SocketSpec& spec, std::string& error) {
  if (spec.purpose == SocketPurpose::Control) {
    error = "open_socket: a control socket is opened with open_control_socket";
    return -1;
  }
  const bool v6 = spec.endpoint.addr.family == Family::V6;
  const bool udp = spec.purpose == SocketPurpose::DnsUdp;
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET,
                          (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = failure("cannot open " + describe(spec), errno);
    return -1;
  }
  const int one = 1;
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v6) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(spec.endpoint.port);
    std::memcpy(&sin6.sin6_addr, spec.endpoint.addr.bytes.data(), 16);
    std::memcpy(&ss, &sin6, sizeof sin6);
    len = sizeof sin6;
  } else {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(spec.endpoint.port);
    sin.sin_addr.s_addr = htonl(spec.endpoint.addr.v4_value());
    std::memcpy(&ss, &sin, sizeof sin);
    len = sizeof sin;
  }
  const char* step = nullptr;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    step = "cannot set SO_REUSEADDR on ";
  } else if (v6 && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    step = "cannot set IPV6_V6ONLY on ";
  } else if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    step = "cannot bind ";
  } else if (!udp && ::listen(fd, SOMAXCONN) != 0) {
    step = "cannot listen on ";
  }
  if (step != nullptr) {
    const int err = errno;
    ::close(fd);
    error = failure(step + describe(spec), err);
    return -1;
  }
  return fd;
}

int open_control_socket(const std::string& path, std::string& error) {
  sockaddr_un sun{};
  if (path.empty() || path.size() >= sizeof sun.sun_path) {
    error = "control socket path '" + path + "' is empty or too long";
    return -1;
  }
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  // Only an old socket is replaced: a typo must not remove a regular file.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = failure("cannot open control socket " + path, errno);
    return -1;
  }
  const char* step = nullptr;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun) != 0) {
    step = "cannot bind control socket ";
  } else if (::chmod(path.c_str(), 0600) != 0) {
    // Before listen(): nobody can connect while the mode is still wider.
    step = "cannot chmod control socket ";
  } else if (::listen(fd, 16) != 0) {
    step = "cannot listen on control socket ";
  }
  if (step != nullptr) {
    const int err = errno;
    ::close(fd);
    error = failure(step + path, err);
    return -1;
  }
  return fd;
}

}  // namespace diode::platform

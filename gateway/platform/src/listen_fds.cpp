#include "diode/platform/listen_fds.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace diode::platform {

namespace {

constexpr int kFirstFd = 3;          // SD_LISTEN_FDS_START
constexpr long kMaxListenFds = 4096;  // far more than any gateway.toml implies

std::optional<long> parse_number(const char* s) {
  if (s == nullptr) return std::nullopt;
  const std::string_view v(s);
  long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty()) return std::nullopt;
  return n;
}

// LISTEN_FDNAMES is ':'-separated (sd_listen_fds_with_names(3)); no name
// of ours holds a ':' ("socks.eth1"), so a plain split decodes it.
std::optional<std::vector<std::string>> split_names(std::string_view all, std::string& error) {
  std::vector<std::string> names;
  for (std::size_t start = 0;;) {
    const std::size_t colon = all.find(':', start);
    const std::string_view name =
        all.substr(start, colon == std::string_view::npos ? all.npos : colon - start);
    if (!parse_socket_name(name)) {
      error = "LISTEN_FDNAMES: '" + std::string(name) +
              "' is not a socket name (socks.IFACE, dns-udp.IFACE, dns-tcp.IFACE, control)";
      return std::nullopt;
    }
    names.emplace_back(name);
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return names;
}

// For the child after fork(): a decimal without allocating.
void put_decimal(char* out, std::size_t size, long v) {
  auto [p, ec] = std::to_chars(out, out + size - 1, v);
  *(ec == std::errc() ? p : out) = '\0';
}

}  // namespace

std::vector<NamedSocket> take_listen_fds(std::string& error) {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  const char* names_env = std::getenv("LISTEN_FDNAMES");
  const std::optional<long> want_pid = parse_number(pid);
  const std::optional<long> count = parse_number(fds);
  const std::string names_text = names_env == nullptr ? "" : names_env;
  // Whatever they say, nothing started later may take them for its own.
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (pid == nullptr && fds == nullptr) return {};
  // Meant for another process (e.g. our parent, the environment inherited).
  if (!want_pid || *want_pid != static_cast<long>(::getpid())) return {};
  if (!count || *count < 0 || *count > kMaxListenFds) {
    error = "LISTEN_FDS is not a number of sockets: '" + std::string(fds == nullptr ? "" : fds) + "'";
    return {};
  }
  if (*count == 0) return {};
  if (names_env == nullptr) {
    error = "LISTEN_FDS without LISTEN_FDNAMES: every socket needs its name";
    return {};
  }
  auto names = split_names(names_text, error);
  if (!names) return {};
  if (static_cast<long>(names->size()) != *count) {
    error = "LISTEN_FDNAMES names " + std::to_string(names->size()) + " sockets, LISTEN_FDS says " +
            std::to_string(*count);
    return {};
  }
  std::vector<NamedSocket> out;
  for (long i = 0; i < *count; ++i) {
    const int fd = kFirstFd + static_cast<int>(i);
    const auto& name = (*names)[static_cast<std::size_t>(i)];
    struct stat st {};
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || ::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      error = "inherited fd " + std::to_string(fd) + " (" + name + ") is not an open socket";
      return {};
    }
    auto parsed = parse_socket_name(name);
    if (!parsed) {
      error = "inherited fd " + std::to_string(fd) + ": unknown socket name '" + name + "'";
      return {};
    }
    out.push_back(NamedSocket{fd, parsed->first, parsed->second});
  }
  return out;
}

bool pass_listen_fds_in_child(std::span<const NamedSocket> sockets) {
  const int n = static_cast<int>(sockets.size());
  // First every socket to a number above the target range, then each to its
  // place: a socket that already sits in 3.. is never overwritten before it
  // has been copied.
  std::vector<int> high;
  high.reserve(sockets.size());
  for (const auto& s : sockets) {
    const int fd = ::fcntl(s.fd, F_DUPFD, kFirstFd + n);
    if (fd < 0) return false;
    high.push_back(fd);
  }
  for (int i = 0; i < n; ++i) {
    const int target = kFirstFd + i;
    // dup2 gives the new descriptor no FD_CLOEXEC: it survives exec.
    if (::dup2(high[static_cast<std::size_t>(i)], target) != target) return false;
    ::close(high[static_cast<std::size_t>(i)]);
  }
  std::string names;
  for (const auto& s : sockets) {
    if (!names.empty()) names += ':';
    names += socket_name(s.purpose, s.iface);
  }
  char count[24];
  char pid[24];
  put_decimal(count, sizeof count, n);
  put_decimal(pid, sizeof pid, static_cast<long>(::getpid()));
  return ::setenv("LISTEN_FDS", count, 1) == 0 && ::setenv("LISTEN_FDNAMES", names.c_str(), 1) == 0 &&
         ::setenv("LISTEN_PID", pid, 1) == 0;
}

}  // namespace diode::platform

#include "diode/platform/control_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace diode::platform {

std::optional<std::string> control_request(const std::string& path, std::string_view command,
                                           std::string& error) {
  constexpr std::size_t kMaxReply = std::size_t{64} << 20;
  sockaddr_un sun{};
  if (path.empty() || path.size() >= sizeof sun.sun_path) {
    error = "the path is empty or too long";
    return std::nullopt;
  }
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun) != 0) {
    error = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return std::nullopt;
  }
  std::string line(command);
  line += '\n';
  for (std::size_t done = 0; done < line.size();) {
    const ssize_t n = ::send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    done += static_cast<std::size_t>(n);
  }
  std::string reply;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server closes after its answer
    reply.append(buf, static_cast<std::size_t>(n));
    if (reply.size() > kMaxReply) break;
  }
  ::close(fd);
  return reply;
}

int run_control_client(std::string_view program, const std::string& path, std::string_view command) {
  std::string error;
  const auto reply = control_request(path, command, error);
  if (!reply) {
    std::fprintf(stderr, "%.*s: cannot reach %s: %s\n", static_cast<int>(program.size()),
                 program.data(), path.c_str(), error.c_str());
    return 1;
  }
  std::fwrite(reply->data(), 1, reply->size(), stdout);
  std::fflush(stdout);
  const bool failed = reply->empty() || reply->rfind("error", 0) == 0 ||
                      reply->rfind("reload failed", 0) == 0;
  return failed ? 1 : 0;
}

}  // namespace diode::platform

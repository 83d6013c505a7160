#include "children.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "diode/platform/listen_fds.hpp"
#include "diode/platform/privileges.hpp"

namespace diode::gateway {

namespace {

// The child side of both spawn_child and run_checker, between fork and
// exec. The supervisor is single-threaded, so allocating here is safe.
[[noreturn]] void exec_in_child(const std::vector<std::string>& argv,
                                const std::vector<platform::NamedSocket>& sockets,
                                const std::string& notify_socket, const RunAs& run_as,
                                int parent_pid) {
  // The supervisor's signal handling is not the child's.
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  for (const int sig : {SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGUSR1}) std::signal(sig, SIG_DFL);

  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!notify_socket.empty()) ::setenv("NOTIFY_SOCKET", notify_socket.c_str(), 1);
  if (!sockets.empty() && !platform::pass_listen_fds_in_child(sockets)) {
    std::fprintf(stderr, "diode-gateway: cannot hand down sockets to %s: %s\n", argv[0].c_str(),
                 std::strerror(errno));
    ::_exit(126);
  }
  // Nothing else of the supervisor's crosses exec: its control sockets, the
  // other children's listeners, the notify socket.
  const unsigned first_free = 3U + static_cast<unsigned>(sockets.size());
  ::close_range(first_free, ~0U, 0);
  // Opened while still root: the unprivileged user may not be allowed to
  // look up the path (a build tree under a private directory); running the
  // file through this descriptor needs only its execute bit.
  const int exe = ::open(argv[0].c_str(), O_PATH | O_CLOEXEC);

  if (run_as.drop) {
    std::string error;
    if (!platform::drop_privileges({run_as.user, run_as.group, "/"}, error)) {
      std::fprintf(stderr, "diode-gateway: %s: cannot drop privileges: %s\n", argv[0].c_str(),
                   error.c_str());
      ::_exit(126);
    }
  }
  // Set after the drop: a change of credentials clears it.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent_pid) ::_exit(126);  // the supervisor is already gone

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  if (exe >= 0) ::execveat(exe, "", args.data(), environ, AT_EMPTY_PATH);
  ::execv(args[0], args.data());
  std::fprintf(stderr, "diode-gateway: cannot run %s: %s\n", argv[0].c_str(), std::strerror(errno));
  ::_exit(127);
}

}  // namespace

pid_t spawn_child(const std::vector<std::string>& argv,
                  const std::vector<platform::NamedSocket>& sockets,
                  const std::string& notify_socket, const RunAs& run_as, std::string& error) {
  const int parent = static_cast<int>(::getpid());
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string{"fork: "} + std::strerror(errno);
    return -1;
  }
  if (pid == 0) exec_in_child(argv, sockets, notify_socket, run_as, parent);
  return pid;
}

StartedChecker start_checker(const std::vector<std::string>& argv, const RunAs& run_as,
                             std::string& error) {
  StartedChecker started;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    error = std::string{"pipe: "} + std::strerror(errno);
    return started;
  }
  const int parent = static_cast<int>(::getpid());
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string{"fork: "} + std::strerror(errno);
    ::close(p[0]);
    ::close(p[1]);
    return started;
  }
  if (pid == 0) {
    ::dup2(p[1], STDOUT_FILENO);
    ::dup2(p[1], STDERR_FILENO);
    exec_in_child(argv, {}, {}, run_as, parent);
  }
  ::close(p[1]);
  // Only our end: a checker whose writes failed with EAGAIN would lose them.
  ::fcntl(p[0], F_SETFL, ::fcntl(p[0], F_GETFL) | O_NONBLOCK);
  started.pid = pid;
  started.output_fd = p[0];
  return started;
}

CheckOutcome run_checker(const std::vector<std::string>& argv, const RunAs& run_as,
                         std::chrono::milliseconds timeout) {
  CheckOutcome out;
  std::string error;
  const StartedChecker started = start_checker(argv, run_as, error);
  if (started.pid < 0) {
    out.output = error + "\n";
    return out;
  }
  const pid_t pid = started.pid;
  const int fd = started.output_fd;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool killed = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd pfd{fd, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    if (out.output.size() < 1024 * 1024) out.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (killed) out.output += argv[0] + ": killed after " + std::to_string(timeout.count()) + " ms\n";
  out.ok = !killed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return out;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* abbrev = ::sigabbrev_np(WTERMSIG(status));
    return std::string{"signal "} + (abbrev != nullptr ? abbrev : std::to_string(WTERMSIG(status)));
  }
  return "status " + std::to_string(status);
}

std::optional<unsigned long> resident_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoul(line.c_str() + 6, nullptr, 10);
  }
  return std::nullopt;
}

}  // namespace diode::gateway

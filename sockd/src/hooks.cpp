#include "diode/sockd/hooks.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

extern char** environ;

namespace diode::sockd {

namespace {

using boost::system::error_code;

// One running hook: its pidfd (readable once the process has exited) and
// the timer that kills it.
struct Child {
  Child(net::io_context& io, int pidfd) : fd(io, pidfd), timer(io) {}
  net::posix::stream_descriptor fd;
  net::steady_timer timer;
  pid_t pid = -1;
  bool killed = false;
};

std::string status_text(int status, bool killed) {
  if (killed) return "timeout";
  if (WIFEXITED(status)) return "exit:" + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal:" + std::to_string(WTERMSIG(status));
  return "unknown";
}

}  // namespace

HookRunner::HookRunner(net::io_context& io, HookLimits limits, std::atomic<unsigned>& running,
                       Logger& log)
    : io_(io), limits_(limits), running_(running), log_(log) {}

bool HookRunner::run(const std::string& command, const std::string& origin) {
  unsigned now = running_.load();
  do {
    if (now >= limits_.max_running) {
      log_.event(platform::LogLevel::Warning, "hook_skipped",
                 {{"rule", origin}, {"reason", "hook_max_running reached"}});
      return false;
    }
  } while (!running_.compare_exchange_weak(now, now + 1));

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  // Client and target sockets must not live on in a hook.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGHUP);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);

  std::string sh = "/bin/sh";
  std::string dash_c = "-c";
  std::string cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = -1;
  const int err = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    --running_;
    log_.event(platform::LogLevel::Error, "hook_error", {{"rule", origin}, {"error", std::strerror(err)}});
    return false;
  }
  // glibc 2.36's <sys/pidfd.h> lacks extern "C"; the system call is the same.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    // Cannot watch it without blocking: stop it rather than leave a zombie.
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    --running_;
    log_.event(platform::LogLevel::Error, "hook_error", {{"rule", origin}, {"error", std::strerror(errno)}});
    return false;
  }
  auto child = std::make_shared<Child>(io_, pidfd);
  child->pid = pid;
  child->timer.expires_after(limits_.timeout);
  child->timer.async_wait([child](error_code ec) {
    if (ec) return;
    child->killed = true;
    ::kill(-child->pid, SIGKILL);  // its process group: the shell and what it started
    ::kill(child->pid, SIGKILL);
  });
  std::atomic<unsigned>* running = &running_;
  Logger* log = &log_;
  child->fd.async_wait(net::posix::descriptor::wait_read,
                       [child, running, log, origin](error_code ec) {
                         int status = 0;
                         if (ec) {
                           // Shutting down: reap without waiting if we can.
                           ::waitpid(child->pid, &status, WNOHANG);
                           --*running;
                           return;
                         }
                         ::waitpid(child->pid, &status, 0);
                         error_code ignored;
                         child->timer.cancel();
                         child->fd.close(ignored);
                         --*running;
                         log->event(platform::LogLevel::Info, "hook",
                                    {{"rule", origin},
                                     {"pid", std::to_string(child->pid)},
                                     {"status", status_text(status, child->killed)}});
                       });
  log_.event(platform::LogLevel::Debug, "hook_started", {{"rule", origin}, {"pid", std::to_string(pid)}});
  return true;
}

}  // namespace diode::sockd

// diode-gateway: the supervisor (docs/gateway.md). A thin shell over
// diode::gateway: options, then check or run.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "diode/gateway/supervisor.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: diode-gateway [--config FILE] [--check] [--foreground] [--runtime-dir DIR]\n"
    "                     [--sockd PATH] [--resolver PATH] [--help] [--version]\n"
    "Without --config, the built-in configuration runs: SOCKS on 127.0.0.1:1080 and DNS on\n"
    "127.0.0.1:5353, clients on this host only. See docs/gateway.md.\n";

std::string self_dir() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string{"."} : p.parent_path().string();
}

}  // namespace

int main(int argc, char** argv) {
  diode::gateway::SupervisorOptions o;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage.data(), stdout);
      return 0;
    } else if (a == "--version") {
      std::puts("diode-gateway (Diode) " DIODE_VERSION);
      return 0;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--foreground") {
      // diode-gateway always runs in the foreground (systemd's Type=notify);
      // the flag is accepted so that unit files and habits may say so.
    } else if ((a == "--config" || a == "--runtime-dir" || a == "--sockd" || a == "--resolver") &&
               has_value) {
      std::string v = argv[++i];
      // Children and reloads read it after a chdir: make it absolute now.
      std::error_code ec;
      if (a != "--runtime-dir") v = std::filesystem::absolute(v, ec).string();
      if (a == "--config") o.config_path = v;
      else if (a == "--runtime-dir") o.runtime_dir = v;
      else if (a == "--sockd") o.sockd_path = v;
      else o.resolver_path = v;
    } else {
      std::fprintf(stderr, "diode-gateway: unknown or incomplete argument '%s'\n%s", argv[i],
                   kUsage.data());
      return 2;
    }
  }
  const std::string dir = self_dir();
  if (o.sockd_path.empty()) o.sockd_path = diode::gateway::default_child_path(dir, "sockd");
  if (o.resolver_path.empty()) {
    o.resolver_path = diode::gateway::default_child_path(dir, "diode-resolver");
  }
  if (check) return diode::gateway::check_configuration(o);
  return diode::gateway::run_supervisor(o);
}

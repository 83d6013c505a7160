// diodectl: talks to a running diode-gateway over its control socket
// (docs/gateway.md, "Status and control").
#include <cstdio>
#include <string>
#include <string_view>

#include "diode/gateway/supervisor.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: diodectl [--socket PATH] status | reload | flush [NAME] | hits | metrics\n"
    "       diodectl --version\n"
    "PATH defaults to /run/diode/control (gateway.runtime_dir + /control).\n";

}  // namespace

int main(int argc, char** argv) {
  std::string path = "/run/diode/control";
  std::string command;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage.data(), stdout);
      return 0;
    }
    if (a == "--version") {
      std::puts("diodectl (Diode) " DIODE_VERSION);
      return 0;
    }
    if (a == "--socket" && i + 1 < argc) {
      path = argv[++i];
      continue;
    }
    if (!command.empty()) command += ' ';
    command += a;
  }
  const bool known = command == "status" || command == "reload" || command == "hits" ||
                     command == "metrics" || command == "flush" || command.rfind("flush ", 0) == 0;
  if (!known) {
    std::fputs(kUsage.data(), stderr);
    return 2;
  }
  return diode::gateway::control_client(path, command);
}

// diode-socksify: runs a program with libdiode-socksify.so preloaded, so
// that its connections follow socks.conf (docs/socksify.md). It checks the
// settings and the program first: a malformed socks.conf, a statically
// linked or a setuid program stop here with a message, and nothing runs.

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "diode/socksify/inspect.hpp"
#include "diode/socksify/policy.hpp"

namespace {

constexpr const char* kUsage =
    "usage: diode-socksify [--] COMMAND [ARG...]\n"
    "       diode-socksify --check      check socks.conf and the SOCKS_* variables, run nothing\n"
    "       diode-socksify --library    print the library that would be preloaded\n"
    "       diode-socksify --version | --help\n"
    "Environment: SOCKS_CONF (default /etc/diode/socks.conf), SOCKS_SERVER, SOCKS_NS,\n"
    "SOCKS_USER, SOCKS_PASSWORD or SOCKS_PASSWORD_FILE, SOCKS_DEBUG=1. See diode-socksify(1).\n";

bool exists(const std::string& p) {
  return !p.empty() && ::access(p.c_str(), R_OK) == 0;
}

std::string self_dir() {
  std::vector<char> buf(4096);
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return {};
  std::string p(buf.data(), static_cast<std::size_t>(n));
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? std::string{} : p.substr(0, slash);
}

// Beside the executable (a build tree), then ../lib/diode relative to it
// (an installed prefix that moved), then the path compiled in.
std::string find_library() {
  const std::string dir = self_dir();
  if (!dir.empty()) {
    if (exists(dir + "/libdiode-socksify.so")) return dir + "/libdiode-socksify.so";
    if (exists(dir + "/" DIODE_SOCKSIFY_RELATIVE)) {
      std::vector<char> real(4096);
      const std::string rel = dir + "/" DIODE_SOCKSIFY_RELATIVE;
      if (::realpath(rel.c_str(), real.data()) != nullptr) return real.data();
      return rel;
    }
  }
  if (exists(DIODE_SOCKSIFY_INSTALLED)) return DIODE_SOCKSIFY_INSTALLED;
  return {};
}

int refuse(const std::string& what, int code) {
  std::cerr << "diode-socksify: " << what << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  int i = 1;
  bool check_only = false;
  bool print_library = false;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--version") {
      std::cout << "diode-socksify (Diode) " << DIODE_VERSION << "\n";
      return 0;
    }
    if (a == "--check") {
      check_only = true;
    } else if (a == "--library") {
      print_library = true;
    } else {
      std::cerr << "diode-socksify: unknown option '" << a << "'\n" << kUsage;
      return 2;
    }
  }

  diode::platform::Diagnostics diags;
  const auto settings =
      diode::socksify::load_settings([](const char* n) { return std::getenv(n); }, diags);
  std::cerr << diags.format();
  if (!settings) {
    return refuse("not running anything: fix the errors above first", 2);
  }
  const std::string library = find_library();
  if (print_library) {
    if (library.empty()) return refuse("libdiode-socksify.so not found", 1);
    std::cout << library << "\n";
    return 0;
  }
  if (check_only) {
    std::cout << settings->conf_path << ": "
              << (settings->conf_present
                      ? std::to_string(settings->rules.rules.size()) + " lines, ok"
                      : std::string("absent"))
              << "\n";
    return 0;
  }
  if (i >= argc) {
    std::cerr << kUsage;
    return 2;
  }
  if (library.empty()) {
    return refuse(
        "libdiode-socksify.so not found beside this program nor at " DIODE_SOCKSIFY_INSTALLED, 1);
  }
  if (library.find_first_of(" :\t") != std::string::npos) {
    return refuse(
        "the library path '" + library + "' holds a space or ':', which LD_PRELOAD cannot carry",
        1);
  }

  const char* path_env = std::getenv("PATH");
  const auto insp = diode::socksify::inspect_program(argv[i], path_env != nullptr ? path_env : "");
  using diode::socksify::ProgramKind;
  switch (insp.kind) {
    case ProgramKind::NotFound:
      return refuse(std::string(argv[i]) + ": command not found", 127);
    case ProgramKind::NotExecutable:
      return refuse(insp.path + ": " + insp.detail, 126);
    case ProgramKind::Static:
      return refuse(insp.path +
                        " is statically linked: a preloaded library cannot act in it, so its "
                        "connections would not go through SOCKS; not running it",
                    126);
    case ProgramKind::SetId:
      return refuse(insp.path + " is " + insp.detail +
                        ": the dynamic loader ignores LD_PRELOAD for it, so its connections would "
                        "not go through SOCKS; not running it",
                    126);
    case ProgramKind::Dynamic:
    case ProgramKind::Unknown:
      break;
  }

  std::string preload = library;
  if (const char* old = std::getenv("LD_PRELOAD"); old != nullptr && *old != '\0') {
    preload += " ";
    preload += old;
  }
  ::setenv("LD_PRELOAD", preload.c_str(), 1);
  ::setenv("SOCKS_CONF", settings->conf_path.c_str(), 1);
  const std::string program =
      std::string(argv[i]).find('/') != std::string::npos ? argv[i] : insp.path;
  ::execv(program.c_str(), argv + i);
  const int err = errno;
  return refuse(program + ": " + std::strerror(err), err == ENOENT ? 127 : 126);
}

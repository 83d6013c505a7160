// The wrapper's checks on the program it is asked to run (inspect.hpp).

#include "diode/socksify/inspect.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

namespace diode::socksify {

namespace {

bool read_at(int fd, void* buf, std::size_t n, off_t at) {
  return ::pread(fd, buf, n, at) == static_cast<ssize_t>(n);
}

template <class Ehdr, class Phdr>
bool has_interp(int fd, bool* ok) {
  Ehdr eh{};
  *ok = false;
  if (!read_at(fd, &eh, sizeof eh, 0)) return false;
  if (eh.e_phentsize != sizeof(Phdr) || eh.e_phnum == 0 || eh.e_phnum > 4096) return false;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Phdr ph{};
    if (!read_at(fd, &ph, sizeof ph, static_cast<off_t>(eh.e_phoff + i * sizeof(Phdr))))
      return false;
    if (ph.p_type == PT_INTERP) {
      *ok = true;
      return true;
    }
  }
  *ok = true;
  return false;
}

std::string find_in_path(const std::string& command, const std::string& path_env) {
  if (command.find('/') != std::string::npos) return command;
  std::string rest = path_env.empty() ? "/usr/local/bin:/usr/bin:/bin" : path_env;
  std::size_t start = 0;
  while (start <= rest.size()) {
    const auto colon = rest.find(':', start);
    std::string dir =
        rest.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + command;
    if (::access(candidate.c_str(), X_OK) == 0) {
      struct stat st {};
      if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return candidate;
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return {};
}

}  // namespace

bool elf_is_static(const std::string& path, bool* is_elf, std::string* error) {
  *is_elf = false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error != nullptr) *error = std::strerror(errno);
    return false;
  }
  unsigned char ident[EI_NIDENT] = {};
  bool result = false;
  if (read_at(fd, ident, sizeof ident, 0) && std::memcmp(ident, ELFMAG, SELFMAG) == 0) {
    bool ok = false;
    bool interp = false;
    if (ident[EI_CLASS] == ELFCLASS64) {
      interp = has_interp<Elf64_Ehdr, Elf64_Phdr>(fd, &ok);
    } else if (ident[EI_CLASS] == ELFCLASS32) {
      interp = has_interp<Elf32_Ehdr, Elf32_Phdr>(fd, &ok);
    }
    *is_elf = ok;
    result = ok && !interp;
    if (!ok && error != nullptr) *error = "unreadable ELF program headers";
  } else if (error != nullptr) {
    *error = "not an ELF file";
  }
  ::close(fd);
  return result;
}

Inspection inspect_program(const std::string& command, const std::string& path_env) {
  Inspection r;
  std::string path = find_in_path(command, path_env);
  for (int depth = 0; depth < 5; ++depth) {
    r.path = path;
    struct stat st {};
    if (path.empty() || ::stat(path.c_str(), &st) != 0) {
      r.kind = ProgramKind::NotFound;
      r.path = path.empty() ? command : path;
      r.detail = "not found";
      return r;
    }
    if (!S_ISREG(st.st_mode) || ::access(path.c_str(), X_OK) != 0) {
      r.kind = ProgramKind::NotExecutable;
      r.detail = "not an executable file";
      return r;
    }
    if ((st.st_mode & (S_ISUID | S_ISGID)) != 0) {
      r.kind = ProgramKind::SetId;
      r.detail = (st.st_mode & S_ISUID) != 0 ? "setuid" : "setgid";
      return r;
    }
    bool is_elf = false;
    std::string error;
    const bool is_static = elf_is_static(path, &is_elf, &error);
    if (is_elf) {
      r.kind = is_static ? ProgramKind::Static : ProgramKind::Dynamic;
      r.detail = is_static ? "statically linked" : "dynamically linked";
      return r;
    }
    // A script: the kernel runs its interpreter, which is what must be dynamic.
    std::ifstream in(path, std::ios::binary);
    std::string first;
    if (!std::getline(in, first) || first.rfind("#!", 0) != 0) {
      r.kind = ProgramKind::Unknown;
      r.detail = error;
      return r;
    }
    std::size_t b = 2;
    while (b < first.size() && (first[b] == ' ' || first[b] == '\t')) ++b;
    std::size_t e = b;
    while (e < first.size() && first[e] != ' ' && first[e] != '\t' && first[e] != '\r') ++e;
    path = first.substr(b, e - b);
    if (path.empty()) {
      r.kind = ProgramKind::Unknown;
      r.detail = "empty #! line";
      return r;
    }
  }
  r.kind = ProgramKind::Unknown;
  r.detail = "too many levels of #! interpreters";
  return r;
}

}  // namespace diode::socksify

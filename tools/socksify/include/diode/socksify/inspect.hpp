#pragma once
// What the wrapper checks before it runs a program: a preloaded library
// only acts in a dynamically linked program that the loader does not run in
// secure mode, so statically linked and setuid/setgid programs are refused
// with a clear message rather than left to connect directly.

#include <string>

namespace diode::socksify {

enum class ProgramKind { Dynamic, Static, SetId, NotFound, NotExecutable, Unknown };

struct Inspection {
  ProgramKind kind = ProgramKind::Unknown;
  std::string path;    // the file that decided (a script's interpreter, if any)
  std::string detail;  // for the message
};

/// Finds `command` as execvp would (PATH when it holds no '/'), follows a
/// `#!` line to its interpreter (up to 4 levels), and tells what it is.
Inspection inspect_program(const std::string& command, const std::string& path_env);

/// True when the ELF file at `path` has no PT_INTERP program header (a
/// static or static-pie executable). `error` gets why when it is not ELF.
bool elf_is_static(const std::string& path, bool* is_elf, std::string* error);

}  // namespace diode::socksify

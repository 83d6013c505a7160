#pragma once
// sockd-check's commands, callable from tests: each takes argv-style
// arguments and the streams to write to, and returns the exit code.

#include <iosfwd>
#include <string>
#include <vector>

namespace diode::tools {

/// Runs `sockd-check ARGS...` (args exclude the program name), writing
/// results to `out` and problems to `err`; returns the exit status.
int sockd_check_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace diode::tools

#include "diode/tools/check.hpp"

#include <ostream>

namespace diode::tools {

int sockd_check_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  (void)out;
  err << "sockd-check: not implemented yet (" << args.size() << " arguments)\n";
  return 64;
}

}  // namespace diode::tools

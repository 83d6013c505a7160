#include <iostream>
#include <string>
#include <vector>

#include "diode/tools/check.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return diode::tools::sockd_check_main(args, std::cout, std::cerr);
}

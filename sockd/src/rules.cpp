#include "diode/sockd/rules.hpp"

#include <algorithm>

namespace diode::sockd {

bool PortTest::matches(std::uint16_t port) const {
  switch (op) {
    case PortOp::Any: return true;
    case PortOp::Eq: return port == lo;
    case PortOp::Neq: return port != lo;
    case PortOp::Lt: return port < lo;
    case PortOp::Gt: return port > lo;
    case PortOp::Le: return port <= lo;
    case PortOp::Ge: return port >= lo;
    case PortOp::Range: return port >= lo && port <= hi;
  }
  return false;
}

bool UserList::contains(std::string_view user) const {
  if (any) return true;
  const auto eq = [user](const std::string& n) { return n == user; };
  return std::any_of(names.begin(), names.end(), eq) ||
         std::any_of(file_users.begin(), file_users.end(), eq);
}

}  // namespace diode::sockd

// Fuzzes the users file parser (/etc/diode/users, read by sockd and
// sockd-check): on what parses, every entry must be well formed and findable.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "diode/sockd/users.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  diode::platform::Diagnostics diags;
  const auto users = diode::sockd::parse_users_file(text, "fuzz.users", diags);
  if (users.has_value() == diags.has_errors()) std::abort();  // all or nothing
  if (!users) return 0;
  std::set<std::string> seen;
  for (const auto& u : users->users) {
    if (u.name.empty() || u.name.find_first_of(": \t") != std::string::npos) std::abort();
    if (!seen.insert(u.name).second) std::abort();  // duplicates are errors
    if (users->find(u.name) != &u) std::abort();
    if (u.locked != (!u.hash.empty() && u.hash.front() == '!')) std::abort();
    if (!u.locked && !diode::sockd::is_supported_crypt_hash(u.hash)) std::abort();
    if (u.pos.line == 0 || u.pos.column == 0) std::abort();
  }
  return 0;
}

#pragma once
// Root hints in the classic named.root format (RFC 1035 §5 master-file
// syntax, restricted to what the hints need): the root's NS names and their
// A/AAAA addresses. Debian's dns-root-data ships the file.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/diagnostics.hpp"
#include "diode/resolver/name.hpp"

namespace diode::resolver {

inline constexpr std::string_view kDefaultRootHintsPath = "/usr/share/dns/root.hints";

struct RootServer {
  Name name;
  std::vector<platform::IpAddress> addresses;  // in file order
};

struct RootHints {
  std::vector<RootServer> servers;  // in the order of their NS records
  std::uint32_t ns_ttl = 0;         // the smallest TTL of the NS records
};

/// Parses hints text. Every problem is added to `diags` as
/// `file:line:col: error: ...` (or a warning); returns hints only when there
/// was no error. `file` names the source in diagnostics.
std::optional<RootHints> parse_root_hints(std::string_view text, std::string_view file,
                                          platform::Diagnostics& diags);

/// Reads and parses a hints file; an unreadable file is an error.
std::optional<RootHints> load_root_hints(const std::string& path, platform::Diagnostics& diags);

}  // namespace diode::resolver

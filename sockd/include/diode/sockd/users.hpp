#pragma once
// The users file (/etc/diode/users): one `name:HASH` a line, HASH a crypt(3)
// string (yescrypt `$y$`, sha512-crypt `$6$`) or `!` for a locked account.
// Read by sockd for RFC 1929 username/password authentication and by
// sockd-check to check `*=` user lists.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/platform/diagnostics.hpp"

namespace diode::sockd {

struct UserEntry {
  std::string name;
  std::string hash;     // as written; "!" (or "!" + hash) when locked
  bool locked = false;  // a locked account never authenticates
  platform::SourcePos pos;
};

/// A parsed users file; entries keep the file's order.
struct UsersFile {
  std::string file;
  std::vector<UserEntry> users;

  /// The entry for `name`, or null; the pointer lives as long as this object.
  const UserEntry* find(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
};

/// Parses the text of a users file. Every malformed line, duplicate user or
/// bad name is reported in `diags`; returns nullopt if there was any error
/// (a users file is never half applied).
std::optional<UsersFile> parse_users_file(std::string_view text, const std::string& file,
                                          platform::Diagnostics& diags);

/// Reads and parses `path`; an unreadable file is an error at line 0.
std::optional<UsersFile> load_users_file(const std::string& path, platform::Diagnostics& diags);

/// True when `hash` has the shape of a hash we accept: `$y$params$salt$hash`
/// (yescrypt) or `$6$[rounds=N$]salt$hash` (sha512-crypt).
bool is_supported_crypt_hash(std::string_view hash);

}  // namespace diode::sockd

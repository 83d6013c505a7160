#include "diode/sockd/users.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace diode::sockd {

namespace {

// Longer lines cannot hold a sensible name:hash pair (RFC 1929 caps UNAME
// at 255 bytes; hashes are ~120), so a huge line is garbage, not data.
constexpr std::size_t kMaxLine = 1024;
constexpr std::size_t kMaxName = 255;  // RFC 1929 section 2: ULEN is one byte
constexpr std::size_t kMaxFileBytes = std::size_t{16} * 1024 * 1024;

bool is_crypt64(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '/';
}

bool all_crypt64(std::string_view s) {
  return std::all_of(s.begin(), s.end(), is_crypt64);
}

// Splits "a$b$c" on '$'.
std::vector<std::string_view> split_dollar(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto d = s.find('$', start);
    if (d == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, d - start));
    start = d + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

const UserEntry* UsersFile::find(std::string_view name) const {
  for (const auto& u : users) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

bool is_supported_crypt_hash(std::string_view hash) {
  if (hash.size() < 4 || hash.front() != '$') return false;
  const auto parts = split_dollar(hash.substr(1));
  if (parts.empty()) return false;
  if (parts[0] == "6") {
    // $6$[rounds=N$]salt$hash, the hash being 86 characters of crypt64.
    std::size_t i = 1;
    if (parts.size() == 4) {
      const auto r = parts[1];
      if (r.substr(0, 7) != "rounds=" || r.size() == 7 || r.size() > 17) return false;
      if (!std::all_of(r.begin() + 7, r.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
      i = 2;
    } else if (parts.size() != 3) {
      return false;
    }
    const auto salt = parts[i];
    const auto h = parts[i + 1];
    return !salt.empty() && salt.size() <= 16 && all_crypt64(salt) && h.size() == 86 &&
           all_crypt64(h);
  }
  if (parts[0] == "y") {
    // $y$params$salt$hash: yescrypt's hash is 43 characters of crypt64.
    if (parts.size() != 4) return false;
    return !parts[1].empty() && all_crypt64(parts[1]) && !parts[2].empty() &&
           all_crypt64(parts[2]) && parts[3].size() == 43 && all_crypt64(parts[3]);
  }
  return false;
}

std::optional<UsersFile> parse_users_file(std::string_view text, const std::string& file,
                                          platform::Diagnostics& diags) {
  UsersFile result;
  result.file = file;
  bool bad = false;
  std::unordered_map<std::string, std::uint32_t> seen;
  const auto error = [&](std::uint32_t line, std::size_t col, std::string msg, const char* code) {
    diags.error({file, line, static_cast<std::uint32_t>(col)}, std::move(msg), code);
    bad = true;
  };

  std::uint32_t line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view raw = text.substr(start, end - start);
    start = end + 1;
    ++line_no;

    if (raw.size() > kMaxLine) {
      error(line_no, 1,
            "line is " + std::to_string(raw.size()) + " bytes long (at most " +
                std::to_string(kMaxLine) + ")",
            "line-too-long");
      continue;
    }
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const std::size_t col0 = static_cast<std::size_t>(line.data() - raw.data()) + 1;

    if (auto c = std::find_if(
            line.begin(), line.end(),
            [](char ch) { return static_cast<unsigned char>(ch) < 0x20 && ch != '\t'; });
        c != line.end()) {
      error(line_no, col0 + static_cast<std::size_t>(c - line.begin()), "control character in line",
            "bad-char");
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      error(line_no, col0, "expected `name:HASH`, found no ':'", "syntax");
      continue;
    }
    const std::string_view name = line.substr(0, colon);
    const std::string_view hash = line.substr(colon + 1);
    if (name.empty()) {
      error(line_no, col0, "empty user name", "bad-name");
      continue;
    }
    if (name.size() > kMaxName) {
      error(line_no, col0, "user name longer than 255 bytes (RFC 1929 limit)", "bad-name");
      continue;
    }
    if (auto b = name.find_first_of(" \t"); b != std::string_view::npos) {
      error(line_no, col0 + b, "user name `" + std::string(name) + "` contains a blank",
            "bad-name");
      continue;
    }
    const std::size_t hash_col = col0 + colon + 1;
    if (hash.find(':') != std::string_view::npos) {
      error(line_no, hash_col + hash.find(':'),
            "unexpected ':' after the hash (a user name cannot contain ':')", "syntax");
      continue;
    }
    if (hash.empty()) {
      error(line_no, hash_col, "missing hash after ':' (write `!` to lock the account)",
            "bad-hash");
      continue;
    }
    if (hash.find_first_of(" \t") != std::string_view::npos) {
      error(line_no, hash_col + hash.find_first_of(" \t"), "blank inside the hash", "bad-hash");
      continue;
    }
    UserEntry entry;
    entry.name = std::string(name);
    entry.hash = std::string(hash);
    entry.pos = {file, line_no, static_cast<std::uint32_t>(col0)};
    if (hash.front() == '!') {
      entry.locked = true;
      const auto rest = hash.substr(1);
      if (!rest.empty() && !is_supported_crypt_hash(rest)) {
        error(line_no, hash_col + 1, "locked account with a malformed hash after `!`", "bad-hash");
        continue;
      }
    } else if (!is_supported_crypt_hash(hash)) {
      error(line_no, hash_col,
            "not a yescrypt ($y$) or sha512-crypt ($6$) hash; make one with `mkpasswd -m yescrypt`",
            "bad-hash");
      continue;
    }
    if (auto [it, inserted] = seen.emplace(entry.name, line_no); !inserted) {
      platform::Diagnostic d;
      d.pos = entry.pos;
      d.severity = platform::Severity::Error;
      d.code = "duplicate-user";
      d.message = "duplicate user `" + entry.name + "` (first defined on line " +
                  std::to_string(it->second) + ")";
      d.related.push_back({file, it->second, 1});
      diags.add(std::move(d));
      bad = true;
      continue;
    }
    result.users.push_back(std::move(entry));
  }
  if (bad) return std::nullopt;
  return result;
}

std::optional<UsersFile> load_users_file(const std::string& path, platform::Diagnostics& diags) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    diags.error({path, 0, 0}, std::string("cannot open users file: ") + std::strerror(errno),
                "unreadable");
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    diags.error({path, 0, 0}, "users file is not a regular file", "unreadable");
    return std::nullopt;
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxFileBytes) {
    diags.error({path, 0, 0}, "users file is larger than 16 MiB", "too-large");
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.error({path, 0, 0}, "cannot open users file", "unreadable");
    return std::nullopt;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_users_file(buf.str(), path, diags);
}

}  // namespace diode::sockd

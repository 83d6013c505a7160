// sockd-check passwd: adds a user to the users file, changes a password,
// locks or deletes an account. The file is rewritten atomically (a new file
// beside it, then rename), keeps every other line as it was, and is never
// written if it or the result does not parse.
#include <crypt.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli.hpp"
#include "diode/sockd/auth.hpp"
#include "diode/sockd/users.hpp"

namespace diode::tools::cli {

namespace {

constexpr std::size_t kMaxUsersFile = 4 * 1024 * 1024;

bool valid_user_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;  // RFC 1929 ULEN
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == ':' || c == '#' || c == ',') return false;
  }
  return true;
}

// The first line of `in`, without its line end.
std::optional<std::string> read_password(std::istream& in) {
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// A fresh crypt(3) hash; libxcrypt draws the salt from the kernel's random source.
std::optional<std::string> make_hash(const std::string& password, const std::string& prefix) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (::crypt_gensalt_rn(prefix.c_str(), 0, nullptr, 0, setting, sizeof setting) == nullptr) {
    return std::nullopt;
  }
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = ::crypt_rn(password.c_str(), setting, data.get(), sizeof(crypt_data));
  if (out == nullptr || out[0] == '*') return std::nullopt;
  return std::string(out);
}

bool write_atomically(const std::string& path, const std::string& text, std::string& error) {
  struct stat st {};
  const mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0600;
  std::string tmp = path + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    error = "cannot create a file beside " + path + ": " + std::strerror(errno);
    return false;
  }
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot write " + path + ": " + std::strerror(ok ? errno : saved);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int passwd_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto o = parse_options(args, 1, {"--password-file", "--method"}, {"--lock", "--delete"},
                         "passwd", err);
  if (!o) return kExitUsage;
  if (o->positional.size() != 2) {
    err << "sockd-check passwd: usage: sockd-check passwd USERS_FILE NAME [--password-file FILE]"
           " [--method yescrypt|sha512] [--lock | --delete]\n";
    return kExitUsage;
  }
  const std::string& path = o->positional[0];
  const std::string& name = o->positional[1];
  if (!valid_user_name(name)) {
    err << "sockd-check passwd: '" << name
        << "' is not a valid user name (1-255 bytes; no blanks, control characters, ':', '#' or ',')\n";
    return kExitUsage;
  }
  const bool lock = o->has("--lock");
  const bool remove = o->has("--delete");
  if (lock && remove) {
    err << "sockd-check passwd: --lock and --delete exclude each other\n";
    return kExitUsage;
  }
  const std::string method = o->get("--method").value_or("yescrypt");
  if (method != "yescrypt" && method != "sha512") {
    err << "sockd-check passwd: --method is yescrypt or sha512, not '" << method << "'\n";
    return kExitUsage;
  }

  // The current file, which must be valid: a broken file is not rewritten.
  std::string text;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    std::string error;
    auto read = read_text_file(path, kMaxUsersFile, error);
    if (!read) {
      err << path << ": error: " << error << '\n';
      return kExitConfig;
    }
    text = std::move(*read);
  } else if (lock || remove) {
    err << path << ": error: no such file\n";
    return kExitConfig;
  }
  platform::Diagnostics diags;
  const auto users = sockd::parse_users_file(text, path, diags);
  if (!users) {
    err << diags.format() << "sockd-check passwd: " << path << " left unchanged\n";
    return kExitConfig;
  }
  const sockd::UserEntry* entry = users->find(name);

  std::string new_line;  // empty: the line goes
  if (remove || lock) {
    if (entry == nullptr) {
      err << path << ": error: no user '" << name << "'\n";
      return kExitConfig;
    }
    if (lock) new_line = name + ":" + (entry->locked ? entry->hash : "!" + entry->hash);
  } else {
    std::optional<std::string> password;
    if (auto file = o->get("--password-file")) {
      std::ifstream in(*file);
      if (!in) {
        err << "sockd-check passwd: cannot read " << *file << '\n';
        return kExitUsage;
      }
      password = read_password(in);
    } else {
      password = read_password(std::cin);
    }
    if (!password || password->empty() || password->size() > 255 ||
        password->find('\0') != std::string::npos) {
      err << "sockd-check passwd: the password (the first line of the input) must be 1-255 bytes\n";
      return kExitUsage;
    }
    const auto hash = make_hash(*password, method == "yescrypt" ? "$y$" : "$6$");
    if (!hash || !sockd::crypt_matches(*password, *hash)) {
      err << "sockd-check passwd: crypt(3) could not hash the password\n";
      return 1;
    }
    new_line = name + ":" + *hash;
  }

  // Rewrite: every other line as it was, the user's line replaced in place
  // (or appended for a new user).
  std::string result;
  std::istringstream lines(text);
  std::string line;
  std::uint32_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (entry != nullptr && number == entry->pos.line) {
      if (!new_line.empty()) result += new_line + '\n';
      continue;
    }
    result += line + '\n';
  }
  if (entry == nullptr) result += new_line + '\n';

  platform::Diagnostics check;
  if (!sockd::parse_users_file(result, path, check)) {
    err << check.format() << "sockd-check passwd: refusing to write an invalid file\n";
    return 1;
  }
  std::string error;
  if (!write_atomically(path, result, error)) {
    err << "sockd-check passwd: " << error << '\n';
    return 1;
  }
  const char* what = remove ? "deleted from" : lock ? "locked in" : entry ? "changed in" : "added to";
  out << "sockd-check: user " << name << ' ' << what << ' ' << path
      << " (running relays pick it up on SIGHUP)\n";
  return 0;
}

}  // namespace diode::tools::cli

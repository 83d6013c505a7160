#include "parse_common.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace diode::sockd::detail {

using platform::Family;
using platform::IpAddress;
using platform::Prefix;

void ErrorSink::error(std::uint32_t line, std::uint32_t col, std::string message) {
  if (stopped_) return;
  if (count_ == kMaxErrors) {
    diags_.error(pos(line, col),
                 "too many errors (" + std::to_string(kMaxErrors) + "); not checking the rest of the file",
                 "too-many-errors");
    stopped_ = true;
    return;
  }
  ++count_;
  diags_.error(pos(line, col), std::move(message), "syntax");
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool is_v6_like(std::string_view s) {
  if (s.find(':') == std::string_view::npos) return false;
  const auto p = Prefix::parse(s);
  return p.has_value() && p->addr.family == Family::V6;
}

bool all_digits_and_dots(std::string_view s) {
  bool digit = false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
    digit = digit || c != '.';
  }
  return digit;
}

/// Only hex digits, dots, slashes and two or more colons: meant as an IPv6
/// address, so it is kept whole and reported as a bad address rather than
/// cut at its first ':' into a number and a shell command.
bool looks_like_bad_v6(std::string_view s) {
  std::size_t colons = 0;
  for (const char c : s) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (c == ':') ++colons;
    else if (!hex && c != '.' && c != '/') return false;
  }
  return colons >= 2;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

/// ::ffff:a.b.c.d/len (len ≥ 96) is the IPv4 network a.b.c.d/(len-96): the
/// relay unmaps client addresses, so a rule written mapped must too.
MaskedAddress unmap_masked(const MaskedAddress& m) {
  const IpAddress plain = m.addr.unmapped();
  if (plain.family != Family::V4 || m.addr.family != Family::V6) return m;
  for (std::size_t i = 0; i < 12; ++i) {
    if (m.mask.bytes[i] != 0xff) return m;
  }
  MaskedAddress out;
  out.addr = plain;
  out.mask.family = Family::V4;
  for (std::size_t i = 0; i < 4; ++i) out.mask.bytes[i] = m.mask.bytes[12 + i];
  return out;
}

AddressMatch masked_or_any(const MaskedAddress& m, std::uint32_t col) {
  AddressMatch out;
  out.pos.column = col;
  if (m.mask.is_unspecified()) return out;  // all-zero mask: NEC's "any host"
  out.kind = AddressMatch::Kind::Masked;
  out.masked = unmap_masked(m);
  return out;
}

}  // namespace

const LineTokens& tokenize(std::string_view line, ColonRule rule) {
  // One buffer per thread: a 100,000-line file would otherwise allocate a
  // token vector per line.
  thread_local LineTokens out;
  out.tokens.clear();
  out.has_shell = false;
  out.shell = {};
  out.shell_col = 0;
  out.colon_col = 0;
  out.end_col = 1;
  std::size_t i = 0;
  const auto take_shell = [&](std::size_t colon) {
    out.has_shell = true;
    out.colon_col = static_cast<std::uint32_t>(colon + 1);
    std::size_t s = colon + 1;
    while (s < line.size() && is_blank(line[s])) ++s;
    out.shell = trim(line.substr(s));
    out.shell_col = static_cast<std::uint32_t>(s + 1);
  };
  while (i < line.size()) {
    if (is_blank(line[i])) {
      ++i;
      continue;
    }
    if (line[i] == '#') break;
    std::size_t j = i;
    while (j < line.size() && !is_blank(line[j]) && line[j] != '#') ++j;
    std::string_view raw = line.substr(i, j - i);
    std::size_t split = std::string_view::npos;
    const bool keeps_colons = rule == ColonRule::Plain ||
                              (rule == ColonRule::ShellCommandListAt && raw.substr(0, 2) == "@=");
    if (!keeps_colons && raw.find(':') != std::string_view::npos && !is_v6_like(raw)) {
      // The longest leading part that is an IPv6 address keeps its colons
      // (`2001:db8::1:cmd`); otherwise the first ':' starts the command.
      for (std::size_t p = raw.rfind(':'); p != std::string_view::npos && p > 0;
           p = raw.rfind(':', p - 1)) {
        if (is_v6_like(raw.substr(0, p))) {
          split = p;
          break;
        }
      }
      if (split == std::string_view::npos && !looks_like_bad_v6(raw)) split = raw.find(':');
    }
    if (split != std::string_view::npos) {
      if (split > 0) {
        out.tokens.push_back(Token{raw.substr(0, split), static_cast<std::uint32_t>(i + 1)});
        out.end_col = static_cast<std::uint32_t>(i + split + 1);
      }
      take_shell(i + split);
      return out;
    }
    out.tokens.push_back(Token{raw, static_cast<std::uint32_t>(i + 1)});
    out.end_col = static_cast<std::uint32_t>(j + 1);
    i = j;
  }
  return out;
}

AddressParse parse_address_tokens(const std::vector<Token>& tokens, std::size_t i) {
  AddressParse r;
  const Token& t = tokens[i];
  const std::string_view w = t.text;
  const auto fail = [&](std::string msg, std::uint32_t col) {
    r.error = std::move(msg);
    r.error_col = col;
    return r;
  };
  // A dotted quad right after a name is its (ignored) mask; NEC required one.
  const auto eat_name_mask = [&]() -> bool {
    if (i + 1 < tokens.size() && all_digits_and_dots(tokens[i + 1].text)) {
      r.consumed = 2;
      if (!IpAddress::parse_v4(tokens[i + 1].text)) {
        fail("invalid mask '" + std::string(tokens[i + 1].text) + "'", tokens[i + 1].col);
        return false;
      }
      r.consumed = 2;
    }
    return true;
  };
  if (w.find('/') != std::string_view::npos) {
    const auto p = Prefix::parse(w);
    if (!p) return fail("invalid prefix '" + std::string(w) + "'", t.col);
    r.match = masked_or_any(p->to_masked(), t.col);
    return r;
  }
  if (w.find(':') != std::string_view::npos) {
    const auto a = IpAddress::parse_v6(w);
    if (!a) return fail("invalid IPv6 address '" + std::string(w) + "'", t.col);
    r.match = masked_or_any(MaskedAddress{*a, platform::mask_of_length(Family::V6, 128)}, t.col);
    return r;
  }
  if (all_digits_and_dots(w)) {
    const bool mask_follows = i + 1 < tokens.size() && all_digits_and_dots(tokens[i + 1].text);
    if (mask_follows) r.consumed = 2;  // so one bad address is one error, not two
    const auto a = IpAddress::parse_v4(w);
    if (!a) return fail("invalid IPv4 address '" + std::string(w) + "'", t.col);
    if (!mask_follows) {
      return fail("missing mask after address '" + std::string(w) +
                      "' (write a dotted-quad mask, or " + std::string(w) + "/len)",
                  t.end_col());
    }
    const Token& mt = tokens[i + 1];
    const auto m = IpAddress::parse_v4(mt.text);
    if (!m) return fail("invalid mask '" + std::string(mt.text) + "'", mt.col);
    r.match = masked_or_any(MaskedAddress{*a, *m}, t.col);
    return r;
  }
  AddressMatch d;
  d.kind = AddressMatch::Kind::Domain;
  d.pos.column = t.col;
  std::string_view name = w;
  if (name.front() == '.') {
    d.zone = true;
    name.remove_prefix(1);
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (!platform::is_valid_domain_name(name)) {
    if (i + 1 < tokens.size() && all_digits_and_dots(tokens[i + 1].text)) r.consumed = 2;
    return fail(std::string(d.zone ? "invalid zone '" : "invalid address or name '") +
                    std::string(w) + "'",
                t.col);
  }
  d.domain = lower(name);
  if (!eat_name_mask()) return r;
  r.match = std::move(d);
  return r;
}

bool is_port_op(std::string_view word) {
  if (word.size() < 2 || word.size() > 5) return false;
  char buf[5];
  for (std::size_t i = 0; i < word.size(); ++i) {
    const char c = word[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view w(buf, word.size());
  return w == "eq" || w == "neq" || w == "lt" || w == "gt" || w == "le" || w == "ge" ||
         w == "range";
}

std::optional<std::uint16_t> lookup_service(std::string_view name) {
  // getservbyname is not thread-safe and reads /etc/services each time;
  // the cache keeps a 100k-line file naming `telnet` everywhere fast.
  thread_local std::unordered_map<std::string, std::optional<std::uint16_t>> cache;
  const std::string key(name);
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  if (cache.size() > 4096) cache.clear();
  std::optional<std::uint16_t> port;
  servent ent{};
  servent* result = nullptr;
  std::array<char, 4096> buf{};
  if (getservbyname_r(key.c_str(), "tcp", &ent, buf.data(), buf.size(), &result) == 0 &&
      result != nullptr) {
    port = ntohs(static_cast<std::uint16_t>(result->s_port));
  }
  cache.emplace(key, port);
  return port;
}

std::size_t parse_port_test(const std::vector<Token>& tokens, std::size_t i, std::uint32_t line,
                            std::uint32_t line_end, ErrorSink& sink, PortTest& out) {
  const Token& op = tokens[i];
  const std::string w = lower(op.text);
  out.pos.column = op.col;
  out.pos.line = line;
  out.pos.file = sink.file();
  if (i + 1 >= tokens.size()) {
    sink.error(line, line_end, "missing port after '" + std::string(op.text) + "'");
    return 1;
  }
  const Token& arg = tokens[i + 1];
  if (w == "range") {
    const auto dash = arg.text.find('-');
    const auto lo = dash == std::string_view::npos ? std::nullopt
                                                   : platform::parse_port_number(arg.text.substr(0, dash));
    const auto hi = dash == std::string_view::npos ? std::nullopt
                                                   : platform::parse_port_number(arg.text.substr(dash + 1));
    if (!lo || !hi) {
      sink.error(line, arg.col,
                 "invalid port range '" + std::string(arg.text) + "' (write LO-HI, numbers below 65536)");
    } else if (*lo > *hi) {
      sink.error(line, arg.col, "empty port range '" + std::string(arg.text) + "' (LO is above HI)");
    } else {
      out.op = PortOp::Range;
      out.lo = *lo;
      out.hi = *hi;
    }
    return 2;
  }
  std::optional<std::uint16_t> port;
  if (all_digits(arg.text)) {
    port = platform::parse_port_number(arg.text);
    if (!port) {
      sink.error(line, arg.col, "port " + std::string(arg.text) + " out of range (must be below 65536)");
      return 2;
    }
  } else {
    port = lookup_service(arg.text);
    if (!port) {
      sink.error(line, arg.col, "unknown service '" + std::string(arg.text) + "' (not a tcp service in /etc/services)");
      return 2;
    }
  }
  out.lo = *port;
  if (w == "eq") out.op = PortOp::Eq;
  else if (w == "neq") out.op = PortOp::Neq;
  else if (w == "lt") out.op = PortOp::Lt;
  else if (w == "gt") out.op = PortOp::Gt;
  else if (w == "le") out.op = PortOp::Le;
  else out.op = PortOp::Ge;
  return 2;
}

std::optional<std::string> read_text_file(const std::string& path, std::string& error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  if (S_ISDIR(st.st_mode)) {
    error = "is a directory, not a file";
    return std::nullopt;
  }
  if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > kMaxFileSize) {
    error = "file too large (" + std::to_string(st.st_size) + " bytes; the limit is 64 MiB)";
    return std::nullopt;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::string out;
  std::array<char, 65536> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      error = std::string("cannot read: ") + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<std::size_t>(n));
    if (out.size() > kMaxFileSize) {
      error = "file too large (over 64 MiB)";
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  return out;
}

std::optional<std::string> read_config_file(const std::string& path, platform::Diagnostics& diags) {
  std::string error;
  auto text = read_text_file(path, error);
  if (!text) diags.error(platform::SourcePos{path, 0, 0}, error, "io");
  return text;
}

bool is_interface_name(std::string_view s) {
  // IFNAMSIZ is 16 with the NUL; '/' and blanks are what the kernel refuses.
  if (s.empty() || s.size() > 15 || all_digits_and_dots(s)) return false;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '@';
    if (!ok) return false;
  }
  return true;
}

void parse_user_list(std::string_view value, std::uint32_t col, std::uint32_t line,
                     const ParseOptions& opts, UserFileCache& cache, ErrorSink& sink, UserList& out) {
  out.pos = sink.pos(line, col - 2);
  if (value.empty()) {
    out.any = true;  // NEC: a bare `*=` means every user
    return;
  }
  out.any = false;
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    const std::string_view item = value.substr(start, comma - start);
    const auto item_col = static_cast<std::uint32_t>(col + start);
    if (item.empty()) {
      sink.error(line, item_col, "empty item in *= list");
    } else if (item.front() == '/') {
      const std::string path(item);
      out.files.push_back(path);
      if (opts.read_user_files) {
        auto it = cache.files.find(path);
        if (it == cache.files.end()) {
          std::string error;
          auto users = read_user_file(path, &error);
          if (!users) cache.errors[path] = error;
          it = cache.files.emplace(path, std::move(users)).first;
        }
        if (it->second) {
          out.file_users.insert(out.file_users.end(), it->second->begin(), it->second->end());
        } else {
          sink.error(line, item_col, "cannot read user file '" + path + "': " + cache.errors[path]);
        }
      }
    } else {
      out.names.emplace_back(item);
    }
    start = comma + 1;
  }
}

}  // namespace diode::sockd::detail

namespace diode::sockd {

std::optional<std::vector<std::string>> read_user_file(const std::string& path, std::string* error) {
  std::string err;
  const auto text = detail::read_text_file(path, err);
  if (!text) {
    if (error != nullptr) *error = err;
    return std::nullopt;
  }
  std::vector<std::string> users;
  std::size_t i = 0;
  const std::string& t = *text;
  while (i < t.size()) {
    const char c = t[i];
    if (c == '#') {
      while (i < t.size() && t[i] != '\n') ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == ',' || c == '\n' || c == '\r') {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < t.size() && t[j] != ' ' && t[j] != '\t' && t[j] != ',' && t[j] != '\n' &&
           t[j] != '\r' && t[j] != '#') {
      ++j;
    }
    users.emplace_back(t.substr(i, j - i));
    i = j;
  }
  return users;
}

std::optional<std::uint16_t> parse_port_operand(std::string_view text) {
  if (text.empty()) return std::nullopt;
  bool digits = true;
  for (const char c : text) digits = digits && c >= '0' && c <= '9';
  if (digits) return platform::parse_port_number(text);
  return detail::lookup_service(text);
}

std::optional<AddressMatch> parse_address_field(std::string_view text, std::string* error) {
  std::vector<detail::Token> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == '\t') {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\t') ++j;
    tokens.push_back(detail::Token{text.substr(i, j - i), static_cast<std::uint32_t>(i + 1)});
    i = j;
  }
  const auto fail = [error](std::string msg) -> std::optional<AddressMatch> {
    if (error != nullptr) *error = std::move(msg);
    return std::nullopt;
  };
  if (tokens.empty()) return fail("empty address");
  auto r = detail::parse_address_tokens(tokens, 0);
  if (!r.match) return fail(r.error);
  if (r.consumed != tokens.size()) {
    return fail("unexpected '" + std::string(tokens[r.consumed].text) + "' after the address");
  }
  return r.match;
}

}  // namespace diode::sockd

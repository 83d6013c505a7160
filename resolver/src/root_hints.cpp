#include "diode/resolver/root_hints.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "diode/resolver/wire.hpp"

namespace diode::resolver {

namespace {

// named.root's TTL, used when neither the record nor $TTL gives one.
constexpr std::uint32_t kClassicHintsTtl = 3600000;
// RFC 2181 §8: TTLs are 31-bit.
constexpr std::uint64_t kMaxTtl = 0x7FFFFFFF;

struct Token {
  std::string_view text;
  std::uint32_t column = 0;  // 1-based
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lo = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lo(a[i]) != lo(b[i])) return false;
  }
  return true;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::optional<std::uint32_t> parse_ttl(std::string_view s) {
  if (!all_digits(s)) return std::nullopt;
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v > kMaxTtl) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

bool is_class_token(std::string_view s) {
  return iequals(s, "IN") || iequals(s, "CH") || iequals(s, "HS") || iequals(s, "CS") ||
         (s.size() > 5 && iequals(s.substr(0, 5), "CLASS") && all_digits(s.substr(5)));
}

// An owner or NS target: absolute with a trailing dot, else relative to
// $ORIGIN (RFC 1035 §5.1); "@" is the origin itself.
std::optional<Name> parse_domain(std::string_view text, const Name& origin) {
  if (text == "@") return origin;
  // A trailing dot that is not escaped makes the name absolute.
  std::size_t backslashes = 0;
  for (std::size_t i = text.size() - 1; i > 0 && text[i - 1] == '\\'; --i) ++backslashes;
  const bool absolute = !text.empty() && text.back() == '.' && backslashes % 2 == 0;
  if (absolute || text == ".") return Name::from_text(text);
  auto rel = Name::from_text(text);
  if (!rel) return std::nullopt;
  std::string joined(text);
  joined += '.';
  if (!origin.is_root()) joined += origin.to_text();
  return Name::from_text(joined);
}

struct Pending {
  Name owner;
  std::uint16_t type = 0;
  Name target;               // NS
  platform::IpAddress addr;  // A, AAAA
  std::uint32_t ttl = 0;
  platform::SourcePos pos;  // of the owner
};

}  // namespace

std::optional<RootHints> parse_root_hints(std::string_view text, std::string_view file,
                                          platform::Diagnostics& diags) {
  const std::string fname(file);
  const std::size_t errors_before = diags.count(platform::Severity::Error);
  const auto error = [&](std::uint32_t line, std::uint32_t col, std::string msg) {
    diags.error({fname, line, col}, std::move(msg), "root-hints");
  };
  Name origin;
  std::optional<std::uint32_t> default_ttl;
  std::optional<std::uint32_t> last_ttl;
  std::optional<Name> last_owner;
  std::vector<Pending> records;

  std::uint32_t line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (const auto semi = line.find(';'); semi != std::string_view::npos)
      line = line.substr(0, semi);

    std::vector<Token> tokens;
    bool bad_paren = false;
    for (std::size_t i = 0; i < line.size();) {
      const char c = line[i];
      if (c == ' ' || c == '\t') {
        ++i;
        continue;
      }
      if (c == '(' || c == ')') {
        error(line_no, static_cast<std::uint32_t>(i + 1),
              "parentheses (records over several lines) are not supported in root hints");
        bad_paren = true;
        break;
      }
      const std::size_t b = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
        i += (line[i] == '\\' && i + 1 < line.size()) ? 2u : 1u;
      }
      tokens.push_back({line.substr(b, i - b), static_cast<std::uint32_t>(b + 1)});
    }
    if (bad_paren || tokens.empty()) continue;

    const bool owner_blank = line[0] == ' ' || line[0] == '\t';
    std::size_t t = 0;
    if (!owner_blank && tokens[0].text[0] == '$') {
      const Token& d = tokens[0];
      if (iequals(d.text, "$TTL")) {
        if (tokens.size() != 2) {
          error(line_no, d.column, "$TTL takes exactly one value");
        } else if (auto v = parse_ttl(tokens[1].text)) {
          default_ttl = *v;
        } else {
          error(line_no, tokens[1].column,
                "bad $TTL '" + std::string(tokens[1].text) +
                    "' (decimal seconds, at most 2147483647)");
        }
      } else if (iequals(d.text, "$ORIGIN")) {
        std::optional<Name> o;
        if (tokens.size() == 2) o = parse_domain(tokens[1].text, origin);
        if (tokens.size() != 2) {
          error(line_no, d.column, "$ORIGIN takes exactly one name");
        } else if (!o) {
          error(line_no, tokens[1].column,
                "bad $ORIGIN name '" + std::string(tokens[1].text) + "'");
        } else {
          origin = *o;
        }
      } else {
        error(line_no, d.column,
              "directive '" + std::string(d.text) +
                  "' is not supported in root hints ($TTL and $ORIGIN are)");
      }
      continue;
    }

    Pending rec;
    if (owner_blank) {
      if (!last_owner) {
        error(line_no, tokens[0].column, "record without an owner name, and no previous owner");
        continue;
      }
      rec.owner = *last_owner;
      rec.pos = {fname, line_no, tokens[0].column};
    } else {
      auto o = parse_domain(tokens[0].text, origin);
      if (!o) {
        error(line_no, tokens[0].column, "bad owner name '" + std::string(tokens[0].text) + "'");
        continue;
      }
      rec.owner = *o;
      rec.pos = {fname, line_no, tokens[0].column};
      t = 1;
    }
    // [TTL] [class] or [class] [TTL] (RFC 1035 §5.1).
    std::optional<std::uint32_t> ttl;
    bool have_class = false;
    bool bad = false;
    for (int k = 0; k < 2 && t < tokens.size(); ++k) {
      const Token& tok = tokens[t];
      if (!ttl && all_digits(tok.text)) {
        ttl = parse_ttl(tok.text);
        if (!ttl) {
          error(line_no, tok.column, "TTL '" + std::string(tok.text) + "' is above 2147483647");
          bad = true;
        }
        ++t;
      } else if (!have_class && is_class_token(tok.text)) {
        if (!iequals(tok.text, "IN")) {
          error(line_no, tok.column,
                "class " + std::string(tok.text) + " in root hints; only IN is allowed");
          bad = true;
        }
        have_class = true;
        ++t;
      }
    }
    if (bad) continue;
    last_owner = rec.owner;
    if (t >= tokens.size()) {
      error(line_no, tokens.back().column, "record without a type");
      continue;
    }
    const Token& type_tok = tokens[t++];
    const auto type = type_from_text(type_tok.text);
    if (!type) {
      error(line_no, type_tok.column, "unknown record type '" + std::string(type_tok.text) + "'");
      continue;
    }
    if (*type != rrtype::kNS && *type != rrtype::kA && *type != rrtype::kAAAA) {
      error(
          line_no, type_tok.column,
          "record type " + type_to_text(*type) + " has no place in root hints (NS, A and AAAA do)");
      continue;
    }
    rec.type = *type;
    if (t >= tokens.size()) {
      error(line_no, type_tok.column, type_to_text(*type) + " record without data");
      continue;
    }
    const Token& data = tokens[t++];
    if (t < tokens.size()) {
      error(line_no, tokens[t].column,
            "unexpected '" + std::string(tokens[t].text) + "' after the record data");
      continue;
    }
    if (*type == rrtype::kNS) {
      auto n = parse_domain(data.text, origin);
      if (!n) {
        error(line_no, data.column, "bad name server name '" + std::string(data.text) + "'");
        continue;
      }
      if (!rec.owner.is_root()) {
        error(rec.pos.line, rec.pos.column,
              "NS record for " + rec.owner.to_text() +
                  ": root hints hold only the root's NS records");
        continue;
      }
      rec.target = *n;
    } else {
      auto a = *type == rrtype::kA ? platform::IpAddress::parse_v4(data.text)
                                   : platform::IpAddress::parse_v6(data.text);
      if (!a) {
        error(line_no, data.column,
              "bad " + type_to_text(*type) + " address '" + std::string(data.text) + "'");
        continue;
      }
      rec.addr = *a;
    }
    rec.ttl = ttl ? *ttl : default_ttl ? *default_ttl : last_ttl ? *last_ttl : kClassicHintsTtl;
    last_ttl = rec.ttl;
    records.push_back(rec);
  }

  // Maps, not scans, so a huge file cannot cost quadratic time.
  RootHints hints;
  std::unordered_map<Name, std::size_t, NameHash> index;
  std::set<std::pair<std::size_t, platform::IpAddress>> seen_addresses;
  bool first_ns = true;
  for (const Pending& r : records) {
    if (r.type != rrtype::kNS) continue;
    if (!index.emplace(r.target, hints.servers.size()).second) {
      diags.warning(r.pos, "duplicate NS record for " + r.target.to_text(), "root-hints");
      continue;
    }
    hints.servers.push_back({r.target, {}});
    hints.ns_ttl = first_ns ? r.ttl : std::min(hints.ns_ttl, r.ttl);
    first_ns = false;
  }
  for (const Pending& r : records) {
    if (r.type == rrtype::kNS) continue;
    const auto it = index.find(r.owner);
    if (it == index.end()) {
      diags.warning(
          r.pos, "address for " + r.owner.to_text() + ", which is not a root name server; ignored",
          "root-hints");
      continue;
    }
    if (seen_addresses.emplace(it->second, r.addr).second) {
      hints.servers[it->second].addresses.push_back(r.addr);
    }
  }
  if (hints.servers.empty()) {
    diags.error({fname, 0, 0}, "no NS records for the root: not a root hints file", "root-hints");
  }
  for (const RootServer& s : hints.servers) {
    if (s.addresses.empty()) {
      diags.warning({fname, 0, 0},
                    "no address for " + s.name.to_text() + "; it will need resolving",
                    "root-hints");
    }
  }
  if (diags.count(platform::Severity::Error) != errors_before) return std::nullopt;
  return hints;
}

std::optional<RootHints> load_root_hints(const std::string& path, platform::Diagnostics& diags) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.error({path, 0, 0}, "cannot read the root hints file", "root-hints");
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_root_hints(ss.str(), path, diags);
}

}  // namespace diode::resolver

// Presentation-format resource records (RFC 1035 §5.1 and the DNSSEC
// types' text forms). Every error is collected with its line and column.

#include "diode/resolver/zone_text.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <limits>
#include <unordered_map>

#include "diode/platform/address.hpp"
#include "diode/resolver/dnssec.hpp"
#include "rdata.hpp"

namespace diode::resolver {

namespace {

constexpr std::uint16_t kNsec3Param = 51;

struct Token {
  std::string text;
  std::size_t line = 0;
  std::size_t column = 0;
  bool quoted = false;
};

// One logical record: its tokens, and whether its line began with blank
// space (the owner is then the previous record's).
struct Entry {
  std::vector<Token> tokens;
  bool owner_omitted = false;
};

struct Lexer {
  std::string_view text;
  std::vector<TextError>* errors;

  std::vector<Entry> run() {
    std::vector<Entry> out;
    Entry cur;
    int depth = 0;
    std::size_t line = 1;
    std::size_t col = 1;
    bool at_line_start = true;
    std::size_t i = 0;
    auto flush = [&] {
      if (!cur.tokens.empty()) out.push_back(std::move(cur));
      cur = Entry{};
    };
    while (i < text.size()) {
      const char c = text[i];
      if (c == '\n') {
        if (depth == 0) flush();
        ++line;
        col = 1;
        ++i;
        at_line_start = true;
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\r') {
        if (at_line_start && depth == 0 && cur.tokens.empty()) cur.owner_omitted = true;
        at_line_start = false;
        ++i;
        ++col;
        continue;
      }
      at_line_start = false;
      if (c == ';') {
        while (i < text.size() && text[i] != '\n') ++i;
        continue;
      }
      if (c == '(') {
        ++depth;
        ++i;
        ++col;
        continue;
      }
      if (c == ')') {
        if (depth == 0)
          errors->push_back({line, col, "unbalanced ')'"});
        else
          --depth;
        ++i;
        ++col;
        continue;
      }
      Token t;
      t.line = line;
      t.column = col;
      if (c == '"') {
        t.quoted = true;
        ++i;
        ++col;
        bool closed = false;
        while (i < text.size() && text[i] != '\n') {
          if (text[i] == '\\' && i + 1 < text.size()) {
            t.text.push_back(text[i]);
            t.text.push_back(text[i + 1]);
            i += 2;
            col += 2;
            continue;
          }
          if (text[i] == '"') {
            closed = true;
            ++i;
            ++col;
            break;
          }
          t.text.push_back(text[i]);
          ++i;
          ++col;
        }
        if (!closed) errors->push_back({t.line, t.column, "unterminated quoted string"});
      } else {
        while (i < text.size()) {
          const char d = text[i];
          if (d == ' ' || d == '\t' || d == '\r' || d == '\n' || d == ';' || d == '(' || d == ')')
            break;
          if (d == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
            t.text.push_back(d);
            t.text.push_back(text[i + 1]);
            i += 2;
            col += 2;
            continue;
          }
          t.text.push_back(d);
          ++i;
          ++col;
        }
      }
      cur.tokens.push_back(std::move(t));
    }
    if (depth != 0) errors->push_back({line, col, "unbalanced '(' at end of input"});
    flush();
    return out;
  }
};

bool parse_u32(std::string_view s, std::uint32_t& v) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc{} && p == s.data() + s.size();
}
template <typename T>
bool parse_uint(std::string_view s, T& v) {
  std::uint32_t x = 0;
  if (!parse_u32(s, x) || x > std::numeric_limits<T>::max()) return false;
  v = static_cast<T>(x);
  return true;
}

std::optional<std::uint16_t> type_of(std::string_view s) {
  constexpr std::string_view k = "NSEC3PARAM";
  if (s.size() == k.size() && std::equal(s.begin(), s.end(), k.begin(), [](char a, char b) {
        return std::toupper(static_cast<unsigned char>(a)) == b;
      }))
    return kNsec3Param;
  return type_from_text(s);
}

std::optional<std::vector<std::uint8_t>> hex_decode(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(s.size() / 2);
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); i += 2) {
    const int hi = val(s[i]);
    const int lo = val(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
  }
  return out;
}

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v));
}

// Builds one record's RDATA from its tokens.
class RdataBuilder {
 public:
  RdataBuilder(const std::vector<Token>& toks, std::size_t first, const Name& origin)
      : toks_(toks), pos_(first), origin_(origin) {}

  const std::string* error() const { return error_.empty() ? nullptr : &error_; }
  const Token* where() const { return pos_ < toks_.size() ? &toks_[pos_] : nullptr; }

  std::optional<std::vector<std::uint8_t>> build(std::uint16_t type) {
    if (pos_ < toks_.size() && toks_[pos_].text == "\\#") return generic();
    switch (type) {
      case rrtype::kA:
      case rrtype::kAAAA:
        return address(type);
      case rrtype::kNS:
      case rrtype::kCNAME:
      case rrtype::kDNAME:
      case rrtype::kPTR:
        return names(1);
      case rrtype::kMX:
        return seq({U16, NAME});
      case rrtype::kSRV:
        return seq({U16, U16, U16, NAME});
      case rrtype::kSOA:
        return seq({NAME, NAME, U32, U32, U32, U32, U32});
      case rrtype::kTXT:
      case rrtype::kHINFO:
        return strings(type == rrtype::kHINFO ? 2 : 0);
      case rrtype::kDS:
        return seq({U16, U8, U8, HEX_REST});
      case rrtype::kDNSKEY:
        return seq({U16, U8, U8, B64_REST});
      case rrtype::kRRSIG:
        return seq({TYPE, U8, U8, U32, TIME, TIME, U16, NAME, B64_REST});
      case rrtype::kNSEC:
        return seq({NAME, BITMAP});
      case rrtype::kNSEC3:
        return seq({U8, U8, U16, SALT, HASH, BITMAP});
      case kNsec3Param:
        return seq({U8, U8, U16, SALT});
      default:
        fail("type needs RFC 3597 generic form (\\# length hex)");
        return std::nullopt;
    }
  }

 private:
  enum Kind { U8, U16, U32, NAME, TYPE, TIME, HEX_REST, B64_REST, SALT, HASH, BITMAP };

  void fail(std::string m) {
    if (error_.empty()) error_ = std::move(m);
  }
  const Token* next(const char* what) {
    if (pos_ >= toks_.size()) {
      fail(std::string("missing ") + what);
      return nullptr;
    }
    return &toks_[pos_++];
  }
  bool done() {
    if (pos_ < toks_.size()) {
      fail("unexpected '" + toks_[pos_].text + "'");
      return false;
    }
    return true;
  }

  std::optional<Name> name(const Token& t) {
    if (t.text == "@") return origin_;
    if (!t.text.empty() && t.text.back() == '.') {
      auto n = Name::from_text(t.text);
      if (!n) fail("bad name '" + t.text + "'");
      return n;
    }
    auto n = Name::from_text(t.text + "." + origin_.to_text());
    if (origin_.is_root()) n = Name::from_text(t.text);
    if (!n) fail("bad name '" + t.text + "'");
    return n;
  }

  std::optional<std::vector<std::uint8_t>> address(std::uint16_t type) {
    const Token* t = next("address");
    if (t == nullptr) return std::nullopt;
    const bool v4 = type == rrtype::kA;
    auto a = v4 ? platform::IpAddress::parse_v4(t->text) : platform::IpAddress::parse_v6(t->text);
    if (!a) {
      fail("bad address '" + t->text + "'");
      return std::nullopt;
    }
    std::vector<std::uint8_t> out(a->bytes.begin(), a->bytes.begin() + (v4 ? 4 : 16));
    if (!done()) return std::nullopt;
    return out;
  }

  std::optional<std::vector<std::uint8_t>> names(int n) {
    std::vector<std::uint8_t> out;
    for (int i = 0; i < n; ++i) {
      const Token* t = next("name");
      if (t == nullptr) return std::nullopt;
      auto nm = name(*t);
      if (!nm) return std::nullopt;
      out.insert(out.end(), nm->wire().begin(), nm->wire().end());
    }
    if (!done()) return std::nullopt;
    return out;
  }

  std::optional<std::vector<std::uint8_t>> strings(int exact) {
    std::vector<std::uint8_t> out;
    int count = 0;
    while (pos_ < toks_.size()) {
      const Token& t = toks_[pos_++];
      std::string s;
      for (std::size_t i = 0; i < t.text.size(); ++i) {
        if (t.text[i] == '\\' && i + 1 < t.text.size()) {
          if (i + 3 < t.text.size() && std::isdigit(static_cast<unsigned char>(t.text[i + 1])) &&
              std::isdigit(static_cast<unsigned char>(t.text[i + 2])) &&
              std::isdigit(static_cast<unsigned char>(t.text[i + 3]))) {
            s.push_back(static_cast<char>((t.text[i + 1] - '0') * 100 + (t.text[i + 2] - '0') * 10 +
                                          (t.text[i + 3] - '0')));
            i += 3;
          } else {
            s.push_back(t.text[++i]);
          }
        } else {
          s.push_back(t.text[i]);
        }
      }
      if (s.size() > 255) {
        fail("character string longer than 255 octets");
        return std::nullopt;
      }
      out.push_back(static_cast<std::uint8_t>(s.size()));
      out.insert(out.end(), s.begin(), s.end());
      ++count;
    }
    if ((exact != 0 && count != exact) || count == 0) {
      fail("wrong number of character strings");
      return std::nullopt;
    }
    return out;
  }

  std::optional<std::vector<std::uint8_t>> generic() {
    ++pos_;
    const Token* t = next("RDATA length");
    std::uint16_t len = 0;
    if (t == nullptr || !parse_uint(t->text, len)) {
      fail("bad RDATA length");
      return std::nullopt;
    }
    std::string hex;
    while (pos_ < toks_.size()) hex += toks_[pos_++].text;
    auto data = hex_decode(hex);
    if (!data || data->size() != len) {
      fail("RDATA hex does not match its length");
      return std::nullopt;
    }
    return data;
  }

  std::optional<std::vector<std::uint8_t>> seq(std::initializer_list<Kind> kinds) {
    std::vector<std::uint8_t> out;
    for (Kind k : kinds) {
      if (!field(k, out)) return std::nullopt;
    }
    if (!done()) return std::nullopt;
    return out;
  }

  bool field(Kind k, std::vector<std::uint8_t>& out) {
    switch (k) {
      case U8: {
        const Token* t = next("number");
        std::uint8_t v = 0;
        if (t == nullptr) return false;
        if (!parse_uint(t->text, v)) {
          fail("bad 8-bit number '" + t->text + "'");
          return false;
        }
        out.push_back(v);
        return true;
      }
      case U16: {
        const Token* t = next("number");
        std::uint16_t v = 0;
        if (t == nullptr) return false;
        if (!parse_uint(t->text, v)) {
          fail("bad 16-bit number '" + t->text + "'");
          return false;
        }
        put16(out, v);
        return true;
      }
      case U32: {
        const Token* t = next("number");
        std::uint32_t v = 0;
        if (t == nullptr) return false;
        if (!parse_u32(t->text, v)) {
          fail("bad 32-bit number '" + t->text + "'");
          return false;
        }
        put32(out, v);
        return true;
      }
      case NAME: {
        const Token* t = next("name");
        if (t == nullptr) return false;
        auto n = name(*t);
        if (!n) return false;
        out.insert(out.end(), n->wire().begin(), n->wire().end());
        return true;
      }
      case TYPE: {
        const Token* t = next("type");
        if (t == nullptr) return false;
        auto ty = type_of(t->text);
        if (!ty) {
          fail("unknown type '" + t->text + "'");
          return false;
        }
        put16(out, *ty);
        return true;
      }
      case TIME: {
        const Token* t = next("time");
        if (t == nullptr) return false;
        auto v = parse_dnssec_time(t->text);
        if (!v) {
          fail("bad time '" + t->text + "'");
          return false;
        }
        put32(out, static_cast<std::uint32_t>(*v & 0xffffffffu));
        return true;
      }
      case HEX_REST:
      case B64_REST: {
        std::string s;
        while (pos_ < toks_.size()) s += toks_[pos_++].text;
        auto d = k == HEX_REST ? hex_decode(s) : base64_decode(s);
        if (!d || d->empty()) {
          fail(k == HEX_REST ? "bad hex data" : "bad base64 data");
          return false;
        }
        out.insert(out.end(), d->begin(), d->end());
        return true;
      }
      case SALT: {
        const Token* t = next("salt");
        if (t == nullptr) return false;
        if (t->text == "-") {
          out.push_back(0);
          return true;
        }
        auto d = hex_decode(t->text);
        if (!d || d->size() > 255) {
          fail("bad salt '" + t->text + "'");
          return false;
        }
        out.push_back(static_cast<std::uint8_t>(d->size()));
        out.insert(out.end(), d->begin(), d->end());
        return true;
      }
      case HASH: {
        const Token* t = next("next hashed owner");
        if (t == nullptr) return false;
        auto d = dnssec::base32hex_decode(t->text);
        if (!d || d->empty() || d->size() > 255) {
          fail("bad next hashed owner '" + t->text + "'");
          return false;
        }
        out.push_back(static_cast<std::uint8_t>(d->size()));
        out.insert(out.end(), d->begin(), d->end());
        return true;
      }
      case BITMAP: {
        std::array<std::array<std::uint8_t, 32>, 256> windows{};
        std::array<std::uint8_t, 256> used{};
        while (pos_ < toks_.size()) {
          const Token& t = toks_[pos_++];
          auto ty = type_of(t.text);
          if (!ty) {
            fail("unknown type '" + t.text + "'");
            return false;
          }
          const std::size_t w = *ty >> 8;
          const std::size_t o = (*ty & 0xffu) >> 3;
          windows[w][o] |= static_cast<std::uint8_t>(0x80u >> (*ty & 7u));
          used[w] = std::max(used[w], static_cast<std::uint8_t>(o + 1));
        }
        for (std::size_t w = 0; w < 256; ++w) {
          if (used[w] == 0) continue;
          out.push_back(static_cast<std::uint8_t>(w));
          out.push_back(used[w]);
          out.insert(out.end(), windows[w].begin(), windows[w].begin() + used[w]);
        }
        return true;
      }
    }
    return false;
  }

  const std::vector<Token>& toks_;
  std::size_t pos_;
  const Name& origin_;
  std::string error_;
};

bool is_class(std::string_view s, std::uint16_t& c) {
  auto ieq = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if ((a[i] & ~0x20) != (b[i] & ~0x20)) return false;
    return true;
  };
  if (ieq(s, "IN"))
    c = rrclass::kIN;
  else if (ieq(s, "CH"))
    c = rrclass::kCH;
  else if (ieq(s, "HS"))
    c = rrclass::kHS;
  else
    return false;
  return true;
}

}  // namespace

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text) {
  std::vector<std::uint8_t> out;
  unsigned buffer = 0;
  unsigned bits = 0;
  std::size_t pad = 0;
  std::size_t chars = 0;
  for (char c : text) {
    unsigned v = 0;
    if (c == '=') {
      ++pad;
      ++chars;
      continue;
    }
    if (pad != 0) return std::nullopt;  // data after padding
    if (c >= 'A' && c <= 'Z')
      v = static_cast<unsigned>(c - 'A');
    else if (c >= 'a' && c <= 'z')
      v = static_cast<unsigned>(c - 'a') + 26u;
    else if (c >= '0' && c <= '9')
      v = static_cast<unsigned>(c - '0') + 52u;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else
      return std::nullopt;
    ++chars;
    buffer = (buffer << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((buffer >> bits) & 0xffu));
      buffer &= (1u << bits) - 1u;
    }
  }
  if (chars % 4 != 0 || pad > 2) return std::nullopt;
  return out;
}

std::optional<std::uint64_t> parse_dnssec_time(std::string_view text) {
  if (text.size() != 14) {
    std::uint32_t v = 0;
    if (!parse_u32(text, v)) return std::nullopt;
    return v;
  }
  auto num = [&](std::size_t at, std::size_t len, int& v) {
    v = 0;
    for (std::size_t i = at; i < at + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!num(0, 4, y) || !num(4, 2, mo) || !num(6, 2, d) || !num(8, 2, h) || !num(10, 2, mi) ||
      !num(12, 2, s))
    return std::nullopt;
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
    return std::nullopt;
  // Days from the civil date (proleptic Gregorian), then seconds.
  const int yy = mo <= 2 ? y - 1 : y;
  const int era = yy / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const long long days = static_cast<long long>(era) * 146097 + doe - 719468;
  return static_cast<std::uint64_t>(days * 86400 + h * 3600 + mi * 60 + s);
}

ZoneText parse_zone_text(std::string_view text, const Name& origin_in, std::uint32_t default_ttl) {
  ZoneText z;
  Lexer lex{text, &z.errors};
  Name origin = origin_in;
  std::uint32_t ttl_default = default_ttl;
  std::optional<Name> last_owner;
  for (const Entry& e : lex.run()) {
    const auto& t = e.tokens;
    auto error = [&](const Token& at, std::string m) {
      z.errors.push_back({at.line, at.column, std::move(m)});
    };
    if (!e.owner_omitted && t[0].text == "$ORIGIN") {
      auto n = t.size() == 2 ? Name::from_text(t[1].text) : std::nullopt;
      if (!n)
        error(t[0], "$ORIGIN needs one absolute name");
      else
        origin = *n;
      continue;
    }
    if (!e.owner_omitted && t[0].text == "$TTL") {
      if (t.size() != 2 || !parse_u32(t[1].text, ttl_default)) error(t[0], "$TTL needs a number");
      continue;
    }
    if (!e.owner_omitted && !t[0].text.empty() && t[0].text[0] == '$') {
      error(t[0], "unsupported directive '" + t[0].text + "'");
      continue;
    }
    std::size_t i = 0;
    TextRecord r;
    r.line = t[0].line;
    if (e.owner_omitted) {
      if (!last_owner) {
        error(t[0], "no previous owner name");
        continue;
      }
      r.owner = *last_owner;
    } else {
      std::optional<Name> n;
      if (t[0].text == "@")
        n = origin;
      else if (!t[0].text.empty() && t[0].text.back() == '.')
        n = Name::from_text(t[0].text);
      else if (origin.is_root())
        n = Name::from_text(t[0].text);
      else
        n = Name::from_text(t[0].text + "." + origin.to_text());
      if (!n) {
        error(t[0], "bad owner name '" + t[0].text + "'");
        continue;
      }
      r.owner = *n;
      ++i;
    }
    r.ttl = ttl_default;
    // [TTL] [class] type, TTL and class in either order (RFC 1035 §5.1).
    std::optional<std::uint16_t> type;
    for (int k = 0; k < 3 && i < t.size(); ++k) {
      std::uint32_t ttl = 0;
      std::uint16_t cls = 0;
      if (parse_u32(t[i].text, ttl)) {
        r.ttl = ttl;
        ++i;
      } else if (is_class(t[i].text, cls)) {
        r.rclass = cls;
        ++i;
      } else {
        type = type_of(t[i].text);
        if (!type) {
          error(t[i], "unknown type '" + t[i].text + "'");
        }
        ++i;
        break;
      }
    }
    if (!type) {
      if (z.errors.empty() || z.errors.back().line != t[0].line) error(t[0], "missing record type");
      continue;
    }
    r.type = *type;
    RdataBuilder b(t, i, origin);
    auto rd = b.build(r.type);
    if (!rd || rd->size() > 0xffff) {
      const Token& at = b.where() != nullptr ? *b.where() : t.back();
      error(at, b.error() != nullptr ? *b.error() : "RDATA too long");
      continue;
    }
    if (detail::check_uncompressed_rdata(r.type, *rd) != WireError::Ok) {
      error(t[0], "RDATA does not fit its type");
      continue;
    }
    r.rdata = std::move(*rd);
    last_owner = r.owner;
    z.records.push_back(std::move(r));
  }
  return z;
}

std::vector<RRset> group_rrsets(const std::vector<TextRecord>& records) {
  std::vector<RRset> out;
  std::unordered_map<std::string, std::size_t> index;
  for (const TextRecord& r : records) {
    const Name low = r.owner.lowered();
    std::string key(low.wire().begin(), low.wire().end());
    key.push_back(static_cast<char>(r.type >> 8));
    key.push_back(static_cast<char>(r.type & 0xff));
    key.push_back(static_cast<char>(r.rclass >> 8));
    key.push_back(static_cast<char>(r.rclass & 0xff));
    auto [it, fresh] = index.emplace(std::move(key), out.size());
    RRset* set = fresh ? nullptr : &out[it->second];
    if (set == nullptr) {
      out.emplace_back();
      set = &out.back();
      set->owner = r.owner;
      set->type = r.type;
      set->rclass = r.rclass;
      set->ttl = r.ttl;
    }
    set->ttl = std::min(set->ttl, r.ttl);
    set->add_rdata(r.rdata);
  }
  return out;
}

}  // namespace diode::resolver

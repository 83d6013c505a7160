#include "diode/resolver/name.hpp"

#include <algorithm>
#include <cstring>

namespace diode::resolver {

namespace {

constexpr std::uint8_t lower(std::uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<std::uint8_t>(c + ('a' - 'A')) : c;
}

// Label type bits (RFC 1035 §4.1.4; 0x40 was RFC 2671's extended label).
constexpr std::uint8_t kPointerBits = 0xC0;

// The shared loop of read_name / read_uncompressed_name: RFC 1035 §3.1
// names with RFC 1035 §4.1.4 pointers. A pointer must point strictly
// before the lowest offset read so far for this name, which makes loops
// impossible; the jump limit bounds the work for pointer-to-pointer chains.
WireError read_name_impl(std::span<const std::uint8_t> msg, std::size_t offset, bool allow_pointers,
                         std::uint8_t* buf, std::uint8_t* len_out, std::uint8_t* labels_out,
                         std::size_t* next) {
  std::size_t pos = offset;
  std::size_t lowest = offset;  // nothing at or after this may be a pointer target
  std::size_t out = 0;
  std::size_t labels = 0;
  std::size_t jumps = 0;
  std::size_t end_after_first = 0;
  bool jumped = false;
  for (;;) {
    if (pos >= msg.size()) return WireError::Truncated;
    const std::uint8_t b = msg[pos];
    const std::uint8_t kind = b & kPointerBits;
    if (kind == kPointerBits) {
      if (!allow_pointers) return WireError::PointerNotAllowed;
      if (pos + 1 >= msg.size()) return WireError::Truncated;
      const std::size_t target = (static_cast<std::size_t>(b & 0x3F) << 8) | msg[pos + 1];
      // Offsets below 12 are the header, never a name.
      if (target >= msg.size() || target < kHeaderSize) return WireError::PointerOutOfRange;
      if (target >= pos) return WireError::PointerForward;
      if (target >= lowest) return WireError::PointerLoop;
      if (++jumps > kMaxPointerJumps) return WireError::TooManyPointers;
      if (!jumped) {
        end_after_first = pos + 2;
        jumped = true;
      }
      lowest = target;
      pos = target;
      continue;
    }
    if (kind != 0) return WireError::BadLabelType;
    const std::size_t n = b;
    if (out + 1 + n > kMaxNameLength) return WireError::NameTooLong;
    if (pos + 1 + n > msg.size()) return WireError::Truncated;
    if (buf != nullptr) std::memcpy(buf + out, msg.data() + pos, 1 + n);
    out += 1 + n;
    pos += 1 + n;
    if (n == 0) break;
    ++labels;
  }
  if (len_out != nullptr) *len_out = static_cast<std::uint8_t>(out);
  if (labels_out != nullptr) *labels_out = static_cast<std::uint8_t>(labels);
  if (next != nullptr) *next = jumped ? end_after_first : pos;
  return WireError::Ok;
}

bool is_special(std::uint8_t c) {
  switch (c) {
    case '.':
    case '\\':
    case '"':
    case '(':
    case ')':
    case ';':
    case '@':
    case '$':
      return true;
    default:
      return false;
  }
}

}  // namespace

WireError read_name(std::span<const std::uint8_t> message, std::size_t offset, Name* out,
                    std::size_t* next) {
  if (out == nullptr) return read_name_impl(message, offset, true, nullptr, nullptr, nullptr, next);
  return read_name_impl(message, offset, true, out->buf_.data(), &out->len_, &out->labels_, next);
}

WireError read_uncompressed_name(std::span<const std::uint8_t> data, std::size_t offset, Name* out,
                                 std::size_t* next) {
  if (out == nullptr) return read_name_impl(data, offset, false, nullptr, nullptr, nullptr, next);
  return read_name_impl(data, offset, false, out->buf_.data(), &out->len_, &out->labels_, next);
}

std::optional<Name> Name::from_wire(std::span<const std::uint8_t> wire) {
  Name n;
  std::size_t next = 0;
  if (read_uncompressed_name(wire, 0, &n, &next) != WireError::Ok || next != wire.size()) {
    return std::nullopt;
  }
  return n;
}

std::optional<Name> Name::from_text(std::string_view text) {
  if (text.empty()) return std::nullopt;
  Name n;
  if (text == ".") return n;
  std::size_t out = 0;
  std::size_t labels = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    // One label: up to an unescaped dot or the end.
    const std::size_t len_pos = out;
    if (out + 1 > kMaxNameLength - 1) return std::nullopt;  // room for the root
    ++out;
    std::size_t label_len = 0;
    while (i < text.size() && text[i] != '.') {
      std::uint8_t c = static_cast<std::uint8_t>(text[i]);
      if (c == '\\') {
        if (i + 1 >= text.size()) return std::nullopt;
        const char d0 = text[i + 1];
        if (d0 >= '0' && d0 <= '9') {
          if (i + 3 >= text.size()) return std::nullopt;  // \DDD needs three digits
          const char d1 = text[i + 2];
          const char d2 = text[i + 3];
          if (d1 < '0' || d1 > '9' || d2 < '0' || d2 > '9') return std::nullopt;
          const int v = (d0 - '0') * 100 + (d1 - '0') * 10 + (d2 - '0');
          if (v > 255) return std::nullopt;
          c = static_cast<std::uint8_t>(v);
          i += 4;
        } else {
          c = static_cast<std::uint8_t>(d0);
          i += 2;
        }
      } else {
        ++i;
      }
      if (label_len == kMaxLabelLength || out + 1 > kMaxNameLength - 1) return std::nullopt;
      n.buf_[out++] = c;
      ++label_len;
    }
    if (label_len == 0) return std::nullopt;  // empty label: "a..b" or a leading dot
    n.buf_[len_pos] = static_cast<std::uint8_t>(label_len);
    ++labels;
    if (i < text.size()) ++i;  // the dot; a trailing one ends the loop
  }
  n.buf_[out++] = 0;
  n.len_ = static_cast<std::uint8_t>(out);
  n.labels_ = static_cast<std::uint8_t>(labels);
  return n;
}

std::string Name::to_text() const {
  if (labels_ == 0) return ".";
  std::string s;
  s.reserve(len_ + 8u);
  for (auto label : labels()) {
    for (std::uint8_t c : label) {
      if (is_special(c)) {
        s += '\\';
        s += static_cast<char>(c);
      } else if (c < 0x21 || c > 0x7E) {
        s += '\\';
        s += static_cast<char>('0' + c / 100);
        s += static_cast<char>('0' + (c / 10) % 10);
        s += static_cast<char>('0' + c % 10);
      } else {
        s += static_cast<char>(c);
      }
    }
    s += '.';
  }
  return s;
}

bool Name::operator==(const Name& other) const {
  if (len_ != other.len_ || labels_ != other.labels_) return false;
  // Length octets are < 0x40 and unaffected by lower(), so one pass suffices.
  for (std::size_t i = 0; i < len_; ++i) {
    if (lower(buf_[i]) != lower(other.buf_[i])) return false;
  }
  return true;
}

bool Name::equals_exact(const Name& other) const {
  return len_ == other.len_ && std::memcmp(buf_.data(), other.buf_.data(), len_) == 0;
}

std::size_t Name::hash() const {
  // FNV-1a over the lowercased octets: cheap, unkeyed, so only for tables
  // whose keys an attacker does not choose in bulk. The cache's index, whose
  // keys clients choose, uses keyed SipHash instead (Cache::hash_of).
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < len_; ++i) {
    h ^= lower(buf_[i]);
    h *= 0x100000001b3ULL;
  }
  return static_cast<std::size_t>(h);
}

int Name::canonical_compare(const Name& other) const {
  // Offsets of each label, so we can walk from the rightmost one.
  std::array<std::uint8_t, kMaxLabels> a{};
  std::array<std::uint8_t, kMaxLabels> b{};
  std::size_t na = 0;
  std::size_t nb = 0;
  for (std::size_t p = 0; buf_[p] != 0; p += 1u + buf_[p]) a[na++] = static_cast<std::uint8_t>(p);
  for (std::size_t p = 0; other.buf_[p] != 0; p += 1u + other.buf_[p]) {
    b[nb++] = static_cast<std::uint8_t>(p);
  }
  while (na > 0 && nb > 0) {
    --na;
    --nb;
    const std::uint8_t* la = buf_.data() + a[na];
    const std::uint8_t* lb = other.buf_.data() + b[nb];
    const std::size_t n = std::min(la[0], lb[0]);
    for (std::size_t i = 1; i <= n; ++i) {
      const int d = int{lower(la[i])} - int{lower(lb[i])};
      if (d != 0) return d;
    }
    if (la[0] != lb[0]) return int{la[0]} - int{lb[0]};
  }
  if (na == nb) return 0;
  return na > 0 ? 1 : -1;
}

bool Name::is_subdomain_of(const Name& ancestor) const {
  if (ancestor.labels_ > labels_ || ancestor.len_ > len_) return false;
  const Name tail = suffix(ancestor.labels_);
  return tail == ancestor;
}

Name Name::suffix(std::size_t n) const {
  if (n >= labels_) return *this;
  std::size_t p = 0;
  for (std::size_t skip = labels_ - n; skip > 0; --skip) p += 1u + buf_[p];
  Name r;
  r.len_ = static_cast<std::uint8_t>(len_ - p);
  r.labels_ = static_cast<std::uint8_t>(n);
  std::memcpy(r.buf_.data(), buf_.data() + p, r.len_);
  return r;
}

Name Name::lowered() const {
  Name r = *this;
  for (std::size_t i = 0; i < len_; ++i) r.buf_[i] = lower(buf_[i]);
  return r;
}

bool Name::prepend_label(std::span<const std::uint8_t> label) {
  if (label.empty() || label.size() > kMaxLabelLength) return false;
  if (len_ + 1u + label.size() > kMaxNameLength) return false;
  std::memmove(buf_.data() + 1 + label.size(), buf_.data(), len_);
  buf_[0] = static_cast<std::uint8_t>(label.size());
  std::memcpy(buf_.data() + 1, label.data(), label.size());
  len_ = static_cast<std::uint8_t>(len_ + 1u + label.size());
  ++labels_;
  return true;
}

}  // namespace diode::resolver

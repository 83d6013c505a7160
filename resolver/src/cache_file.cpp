#include "diode/resolver/cache_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "diode/platform/siphash.hpp"

namespace diode::resolver {

namespace {

constexpr std::array<std::uint8_t, 8> kMagic{'D', 'I', 'O', 'D', 'E', '-', 'R', 'C'};
constexpr std::size_t kHeaderBytes = 8 + 2 + 2 + 4 + 8;
constexpr std::size_t kTrailerBytes = 8;
// The checksum finds damage, it defends against nobody: a fixed key.
constexpr platform::SipKey kChecksumKey{'d', 'i', 'o', 'd', 'e', ' ', 'c', 'a',
                                        'c', 'h', 'e', ' ', 'f', 'i', 'l', 'e'};
constexpr std::uint64_t kMaxAgeMs = 1ULL << 40;  // some 35 years: anything older is nonsense
constexpr std::int64_t kFutureSlackMs = 60'000;  // clocks of one machine may step a little

class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
  void u8(std::uint64_t v) { out_.push_back(static_cast<std::uint8_t>(v)); }
  void u16(std::uint64_t v) {
    u8(v >> 8);
    u8(v);
  }
  void u32(std::uint64_t v) {
    u16(v >> 16);
    u16(v);
  }
  void u64(std::uint64_t v) {
    u32(v >> 32);
    u32(v);
  }
  void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void name(const Name& n) {
    u8(n.wire_length());
    bytes(n.wire());
  }

 private:
  std::vector<std::uint8_t>& out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == in_.size(); }
  std::uint64_t u8() { return take(1); }
  std::uint64_t u16() { return take(2); }
  std::uint64_t u32() { return take(4); }
  std::uint64_t u64() { return take(8); }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::optional<Name> name() {
    const auto len = static_cast<std::size_t>(u8());
    const auto w = bytes(len);
    if (!ok_) return std::nullopt;
    auto n = Name::from_wire(w);
    if (!n) ok_ = false;
    return n;
  }

 private:
  std::uint64_t take(std::size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | in_[pos_ + i];
    pos_ += n;
    return v;
  }
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

bool is_servfail_message(std::span<const std::uint8_t> wire) {
  return wire.size() >= kHeaderSize && (wire[3] & 0x0fU) == rcode::kServFail;
}

void write_entry(Writer& w, const EntryImage& im) {
  w.u8(static_cast<std::uint8_t>(im.kind));
  w.u8(static_cast<std::uint8_t>(im.trust));
  w.u8(static_cast<std::uint8_t>(im.negative));
  w.u8(0);
  w.u16(im.type);
  w.u16(im.rclass);
  w.u32(im.original_ttl);
  w.u64(static_cast<std::uint64_t>(im.age.count()));
  w.name(im.name);
  if (im.kind == EntryKind::Message) {
    w.u16(im.wire.size());
    w.bytes(im.wire);
    w.u16(im.ttl_offsets.size());
    for (const std::uint16_t off : im.ttl_offsets) w.u16(off);
    return;
  }
  w.name(im.rrset.owner);
  w.u16(im.rrset.type);
  w.u16(im.rrset.rclass);
  w.u16(im.rrset.size());
  for (const auto rdata : im.rrset) {
    w.u16(rdata.size());
    w.bytes(rdata);
  }
}

// One entry, checked as the cache itself would have made it; nullopt (and
// the reader marked bad) on anything else.
std::optional<EntryImage> read_entry(Reader& r) {
  EntryImage im;
  const auto kind = r.u8();
  const auto trust = r.u8();
  const auto negative = r.u8();
  const auto zero = r.u8();
  im.type = static_cast<std::uint16_t>(r.u16());
  im.rclass = static_cast<std::uint16_t>(r.u16());
  const auto ttl = r.u32();
  const auto age = r.u64();
  auto key = r.name();
  if (!r.ok() || !key || kind > static_cast<std::uint8_t>(EntryKind::ParentGlue) ||
      trust > static_cast<std::uint8_t>(Trust::Answer) || negative > 1 || zero != 0 ||
      ttl > 0x7fffffffU || age > kMaxAgeMs || !key->equals_exact(key->lowered())) {
    return std::nullopt;
  }
  im.kind = static_cast<EntryKind>(kind);
  im.trust = static_cast<Trust>(trust);
  im.negative = static_cast<NegativeKind>(negative);
  im.original_ttl = static_cast<std::uint32_t>(ttl);
  im.age = Time{static_cast<std::int64_t>(age)};
  im.name = *key;
  if (im.kind == EntryKind::Message) {
    const auto size = static_cast<std::size_t>(r.u16());
    const auto wire = r.bytes(size);
    const auto count = static_cast<std::size_t>(r.u16());
    if (!r.ok()) return std::nullopt;
    im.wire.assign(wire.begin(), wire.end());
    for (std::size_t i = 0; i < count && r.ok(); ++i) {
      const auto off = static_cast<std::uint16_t>(r.u16());
      if (static_cast<std::size_t>(off) + 4 > im.wire.size()) return std::nullopt;
      im.ttl_offsets.push_back(off);
    }
    // What is served to clients must be a message, and the answer to the
    // question it is filed under (the DNSSEC form of an IN answer is filed
    // under kDnssecFormClass); and every TTL offset must be a record's
    // TTL field, since aging writes there.
    Message m;
    if (!r.ok() || !m.parse(im.wire).ok() || !m.question() || !m.header().qr ||
        !(m.question()->qname == im.name) || m.question()->qtype != im.type ||
        (m.question()->qclass != im.rclass &&
         !(im.rclass == kDnssecFormClass && m.question()->qclass == rrclass::kIN)) ||
        is_servfail_message(im.wire)) {
      return std::nullopt;
    }
    std::vector<std::uint16_t> fields;
    for (const Section sec : {Section::Answer, Section::Authority, Section::Additional}) {
      for (std::size_t i = 0; i < m.count(sec); ++i) fields.push_back(m.record(sec, i).ttl_offset);
    }
    std::sort(fields.begin(), fields.end());
    for (const std::uint16_t off : im.ttl_offsets) {
      if (!std::binary_search(fields.begin(), fields.end(), off)) return std::nullopt;
    }
    return im;
  }
  auto owner = r.name();
  im.rrset.type = static_cast<std::uint16_t>(r.u16());
  im.rrset.rclass = static_cast<std::uint16_t>(r.u16());
  const auto count = static_cast<std::size_t>(r.u16());
  if (!r.ok() || !owner || count == 0) return std::nullopt;
  im.rrset.owner = *owner;
  im.rrset.ttl = im.original_ttl;
  for (std::size_t i = 0; i < count; ++i) {
    const auto rdata = r.bytes(static_cast<std::size_t>(r.u16()));
    if (!r.ok() || !im.rrset.add_rdata(rdata)) return std::nullopt;
  }
  if (im.rrset.size() != count) return std::nullopt;
  switch (im.kind) {
    case EntryKind::RRset:
      if (!(im.rrset.owner == im.name) || im.rrset.type != im.type ||
          im.rrset.rclass != im.rclass) {
        return std::nullopt;
      }
      break;
    case EntryKind::Negative:
      if (im.rrset.type != rrtype::kSOA ||
          (im.negative == NegativeKind::NxDomain) != (im.type == 0)) {
        return std::nullopt;
      }
      break;
    case EntryKind::ParentGlue:
      if (!(im.rrset.owner == im.name) || im.rrset.type != im.type ||
          im.rrset.rclass != im.rclass || (im.type != rrtype::kA && im.type != rrtype::kAAAA)) {
        return std::nullopt;
      }
      break;
    case EntryKind::Message:
      break;
  }
  return im;
}

}  // namespace

std::uint64_t cache_file_checksum(std::span<const std::uint8_t> body) {
  return platform::siphash24(kChecksumKey, body);
}

std::vector<std::uint8_t> encode_cache_file(std::span<Cache* const> caches, Time now,
                                            std::int64_t wall_ms, CacheFileSaved* saved) {
  std::vector<std::uint8_t> out;
  Writer w(out);
  w.bytes(kMagic);
  w.u16(kCacheFileVersion);
  w.u16(0);
  w.u32(0);  // the count, written once known
  w.u64(static_cast<std::uint64_t>(wall_ms));
  CacheFileSaved s;
  for (Cache* c : caches) {
    c->for_each_entry(now, [&](const EntryImage& im) {
      if (im.trust == Trust::Hints ||
          (im.kind == EntryKind::Message && is_servfail_message(im.wire)) ||
          s.entries >= 0xffffffffU) {
        ++s.skipped;
        return;
      }
      write_entry(w, im);
      ++s.entries;
    });
  }
  for (std::size_t i = 0; i < 4; ++i)
    out[12 + i] = static_cast<std::uint8_t>(s.entries >> (24 - 8 * i));
  w.u64(platform::siphash24(kChecksumKey, out));
  if (saved != nullptr) *saved = s;
  return out;
}

CacheFileLoaded decode_cache_file(std::span<const std::uint8_t> bytes, Time now,
                                  std::int64_t wall_ms, std::span<Cache* const> caches) {
  CacheFileLoaded res;
  if (bytes.size() < kMagic.size() || !std::equal(kMagic.begin(), kMagic.end(), bytes.begin())) {
    res.error = "not a Diode cache file (magic)";
    return res;
  }
  if (bytes.size() < kHeaderBytes + kTrailerBytes) {
    res.error = "truncated (no complete header)";
    return res;
  }
  Reader hr(bytes.subspan(8, kHeaderBytes - 8));
  const auto version = hr.u16();
  const auto zero = hr.u16();
  const auto count = hr.u32();
  const auto saved = static_cast<std::int64_t>(hr.u64());
  if (version != kCacheFileVersion || zero != 0) {
    res.error = "format version " + std::to_string(version) + ", this resolver reads " +
                std::to_string(kCacheFileVersion);
    return res;
  }
  const auto body = bytes.first(bytes.size() - kTrailerBytes);
  Reader tr(bytes.last(kTrailerBytes));
  if (tr.u64() != platform::siphash24(kChecksumKey, body)) {
    res.error = "checksum mismatch (truncated or damaged)";
    return res;
  }
  if (saved > wall_ms + kFutureSlackMs) {
    res.error = "saved " + std::to_string((saved - wall_ms) / 1000) +
                " s in the future (the clock went back?)";
    return res;
  }
  res.elapsed_ms = saved < wall_ms ? wall_ms - saved : 0;
  // Every entry checked before any is restored: all or nothing.
  std::vector<EntryImage> images;
  Reader r(body.subspan(kHeaderBytes));
  while (!r.at_end()) {
    auto im = read_entry(r);
    if (!im) {
      res.error = "malformed entry " + std::to_string(images.size() + 1);
      return res;
    }
    im->age += Time{res.elapsed_ms};
    images.push_back(std::move(*im));
  }
  if (images.size() != count) {
    res.error =
        "entry count " + std::to_string(images.size()) + ", header says " + std::to_string(count);
    return res;
  }
  res.ok = true;
  res.entries = images.size();
  for (std::size_t i = 0; i < caches.size(); ++i) {
    for (const EntryImage& im : images) {
      const bool stored = caches[i]->restore(im, now);
      if (i == 0) {
        if (stored) ++res.restored;
        // Not stored and not expired: a duplicate that lives less long, or too large.
      }
    }
  }
  // Expired: what no cache would keep at all, whatever is already held.
  if (!caches.empty()) {
    const CacheSettings& cs = caches.front()->settings();
    const std::uint32_t hi = std::max(cs.max_ttl, cs.min_ttl);
    for (const EntryImage& im : images) {
      std::uint32_t ttl = std::min(im.original_ttl, hi);
      if (im.kind == EntryKind::Negative) ttl = std::min(ttl, cs.max_negative_ttl);
      Time keep = std::chrono::seconds(ttl);
      if (cs.serve_stale) keep += std::chrono::seconds(cs.max_stale);
      if (im.age >= keep) ++res.expired;
    }
  }
  return res;
}

bool write_file_atomically(const std::string& path, std::span<const std::uint8_t> bytes,
                           std::string& error) {
  const std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::string tmp = path + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    error = std::string("cannot create ") + tmp + ": " + std::strerror(errno);
    return false;
  }
  auto fail = [&](const char* what) {
    error = std::string(what) + " " + tmp + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  };
  (void)::fchmod(fd, 0600);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cannot write");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    error = std::string("cannot close ") + tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = std::string("cannot rename to ") + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  // The rename itself survives a crash only once the directory is on disk.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

std::optional<std::vector<std::uint8_t>> read_file_bounded(const std::string& path,
                                                           std::size_t max_bytes,
                                                           std::string& error, bool* missing) {
  if (missing != nullptr) *missing = false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT && missing != nullptr) *missing = true;
    error = std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error = "not a regular file";
    ::close(fd);
    return std::nullopt;
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    error =
        "larger than " + std::to_string(max_bytes) + " octets (" + std::to_string(st.st_size) + ")";
    ::close(fd);
    return std::nullopt;
  }
  std::vector<std::uint8_t> out(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  for (;;) {
    if (done == out.size()) {
      // Grown since fstat: read one more octet to see whether it is larger still.
      std::uint8_t extra = 0;
      const ssize_t n = ::read(fd, &extra, 1);
      if (n > 0) {
        error = "grew while being read";
        ::close(fd);
        return std::nullopt;
      }
      break;
    }
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::string("cannot read: ") + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) {
      out.resize(done);  // shrank since fstat
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return out;
}

}  // namespace diode::resolver

#include "diode/platform/siphash.hpp"

#include <sys/random.h>

#include <cerrno>

namespace diode::platform {

namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline void sip_round(std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2, std::uint64_t& v3) {
  v0 += v1;
  v1 = rotl(v1, 13);
  v1 ^= v0;
  v0 = rotl(v0, 32);
  v2 += v3;
  v3 = rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = rotl(v1, 17);
  v1 ^= v2;
  v2 = rotl(v2, 32);
}

std::uint64_t load_le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

SipHasher::SipHasher(const SipKey& key) {
  const std::uint64_t k0 = load_le64(key.data());
  const std::uint64_t k1 = load_le64(key.data() + 8);
  v0_ = k0 ^ 0x736f6d6570736575ULL;
  v1_ = k1 ^ 0x646f72616e646f6dULL;
  v2_ = k0 ^ 0x6c7967656e657261ULL;
  v3_ = k1 ^ 0x7465646279746573ULL;
}

void SipHasher::absorb(std::uint64_t m) {
  v3_ ^= m;
  sip_round(v0_, v1_, v2_, v3_);
  sip_round(v0_, v1_, v2_, v3_);
  v0_ ^= m;
}

void SipHasher::update(std::span<const std::uint8_t> data) {
  std::size_t i = 0;
  const std::size_t n = data.size();
  total_ += n;
  // Fill the pending word first.
  while (tail_len_ != 0 && i < n) {
    tail_ |= static_cast<std::uint64_t>(data[i++]) << (8 * tail_len_);
    if (++tail_len_ == 8) {
      absorb(tail_);
      tail_ = 0;
      tail_len_ = 0;
    }
  }
  for (; i + 8 <= n; i += 8) absorb(load_le64(data.data() + i));
  for (; i < n; ++i) tail_ |= static_cast<std::uint64_t>(data[i]) << (8 * tail_len_++);
}

void SipHasher::update_u16(std::uint16_t v) {
  const std::array<std::uint8_t, 2> b{static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
  update(b);
}

void SipHasher::update_u8(std::uint8_t v) {
  const std::array<std::uint8_t, 1> b{v};
  update(b);
}

std::uint64_t SipHasher::finish() const {
  std::uint64_t v0 = v0_, v1 = v1_, v2 = v2_, v3 = v3_;
  const std::uint64_t last = tail_ | (static_cast<std::uint64_t>(total_ & 0xff) << 56);
  v3 ^= last;
  sip_round(v0, v1, v2, v3);
  sip_round(v0, v1, v2, v3);
  v0 ^= last;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) sip_round(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

std::uint64_t siphash24(const SipKey& key, std::span<const std::uint8_t> data) {
  SipHasher h(key);
  h.update(data);
  return h.finish();
}

std::uint64_t siphash24(const SipKey& key, std::string_view data) {
  return siphash24(key, std::span<const std::uint8_t>(
                            reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
}

std::optional<SipKey> random_sip_key() {
  SipKey key{};
  std::size_t got = 0;
  for (int tries = 0; got < key.size() && tries < 100; ++tries) {
    const ssize_t n = ::getrandom(key.data() + got, key.size() - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (errno != EINTR) {
      break;
    }
  }
  if (got < key.size()) return std::nullopt;
  return key;
}

}  // namespace diode::platform

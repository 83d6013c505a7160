#pragma once
// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF"),
// the one copy every Diode component uses: a keyed hash for tables whose
// keys others choose (the resolver's cache index, sockd's password cache),
// so that nobody who does not know the random key can make keys collide.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace diode::platform {

using SipKey = std::array<std::uint8_t, 16>;

/// SipHash-2-4 of `data` under a 128-bit key (the reference algorithm,
/// written from its description; little-endian key and result as there).
std::uint64_t siphash24(const SipKey& key, std::span<const std::uint8_t> data);
std::uint64_t siphash24(const SipKey& key, std::string_view data);

/// A key from the kernel's CSPRNG (getrandom); nullopt if it cannot give one.
std::optional<SipKey> random_sip_key();

/// Hashes a sequence of pieces without concatenating them first: the same
/// result as siphash24 of the pieces written one after the other.
class SipHasher {
 public:
  explicit SipHasher(const SipKey& key);
  void update(std::span<const std::uint8_t> data);
  void update_u16(std::uint16_t v);  // big-endian, two octets
  void update_u8(std::uint8_t v);
  std::uint64_t finish() const;

 private:
  void absorb(std::uint64_t m);
  std::uint64_t v0_, v1_, v2_, v3_;
  std::uint64_t tail_ = 0;   // up to 7 octets not yet absorbed, little-endian
  unsigned tail_len_ = 0;
  std::uint64_t total_ = 0;  // octets in all
};

}  // namespace diode::platform

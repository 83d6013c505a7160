#pragma once
// RFC 1929 username/password checks against the users file, with a cache of
// recent successes. Hashes are crypt(3) strings (yescrypt, sha512-crypt),
// verified with libcrypt's crypt_rn. A success is remembered for the TTL
// under a keyed hash (SipHash-2-4 with a random per-process key) of user,
// password and stored hash: never the password itself, and a changed hash
// in a reloaded users file no longer matches. Failures are never cached.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "diode/sockd/users.hpp"

namespace diode::sockd {

/// SipHash-2-4 of `data` under a 128-bit key (the reference algorithm of
/// Aumasson and Bernstein, written from its description).
std::uint64_t siphash24(const std::array<std::uint8_t, 16>& key, std::string_view data);

/// True when crypt_rn(password, hash) reproduces `hash` (compared in
/// constant time); false for a locked entry or an unsupported hash.
bool crypt_matches(std::string_view password, const std::string& hash);

/// Verifies logins; thread-safe. The cache holds at most `max_entries`.
class PasswordVerifier {
 public:
  using Clock = std::chrono::steady_clock;

  explicit PasswordVerifier(std::chrono::milliseconds ttl, std::size_t max_entries = 65536);

  /// True when `user` exists in `users`, is not locked, and `password` matches
  /// its hash. A cached success within the TTL skips the hash.
  bool verify(const UsersFile& users, std::string_view user, std::string_view password,
              Clock::time_point now = Clock::now());

  /// True when a success for these credentials is remembered (within the
  /// TTL): the cheap check a caller makes before handing verify() to a
  /// thread where a slow hash does no harm. Counts as a cache hit.
  bool cached(const UsersFile& users, std::string_view user, std::string_view password,
              Clock::time_point now = Clock::now());

  /// How many verifications the cache answered, and how many ran crypt.
  std::uint64_t cache_hits() const;
  std::uint64_t hashes_run() const;

 private:
  std::uint64_t cache_key(std::string_view user, std::string_view password,
                          std::string_view hash) const;

  std::chrono::milliseconds ttl_;
  std::size_t max_entries_;
  std::array<std::uint8_t, 16> key_{};
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, Clock::time_point> ok_until_;
  std::uint64_t hits_ = 0;
  std::uint64_t hashes_ = 0;
};

}  // namespace diode::sockd

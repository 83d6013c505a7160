#pragma once
// RFC 1929 username/password checks against the users file, with a cache of
// recent successes. Hashes are crypt(3) strings (yescrypt, sha512-crypt),
// verified with libcrypt's crypt_rn. A success is remembered for the TTL
// under a keyed hash (SipHash-2-4 with a random per-process key) of user,
// password and stored hash: never the password itself, and a changed hash
// in a reloaded users file no longer matches. Failures are never cached.
// An unknown or locked user costs a hash too (against another user's hash
// setting), so the time of an answer does not tell which names exist; and
// AuthThrottle turns away a client address after repeated failures.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "diode/platform/address.hpp"
#include "diode/platform/siphash.hpp"
#include "diode/sockd/users.hpp"

namespace diode::sockd {

/// SipHash-2-4: the base library's one copy (diode/platform/siphash.hpp).
using platform::siphash24;

/// True when crypt_rn(password, hash) reproduces `hash` (compared in
/// constant time); false for a locked entry or an unsupported hash.
bool crypt_matches(std::string_view password, const std::string& hash);

/// The hash an unknown or locked user is checked against, so that it costs
/// what a real user costs: the first usable hash of the file (same scheme,
/// same cost parameters, since crypt takes them from the stored setting);
/// null when the file has none (then no one can log in, and nothing leaks).
const std::string* dummy_hash(const UsersFile& users);

/// Verifies logins; thread-safe. The cache holds at most `max_entries`.
class PasswordVerifier {
 public:
  using Clock = std::chrono::steady_clock;

  explicit PasswordVerifier(std::chrono::milliseconds ttl, std::size_t max_entries = 65536);

  /// True when `user` exists in `users`, is not locked, and `password` matches
  /// its hash. A cached success within the TTL skips the hash; an unknown or
  /// locked user runs one against dummy_hash() and gets false.
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

/// Repeated login failures per client (an IPv4 address, or an IPv6 /64, which
/// one host usually holds whole): after kMaxFailures failures within kWindow,
/// that client's logins are refused without a hash for kLockout. A success
/// does not reset the count. Thread-safe; tracks at most kMaxClients
/// clients (past that, expired entries go, and if none has, all of them).
class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr unsigned kMaxFailures = 5;
  static constexpr std::chrono::seconds kWindow{60};
  static constexpr std::chrono::seconds kLockout{60};
  static constexpr std::size_t kMaxClients = 65536;

  /// True while `client` is locked out.
  bool blocked(const platform::IpAddress& client, Clock::time_point now = Clock::now());
  /// Records a failed login (a wrong password, an unknown or locked user).
  void failed(const platform::IpAddress& client, Clock::time_point now = Clock::now());

 private:
  struct Entry {
    unsigned failures = 0;
    Clock::time_point first{};
    Clock::time_point blocked_until{};
  };
  static platform::IpAddress key_of(const platform::IpAddress& a);

  std::mutex mu_;
  std::map<platform::IpAddress, Entry> clients_;
};

}  // namespace diode::sockd

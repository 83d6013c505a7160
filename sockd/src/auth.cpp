#include "diode/sockd/auth.hpp"

#include <crypt.h>

#include <cstring>
#include <memory>
#include <string>

namespace diode::sockd {

bool crypt_matches(std::string_view password, const std::string& hash) {
  if (!is_supported_crypt_hash(hash)) return false;
  // crypt_rn wants NUL-terminated strings; a password with a NUL byte can
  // never match a hash made from a C string.
  if (password.find('\0') != std::string_view::npos) return false;
  std::string phrase(password);
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = ::crypt_rn(phrase.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  ::explicit_bzero(phrase.data(), phrase.size());
  unsigned char diff = 1;
  if (out != nullptr && out[0] != '*' && std::strlen(out) == hash.size()) {
    diff = 0;
    for (std::size_t i = 0; i < hash.size(); ++i) {
      diff = static_cast<unsigned char>(diff | (static_cast<unsigned char>(out[i]) ^
                                                static_cast<unsigned char>(hash[i])));
    }
  }
  // crypt's scratch space may hold what it derived from the password.
  ::explicit_bzero(data.get(), sizeof(crypt_data));
  return diff == 0;
}

const std::string* dummy_hash(const UsersFile& users) {
  for (const auto& e : users.users) {
    if (!e.locked && is_supported_crypt_hash(e.hash)) return &e.hash;
  }
  return nullptr;
}

PasswordVerifier::PasswordVerifier(std::chrono::milliseconds ttl, std::size_t max_entries)
    : ttl_(ttl), max_entries_(max_entries) {
  // Without a random key the cache could be attacked offline: turn it off.
  if (const auto k = platform::random_sip_key()) {
    key_ = *k;
  } else {
    ttl_ = std::chrono::milliseconds{0};
  }
}

std::uint64_t PasswordVerifier::cache_key(std::string_view user, std::string_view password,
                                          std::string_view hash) const {
  std::string buf;
  buf.reserve(user.size() + password.size() + hash.size() + 8);
  // Length prefixes keep ("ab","c") and ("a","bc") apart.
  for (std::string_view part : {user, password, hash}) {
    buf += std::to_string(part.size());
    buf += ':';
    buf += part;
  }
  const std::uint64_t k = siphash24(key_, buf);
  ::explicit_bzero(buf.data(), buf.size());  // a std::fill here is a dead store
  return k;
}

bool PasswordVerifier::verify(const UsersFile& users, std::string_view user,
                              std::string_view password, Clock::time_point now) {
  const UserEntry* e = users.find(user);
  if (e == nullptr || e->locked) {
    // The same work as for a real user, and a false answer whatever it says.
    if (const std::string* h = dummy_hash(users)) {
      (void)crypt_matches(password, *h);
      std::lock_guard lock(mu_);
      ++hashes_;
    }
    return false;
  }
  const bool caching = ttl_.count() > 0;
  std::uint64_t key = 0;
  if (caching) {
    key = cache_key(user, password, e->hash);
    std::lock_guard lock(mu_);
    auto it = ok_until_.find(key);
    if (it != ok_until_.end()) {
      if (now < it->second) {
        ++hits_;
        return true;
      }
      ok_until_.erase(it);
    }
  }
  // The slow part runs outside the lock.
  const bool ok = crypt_matches(password, e->hash);
  std::lock_guard lock(mu_);
  ++hashes_;
  if (ok && caching) {
    if (ok_until_.size() >= max_entries_) {
      for (auto it = ok_until_.begin(); it != ok_until_.end();) {
        it = now >= it->second ? ok_until_.erase(it) : std::next(it);
      }
      if (ok_until_.size() >= max_entries_) ok_until_.clear();
    }
    ok_until_[key] = now + ttl_;
  }
  return ok;
}

bool PasswordVerifier::cached(const UsersFile& users, std::string_view user,
                              std::string_view password, Clock::time_point now) {
  const UserEntry* e = users.find(user);
  if (e == nullptr || e->locked || ttl_.count() <= 0) return false;
  const std::uint64_t key = cache_key(user, password, e->hash);
  std::lock_guard lock(mu_);
  auto it = ok_until_.find(key);
  if (it == ok_until_.end() || now >= it->second) return false;
  ++hits_;
  return true;
}

std::uint64_t PasswordVerifier::cache_hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

std::uint64_t PasswordVerifier::hashes_run() const {
  std::lock_guard lock(mu_);
  return hashes_;
}

platform::IpAddress AuthThrottle::key_of(const platform::IpAddress& a) {
  platform::IpAddress k = a;
  if (k.family == platform::Family::V6) {
    for (std::size_t i = 8; i < 16; ++i) k.bytes[i] = 0;
  }
  return k;
}

bool AuthThrottle::blocked(const platform::IpAddress& client, Clock::time_point now) {
  std::lock_guard lock(mu_);
  const auto it = clients_.find(key_of(client));
  return it != clients_.end() && now < it->second.blocked_until;
}

void AuthThrottle::failed(const platform::IpAddress& client, Clock::time_point now) {
  std::lock_guard lock(mu_);
  const auto key = key_of(client);
  if (clients_.size() >= kMaxClients && clients_.find(key) == clients_.end()) {
    for (auto it = clients_.begin(); it != clients_.end();) {
      const bool stale = now >= it->second.blocked_until && now - it->second.first > kWindow;
      it = stale ? clients_.erase(it) : std::next(it);
    }
    if (clients_.size() >= kMaxClients) clients_.clear();
  }
  Entry& e = clients_[key];
  if (e.failures == 0 || now - e.first > kWindow) {
    e.failures = 0;
    e.first = now;
  }
  if (++e.failures >= kMaxFailures) {
    e.blocked_until = now + kLockout;
    e.failures = 0;
  }
}

}  // namespace diode::sockd

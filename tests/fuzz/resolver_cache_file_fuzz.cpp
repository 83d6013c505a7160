// Fuzzes the cache file reader (resolver.cache_file, cache_file.hpp): bytes
// from disk. The checksum would stop almost every mutation at the door, so
// when the first octet is odd the rest is taken as a file body and sealed
// with its true checksum: the entry parser is what gets fuzzed. Invariants:
// no crash; nothing restored unless ok; a refusal says why; and what was
// restored is written out again as a file that reads back whole.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "diode/resolver/cache_file.hpp"

using namespace diode::resolver;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
constexpr std::int64_t kWall = 1'800'000'000'000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> file(data, data + size);
  if (size > 0 && (data[0] & 1U) != 0) {
    file.assign(data + 1, data + size);
    const std::uint64_t sum = cache_file_checksum(file);
    for (int i = 7; i >= 0; --i) file.push_back(static_cast<std::uint8_t>(sum >> (8 * i)));
  }
  CacheSettings s;
  s.serve_stale = (size % 2) == 0;
  Cache c(s);
  Cache* caches[] = {&c};
  const Time now{1'000'000};
  const CacheFileLoaded r = decode_cache_file(file, now, kWall, caches);
  if (!r.ok) {
    check(!r.error.empty());
    check(c.entries() == 0);
    return 0;
  }
  check(r.restored <= r.entries);
  check(c.entries() <= r.restored);
  // What the cache holds now is as good as what the resolver itself stores.
  const auto again = encode_cache_file(caches, now, kWall);
  Cache d(s);
  Cache* into[] = {&d};
  const CacheFileLoaded r2 = decode_cache_file(again, now, kWall, into);
  check(r2.ok);
  return 0;
}

#pragma once
// The cache file (resolver.cache_file): the cache written out when the
// resolver stops and read back when it starts, so that a restart does not
// send every client's first question to the internet again. Sans-I/O for
// the format (bytes in, bytes out, both clocks passed in), plus the two
// file operations the daemon needs (an atomic write, a bounded read).
//
// Format, every integer big-endian (docs/resolver.md, "The cache file"):
//   header   "DIODE-RC" | u16 version (1) | u16 0 | u32 entries | i64 saved
//            (wall clock, milliseconds since the Unix epoch)
//   entry    u8 kind | u8 trust | u8 negative kind | u8 0 | u16 type |
//            u16 class | u32 TTL stored for | u64 age at save (ms) |
//            key name (u8 length, uncompressed wire) | data
//   data     RRset, negative (its SOA), parent glue: owner name (u8 length,
//            wire) | u16 type | u16 class | u16 count | count x (u16 length,
//            RDATA); message: u16 length | the message | u16 count |
//            count x u16 TTL offset
//   trailer  u64 SipHash-2-4 of everything before it (fixed key): a
//            truncated or damaged file is refused whole.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "diode/resolver/cache.hpp"

namespace diode::resolver {

inline constexpr std::uint16_t kCacheFileVersion = 1;

/// What encode_cache_file wrote.
struct CacheFileSaved {
  std::size_t entries = 0;
  std::size_t skipped = 0;  // not kept: cached failures, root hints
};

/// The cache file for `caches` (each thread's), taken at `now` (the
/// caches' monotonic clock) and stamped with `wall_ms` (wall clock, ms
/// since the Unix epoch). Kept: RRsets, negative answers, answer messages
/// and parent-side glue, live or within the serve-stale window; not kept:
/// cached SERVFAILs and root hints (a restart is how one retries, and the
/// hints file is read again anyway). An entry held by several caches is
/// written once per cache; the reader keeps the one that lives longest.
std::vector<std::uint8_t> encode_cache_file(std::span<Cache* const> caches, Time now,
                                            std::int64_t wall_ms, CacheFileSaved* saved = nullptr);

/// What decode_cache_file found.
struct CacheFileLoaded {
  bool ok = false;
  std::string error;            // why the whole file was refused (ok false)
  std::size_t entries = 0;      // in the file
  std::size_t restored = 0;     // stored in the first cache
  std::size_t expired = 0;      // past their TTL (and serve-stale window) by now
  std::int64_t elapsed_ms = 0;  // wall clock time between save and load
};

/// Checks the whole of `bytes` (magic, version, checksum, every entry
/// well-formed: names, RDATA layouts, messages that parse and answer the
/// key's question) and only then restores every entry into every cache,
/// each TTL reduced by its age at save plus the wall-clock time elapsed
/// since (`wall_ms` minus the saved stamp). A file from the future (saved
/// more than a minute after `wall_ms`) is refused whole. Never throws on
/// bad bytes; nothing is restored unless ok.
CacheFileLoaded decode_cache_file(std::span<const std::uint8_t> bytes, Time now,
                                  std::int64_t wall_ms, std::span<Cache* const> caches);

/// The trailer for a cache file whose other octets are `body` (for tests and
/// the fuzz target, which build files by hand).
std::uint64_t cache_file_checksum(std::span<const std::uint8_t> body);

/// Writes `bytes` to `path` atomically: a new file beside it (mode 0600),
/// fsync, rename over `path`, fsync of the directory. On failure nothing
/// at `path` changes, the temporary file is removed and `error` says why.
bool write_file_atomically(const std::string& path, std::span<const std::uint8_t> bytes,
                           std::string& error);

/// Reads `path` whole if it is a regular file of at most `max_bytes`.
/// nullopt with `error` set otherwise; `*missing` is set when there is no
/// file at all (a first start, not a fault).
std::optional<std::vector<std::uint8_t>> read_file_bounded(const std::string& path,
                                                           std::size_t max_bytes,
                                                           std::string& error, bool* missing);

}  // namespace diode::resolver

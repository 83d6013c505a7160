#pragma once
// The resolver's cache, sans-I/O: RRsets and negative answers (RFC 2308)
// keyed by name, type and class, plus whole answer messages in wire form so
// that a cache hit is a copy plus an ID and TTL patch. One byte budget for
// everything, LRU-style eviction (second chance), serve-stale (RFC 8767) and prefetch marking.
// Time is passed in by the caller (a monotonic clock), so tests control it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "diode/platform/siphash.hpp"
#include "diode/resolver/message.hpp"
#include "diode/resolver/name.hpp"
#include "diode/resolver/rrset.hpp"

namespace diode::resolver {

/// The message-cache class under which the front end files the form of an
/// answer for clients with DO (RRSIG, NSEC, NSEC3 included); the message
/// itself has class IN. No client can ask it: only IN is served.
inline constexpr std::uint16_t kDnssecFormClass = 0x8001;

/// Monotonic time in milliseconds since an arbitrary epoch (injected).
using Time = std::chrono::milliseconds;

/// RFC 2181 §5.4.1 credibility, lowest first: data of a lower rank never
/// replaces live data of a higher one.
enum class Trust : std::uint8_t {
  Hints,          // root hints, before priming
  Glue,           // additional section, or glue of a referral
  Authority,      // authority section (referral NS, negative SOA)
  AnswerNonAuth,  // answer section without AA
  Answer,         // authoritative answer
};

struct CacheSettings {
  std::uint64_t max_bytes = 64ULL * 1024 * 1024;
  std::uint32_t min_ttl = 0;              // seconds; TTLs below are raised
  std::uint32_t max_ttl = 86400;          // seconds; TTLs above are lowered
  std::uint32_t max_negative_ttl = 3600;  // seconds (RFC 2308 §5)
  bool serve_stale = false;
  std::uint32_t max_stale = 86400;        // seconds an entry is kept past expiry
  std::uint32_t stale_answer_ttl = 30;    // TTL given to stale answers (RFC 8767 §4)
};

enum class NegativeKind : std::uint8_t { NxDomain, NoData };

/// What DNSSEC validation concluded about a cached RRset (RFC 4035 §4.3).
/// Unchecked: stored by the iterator, not (yet) validated; only the
/// validator's conclusion (Cache::set_security) changes it.
enum class RRsetSecurity : std::uint8_t { Unchecked, Secure, Insecure, Bogus, Indeterminate };

/// What a cache entry holds.
enum class EntryKind : std::uint8_t { RRset, Negative, Message, ParentGlue };

/// One cache entry as a copy that points into nothing: how the cache file
/// (cache_file.hpp) carries it from one run to the next.
struct EntryImage {
  EntryKind kind = EntryKind::RRset;
  Name name;                 // the key's name, lowered (a Negative's: the name asked)
  std::uint16_t type = 0;    // the key's type (0: an NXDOMAIN, every type)
  std::uint16_t rclass = rrclass::kIN;
  Trust trust = Trust::Hints;
  NegativeKind negative = NegativeKind::NoData;
  std::uint32_t original_ttl = 0;  // seconds it was stored for
  Time age{0};                     // how long ago it was stored
  RRset rrset;                     // RRset, ParentGlue: the data; Negative: the SOA
  std::vector<std::uint8_t> wire;  // Message: the answer in cached form
  std::vector<std::uint16_t> ttl_offsets;
};

/// Counters kept by the cache itself.
struct CacheCounters {
  std::uint64_t inserts = 0;
  std::uint64_t evictions = 0;  // removed to stay within max_bytes
  std::uint64_t expired = 0;    // removed because past expiry (and past max_stale)
};

class Cache {
 public:
  explicit Cache(CacheSettings settings = {});
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  /// Stores `rrset` (its TTL clamped to [min_ttl, max_ttl]) unless live data
  /// of a higher trust is already held. Returns true when stored. `sigs`
  /// (an RRSIG RRset of the owner, as received; may be null) gives the
  /// signatures kept beside it: those covering rrset.type. The entry is
  /// Unchecked until set_security says otherwise.
  bool insert_rrset(const RRset& rrset, Trust trust, Time now, const RRset* sigs = nullptr);

  /// Records the validator's conclusion about the cached RRset of
  /// (rrset.owner, rrset.type, rrset.rclass), if it holds exactly the RDATAs
  /// of `rrset` (otherwise it is other data, and nothing changes). The
  /// entry then expires within `ttl_cap` seconds at the latest (the RRSIG's
  /// original TTL and expiration; the bogus time for Bogus). True when set.
  bool set_security(const RRset& rrset, RRsetSecurity security, std::uint32_t ttl_cap, Time now);

  struct RRsetHit {
    const RRset* rrset = nullptr;  // owned by the cache; valid until the next insert/flush
    std::uint32_t ttl = 0;         // seconds left (stale_answer_ttl when stale)
    Trust trust = Trust::Hints;
    bool stale = false;
    RRsetSecurity security = RRsetSecurity::Unchecked;
    const RRset* sigs = nullptr;  // the RRSIGs kept with it (type RRSIG, maybe empty)
  };
  /// A live RRset, or an expired one within max_stale when `allow_stale`
  /// (and serve_stale is on). Refreshes the entry's LRU position.
  std::optional<RRsetHit> find_rrset(const Name& name, std::uint16_t type, std::uint16_t rclass,
                                     Time now, bool allow_stale = false);

  /// Stores a negative answer. NXDOMAIN covers every type of `name`; NODATA
  /// only `type`. The TTL is min(SOA TTL, SOA MINIMUM, max_negative_ttl)
  /// (RFC 2308 §5); without a SOA nothing is cached (§5: "SHOULD NOT").
  bool insert_negative(const Name& name, std::uint16_t type, std::uint16_t rclass,
                       NegativeKind kind, const RRset& soa, Time now);

  struct NegativeHit {
    NegativeKind kind = NegativeKind::NoData;
    const RRset* soa = nullptr;  // the SOA to put in the authority section
    std::uint32_t ttl = 0;
    bool stale = false;
  };
  /// NXDOMAIN for the name, or NODATA for this type.
  std::optional<NegativeHit> find_negative(const Name& name, std::uint16_t type,
                                           std::uint16_t rclass, Time now,
                                           bool allow_stale = false);

  /// Keeps the glue addresses (the A or AAAA RDATAs of `addresses`, TTL
  /// clamped) that a referral from the parent gave for the name servers of
  /// `zone`, apart from every other entry: the child's own address records,
  /// which replace the glue among the RRsets, never replace these. The
  /// iterator's last resort when the zone's servers fail (Unbound's
  /// parent-side glue). Replaces what was kept for this zone and type.
  void insert_parent_glue(const Name& zone, const RRset& addresses, Time now);
  /// The parent-side glue of `zone` of `type` (A or AAAA), if live.
  std::optional<RRsetHit> find_parent_glue(const Name& zone, std::uint16_t type, Time now);

  /// Stores a finished answer message (any ID) for its question. `ttl` is
  /// the smallest TTL in it; `ttl_offsets` lists every TTL field to age.
  /// Neither the entry nor any TTL field in it outlives max_ttl.
  void insert_message(const Question& q, std::span<const std::uint8_t> wire,
                      std::span<const std::uint16_t> ttl_offsets, std::uint32_t ttl, Time now);

  struct MessageHit {
    std::size_t size = 0;
    bool stale = false;
    bool prefetch_due = false;  // less than 10 % of the TTL left; reported once per entry
  };
  /// Copies a cached answer for `q` into `out` (resized), with `id`, TTLs
  /// aged (or set to stale_answer_ttl when stale) and the question's case
  /// copied from q.qname (0x20). nullopt when there is none.
  std::optional<MessageHit> copy_message(const Question& q, std::uint16_t id, Time now,
                                         std::vector<std::uint8_t>& out, bool allow_stale = false);

  /// Calls `f` with an image of every entry still worth keeping at `now`
  /// (live, or expired within max_stale when serve_stale is on), least
  /// recently used first, so that restoring them in that order rebuilds
  /// the recency list. Does not change the cache.
  void for_each_entry(Time now, const std::function<void(const EntryImage&)>& f) const;
  /// Puts an entry back from its image, counting its age as time already
  /// spent in the cache. Nothing is stored when it is past expiry (and
  /// past max_stale when serve_stale is on), or when an entry of the same
  /// key is held that expires later. TTLs above the current max_ttl (or
  /// max_negative_ttl) are lowered, as on insertion. True when stored.
  bool restore(const EntryImage& image, Time now);

  /// Removes everything; returns the number of entries removed.
  std::size_t flush();
  /// Removes every entry (RRset, negative, message) owned by `name` or a
  /// name below it; returns the number removed.
  std::size_t flush_name(const Name& name);

  /// A positive TTL as the cache stores it: within [min_ttl, max_ttl].
  std::uint32_t clamp_ttl(std::uint32_t ttl) const;
  /// A negative answer's TTL (already the smaller of the SOA's TTL and
  /// MINIMUM) as the cache stores it: clamped, and at most max_negative_ttl.
  std::uint32_t clamp_negative_ttl(std::uint32_t ttl) const;

  /// True when any DNAME RRset is held (live or not): the iterator looks
  /// for a DNAME above a name only then.
  bool holds_dname() const { return dnames_ != 0; }

  std::size_t bytes() const { return bytes_; }
  std::size_t entries() const { return count_; }
  const CacheCounters& counters() const { return counters_; }
  const CacheSettings& settings() const { return settings_; }
  /// New settings (a reload): entries are kept, and evicted at once if the
  /// byte budget shrank; the TTL limits apply to what is stored from now on.
  void set_settings(CacheSettings s);

 private:
  using Kind = EntryKind;
  struct Key {
    Name name;  // lowered
    std::uint16_t type = 0;
    std::uint16_t rclass = 0;
    Kind kind = Kind::RRset;
    bool operator==(const Key& o) const {
      // Key names are stored lowered: an exact comparison is enough.
      return type == o.type && rclass == o.rclass && kind == o.kind && name.equals_exact(o.name);
    }
  };
  struct Entry {
    Time inserted{0};
    Time expires{0};
    std::uint32_t original_ttl = 0;
    Trust trust = Trust::Hints;
    NegativeKind negative = NegativeKind::NoData;
    bool prefetch_reported = false;
    bool referenced = false;             // used since it last passed the eviction point
    RRset rrset;                         // the data, or the negative's SOA
    RRset sigs;                          // Kind::RRset: its RRSIGs (DNSSEC), maybe empty
    RRsetSecurity security = RRsetSecurity::Unchecked;
    std::vector<std::uint8_t> wire;      // Kind::Message
    std::vector<std::uint16_t> ttl_offsets;
    std::size_t cost = 0;
  };
  // One entry: its key, a copy of its hash, the data, and its place in the
  // recency list (head = most recently inserted or given a second chance).
  struct Node {
    Key key;
    std::uint64_t hash = 0;
    Entry entry;
    Node* newer = nullptr;
    Node* older = nullptr;
  };
  // The index: open addressing with linear probing over a power-of-two
  // table at most half full. A probe reads 16 octets per slot and touches a
  // node only when the full 64-bit hash matches.
  struct Slot {
    std::uint64_t hash = 0;
    Node* node = nullptr;
  };

  // SipHash-2-4 of the key under hash_key_, a random key drawn when the
  // cache is made: nobody who sends questions can make keys collide in
  // bulk (hash flooding) without knowing it.
  std::uint64_t hash_of(const Key& k) const;
  static bool is_dname(const Key& k);
  Node* find_node(const Key& key, std::uint64_t h) const;
  Entry* lookup(const Key& key, Time now, bool allow_stale, bool* stale);
  void put(Key key, Entry entry);
  void remove(Node* n);
  void link_front(Node* n);
  void unlink(Node* n);
  void grow();
  void shrink();

  CacheSettings settings_;
  platform::SipKey hash_key_{};
  std::vector<Slot> slots_;
  std::size_t count_ = 0;
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t dnames_ = 0;  // RRset entries of type DNAME
  CacheCounters counters_;
};

/// The SOA MINIMUM field (RFC 1035 §3.3.13) of an uncompressed SOA RDATA,
/// or nullopt if it is malformed.
std::optional<std::uint32_t> soa_minimum(std::span<const std::uint8_t> rdata);

}  // namespace diode::resolver

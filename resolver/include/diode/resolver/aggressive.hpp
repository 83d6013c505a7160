#pragma once
// Aggressive use of the DNSSEC-validated cache (RFC 8198), sans-I/O: the
// NSEC and NSEC3 records of secure denials are kept per zone, and a later
// question for a name (or type) they prove absent is answered NXDOMAIN or
// NODATA without asking upstream. Only records the validator proved secure
// go in (Verdict::denial_records); each is kept min(its TTL, the SOA's TTL,
// the SOA MINIMUM, the validated TTL cap) seconds (RFC 8198 §5, RFC 9077 §3).
// The proofs are the validator's own (dnssec.hpp: nsec_nxdomain, ...), so an
// NSEC3 opt-out span never denies (RFC 8198 §4: it proves only that no
// signed name is there) and NSEC3 iterations above the cap are not used.
// Wildcard answers are not synthesised: a name a wildcard would answer goes
// upstream. Bounded: records per zone and bytes in all. Time is passed in
// (seconds of any monotonic clock).

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "diode/resolver/dnssec.hpp"
#include "diode/resolver/name.hpp"
#include "diode/resolver/rrset.hpp"

namespace diode::resolver::dnssec {

struct DenialCacheLimits {
  std::size_t max_records_per_zone = 1000;  // NSEC/NSEC3 RRsets of one zone
  std::size_t max_bytes = 4U << 20;         // all zones (one thread's cache)
};

class DenialCache {
 public:
  explicit DenialCache(DenialCacheLimits limits = {}) : limits_(limits) {}

  /// Keeps the denial records of `zone` from a secure proof: `records` as
  /// the validator proved them (NSEC, NSEC3 and the zone's SOA; other types
  /// and owners outside the zone are ignored), `sigs` the RRSIG RRsets of
  /// the same response (those of the kept owners are kept beside them, for
  /// clients with DO). `ttl_cap` is the validated TTL bound. Nothing is
  /// kept without the zone's SOA.
  void add(const Name& zone, std::span<const RRset> records, std::span<const RRset> sigs,
           std::uint32_t ttl_cap, std::uint64_t now);

  struct Answer {
    std::uint16_t rcode = 0;     // NXDOMAIN, or NOERROR for NODATA
    std::vector<RRset> soa;      // the SOA (one RRset), TTL = seconds left
    std::vector<RRset> records;  // the NSEC/NSEC3 RRsets offered as proof, and their RRSIGs
  };
  /// A secure NXDOMAIN or NODATA for (qname, qtype) that the kept records
  /// prove, or nullopt: not proven, an opt-out span, NSEC3 iterations above
  /// `limits`, an unsupported hash, or `budget` spent. DS questions are
  /// never answered (they belong to the parent's side of a cut).
  std::optional<Answer> lookup(const Name& qname, std::uint16_t qtype, std::uint64_t now,
                               const Nsec3Limits& limits, Budget& budget);

  std::size_t zones() const { return zones_.size(); }
  std::size_t records() const;
  std::size_t bytes() const { return bytes_; }
  void clear();

 private:
  struct Record {
    RRset set;   // one NSEC or NSEC3 RRset
    RRset sigs;  // its RRSIGs (type covered NSEC/NSEC3), maybe empty
    std::uint64_t expires = 0;
    std::size_t cost = 0;
  };
  struct CanonicalLess {
    bool operator()(const Name& a, const Name& b) const { return a.canonical_compare(b) < 0; }
  };
  struct Zone {
    RRset soa;
    RRset soa_sigs;
    std::uint64_t soa_expires = 0;
    // NSEC records by owner, canonical order; NSEC3 records by owner hash.
    std::map<Name, Record, CanonicalLess> nsec;
    std::map<std::vector<std::uint8_t>, Record> nsec3;
    std::uint64_t last_used = 0;
    std::size_t bytes = 0;
  };

  void purge(Zone& z, std::uint64_t now);
  void drop_zone(std::map<Name, Zone, CanonicalLess>::iterator it);
  void make_room(std::uint64_t now);

  DenialCacheLimits limits_;
  std::map<Name, Zone, CanonicalLess> zones_;
  std::size_t bytes_ = 0;
};

}  // namespace diode::resolver::dnssec

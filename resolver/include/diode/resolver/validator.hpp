#pragma once
// The DNSSEC chain of trust as a sans-I/O state machine (RFC 4035 §5):
// from a trust anchor, DNSKEY sets validated by the DS records above them,
// down to the zone that signed the data of one response. It is given a
// response and answers "need the DNSKEY set of Z", "need the DS of N"
// (the caller fetches it, from N's parent's servers, and feeds it back) or
// "done: secure / insecure / bogus (with its RFC 8914 code) /
// indeterminate". Every signature check and NSEC3 hash is charged to a
// Budget, so a hostile zone (KeyTrap) costs at most what was allowed.
//
// The daemon drives it (resolver/src/server.cpp); see docs/resolver.md, "DNSSEC".

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/resolver/dnssec.hpp"
#include "diode/resolver/message.hpp"
#include "diode/resolver/rrset.hpp"
#include "diode/resolver/zone_text.hpp"

namespace diode::resolver::dnssec {

/// Trust anchors: DS and/or DNSKEY records per zone, as in Debian's
/// /usr/share/dns/root.key and root.ds (dns-root-data).
class TrustAnchors {
 public:
  struct Anchor {
    Name zone;
    RRset ds;      // may be empty
    RRset dnskey;  // may be empty
  };

  /// Parses presentation-format DS and DNSKEY records (class IN). Any other
  /// type, a bad record or no anchor at all is an error; every error is
  /// reported in `errors` and nullopt returned (nothing half-loaded).
  static std::optional<TrustAnchors> parse(std::string_view text, std::vector<TextError>& errors);
  /// Anchors built by the caller (RFC 5011 updates, anchor_state.hpp).
  static TrustAnchors from(std::vector<Anchor> anchors);

  /// The anchor at `name` or its closest ancestor, or nullptr.
  const Anchor* closest(const Name& name) const;
  const std::vector<Anchor>& anchors() const { return anchors_; }

 private:
  std::vector<Anchor> anchors_;
};

/// One upstream response as the validator needs it: the answer and
/// authority sections grouped into RRsets, RRSIGs included (as RRsets of
/// type RRSIG per owner, which is how collect_rrsets groups them).
struct Response {
  std::uint16_t rcode = 0;
  std::vector<RRset> answer;
  std::vector<RRset> authority;

  static Response from_message(const Message& m);
};

struct ValidatorSettings {
  AlgorithmPolicy policy;
  Nsec3Limits nsec3;
  /// DNSKEY and DS fetches one validation may ask for.
  unsigned max_fetches = 40;
};

struct Verdict {
  Security security = Security::Indeterminate;
  Ede ede = Ede::None;  // why, for Bogus/Indeterminate (and Insecure when informative)
  std::string reason;   // a short text for logs (EDE EXTRA-TEXT)
  /// For Secure: the smallest validated TTL (RRSIG original TTL and
  /// expiration applied); the answer may not be cached longer.
  std::uint32_t ttl_cap = 0xffffffffu;
  /// For a Secure NXDOMAIN or NODATA (not a wildcard answer's proof): the
  /// zone whose records proved it, and those records as validated (its
  /// NSEC/NSEC3 sets and SOA, without their RRSIGs): what the aggressive
  /// denial cache (RFC 8198, aggressive.hpp) may keep.
  std::optional<Name> denial_zone{};
  std::vector<RRset> denial_records{};
};

class ZoneCache;

class Validator {
 public:
  // What the chain walk concluded about one name. NotACut: the parent
  // proved the name is no zone cut (its keys are the parent's); HasDs: a
  // validated DS set is held in `keys`, the DNSKEY set is awaited.
  enum class ZoneKind { Secure, Insecure, Bogus, Indeterminate, NotACut, HasDs };
  struct ZoneState {
    ZoneKind kind = ZoneKind::Bogus;
    RRset keys;  // Secure: the validated DNSKEY set; HasDs: the DS set
    Ede ede = Ede::None;
    std::string reason;
    std::uint32_t ttl = 0;  // how long the conclusion holds (validated TTLs)
  };

  struct Step {
    enum class Kind { NeedDnskey, NeedDs, Done };
    Kind kind = Kind::Done;
    Name name;  // the zone whose DNSKEY set, or the name whose DS, is needed
    Verdict verdict;
  };

  /// `anchors`, `budget`, `settings` and `cache` (when given) must outlive
  /// the Validator. With a cache, zones already proved secure, insecure or
  /// bogus are not fetched nor checked again until their TTL runs out.
  Validator(const TrustAnchors& anchors, const ValidatorSettings& settings, Budget& budget,
            Clock clock, ZoneCache* cache = nullptr);

  /// Validates `response` to (qname, qtype). NOERROR with answers is a
  /// positive answer (a CNAME or DNAME chain is followed, each link checked
  /// in its own zone); NXDOMAIN or NOERROR without the data is a denial.
  /// Referrals are not for this entry point: their DS (or its absence) is
  /// what the chain walk asks for itself.
  Step start(const Name& qname, std::uint16_t qtype, Response response);
  /// Feeds the response to the last NeedDnskey / NeedDs step. A response
  /// that could not be had (timeout, SERVFAIL) is given as rcode SERVFAIL.
  Step provide(Response response);

 private:
  // The outcome of walking the chain toward a name: a zone state, or a need.
  struct ChainResult {
    std::optional<Step> need;
    Name zone;  // the deepest secure zone reached (Secure), or where it ended
    const ZoneState* state = nullptr;
  };

  Step evaluate();
  // Walks from the closest anchor to `target`. When `target_is_signer`, a
  // target the parent proved to be no zone is bogus; otherwise the zone
  // enclosing it answers for it.
  ChainResult chain_to(const Name& target, bool target_is_signer);
  ZoneState validate_keyset(const Name& zone, const Response& r, const RRset* ds,
                            const RRset* anchor_keys);
  ZoneState process_ds(const Name& name, const Name& parent, const ZoneState& parent_state,
                       const Response& r);
  Verdict check_positive(const RRset& rrset, const Response& r, std::optional<Step>& need);
  Verdict memo_positive(const RRset& rrset, std::optional<Step>& need);
  Verdict check_denial(const Name& name, std::uint16_t qtype, bool nxdomain, const Response& r,
                       std::optional<Step>& need, const std::optional<Name>& wildcard_parent);
  Step need(Step::Kind k, const Name& n);
  // The state of `n` from this walk or, failing that, from the cache.
  bool known(const Name& n);
  void remember(const Name& n, const ZoneState& st);

  const TrustAnchors& anchors_;
  const ValidatorSettings& settings_;
  Budget& budget_;
  Clock clock_;
  ZoneCache* cache_;

  Name qname_;
  std::uint16_t qtype_ = 0;
  Response response_;
  std::vector<std::optional<Verdict>> positive_;  // per answer RRset, once decided
  std::optional<Step> pending_;
  unsigned fetches_ = 0;
  struct CanonicalLess {
    bool operator()(const Name& a, const Name& b) const { return a.canonical_compare(b) < 0; }
  };
  std::map<Name, Response, CanonicalLess> dnskey_responses_;
  std::map<Name, Response, CanonicalLess> ds_responses_;
  std::map<Name, ZoneState, CanonicalLess> zones_;
};

/// Zone conclusions shared by the validations of one thread: a DNSKEY set
/// or an insecure delegation is proved once per TTL, not once per
/// question. Bogus conclusions are kept `bogus_seconds` only (RFC 4035
/// §4.7), so that a broken zone is neither refetched without bound nor
/// blamed for long. Bounded to `max_entries`.
class ZoneCache {
 public:
  explicit ZoneCache(std::size_t max_entries = 10000, std::uint32_t bogus_seconds = 60)
      : max_entries_(max_entries), bogus_seconds_(bogus_seconds) {}
  std::size_t size() const { return entries_.size(); }
  void clear() { entries_.clear(); }

 private:
  friend class Validator;
  struct Entry {
    Validator::ZoneState state;
    std::uint64_t expires = 0;
  };
  struct CanonicalLess {
    bool operator()(const Name& a, const Name& b) const { return a.canonical_compare(b) < 0; }
  };
  const Validator::ZoneState* find(const Name& n, std::uint64_t now) const;
  void store(const Name& n, const Validator::ZoneState& st, std::uint64_t now);

  std::size_t max_entries_;
  std::uint32_t bogus_seconds_;
  std::map<Name, Entry, CanonicalLess> entries_;
};

/// Combines two verdicts: the worse wins (Bogus, Indeterminate, Insecure,
/// Secure), the TTL caps take the minimum.
Verdict combine(const Verdict& a, const Verdict& b);

}  // namespace diode::resolver::dnssec

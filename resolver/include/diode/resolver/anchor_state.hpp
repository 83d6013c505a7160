#pragma once
// Automated updates of DNSSEC trust anchors (RFC 5011) as a sans-I/O
// state machine: per trust point (a zone with a configured anchor, the
// root in practice) the key-signing keys seen at its apex and the state
// of each (RFC 5011 §4: Start, AddPend, Valid, Missing, Revoked,
// Removed), the add and remove hold-downs, the REVOKE bit (which counts
// only when the revoked key signed the DNSKEY set itself, §2.1), and when
// to ask for the DNSKEY set again (§2.3, with RFC 7583's timing in mind).
//
// It is given the trust point's DNSKEY set with its RRSIGs, as fetched,
// and the wall-clock time; it checks the set against the keys it trusts
// now (any Valid or Missing key's signature) and moves the states. A set
// that does not validate changes no key. It owns no clock, socket or file:
// the daemon (resolver/src/server.cpp) fetches, saves the text form to
// files.trust_anchor_state and swaps in anchors() for new validations.
// See docs/resolver.md, "Trust anchor updates (RFC 5011)".

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "diode/resolver/dnssec.hpp"
#include "diode/resolver/validator.hpp"

namespace diode::resolver::dnssec {

/// RFC 5011 §4. Start is never stored: a key in Start is a key not held.
enum class KeyState : std::uint8_t { Start, AddPend, Valid, Missing, Revoked, Removed };

std::string_view to_string(KeyState s);
std::optional<KeyState> key_state_from_text(std::string_view text);

/// The timers, in seconds.
struct AnchorTimings {
  /// RFC 5011 §2.4.1: a new key becomes trusted only after it was seen,
  /// validly signed, for this long (and for at least the DNSKEY set's TTL).
  std::uint32_t add_hold_down = 30 * 86400;
  /// RFC 5011 §2.4.2: a revoked key is kept (as Revoked) this long before
  /// it is Removed.
  std::uint32_t remove_hold_down = 30 * 86400;
  /// §2.3's floor for the refresh and retry intervals (one hour); an
  /// add hold-down shorter than that (tests only) lowers it too.
  std::uint32_t min_refresh = 3600;
};

/// One key of a trust point.
struct ManagedKey {
  std::vector<std::uint8_t> rdata;  // DNSKEY RDATA as last seen (REVOKE bit set once revoked)
  KeyState state = KeyState::AddPend;
  std::uint64_t first_seen = 0;  // AddPend: when the hold-down started; else when first seen
  std::uint64_t changed = 0;     // when it entered `state`
  std::uint16_t tag() const;
};

struct TrustPoint {
  Name zone;
  std::vector<ManagedKey> keys;
  /// DS records of the configured anchor, used only while no key is held
  /// yet (an anchor file of DS records): the DNSKEYs they match, in a set
  /// they validate, become Valid at the first refresh.
  RRset seed_ds;
  std::uint32_t ttl = 0;           // the DNSKEY set's original TTL, last seen
  std::uint64_t last_success = 0;  // last refresh that validated
  std::uint64_t next_refresh = 0;  // when to ask for the DNSKEY set next
  std::uint32_t failures = 0;      // refreshes failed in a row
};

/// One key's change of state, for the log (`event=trust_anchor`).
struct KeyChange {
  Name zone;
  std::uint16_t tag = 0;  // the tag of the key as now held
  KeyState from = KeyState::Start;
  KeyState to = KeyState::Start;
};

struct RefreshOutcome {
  bool validated = false;  // the set was signed by a trusted key
  bool changed = false;    // a key changed state: save the state file, swap the anchors
  std::vector<KeyChange> changes;
  std::string reason;  // why not validated
};

class AnchorTracker {
 public:
  explicit AnchorTracker(AnchorTimings timings = {}) : timings_(timings) {}

  /// Every anchor of `anchors` becomes a trust point: its DNSKEYs Valid
  /// (first seen `now`), its DS records kept as the seed. Refresh is due now.
  static AnchorTracker seed(const TrustAnchors& anchors, AnchorTimings timings, std::uint64_t now);

  /// Matches a state read from the file with the configured anchors: the
  /// trust points of zones still configured keep their state, a zone the
  /// state lacks is seeded as by seed(), one no longer configured is
  /// dropped. True when something changed (the file is to be written).
  bool adopt_configured(const TrustAnchors& configured, std::uint64_t now);

  /// The DNSKEY set of trust point `zone` with the RRSIG RDATAs that came
  /// with it, fetched at `now` (Unix seconds). When a trusted key's
  /// signature validates it, the key states move (RFC 5011 §4) and the next
  /// refresh is scheduled (§2.3); otherwise nothing but the retry time
  /// changes. Unknown zones are ignored.
  RefreshOutcome on_dnskeys(const Name& zone, const RRset& keys,
                            std::span<const std::span<const std::uint8_t>> rrsigs,
                            std::uint64_t now, const AlgorithmPolicy& policy, Budget& budget);
  /// The DNSKEY set of `zone` could not be had at `now`: retry later (§2.3).
  void on_failure(const Name& zone, std::uint64_t now);

  /// The trust points whose refresh is due at `now`.
  std::vector<Name> due(std::uint64_t now) const;
  /// The earliest next refresh of all trust points (0 when there is none).
  std::uint64_t next_refresh() const;

  /// The anchors to validate with: per trust point its Valid and Missing
  /// keys (and the seed DS while no key is held). A trust point whose keys
  /// were all revoked keeps an empty anchor: its zone is then bogus, never
  /// insecure.
  TrustAnchors anchors() const;

  const std::vector<TrustPoint>& points() const { return points_; }
  const AnchorTimings& timings() const { return timings_; }
  void set_timings(const AnchorTimings& t) { timings_ = t; }

  /// The state file (docs/resolver.md): a header line, one line per trust
  /// point and one DNSKEY record in presentation form per key, its state
  /// and times in the comment after it.
  std::string to_text() const;
  /// Parses a state file; nullopt with `error` ("line N: what") for any
  /// fault, so that a damaged file is refused whole.
  static std::optional<AnchorTracker> parse(std::string_view text, AnchorTimings timings,
                                            std::string& error);

 private:
  TrustPoint* find(const Name& zone);
  std::uint32_t floor_seconds() const;
  void schedule(TrustPoint& tp, std::uint64_t now, std::uint32_t sig_remaining, bool success);

  AnchorTimings timings_;
  std::vector<TrustPoint> points_;
};

/// RFC 4648 §4 base64 with padding (the DNSKEY public key in the state file).
std::string base64_encode(std::span<const std::uint8_t> data);

}  // namespace diode::resolver::dnssec

#pragma once
// DNSSEC primitives (RFC 4033-4035, RFC 6840): the DNSSEC RDATA layouts,
// key tags, DS digests, the canonical form of an RRset and RRSIG checks,
// and the denial-of-existence proofs of NSEC (RFC 4035 §5.4) and NSEC3
// (RFC 5155 §8). Sans-I/O: the wall clock is passed in, and every
// signature check and NSEC3 hash is charged to a Budget, so a hostile zone
// (KeyTrap, CVE-2023-50387; NSEC3 floods, CVE-2023-50868) costs at most
// what the caller allowed. The cryptography is OpenSSL 3's libcrypto; what
// is checked, and when, is ours.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "diode/resolver/name.hpp"
#include "diode/resolver/rrset.hpp"

namespace diode::resolver::dnssec {

/// DNSSEC algorithm numbers (IANA "DNS Security Algorithm Numbers").
namespace algorithm {
inline constexpr std::uint8_t kRsaSha1 = 5;
inline constexpr std::uint8_t kRsaSha1Nsec3 = 7;
inline constexpr std::uint8_t kRsaSha256 = 8;
inline constexpr std::uint8_t kRsaSha512 = 10;
inline constexpr std::uint8_t kEcdsaP256 = 13;
inline constexpr std::uint8_t kEcdsaP384 = 14;
inline constexpr std::uint8_t kEd25519 = 15;
inline constexpr std::uint8_t kEd448 = 16;
}  // namespace algorithm

/// DS digest types (IANA "Delegation Signer (DS) Resource Record Digest Algorithms").
namespace digest {
inline constexpr std::uint8_t kSha1 = 1;
inline constexpr std::uint8_t kSha256 = 2;
inline constexpr std::uint8_t kSha384 = 4;
}  // namespace digest

/// Extended DNS Error codes this validator reports (RFC 8914 §4, RFC 9276 §3.2).
enum class Ede : std::uint16_t {
  None = 0xffff,
  UnsupportedDnskeyAlgorithm = 1,
  UnsupportedDsDigestType = 2,
  DnssecIndeterminate = 5,
  DnssecBogus = 6,
  SignatureExpired = 7,
  SignatureNotYetValid = 8,
  DnskeyMissing = 9,
  RrsigsMissing = 10,
  NoZoneKeyBitSet = 11,
  NsecMissing = 12,
  UnsupportedNsec3Iterations = 27,
};

/// The four outcomes of RFC 4035 §4.3.
enum class Security : std::uint8_t { Secure, Insecure, Bogus, Indeterminate };

std::string_view to_string(Security s);

/// What the algorithm policy accepts. RSA/SHA-1 (5, 7) is still accepted by
/// default, as by the Debian 12 peers (RFC 8624 §3.1: validators MUST still
/// validate it); when it is turned off, zones signed only with it are insecure.
struct AlgorithmPolicy {
  bool accept_rsa_sha1 = true;
  bool accept_ds_sha1 = true;
  /// RSA moduli outside [min, max] bits are treated as an unsupported algorithm.
  unsigned rsa_min_bits = 1024;
  unsigned rsa_max_bits = 4096;
};

bool algorithm_supported(std::uint8_t alg, const AlgorithmPolicy& policy);
bool digest_supported(std::uint8_t type, const AlgorithmPolicy& policy);

/// Work allowance: signature verifications and NSEC3 SHA-1 compressions
/// (one per iteration, per name). Each check or hash first asks the budget;
/// once it is spent, validation stops with Indeterminate/Bogus, never loops.
/// A Budget may draw from a parent (per query → global), so both limits hold.
class Budget {
 public:
  Budget(unsigned signature_checks, unsigned hash_operations, Budget* parent = nullptr)
      : sigs_(signature_checks), hashes_(hash_operations), parent_(parent) {}
  /// Takes one signature check; false (nothing taken) when spent here or above.
  bool take_signature();
  /// Takes `n` hash operations; false (nothing taken) when they do not fit.
  bool take_hashes(unsigned n);
  unsigned signatures_left() const { return sigs_; }
  unsigned hashes_left() const { return hashes_; }
  unsigned signatures_used() const { return sigs_used_; }
  /// Adds to the allowance (a global budget refilled by the caller's timer).
  void refill(unsigned signature_checks, unsigned hash_operations);

 private:
  unsigned sigs_;
  unsigned hashes_;
  unsigned sigs_used_ = 0;
  Budget* parent_;
};

// ---------------------------------------------------------------------------
// RDATA views (RFC 4034 §2-5, RFC 5155 §3-4). Each parse_* validates the
// layout and returns spans into the caller's RDATA, which must outlive them.

struct DnskeyView {
  std::uint16_t flags = 0;
  std::uint8_t protocol = 0;
  std::uint8_t algorithm = 0;
  std::span<const std::uint8_t> public_key;
  std::span<const std::uint8_t> rdata;  // the whole RDATA (for the key tag and DS)

  bool zone_key() const { return (flags & 0x0100) != 0; }
  bool sep() const { return (flags & 0x0001) != 0; }
  bool revoked() const { return (flags & 0x0080) != 0; }  // RFC 5011 §2.1
};
std::optional<DnskeyView> parse_dnskey(std::span<const std::uint8_t> rdata);

struct RrsigView {
  std::uint16_t type_covered = 0;
  std::uint8_t algorithm = 0;
  std::uint8_t labels = 0;
  std::uint32_t original_ttl = 0;
  std::uint32_t expiration = 0;
  std::uint32_t inception = 0;
  std::uint16_t key_tag = 0;
  Name signer;
  std::span<const std::uint8_t> signature;
  std::span<const std::uint8_t> signed_fields;  // RDATA up to the signature (RFC 4034 §3.1.8.1)
};
/// RRSIG RDATA; the signer name must be uncompressed (RFC 4034 §3.1.7).
std::optional<RrsigView> parse_rrsig(std::span<const std::uint8_t> rdata);

struct DsView {
  std::uint16_t key_tag = 0;
  std::uint8_t algorithm = 0;
  std::uint8_t digest_type = 0;
  std::span<const std::uint8_t> digest;
};
std::optional<DsView> parse_ds(std::span<const std::uint8_t> rdata);

/// A type bitmap (RFC 4034 §4.1.2): validated windows in increasing order.
class TypeBitmap {
 public:
  static std::optional<TypeBitmap> parse(std::span<const std::uint8_t> data);
  bool has(std::uint16_t type) const;
  std::span<const std::uint8_t> data() const { return data_; }

 private:
  std::span<const std::uint8_t> data_;
};

struct NsecView {
  Name next;
  TypeBitmap types;
};
std::optional<NsecView> parse_nsec(std::span<const std::uint8_t> rdata);

struct Nsec3View {
  std::uint8_t hash_algorithm = 0;
  std::uint8_t flags = 0;
  std::uint16_t iterations = 0;
  std::span<const std::uint8_t> salt;
  std::span<const std::uint8_t> next_hashed;  // raw hash octets
  TypeBitmap types;
  bool opt_out() const { return (flags & 0x01) != 0; }
};
std::optional<Nsec3View> parse_nsec3(std::span<const std::uint8_t> rdata);

// ---------------------------------------------------------------------------
// Primitives

/// The key tag of a DNSKEY RDATA (RFC 4034 Appendix B; algorithm 1 aside).
std::uint16_t key_tag(std::span<const std::uint8_t> dnskey_rdata);

/// The DS digest of `owner`'s DNSKEY (RFC 4034 §5.1.4); nullopt for an
/// unknown digest type.
std::optional<std::vector<std::uint8_t>> ds_digest(const Name& owner,
                                                   std::span<const std::uint8_t> dnskey_rdata,
                                                   std::uint8_t digest_type);

enum class CryptoResult : std::uint8_t { Valid, Invalid, Unsupported };

/// Verifies `signature` over `data` with a DNSKEY public key of `alg`
/// (RFC 3110/5702 RSA, RFC 6605 ECDSA, RFC 8080 EdDSA). Unsupported: the
/// algorithm or the key's form is outside `policy`; Invalid: a bad
/// signature or a malformed key.
CryptoResult verify_signature(std::uint8_t alg, std::span<const std::uint8_t> public_key,
                              std::span<const std::uint8_t> data,
                              std::span<const std::uint8_t> signature,
                              const AlgorithmPolicy& policy);

/// The NSEC3 hash of `name` (RFC 5155 §5): SHA-1, `iterations` extra
/// rounds, salted. Charges iterations+1 hash operations to `budget`
/// (when non-null); nullopt when it does not fit or the algorithm is not 1.
std::optional<std::array<std::uint8_t, 20>> nsec3_hash(const Name& name, std::uint8_t algorithm,
                                                       std::uint16_t iterations,
                                                       std::span<const std::uint8_t> salt,
                                                       Budget* budget);

/// RFC 4648 §7 base32hex without padding, lowercase (NSEC3 owner labels).
std::string base32hex_encode(std::span<const std::uint8_t> data);
std::optional<std::vector<std::uint8_t>> base32hex_decode(std::string_view text);

/// The data an RRSIG signs (RFC 4034 §3.1.8.1 with §6.2's canonical RRs in
/// §6.3's order; RFC 4035 §5.3.2's wildcard owner). `rrset.owner` is the
/// owner as received; nullopt when the RRSIG's labels field exceeds it.
std::optional<std::vector<std::uint8_t>> signed_data(const RRset& rrset, const RrsigView& sig);

/// RFC 1982 serial-number comparison of 32-bit timestamps: a < b.
bool serial_less(std::uint32_t a, std::uint32_t b);

/// The time a signature check is made at: Unix seconds (the RRSIG fields
/// are compared in serial arithmetic modulo 2^32, RFC 4034 §3.1.5).
struct Clock {
  std::uint64_t now = 0;
  /// Allowance each way for clocks that disagree: a tenth of the
  /// signature's validity period, clamped to [min_skew, max_skew].
  std::uint32_t min_skew = 300;
  std::uint32_t max_skew = 86400;
};

/// How one RRset's signatures checked out.
enum class SigStatus : std::uint8_t {
  Valid,         // one RRSIG verified with a key of the set
  NoSignatures,  // no RRSIG by this signer covers the RRset
  Expired,
  NotYetValid,
  NoMatchingKey,  // no zone key with the RRSIG's tag and algorithm
  BadSignature,
  Unsupported,      // only algorithms this validator does not implement
  BadLabels,        // labels field larger than the owner (RFC 4035 §5.3.1)
  BudgetExhausted,  // the budget ran out before a signature verified
};

struct RrsetCheck {
  SigStatus status = SigStatus::NoSignatures;
  /// When Valid: the TTL the RRset may be cached for (min of its TTL, the
  /// RRSIG's original TTL and the time to expiration, RFC 4035 §5.3.3).
  std::uint32_t ttl = 0;
  /// When Valid and the RRSIG labels show a wildcard expansion (RFC 4035
  /// §5.3.2): the wildcard's parent, the "closest encloser"; otherwise none.
  std::optional<Name> wildcard_parent;
  std::uint16_t key_tag = 0;
};

/// Checks `rrset` against the RRSIG RDATAs in `rrsigs` (any type covered:
/// those not covering rrset.type, or not by `signer`, are ignored) with the
/// zone keys of `dnskeys` (owner `signer`). Keys are matched by tag and
/// algorithm; at most `budget` verifications are made. Revoked keys sign
/// only their own DNSKEY RRset (RFC 5011 §2.1), so they are skipped here
/// unless `rrset` is that set.
RrsetCheck check_rrset(const RRset& rrset, std::span<const std::span<const std::uint8_t>> rrsigs,
                       const Name& signer, const RRset& dnskeys, const Clock& clock,
                       const AlgorithmPolicy& policy, Budget& budget);

/// The EDE code that best describes a failed check.
Ede ede_for(SigStatus s);

// ---------------------------------------------------------------------------
// Denial of existence. The NSEC/NSEC3 RRsets handed in must already be
// verified (secure) and belong to `zone`.

enum class DenialResult : std::uint8_t {
  Proven,         // the proof holds
  OptOut,         // NSEC3 opt-out covers the name: insecure (RFC 5155 §8.6)
  NotProven,      // the records given do not prove it: bogus
  IterationsCap,  // NSEC3 iterations above the cap: insecure (RFC 9276 §3.2)
  Unsupported,    // an NSEC3 hash algorithm other than SHA-1: insecure
  BudgetExhausted,
};

/// One NSEC record given to a proof.
struct NsecRecord {
  Name owner;
  NsecView nsec;
};
/// One NSEC3 record given to a proof; `owner_hash` is its first label decoded.
struct Nsec3Record {
  Name owner;
  std::vector<std::uint8_t> owner_hash;
  Nsec3View nsec3;
};

/// Extracts the NSEC (resp. NSEC3) records of `sets` (other types ignored).
/// The records point into the RRsets, which must outlive them. False when
/// an RDATA of those types is malformed.
bool collect_nsec(std::span<const RRset> sets, std::vector<NsecRecord>& out);
bool collect_nsec3(std::span<const RRset> sets, std::vector<Nsec3Record>& out);

/// True when `nsec` (owner → next) covers `name`: owner < name < next in
/// canonical order, the last NSEC of the zone wrapping to the apex.
bool nsec_covers(const Name& owner, const Name& next, const Name& name);

/// NSEC proofs (RFC 4035 §5.4, RFC 6840 §4.1/§4.3).
/// NXDOMAIN: a record covering qname and one covering the wildcard at the
/// closest encloser.
DenialResult nsec_nxdomain(const Name& qname, const Name& zone, std::span<const NsecRecord> nsecs);
/// NODATA: qname's NSEC without qtype and CNAME; or an empty non-terminal
/// (a covering NSEC whose next name is below qname); or a wildcard NODATA
/// (qname covered, the wildcard's NSEC without qtype). For qtype DS the
/// NSEC must be the parent side's (no SOA) unless the name is the apex.
DenialResult nsec_nodata(const Name& qname, std::uint16_t qtype, const Name& zone,
                         std::span<const NsecRecord> nsecs);
/// A wildcard answer for qname (RFC 4035 §5.3.4): an NSEC covering qname
/// so that no closer match exists below `wildcard_parent`.
DenialResult nsec_wildcard_answer(const Name& qname, const Name& wildcard_parent,
                                  std::span<const NsecRecord> nsecs);

struct Nsec3Limits {
  /// RFC 9276 §3.2: above this many additional iterations, the answer is
  /// treated as insecure. 150 is what the Debian 12 peers use.
  std::uint16_t max_iterations = 150;
};

/// NSEC3 proofs (RFC 5155 §8.4-8.7, RFC 7129 for the closest encloser).
DenialResult nsec3_nxdomain(const Name& qname, const Name& zone,
                            std::span<const Nsec3Record> nsec3s, const Nsec3Limits& limits,
                            Budget& budget);
DenialResult nsec3_nodata(const Name& qname, std::uint16_t qtype, const Name& zone,
                          std::span<const Nsec3Record> nsec3s, const Nsec3Limits& limits,
                          Budget& budget);
/// A wildcard answer: an NSEC3 covering the next closer name of qname
/// below `wildcard_parent` (RFC 5155 §8.8); OptOut when that NSEC3 has the
/// opt-out flag (the name could be an unsigned delegation).
DenialResult nsec3_wildcard_answer(const Name& qname, const Name& wildcard_parent, const Name& zone,
                                   std::span<const Nsec3Record> nsec3s, const Nsec3Limits& limits,
                                   Budget& budget);

}  // namespace diode::resolver::dnssec

#pragma once
// The iterator: one client question resolved from the root (RFC 1034 §5.3.3)
// as a sans-I/O state machine. It is fed upstream responses and timeouts
// and answers "send this query to this server" or "done"; the caller moves
// the datagrams. Everything it learns goes into the Cache after bailiwick
// scrubbing, and each client question has a bounded work budget (NXNSAttack,
// loops). Time and randomness are injected, so tests replay scripted
// authoritative answers deterministically.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/platform/config.hpp"
#include "diode/resolver/cache.hpp"
#include "diode/resolver/message.hpp"
#include "diode/resolver/name.hpp"
#include "diode/resolver/root_hints.hpp"
#include "diode/resolver/rrset.hpp"

namespace diode::resolver {

/// Glueless NS names resolved for one client question, in all, as a
/// multiple of max_ns_names_resolved (which applies per zone cut).
inline constexpr unsigned kNsLookupsPerQuestion = 3;
/// Tries of one server for one zone cut when it does not answer: the second
/// with the backed-off (doubled) timeout.
inline constexpr unsigned kMaxTimeoutsPerServer = 2;

struct IteratorSettings {
  unsigned max_upstream_queries = 64;
  unsigned max_referral_depth = 16;
  unsigned max_cname_chain = 12;
  unsigned max_ns_names_resolved = 6;
  unsigned max_nesting = 4;  // NS-name resolutions inside NS-name resolutions
  std::chrono::milliseconds upstream_timeout{1500};
  bool qname_minimisation = true;
  bool query_documentation_addresses = false;
  /// Name server addresses never queried, besides those always refused
  /// (loopback, unspecified, link-local, multicast, broadcast): the
  /// gateway's internal networks and its own addresses, so that no
  /// authority can point the resolver into the LAN (refused_server_networks).
  /// Shared: the settings are copied for each resolution.
  std::shared_ptr<const std::vector<platform::Prefix>> refused_networks;
  bool use_0x20 = true;
  bool use_ipv6 = true;
  /// Do not answer the client question itself from the cache (prefetch:
  /// the point is to fetch it again); everything else still comes from it.
  bool refresh = false;
  /// DNSSEC: set DO upstream and hand back, in Outcome::sec_answer and
  /// sec_authority, the records the validator needs (RRSIG, NSEC, NSEC3
  /// included). Answer RRsets are cached with their RRSIGs; the question
  /// itself (and each link of its CNAME chain) is answered from the RRset
  /// cache only with RRsets whose security the validator has set (secure or
  /// insecure; Cache::set_security). An answer built wholly from such
  /// RRsets comes back with Outcome::security set (Secure when every link
  /// is), so it needs no validation; one that mixes cached links and
  /// upstream data carries the cached links and their RRSIGs in sec_answer
  /// and is validated whole.
  bool dnssec = false;
  /// With dnssec: the client set CD; any cached answer RRset may answer,
  /// whatever its security (unchecked, bogus), and the outcome is Unchecked.
  bool checking_disabled = false;
};

/// What the resolver knows about each authoritative server address: the
/// smoothed RTT, consecutive timeouts, and the zones it was lame for. Shared
/// by all resolutions of one thread.
class Infra {
 public:
  /// Smoothed RTT; unknown servers get kUnknownRtt so that known fast ones win.
  std::chrono::milliseconds srtt(const platform::IpAddress& a) const;
  /// The timeout for the next query to `a`: 3 x SRTT, at least 250 ms, at
  /// most `cap`; doubled for each consecutive timeout (back-off), up to cap.
  std::chrono::milliseconds timeout_for(const platform::IpAddress& a,
                                        std::chrono::milliseconds cap) const;
  void on_response(const platform::IpAddress& a, std::chrono::milliseconds rtt);
  void on_timeout(const platform::IpAddress& a, std::chrono::milliseconds timeout);
  /// Records that `a` does not serve `zone` (REFUSED, upward referral...).
  void mark_lame(const platform::IpAddress& a, const Name& zone, Time now);
  bool is_lame(const platform::IpAddress& a, const Name& zone, Time now) const;
  std::size_t size() const { return servers_.size(); }

  static constexpr std::chrono::milliseconds kUnknownRtt{376};
  static constexpr std::chrono::seconds kLameTime{900};
  static constexpr std::size_t kMaxServers = 10000;

 private:
  struct Entry {
    std::chrono::milliseconds srtt{kUnknownRtt};
    unsigned timeouts = 0;
    std::map<std::string, Time> lame_until;  // by lowered zone text
  };
  std::map<platform::IpAddress, Entry> servers_;
};

/// The query to send next (RD clear, EDNS with the configured buffer).
struct Outgoing {
  platform::IpAddress server;
  Name qname;  // as sent: 0x20 case applied
  std::uint16_t qtype = 0;
  std::uint16_t qclass = rrclass::kIN;
  bool tcp = false;
  bool dnssec_ok = false;  // DO in the query's EDNS (RFC 3225)
  std::chrono::milliseconds timeout{1500};
};

/// The final result for the client question.
struct Outcome {
  std::uint16_t rcode = rcode::kServFail;
  std::vector<RRset> answer;     // the CNAME/DNAME chain, then the answer RRset
  std::vector<RRset> authority;  // the SOA of a negative answer
  std::string reason;            // why SERVFAIL, for the log
  // With IteratorSettings::dnssec: the answer and authority RRsets of the
  // responses the outcome was built from, as received (RRSIG sets grouped
  // per owner), for the validator; never sent to clients as such.
  std::vector<RRset> sec_answer{};
  std::vector<RRset> sec_authority{};
  // The validator's verdict (filled by whoever validated the outcome).
  enum class Security : std::uint8_t { Unchecked, Secure, Insecure, Bogus };
  Security security = Security::Unchecked;
  std::uint16_t ede = 0xffff;  // RFC 8914 INFO-CODE for Bogus (and indeterminate)
  std::string ede_text{};
};

/// Work done for one client question; every counter is bounded by IteratorSettings.
struct Work {
  unsigned upstream_queries = 0;
  unsigned timeouts = 0;
  unsigned referrals = 0;
  unsigned cnames = 0;
  unsigned ns_names_resolved = 0;
  unsigned scrubbed = 0;  // records dropped as out of bailiwick
  unsigned primes = 0;
};

/// True when `m` can be the response to `q`: QR set, opcode 0, and the
/// question echoed exactly, case included (0x20; RFC 5452 §4.1).
bool response_matches(const Message& m, const Outgoing& q);

/// True for the documentation networks (RFC 5737, RFC 3849).
bool is_documentation_address(const platform::IpAddress& a);

/// Whether the iterator may send a query to `a`: never to loopback,
/// unspecified, link-local (169.254/16, fe80::/10), multicast or broadcast
/// addresses, nor into `s.refused_networks` (IPv4-mapped addresses count as
/// IPv4); to the documentation networks only with query_documentation_addresses.
bool may_query_server(const platform::IpAddress& a, const IteratorSettings& s);

/// The networks of `cfg` that name servers must not be in: the internal
/// interfaces' networks and every address of the gateway itself.
std::vector<platform::Prefix> refused_server_networks(const platform::GatewayConfig& cfg);

class Resolution {
 public:
  enum class Step : std::uint8_t { Send, Done };
  using Random = std::function<std::uint32_t()>;

  /// `cache`, `infra` and `hints` must outlive the Resolution.
  Resolution(const Question& q, Cache& cache, Infra& infra, const RootHints& hints,
             const IteratorSettings& settings, Random random);

  /// Starts: Done when the cache answers, otherwise Send (see outgoing()).
  Step start(Time now);
  /// The response to outgoing(), already matched by ID and source address
  /// by the transport; `rtt` is how long it took.
  Step on_response(std::span<const std::uint8_t> wire, std::chrono::milliseconds rtt, Time now);
  /// outgoing() got no usable answer in time (or its connection failed).
  Step on_timeout(Time now);

  const Outgoing& outgoing() const { return out_; }
  const Outcome& outcome() const { return outcome_; }
  const Work& work() const { return work_; }

 private:
  struct ServerAddr {
    platform::IpAddress addr;
    bool failed = false;    // answered with garbage, an error or a lame reply
    unsigned timeouts = 0;  // a server may time out kMaxTimeoutsPerServer times
  };
  struct Frame {
    Name qname;
    std::uint16_t qtype = 0;
    bool is_ns_lookup = false;  // resolving a name server's address for the frame below
    bool is_prime = false;
    bool has_cut = false;
    bool skip_cache = false;  // refresh: ask upstream even if the answer is cached
    Name zone;
    std::vector<Name> ns_names;
    // Per NS name: 0 = no lookup yet, 1 = its A looked up, 2 = nothing more
    // to look up (addresses known, or AAAA looked up too).
    std::vector<std::uint8_t> ns_state;
    std::vector<ServerAddr> addrs;
    unsigned referrals = 0;
    unsigned ns_lookups = 0;    // glueless NS names resolved for the current cut
    bool parent_glue_tried = false;  // the last resort for the current cut
    std::vector<RRset> chain;   // CNAME/DNAME records followed so far
    std::size_t qmin_labels = 0;  // labels of qname sent under minimisation; 0 = whole name
    // DNSSEC (top frame): no upstream response has been taken for it, and
    // the worst security of the cached links used so far.
    bool all_cached = true;
    RRsetSecurity cached_security = RRsetSecurity::Secure;
    bool done = false;
    Outcome result;
  };

  Step advance(Time now);
  bool answer_from_cache(Frame& f, Time now);
  void find_cut(Frame& f, Time now);
  void add_addresses(Frame& f, const Name& ns, Time now);
  bool add_address(Frame& f, std::uint16_t type, std::span<const std::uint8_t> rdata);
  bool add_parent_glue(Frame& f, Time now);
  bool pick_server(Frame& f, Time now);
  void finish(Frame& f, std::uint16_t rc, std::string reason = {});
  void fail_all(std::string reason);
  bool follow_cname(Frame& f, const RRset& cname, const Name& target);
  bool follow_dname(Frame& f, const RRset& dname);
  bool push_ns_lookup(Frame& f);
  void take_referral(Frame& f, const RRset& ns, const std::vector<RRset>& additional, Trust trust,
                     Time now);
  void mark_failed(Frame& f, bool timeout);
  void handle_response(Frame& f, const Message& m, Time now);
  Name randomise_case(const Name& n);
  Name sent_name(const Frame& f) const;

  Question question_;
  Cache& cache_;
  Infra& infra_;
  const RootHints& hints_;
  IteratorSettings settings_;
  Random random_;
  std::vector<Frame> frames_;
  Outgoing out_;
  Outcome outcome_;
  Work work_;
};

}  // namespace diode::resolver

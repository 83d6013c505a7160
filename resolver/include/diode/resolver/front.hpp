#pragma once
// The resolver's front end, sans-I/O: what happens to a client's query
// before and after any resolution. A query's bytes, the client's address
// and the transport go in; a decision comes out: answer now (the reply's
// bytes), drop, wait for a resolution of the same question already under
// way, or start one. When a resolution finishes, its outcome goes in and
// the answers for every client waiting on it come out. The ACL, the local
// zones (RFC 6761), the message cache, the joining of identical questions,
// negative and failure caching (RFC 2308, RFC 9520) and serve-stale
// (RFC 8767) live here; the daemon (server.cpp) only moves bytes, runs the
// iterator against the network and keeps the clock. Tested without sockets
// (tests/unit/resolver/front_test.cpp), like the iterator.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "diode/platform/address.hpp"
#include "diode/resolver/cache.hpp"
#include "diode/resolver/iterator.hpp"
#include "diode/resolver/message.hpp"

namespace diode::resolver {

/// Counters of one daemon (all threads). Read with load(); reported on
/// request (control socket `stats`, SIGUSR1) and at exit.
struct Stats {
  std::atomic<std::uint64_t> queries{0};           // client queries received (well-formed or not)
  std::atomic<std::uint64_t> tcp_queries{0};       // of which over TCP
  std::atomic<std::uint64_t> cache_hits{0};        // answered from the message cache
  std::atomic<std::uint64_t> cache_misses{0};      // needed the iterator
  std::atomic<std::uint64_t> upstream_queries{0};  // sent to authoritative servers
  std::atomic<std::uint64_t> upstream_timeouts{0};
  std::atomic<std::uint64_t> upstream_ignored{0};  // datagrams with a wrong ID or question
  std::atomic<std::uint64_t> tcp_refused{
      0};  // TCP connections closed at accept (ACL, per-client cap)
  std::atomic<std::uint64_t> servfail{0};
  std::atomic<std::uint64_t> nxdomain{0};
  std::atomic<std::uint64_t> refused{0};  // ACL refusals
  std::atomic<std::uint64_t> formerr{0};
  std::atomic<std::uint64_t> dropped{0};    // unanswerable input (no header, responses)
  std::atomic<std::uint64_t> truncated{0};  // answers sent with TC
  std::atomic<std::uint64_t> stale_answers{0};
  std::atomic<std::uint64_t> prefetches{0};
  std::atomic<std::uint64_t> local_answers{0};  // RFC 6761 local zones
  std::atomic<std::uint64_t> joined{0};         // waited for an identical question's resolution
  // DNSSEC: validated questions answered from RRsets of known security
  // (no upstream query, no signature check), and NXDOMAIN/NODATA
  // synthesised from validated NSEC/NSEC3 records (RFC 8198).
  std::atomic<std::uint64_t> validated_rrset_answers{0};
  std::atomic<std::uint64_t> aggressive_answers{0};

  /// `key=value` pairs separated by spaces, in a fixed order.
  std::string to_text() const;
};

enum class Transport : std::uint8_t { Udp, Tcp };

/// What the front end may change on a reload.
struct FrontSettings {
  std::vector<platform::Prefix> allow;  // clients served; others get REFUSED
  std::uint16_t edns_size = 1232;       // advertised, and the UDP answer limit
  bool builtin_local_zones = true;
  bool prefetch = true;
  std::size_t max_inflight = 10000;  // resolutions under way (prefetches included)
  std::size_t max_joiners = 256;     // clients waiting on one resolution
  /// Bytes that waiting clients and resolutions under way may hold in the
  /// front end (its own records of them, names included): a miss that would
  /// go past it is dropped, like one past max_inflight.
  std::size_t max_held_bytes = std::size_t{16} << 20;
  std::uint32_t failure_ttl = 5;     // seconds a SERVFAIL is remembered (RFC 9520)
  /// DNSSEC validation is on: answers carry their security (AD for secure
  /// ones when the client set DO or AD), clients with DO get the RRSIG,
  /// NSEC and NSEC3 records (a second cached form), bogus answers are
  /// SERVFAIL with an Extended DNS Error and remembered `bogus_ttl`
  /// seconds, and CD queries are resolved without validation.
  bool dnssec = false;
  std::uint32_t bogus_ttl = 60;
  std::size_t max_bogus = 10000;  // bogus questions remembered at once
};

/// The caller's name for a client that waits (its socket and address, a
/// TCP connection...): the front end keeps it and gives it back.
using ClientHandle = std::uint64_t;

class Front {
 public:
  /// `cache` and `stats` are the caller's and outlive the front end.
  Front(Cache& cache, Stats& stats, FrontSettings settings);

  /// A reload: applies to queries from now on.
  /// Forgets the bogus answers it remembers (a new negative trust anchor
  /// takes effect at once).
  void set_settings(FrontSettings s) {
    settings_ = std::move(s);
    bogus_.clear();
  }
  const FrontSettings& settings() const { return settings_; }

  enum class Action : std::uint8_t {
    Answer,   // send `out` now
    Drop,     // send nothing (no header, a response, too much work under way)
    Wait,     // the client waits on a resolution already under way
    Resolve,  // start a resolution of `question`; report it with on_resolved(ticket, ...)
  };
  struct Decision {
    Action action = Action::Drop;
    Question question;         // Resolve: what to resolve
    std::uint64_t ticket = 0;  // Resolve: the resolution's name
    /// Resolve: the client set CD; resolve without validating (the outcome
    /// is returned unchecked and not cached).
    bool checking_disabled = false;
    /// Answer from the cache with less than 10 % of the TTL left: also
    /// resolve `question` in the background (Resolution with refresh) and
    /// report it with on_refreshed. Only when prefetch is on and there is room.
    bool prefetch = false;
  };

  /// One client message as received. Answer: the reply is in `out`
  /// (resized). Wait and Resolve: `client` is kept and comes back from
  /// on_resolved with its answer. Counts queries, refusals, hits... in stats.
  Decision on_query(std::span<const std::uint8_t> wire, const platform::IpAddress& from,
                    Transport transport, ClientHandle client, Time now,
                    std::vector<std::uint8_t>& out);

  /// One answer for one waiting client.
  struct Reply {
    ClientHandle client = 0;
    std::vector<std::uint8_t> wire;
  };
  /// The resolution `ticket` finished with `outcome` (a SERVFAIL outcome
  /// when it failed). Caches the answer (a failure for failure_ttl; an
  /// expired answer is served instead when serve_stale allows) and appends
  /// one reply per waiting client to `replies`, the client that started it
  /// first. An unknown ticket adds nothing.
  void on_resolved(std::uint64_t ticket, const Outcome& outcome, Time now,
                   std::vector<Reply>& replies);

  /// A prefetch (Decision::prefetch) finished: a good answer replaces the
  /// cached one; a failure changes nothing.
  void on_refreshed(const Question& q, const Outcome& outcome, Time now);

  /// The ACL: true when `a` may query (resolver.allow; IPv4-mapped IPv6
  /// addresses count as their IPv4 address). The daemon asks it at TCP accept too.
  bool allowed(const platform::IpAddress& a) const;

  /// Resolutions under way (started by Resolve or prefetch, not yet reported).
  std::size_t inflight() const { return inflight_; }
  /// Clients waiting in all.
  std::size_t waiting() const { return waiting_; }
  /// Bytes held for waiting clients and resolutions under way (the figure
  /// max_held_bytes bounds).
  std::size_t held_bytes() const { return held_bytes_; }

 private:
  // A waiting client: what its reply needs, not its whole query (joined
  // clients share the question; each keeps a header, a name and a size).
  struct Waiter {
    ClientHandle client = 0;
    Header header;
    Name qname;  // as the client wrote it (0x20)
    bool edns = false;
    std::size_t limit = 512;
    bool dnssec_ok = false;
  };
  struct Flight {
    Question question;
    bool cd = false;
    std::string key;  // in joinable_, or "" when full when it started
    std::vector<Waiter> waiters;
    std::size_t bytes = 0;  // what the flight itself holds (flight_bytes)
  };

  static std::string joining_key(const Question& q, bool cd);
  // The message-cache key of the form for clients with DO (RRSIG, NSEC,
  // NSEC3 included): the question under an internal class no client can ask.
  static Question do_form(const Question& q);
  struct Bogus {
    Time expires{};
    std::uint16_t ede = 0xffff;
    std::string text;
  };
  // What one waiting client, and one resolution with its keys, cost in bytes.
  static std::size_t waiter_bytes(const Name& qname);
  static std::size_t flight_bytes(const Question& q, const std::string& key);
  // Builds the cached-form answer of `outcome` to `q` (no OPT) and caches
  // it; false (nothing cached) for a SERVFAIL.
  bool store(const Question& q, const Outcome& outcome, Time now, std::vector<std::uint8_t>& base);

  Cache& cache_;
  Stats& stats_;
  FrontSettings settings_;
  Message msg_;  // reused: steady-state parsing allocates nothing
  std::unordered_map<std::uint64_t, Flight> flights_;
  std::unordered_map<std::string, std::uint64_t> joinable_;
  std::unordered_map<std::string, Bogus> bogus_;  // by joining_key(q, false)
  std::uint64_t next_ticket_ = 1;
  std::size_t inflight_ = 0;
  std::size_t waiting_ = 0;
  std::size_t held_bytes_ = 0;
};

/// RFC 8482 §4.2: the minimal answer to ANY, one synthesised HINFO.
Outcome any_answer(const Question& q);

}  // namespace diode::resolver

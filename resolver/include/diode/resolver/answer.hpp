#pragma once
// Turning resolution results into messages, sans-I/O: the upstream query,
// the client's answer (RFC 1035 §4.1 with EDNS0, RFC 6891 §7, and TC when it
// does not fit, RFC 2181 §9), error replies for bad queries, and the local
// zones of RFC 6761 that a gateway answers itself.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "diode/resolver/iterator.hpp"
#include "diode/resolver/message.hpp"

namespace diode::resolver {

/// Writes the upstream query for `q` (RD clear, EDNS0 with `edns_size`)
/// into `out` (resized).
void build_upstream_query(const Outgoing& q, std::uint16_t id, std::uint16_t edns_size,
                          std::vector<std::uint8_t>& out);

/// A finished answer, with where its TTLs are for caching and aging.
struct BuiltAnswer {
  std::vector<std::uint8_t> wire;
  std::vector<std::uint16_t> ttl_offsets;
  std::uint32_t min_ttl = 0;  // smallest TTL in it (what the message may be cached for)
  bool truncated = false;
};

/// Builds the answer to `query` (whose question is echoed as the client
/// wrote it) from `outcome`. `limit` is the client's UDP size (or 65535 over
/// TCP); EDNS is echoed when the query had it, with `edns_size` advertised
/// (edns_size 0: no OPT at all, the form kept in the message cache).
void build_answer(const Message& query, const Outcome& outcome, std::size_t limit,
                  std::uint16_t edns_size, BuiltAnswer& out);

/// A reply carrying only `rc` (FORMERR, REFUSED, NOTIMP, SERVFAIL...) to a
/// query whose header could be read; the question is echoed when it parsed.
/// Returns false when no reply should be sent (no header, or a response).
bool build_error(std::span<const std::uint8_t> query_wire, const Message* parsed,
                 std::uint16_t rc, std::uint16_t edns_size, std::vector<std::uint8_t>& out);

/// The local answer for names a resolver must not send upstream (RFC 6761
/// §6: test., localhost., invalid.; RFC 6303-style documentation reverse
/// zones), or nullopt when `q` is not in one of them.
std::optional<Outcome> local_zone_answer(const Question& q);

/// What a client query deserves before any resolution: 0 (go on), FORMERR
/// (malformed, or no question), NOTIMP (opcode other than QUERY), BADVERS
/// (EDNS version above 0, RFC 6891 §6.1.3) or REFUSED (class other than IN;
/// AXFR, IXFR, OPT or type 0 asked). `status` is what parse() returned.
std::uint16_t check_query(const Message& m, const ParseStatus& status);

/// The largest answer this client may get: 65535 over TCP; over UDP the
/// client's EDNS size clamped to [512, edns_size], or 512 without EDNS
/// (RFC 6891 §6.2.5, RFC 1035 §4.2.1).
std::size_t reply_limit(const Message& query, bool over_tcp, std::uint16_t edns_size);

/// Turns a cached-form answer (no OPT) into the reply to this client: the
/// query's ID, RD and CD; when it does not fit `limit`, TC set and only the
/// question kept (RFC 2181 §9); an OPT record advertising `edns_size` when
/// the client sent EDNS. Returns true when it truncated.
/// DNSSEC (RFC 4035 §3.2.3, RFC 6840 §5.8): AD, when the cached form has
/// it, is kept only when the client set DO or AD; with `dnssec_ok` the OPT
/// record has DO set. `ede_code` other than 0xffff adds an Extended DNS
/// Error option (RFC 8914) with `ede_text` to the OPT record.
bool finalize_reply(std::vector<std::uint8_t>& msg, const Header& query, bool edns,
                    std::size_t limit, std::uint16_t edns_size, bool dnssec_ok = false,
                    std::uint16_t ede_code = 0xffff, std::string_view ede_text = {});

/// The message-cache TTL of an outcome: the smallest TTL in it; negative
/// answers use their SOA's TTL. 0 when there is nothing to cache.
std::uint32_t outcome_ttl(const Outcome& o);

}  // namespace diode::resolver

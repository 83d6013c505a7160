// Fuzz target for the client side of diode-resolver, sans-I/O: any bytes as
// a client query go through what the daemon does before and after
// resolving (parse, check_query, build_error, local zones, build_answer,
// reply_limit, finalize_reply). Invariants: no reply to a response or to
// fewer than 12 octets; every reply parses, answers the query's ID, and
// fits the client's limit.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "diode/resolver/answer.hpp"

using namespace diode::resolver;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> wire(data, size);
  Message m;
  const ParseStatus ps = m.parse(wire);
  std::vector<std::uint8_t> out;
  const auto h = read_header(wire);
  const std::uint16_t verdict = check_query(m, ps);
  if (verdict != 0) {
    const bool replied = build_error(wire, ps.ok() ? &m : nullptr, verdict, 1232, out);
    check(replied == (h.has_value() && !h->qr));
    if (replied) {
      Message back;
      check(back.parse(out).ok());
      check(back.header().id == h->id);
      check(back.rcode() == verdict);
    }
    return 0;
  }
  check(ps.ok() && m.question().has_value());
  Outcome o;  // SERVFAIL unless a local zone answers
  if (auto local = local_zone_answer(*m.question())) o = *local;
  for (const bool tcp : {false, true}) {
    BuiltAnswer a;
    build_answer(m, o, kMaxMessageSize, 0, a);
    const std::size_t limit = reply_limit(m, tcp, 1232);
    (void)finalize_reply(a.wire, m.header(), m.edns().has_value(), limit, 1232);
    check(a.wire.size() <= limit);
    Message back;
    check(back.parse(a.wire).ok());
    check(back.header().id == m.header().id);
    check(back.header().qr);
    check(back.edns().has_value() == m.edns().has_value());
  }
  return 0;
}

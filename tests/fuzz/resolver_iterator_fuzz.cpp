// Fuzz target for the iterator (diode::resolver_core): one client question
// is resolved against an "internet" whose every reply comes from the input.
// The input is a sequence of steps:
//   kind(1) flags(2) ancount(2) nscount(2) arcount(2) length(2) body(length)
// kind % 4: 0 = timeout, else a reply whose header is ID, flags and counts
// from the input, whose question echoes the query exactly (so the reply
// gets past the 0x20 check into the interesting code), and whose sections
// are `body`. Invariants checked: the resolution always ends, within the
// work budget, with a valid RCODE; its outcome builds into a message that
// parses; the cache stays within its byte limit.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "diode/resolver/answer.hpp"
#include "diode/resolver/builder.hpp"
#include "diode/resolver/cache.hpp"
#include "diode/resolver/iterator.hpp"

using namespace diode::resolver;

namespace {

RootHints hints() {
  RootHints h;
  RootServer s;
  s.name = *Name::from_text("a.root-servers.test.");
  s.addresses.push_back(*diode::platform::IpAddress::parse("198.51.100.53"));
  s.addresses.push_back(*diode::platform::IpAddress::parse("2001:db8:2::53"));
  h.servers.push_back(s);
  h.ns_ttl = 3600000;
  return h;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const RootHints kHints = hints();
  CacheSettings cs;
  cs.max_bytes = 64 * 1024;
  cs.serve_stale = true;
  Cache cache(cs);
  Infra infra;
  IteratorSettings is;
  is.query_documentation_addresses = true;
  is.max_upstream_queries = 24;
  std::uint32_t seed = 1;
  auto random = [&seed] {
    seed = seed * 1664525U + 1013904223U;
    return seed;
  };
  // Two questions on the same cache: the second one meets what the first left.
  const char* names[] = {"www.a.test.", "alias.b.example."};
  std::size_t pos = 0;
  Time now{1000};
  for (const char* qn : names) {
    Question q{*Name::from_text(qn), rrtype::kA, rrclass::kIN};
    Resolution r(q, cache, infra, kHints, is, random);
    auto step = r.start(now);
    std::vector<std::uint8_t> reply;
    std::vector<std::uint8_t> query;
    unsigned steps = 0;
    while (step == Resolution::Step::Send) {
      check(++steps <= is.max_upstream_queries + 1);
      const Outgoing& o = r.outgoing();
      now += std::chrono::milliseconds{7};
      if (pos + 11 > size) {
        step = r.on_timeout(now);
        continue;
      }
      const std::uint8_t* p = data + pos;
      const std::size_t len = std::min<std::size_t>((std::size_t{p[9]} << 8) | p[10], size - pos - 11);
      pos += 11 + len;
      if (p[0] % 4 == 0) {
        step = r.on_timeout(now);
        continue;
      }
      build_upstream_query(o, 0x1234, 1232, query);
      std::size_t qend = kHeaderSize + o.qname.wire_length() + 4;
      reply.assign(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(qend));
      reply[2] = p[1];
      reply[3] = p[2];
      for (std::size_t i = 0; i < 6; ++i) reply[6 + i] = p[3 + i];
      reply[4] = 0;
      reply[5] = 1;
      reply.insert(reply.end(), p + 11, p + 11 + len);
      step = r.on_response(reply, std::chrono::milliseconds{7}, now);
    }
    check(step == Resolution::Step::Done);
    check(r.work().upstream_queries <= is.max_upstream_queries);
    const Outcome& out = r.outcome();
    check(out.rcode <= 15);
    // The outcome turns into a message that parses, at any size limit.
    std::vector<std::uint8_t> cq;
    Outgoing client;
    client.qname = q.qname;
    client.qtype = q.qtype;
    build_upstream_query(client, 7, 1232, cq);
    Message m;
    check(m.parse(cq).ok());
    BuiltAnswer a;
    for (const std::size_t limit : {std::size_t{512}, std::size_t{1232}, kMaxMessageSize}) {
      build_answer(m, out, limit, 1232, a);
      check(a.wire.size() <= limit);
      Message back;
      check(back.parse(a.wire).ok());
    }
    check(cache.bytes() <= cs.max_bytes);
    now += std::chrono::seconds{1};
  }
  return 0;
}

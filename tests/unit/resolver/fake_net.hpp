#pragma once
// A scripted "internet" for iterator tests: authoritative servers at
// documentation addresses, each serving zones given as RRsets, answering
// like a plain authoritative server (referral, answer, CNAME in zone,
// NODATA, NXDOMAIN, REFUSED for zones it does not serve). Per-server hooks
// replace the answer (forgeries, truncation, silence). A driver runs a
// Resolution against it with a fake clock and counts the queries.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "diode/resolver/answer.hpp"
#include "diode/resolver/builder.hpp"
#include "diode/resolver/iterator.hpp"
#include "test_util.hpp"

namespace diode::resolver::test {

using platform::IpAddress;

inline IpAddress ip(std::string_view text) {
  auto a = IpAddress::parse(text);
  if (!a) throw std::invalid_argument("bad test address");
  return *a;
}

inline RRset rrset(std::string_view owner, std::uint16_t type, std::uint32_t ttl,
                   std::vector<std::vector<std::uint8_t>> rdatas) {
  RRset s;
  s.owner = name(owner);
  s.type = type;
  s.ttl = ttl;
  for (const auto& r : rdatas) {
    if (!s.add_rdata(r)) throw std::invalid_argument("bad test rdata");
  }
  return s;
}
inline std::vector<std::uint8_t> a_rdata(std::string_view text) {
  const IpAddress a = ip(text);
  return {a.bytes.begin(), a.bytes.begin() + static_cast<std::ptrdiff_t>(a.size())};
}
inline std::vector<std::uint8_t> name_rdata(std::string_view text) { return bytes(name(text).wire()); }
inline RRset a_set(std::string_view owner, std::string_view addr, std::uint32_t ttl = 3600) {
  return rrset(owner, rrtype::kA, ttl, {a_rdata(addr)});
}
inline RRset ns_set(std::string_view owner, std::vector<std::string_view> names,
                    std::uint32_t ttl = 86400) {
  std::vector<std::vector<std::uint8_t>> r;
  for (auto n : names) r.push_back(name_rdata(n));
  return rrset(owner, rrtype::kNS, ttl, r);
}
inline RRset cname_set(std::string_view owner, std::string_view target, std::uint32_t ttl = 3600) {
  return rrset(owner, rrtype::kCNAME, ttl, {name_rdata(target)});
}
inline RRset dname_set(std::string_view owner, std::string_view target, std::uint32_t ttl = 3600) {
  return rrset(owner, rrtype::kDNAME, ttl, {name_rdata(target)});
}
inline RRset soa_set(std::string_view zone, std::uint32_t ttl = 3600, std::uint32_t minimum = 300) {
  const std::string z = zone == "." ? std::string() : std::string(zone);
  std::vector<std::uint8_t> r = name_rdata("ns." + z);
  const auto rname = name_rdata("hostmaster." + z);
  r.insert(r.end(), rname.begin(), rname.end());
  for (std::uint32_t v : {1U, 1800U, 900U, 604800U, minimum}) {
    for (int shift = 24; shift >= 0; shift -= 8) r.push_back(static_cast<std::uint8_t>(v >> shift));
  }
  return rrset(zone, rrtype::kSOA, ttl, {r});
}

struct Reply {
  std::uint16_t rcode = 0;
  bool aa = false;
  bool tc = false;
  std::vector<RRset> answer, authority, additional;
};

struct Zone {
  Name apex;
  std::vector<RRset> data;  // SOA and NS at the apex included
};

class FakeNet {
 public:
  // A hook returns a reply to use instead of the zone's, or nullopt for the
  // normal answer. `silent` servers never answer.
  using Hook = std::function<std::optional<Reply>(const Question&, bool tcp)>;

  void serve(std::string_view addr, Zone z) { servers_[ip(addr)].zones.push_back(std::move(z)); }
  void silent(std::string_view addr) { servers_[ip(addr)].silent = true; }
  void hook(std::string_view addr, Hook h) { servers_[ip(addr)].hook = std::move(h); }

  struct Sent {
    IpAddress server;
    std::string qname;  // as sent, case preserved
    std::uint16_t qtype;
    bool tcp;
  };
  std::vector<Sent> log;

  // The wire response of `server` to `query`, or nullopt for silence.
  std::optional<std::vector<std::uint8_t>> ask(const IpAddress& server,
                                               std::span<const std::uint8_t> query, bool tcp) {
    Message q;
    if (!q.parse(query).ok() || !q.question()) throw std::logic_error("iterator sent a bad query");
    const Question& question = *q.question();
    log.push_back({server, question.qname.to_text(), question.qtype, tcp});
    auto it = servers_.find(server);
    if (it == servers_.end() || it->second.silent) return std::nullopt;
    std::optional<Reply> r;
    if (it->second.hook) r = it->second.hook(question, tcp);
    if (!r) r = authoritative(it->second, question);
    std::vector<std::uint8_t> buf(65535);
    MessageBuilder b(buf, tcp ? 65535 : 1232);
    Header h;
    h.id = q.header().id;
    h.qr = true;
    h.aa = r->aa;
    h.tc = r->tc;
    h.rcode = static_cast<std::uint8_t>(r->rcode);
    b.set_header(h);
    (void)b.add_question(question.qname, question.qtype, question.qclass);
    for (const auto& s : r->answer) (void)b.add_rrset(Section::Answer, s);
    for (const auto& s : r->authority) (void)b.add_rrset(Section::Authority, s);
    for (const auto& s : r->additional) (void)b.add_rrset(Section::Additional, s);
    auto done = b.finish();
    return std::vector<std::uint8_t>(done.begin(), done.end());
  }

  std::size_t queries_to(std::string_view addr) const {
    std::size_t n = 0;
    for (const auto& s : log) n += s.server == ip(addr) ? 1U : 0U;
    return n;
  }

 private:
  struct Server {
    std::vector<Zone> zones;
    bool silent = false;
    Hook hook;
  };

  static const RRset* find(const Zone& z, const Name& owner, std::uint16_t type) {
    for (const auto& r : z.data) {
      if (r.owner == owner && r.type == type) return &r;
    }
    return nullptr;
  }

  static const RRset* dname_above(const Zone& z, const Name& name) {
    for (std::size_t n = z.apex.label_count(); n < name.label_count(); ++n) {
      if (const RRset* d = find(z, name.suffix(n), rrtype::kDNAME)) return d;
    }
    return nullptr;
  }

  static Reply authoritative(const Server& s, const Question& q) {
    const Zone* zone = nullptr;
    for (const auto& z : s.zones) {
      if (q.qname.is_subdomain_of(z.apex) &&
          (zone == nullptr || z.apex.label_count() > zone->apex.label_count())) {
        zone = &z;
      }
    }
    Reply r;
    if (zone == nullptr) {
      r.rcode = rcode::kRefused;
      return r;
    }
    // A delegation between the apex and the name (RFC 1034 §4.3.2 step 3b).
    for (std::size_t n = zone->apex.label_count() + 1; n <= q.qname.label_count(); ++n) {
      const Name cut = q.qname.suffix(n);
      if (const RRset* ns = find(*zone, cut, rrtype::kNS)) {
        if (cut == q.qname && q.qtype == rrtype::kDS) break;
        r.authority.push_back(*ns);
        for (const auto rd : *ns) {
          const Name nsname = *Name::from_wire(rd);
          for (std::uint16_t t : {rrtype::kA, rrtype::kAAAA}) {
            if (const RRset* g = find(*zone, nsname, t)) r.additional.push_back(*g);
          }
        }
        return r;
      }
    }
    r.aa = true;
    Name qname = q.qname;
    for (int guard = 0; guard < 16; ++guard) {
      // A DNAME above the name (RFC 6672 §3.2): the DNAME, then the CNAME it
      // synthesises; YXDOMAIN when the new name would be too long.
      if (const RRset* dname = dname_above(*zone, qname)) {
        r.answer.push_back(*dname);
        Name target = *Name::from_wire(*dname->begin());
        std::vector<std::span<const std::uint8_t>> labels;
        for (const auto l : qname.labels()) labels.push_back(l);
        bool fits = true;
        for (std::size_t i = qname.label_count() - dname->owner.label_count(); i-- > 0;) {
          fits = fits && target.prepend_label(labels[i]);
        }
        if (!fits) {
          r.rcode = rcode::kYxDomain;
          return r;
        }
        RRset synth;
        synth.owner = qname;
        synth.type = rrtype::kCNAME;
        synth.ttl = dname->ttl;
        (void)synth.add_rdata(target.wire());
        r.answer.push_back(synth);
        qname = target;
        if (!qname.is_subdomain_of(zone->apex)) return r;
        continue;
      }
      if (const RRset* hit = find(*zone, qname, q.qtype)) {
        r.answer.push_back(*hit);
        return r;
      }
      const RRset* cname = find(*zone, qname, rrtype::kCNAME);
      if (cname == nullptr || q.qtype == rrtype::kCNAME) break;
      r.answer.push_back(*cname);
      qname = *Name::from_wire(*cname->begin());
      if (!qname.is_subdomain_of(zone->apex)) return r;
    }
    bool exists = false;
    for (const auto& d : zone->data) exists = exists || d.owner.is_subdomain_of(qname);
    r.rcode = exists ? rcode::kNoError : rcode::kNxDomain;
    r.authority.push_back(*find(*zone, zone->apex, rrtype::kSOA));
    return r;
  }

  std::map<IpAddress, Server> servers_;
};

// The test bed's fake hierarchy (docs/testbed.md) in miniature.
inline FakeNet standard_net() {
  FakeNet net;
  net.serve("198.51.100.53",
            Zone{name("."),
                 {soa_set("."), ns_set(".", {"a.root-servers.test."}),
                  ns_set("test.", {"ns1.nic.test."}), a_set("ns1.nic.test.", "203.0.113.10"),
                  ns_set("example.", {"ns1.nic.example."}),
                  a_set("ns1.nic.example.", "203.0.113.20"),
                  a_set("a.root-servers.test.", "198.51.100.53")}});
  net.serve("203.0.113.10",
            Zone{name("test."),
                 {soa_set("test."), ns_set("test.", {"ns1.nic.test."}),
                  a_set("ns1.nic.test.", "203.0.113.10"),
                  a_set("a.root-servers.test.", "198.51.100.53"),
                  ns_set("a.test.", {"ns1.a.test."}), a_set("ns1.a.test.", "203.0.113.30"),
                  ns_set("c.test.", {"ns1.b.example."}),
                  ns_set("lame.test.", {"ns1.a.test."}),
                  ns_set("silent.test.", {"ns.silent.test."}),
                  a_set("ns.silent.test.", "203.0.113.99")}});
  net.serve("203.0.113.20",
            Zone{name("example."),
                 {soa_set("example."), ns_set("example.", {"ns1.nic.example."}),
                  a_set("ns1.nic.example.", "203.0.113.20"),
                  ns_set("b.example.", {"ns1.b.example."}),
                  a_set("ns1.b.example.", "203.0.113.40")}});
  net.serve("203.0.113.30",
            Zone{name("a.test."),
                 {soa_set("a.test.", 3600, 300), ns_set("a.test.", {"ns1.a.test."}),
                  a_set("ns1.a.test.", "203.0.113.30"), a_set("www.a.test.", "198.51.100.80"),
                  a_set("v4only.a.test.", "198.51.100.80"),
                  cname_set("alias.a.test.", "www.b.example."),
                  cname_set("loop1.a.test.", "loop2.a.test."),
                  cname_set("loop2.a.test.", "loop1.a.test.")}});
  net.serve("203.0.113.40",
            Zone{name("b.example."),
                 {soa_set("b.example."), ns_set("b.example.", {"ns1.b.example."}),
                  a_set("ns1.b.example.", "203.0.113.40"),
                  a_set("www.b.example.", "198.51.100.81")}});
  net.serve("203.0.113.40",
            Zone{name("c.test."),
                 {soa_set("c.test."), ns_set("c.test.", {"ns1.b.example."}),
                  a_set("www.c.test.", "198.51.100.82")}});
  net.silent("203.0.113.99");
  return net;
}

inline RootHints standard_hints() {
  RootHints h;
  h.servers.push_back(RootServer{name("a.root-servers.test."), {ip("198.51.100.53")}});
  h.ns_ttl = 3600000;
  return h;
}

// Runs one resolution to the end against `net`, advancing the fake clock by
// each query's RTT (or timeout). Bounded: at most 1000 steps.
struct Driver {
  FakeNet& net;
  Cache cache;
  Infra infra;
  RootHints hints = standard_hints();
  IteratorSettings settings;
  Time now{1000000};
  std::uint32_t seed = 12345;
  std::uint16_t next_id = 1;

  explicit Driver(FakeNet& n, CacheSettings cs = {}) : net(n), cache(cs) {
    settings.query_documentation_addresses = true;
  }

  std::uint32_t random() {
    seed = seed * 1103515245U + 12345U;
    return seed >> 1;
  }

  struct Result {
    Outcome outcome;
    Work work;
  };

  Result resolve(std::string_view qname, std::uint16_t qtype) {
    Question q{name(qname), qtype, rrclass::kIN};
    Resolution r(q, cache, infra, hints, settings, [this] { return random(); });
    auto step = r.start(now);
    std::vector<std::uint8_t> query;
    for (int i = 0; i < 1000 && step == Resolution::Step::Send; ++i) {
      const Outgoing& o = r.outgoing();
      build_upstream_query(o, next_id++, 1232, query);
      auto reply = net.ask(o.server, query, o.tcp);
      if (!reply) {
        now += o.timeout;
        step = r.on_timeout(now);
      } else {
        now += std::chrono::milliseconds{10};
        step = r.on_response(*reply, std::chrono::milliseconds{10}, now);
      }
    }
    if (step != Resolution::Step::Done) throw std::logic_error("resolution did not end");
    return {r.outcome(), r.work()};
  }
};

inline std::vector<std::string> addresses_of(const Outcome& o) {
  std::vector<std::string> out;
  for (const auto& s : o.answer) {
    if (s.type != rrtype::kA) continue;
    for (const auto rd : s) {
      IpAddress a;
      std::copy(rd.begin(), rd.end(), a.bytes.begin());
      out.push_back(a.to_string());
    }
  }
  return out;
}

}  // namespace diode::resolver::test

// Fuzzes the DNSSEC validator's inputs. The first octet picks what the
// rest is:
//   0: trust-anchor / zone text (TrustAnchors::parse, parse_zone_text):
//      anchors exactly when there is no error, every error positioned;
//   1: RDATA of RRSIG, DNSKEY, DS, NSEC, NSEC3 (each parser, key tag,
//      NSEC3 hash under a budget, a signature check with the bytes as key
//      and signature);
//   2: a DNS response (Message::parse) validated from a fixed anchor, the
//      same response fed back for every DNSKEY/DS the validator asks for:
//      it must finish within its fetch limit and never exceed its budget;
//   3: a DNS response whose authority section is kept in the aggressive
//      denial cache (RFC 8198) as if validated, then its question and
//      names near it looked up: bounded in records, never past the budget,
//      and an answer is NXDOMAIN or NODATA with the zone's SOA.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "diode/resolver/aggressive.hpp"
#include "diode/resolver/dnssec.hpp"
#include "diode/resolver/message.hpp"
#include "diode/resolver/validator.hpp"
#include "diode/resolver/zone_text.hpp"

namespace {

using namespace diode::resolver;
using namespace diode::resolver::dnssec;

const TrustAnchors& anchors() {
  static const TrustAnchors a = [] {
    std::vector<TextError> errors;
    auto t = TrustAnchors::parse(
        ". IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=\n"
        "test. IN DS 3613 15 2 3aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79a304b\n",
        errors);
    if (!t) __builtin_trap();
    return *t;
  }();
  return a;
}

void text(std::string_view t) {
  std::vector<TextError> errors;
  const auto a = TrustAnchors::parse(t, errors);
  if (a.has_value() == !errors.empty()) __builtin_trap();
  for (const TextError& e : errors)
    if (e.line == 0 || e.message.empty()) __builtin_trap();
  const ZoneText z = parse_zone_text(t);
  for (const TextRecord& r : z.records)
    if (r.rdata.size() > 0xffff) __builtin_trap();
  (void)group_rrsets(z.records);
}

void rdata(std::span<const std::uint8_t> d) {
  if (auto s = parse_rrsig(d)) {
    if (s->signed_fields.size() + s->signature.size() != d.size()) __builtin_trap();
  }
  if (auto k = parse_dnskey(d)) {
    (void)key_tag(d);
    (void)ds_digest(Name(), d, digest::kSha256);
    const std::size_t half = d.size() / 2;
    for (std::uint8_t alg : {algorithm::kRsaSha256, algorithm::kEcdsaP256, algorithm::kEd25519,
                             algorithm::kEd448, algorithm::kRsaSha1})
      (void)verify_signature(alg, d.first(half), d, d.subspan(half), AlgorithmPolicy{});
  }
  (void)parse_ds(d);
  if (auto n = parse_nsec(d)) (void)n->types.has(rrtype::kA);
  if (auto n = parse_nsec3(d)) {
    Budget b(0, 1000);
    (void)nsec3_hash(*Name::from_text("a.test."), n->hash_algorithm, n->iterations, n->salt, &b);
    if (b.hashes_left() > 1000) __builtin_trap();
  }
}

void response(std::span<const std::uint8_t> d) {
  Message m;
  if (!m.parse(d).ok() || !m.question()) return;
  const Response r = Response::from_message(m);
  ValidatorSettings settings;
  settings.max_fetches = 12;
  Budget budget(20, 2000);
  Validator v(anchors(), settings, budget, Clock{1700000000});
  auto step = v.start(m.question()->qname, m.question()->qtype, r);
  for (int i = 0; i < 64 && step.kind != Validator::Step::Kind::Done; ++i) step = v.provide(r);
  if (step.kind != Validator::Step::Kind::Done) __builtin_trap();
  if (budget.signatures_used() > 20) __builtin_trap();
}

void denial(std::span<const std::uint8_t> d) {
  Message m;
  if (!m.parse(d).ok() || !m.question()) return;
  const Response r = Response::from_message(m);
  Name zone;
  for (const RRset& s : r.authority)
    if (s.type == rrtype::kSOA) zone = s.owner;
  DenialCacheLimits limits;
  limits.max_records_per_zone = 8;
  limits.max_bytes = 4096;
  DenialCache dc(limits);
  dc.add(zone, r.authority, r.authority, 3600, 1000);
  if (dc.records() > 8 || dc.bytes() > 4096) __builtin_trap();
  const Name& q = m.question()->qname;
  std::vector<Name> names{q, q.lowered()};
  if (!q.is_root()) names.push_back(q.parent());
  for (const Name& n : names) {
    Budget budget(0, 500);
    auto a = dc.lookup(n, m.question()->qtype, 1000 + (n.label_count() % 3) * 1800, Nsec3Limits{},
                       budget);
    if (budget.hashes_left() > 500) __builtin_trap();
    if (a) {
      if (a->rcode != rcode::kNxDomain && a->rcode != rcode::kNoError) __builtin_trap();
      if (a->soa.size() != 1 || a->soa.front().type != rrtype::kSOA) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      text(std::string_view(reinterpret_cast<const char*>(rest.data()), rest.size()));
      break;
    case 1:
      rdata(rest);
      break;
    case 2:
      response(rest);
      break;
    default:
      denial(rest);
      break;
  }
  return 0;
}

#include "diode/resolver/front.hpp"

#include <algorithm>
#include <array>

#include "diode/resolver/answer.hpp"
#include "diode/resolver/builder.hpp"

namespace diode::resolver {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

bool is_dnssec_type(std::uint16_t t) {
  return t == rrtype::kRRSIG || t == rrtype::kNSEC || t == rrtype::kNSEC3;
}

// A query for `q` as a client would send it (RD set, no EDNS): what
// build_answer needs to shape an answer; each client's own ID, flags, case
// and EDNS are put in by finalize_reply and copy_question_case.
bool query_for(const Question& q, std::vector<std::uint8_t>& buf, Message& m) {
  buf.assign(kHeaderSize + kMaxNameLength + 4, 0);
  MessageBuilder b(buf);
  Header h;
  h.rd = true;
  b.set_header(h);
  if (b.add_question(q.qname, q.qtype, q.qclass) != AddResult::Ok) return false;
  const auto w = b.finish();
  buf.resize(w.size());
  return m.parse(buf).ok();
}

// `o` with the records a client with DO gets besides: the RRSIGs of the
// answer's owners and the authority section's NSEC, NSEC3 and RRSIG sets,
// their TTLs no longer than `cap`.
Outcome with_dnssec_records(const Outcome& o, const Cache& cache, std::uint32_t cap) {
  Outcome full;
  full.rcode = o.rcode;
  full.answer = o.answer;
  full.authority = o.authority;
  auto add = [&](std::vector<RRset>& to, const RRset& r) {
    RRset c = r;
    c.ttl = std::min(cache.clamp_ttl(r.ttl), cap);
    to.push_back(std::move(c));
  };
  for (const RRset& r : o.sec_answer) {
    if (r.type != rrtype::kRRSIG) continue;
    const bool owned = std::any_of(o.answer.begin(), o.answer.end(),
                                   [&](const RRset& x) { return x.owner == r.owner; });
    if (owned) add(full.answer, r);
  }
  for (const RRset& r : o.sec_authority) {
    if (is_dnssec_type(r.type)) add(full.authority, r);
  }
  return full;
}

}  // namespace

std::string Stats::to_text() const {
  auto f = [](const char* k, const std::atomic<std::uint64_t>& v) {
    return std::string(k) + "=" + std::to_string(v.load(kRelaxed));
  };
  return f("queries", queries) + " " + f("tcp_queries", tcp_queries) + " " +
         f("cache_hits", cache_hits) + " " + f("cache_misses", cache_misses) + " " +
         f("upstream_queries", upstream_queries) + " " + f("upstream_timeouts", upstream_timeouts) +
         " " + f("upstream_ignored", upstream_ignored) + " " + f("servfail", servfail) + " " +
         f("nxdomain", nxdomain) + " " + f("refused", refused) + " " + f("formerr", formerr) + " " +
         f("dropped", dropped) + " " + f("truncated", truncated) + " " +
         f("stale_answers", stale_answers) + " " + f("prefetches", prefetches) + " " +
         f("local_answers", local_answers) + " " + f("joined", joined) + " " +
         f("tcp_refused", tcp_refused) + " " +
         f("validated_rrset_answers", validated_rrset_answers) + " " +
         f("aggressive_answers", aggressive_answers);
}

Outcome any_answer(const Question& q) {
  Outcome o;
  o.rcode = rcode::kNoError;
  RRset h;
  h.owner = q.qname;
  h.type = rrtype::kHINFO;
  h.ttl = 3600;
  const std::array<std::uint8_t, 9> rdata{7, 'R', 'F', 'C', '8', '4', '8', '2', 0};
  (void)h.add_rdata(rdata);
  o.answer.push_back(std::move(h));
  return o;
}

Front::Front(Cache& cache, Stats& stats, FrontSettings settings)
    : cache_(cache), stats_(stats), settings_(std::move(settings)) {}

bool Front::allowed(const platform::IpAddress& a) const {
  const platform::IpAddress u = a.unmapped();
  return std::any_of(settings_.allow.begin(), settings_.allow.end(),
                     [&](const platform::Prefix& p) { return p.contains(u); });
}

std::string Front::joining_key(const Question& q, bool cd) {
  return q.qname.lowered().to_text() + "/" + std::to_string(q.qtype) + "/" +
         std::to_string(q.qclass) + (cd ? "/cd" : "");
}

Question Front::do_form(const Question& q) {
  Question d = q;
  d.qclass = kDnssecFormClass;
  return d;
}

Front::Decision Front::on_query(std::span<const std::uint8_t> wire, const platform::IpAddress& from,
                                Transport transport, ClientHandle client, Time now,
                                std::vector<std::uint8_t>& out) {
  Decision d;
  const bool over_tcp = transport == Transport::Tcp;
  stats_.queries.fetch_add(1, kRelaxed);
  if (over_tcp) stats_.tcp_queries.fetch_add(1, kRelaxed);
  const ParseStatus ps = msg_.parse(wire);
  const auto hdr = read_header(wire);
  if (!ps.header_intact || !hdr || hdr->qr) {
    stats_.dropped.fetch_add(1, kRelaxed);
    return d;
  }
  // Never an open resolver: outsiders get REFUSED and nothing else.
  if (!allowed(from)) {
    stats_.refused.fetch_add(1, kRelaxed);
    if (build_error(wire, ps.ok() ? &msg_ : nullptr, rcode::kRefused, settings_.edns_size, out)) {
      d.action = Action::Answer;
    }
    return d;
  }
  const std::uint16_t err = check_query(msg_, ps);
  if (err != 0) {
    if (err == rcode::kFormErr) stats_.formerr.fetch_add(1, kRelaxed);
    if (build_error(wire, ps.ok() ? &msg_ : nullptr, err, settings_.edns_size, out)) {
      d.action = Action::Answer;
    }
    return d;
  }
  const Question& q = *msg_.question();
  const Header qh = msg_.header();
  const bool edns = msg_.edns().has_value();
  const std::size_t limit = reply_limit(msg_, over_tcp, settings_.edns_size);
  const bool dnssec_ok = edns && msg_.edns()->dnssec_ok;
  const bool cd = settings_.dnssec && qh.cd;

  std::optional<Outcome> local;
  if (q.qtype == rrtype::kANY) local = any_answer(q);
  if (!local && settings_.builtin_local_zones) local = local_zone_answer(q);
  if (local) {
    stats_.local_answers.fetch_add(1, kRelaxed);
    BuiltAnswer a;
    build_answer(msg_, *local, kMaxMessageSize, 0, a);
    if (finalize_reply(a.wire, qh, edns, limit, settings_.edns_size, dnssec_ok)) {
      stats_.truncated.fetch_add(1, kRelaxed);
    }
    out = std::move(a.wire);
    d.action = Action::Answer;
    return d;
  }

  if (settings_.dnssec && !cd && !bogus_.empty()) {
    // Bogus: SERVFAIL with its EDE until bogus_ttl passes, without asking
    // again (RFC 4035 §4.7); CD queries still get the data.
    if (auto it = bogus_.find(joining_key(q, false)); it != bogus_.end()) {
      if (now < it->second.expires) {
        stats_.cache_hits.fetch_add(1, kRelaxed);
        stats_.servfail.fetch_add(1, kRelaxed);
        std::vector<std::uint8_t> buf;
        Message query;
        (void)query_for(q, buf, query);
        BuiltAnswer b;
        build_answer(query, Outcome{}, kMaxMessageSize, 0, b);
        out = std::move(b.wire);
        (void)copy_question_case(out, q.qname);
        if (finalize_reply(out, qh, edns, limit, settings_.edns_size, dnssec_ok,
                           it->second.ede, it->second.text)) {
          stats_.truncated.fetch_add(1, kRelaxed);
        }
        d.action = Action::Answer;
        return d;
      }
      bogus_.erase(it);
    }
  }
  const bool do_hit = settings_.dnssec && dnssec_ok;
  if (auto hit = cache_.copy_message(do_hit ? do_form(q) : q, qh.id, now, out)) {
    if (do_hit) (void)copy_question_case(out, q.qname);
    stats_.cache_hits.fetch_add(1, kRelaxed);
    if (hit->prefetch_due && settings_.prefetch && inflight_ < settings_.max_inflight) {
      stats_.prefetches.fetch_add(1, kRelaxed);
      ++inflight_;
      d.prefetch = true;
      d.question = q;
    }
    if (finalize_reply(out, qh, edns, limit, settings_.edns_size, dnssec_ok)) {
      stats_.truncated.fetch_add(1, kRelaxed);
    }
    d.action = Action::Answer;
    return d;
  }
  stats_.cache_misses.fetch_add(1, kRelaxed);
  if (inflight_ >= settings_.max_inflight) {
    stats_.dropped.fetch_add(1, kRelaxed);
    return d;
  }
  const std::size_t w_bytes = waiter_bytes(q.qname);
  Waiter w{client, qh, q.qname, edns, limit, dnssec_ok};
  // The same question already being resolved: wait for that answer rather
  // than ask again (one upstream query for many clients; RFC 5452 §5's
  // birthday attack needs many outstanding identical queries).
  std::string key = joining_key(q, cd);
  if (auto it = joinable_.find(key); it != joinable_.end()) {
    Flight& f = flights_.at(it->second);
    if (f.waiters.size() < settings_.max_joiners) {
      if (held_bytes_ + w_bytes > settings_.max_held_bytes) {
        stats_.dropped.fetch_add(1, kRelaxed);
        return d;
      }
      held_bytes_ += w_bytes;
      stats_.joined.fetch_add(1, kRelaxed);
      f.waiters.push_back(std::move(w));
      ++waiting_;
      d.action = Action::Wait;
      return d;
    }
    key.clear();  // too many waiting: resolve on its own
  }
  const std::size_t f_bytes = flight_bytes(q, key) + w_bytes;
  if (held_bytes_ + f_bytes > settings_.max_held_bytes) {
    stats_.dropped.fetch_add(1, kRelaxed);
    return d;
  }
  held_bytes_ += f_bytes;
  const std::uint64_t ticket = next_ticket_++;
  if (!key.empty()) joinable_.emplace(key, ticket);
  Flight f{q, cd, std::move(key), {}, f_bytes - w_bytes};
  f.waiters.push_back(std::move(w));
  flights_.emplace(ticket, std::move(f));
  ++waiting_;
  ++inflight_;
  d.action = Action::Resolve;
  d.question = q;
  d.ticket = ticket;
  d.checking_disabled = cd;
  return d;
}

bool Front::store(const Question& q, const Outcome& o, Time now, std::vector<std::uint8_t>& base) {
  if (o.rcode == rcode::kServFail || o.security == Outcome::Security::Bogus) return false;
  std::vector<std::uint8_t> buf;
  Message query;
  if (!query_for(q, buf, query)) return false;
  BuiltAnswer a;
  build_answer(query, o, kMaxMessageSize, 0, a);
  const bool secure = o.security == Outcome::Security::Secure;
  if (secure && a.wire.size() >= kHeaderSize) a.wire[3] |= 0x20U;  // AD, cleared per client
  if (o.rcode == rcode::kNxDomain) stats_.nxdomain.fetch_add(1, kRelaxed);
  const bool cacheable = (o.rcode == rcode::kNoError || o.rcode == rcode::kNxDomain) &&
                         a.min_ttl > 0 && !a.truncated;
  if (cacheable) cache_.insert_message(q, a.wire, a.ttl_offsets, a.min_ttl, now);
  if (settings_.dnssec && o.security != Outcome::Security::Unchecked && cacheable) {
    // The form for clients with DO: the same answer with the signatures of
    // its owners and the authority section's denial records.
    const Outcome full = with_dnssec_records(o, cache_, a.min_ttl);
    BuiltAnswer f;
    build_answer(query, full, kMaxMessageSize, 0, f);
    if (secure && f.wire.size() >= kHeaderSize) f.wire[3] |= 0x20U;
    if (f.min_ttl > 0 && !f.truncated) {
      cache_.insert_message(do_form(q), f.wire, f.ttl_offsets, f.min_ttl, now);
    }
  }
  base = std::move(a.wire);
  return true;
}

void Front::on_resolved(std::uint64_t ticket, const Outcome& outcome, Time now,
                        std::vector<Reply>& replies) {
  auto node = flights_.extract(ticket);
  if (node.empty()) return;
  Flight& f = node.mapped();
  --inflight_;
  if (!f.key.empty()) {
    if (auto it = joinable_.find(f.key); it != joinable_.end() && it->second == ticket) {
      joinable_.erase(it);
    }
  }
  const Question& q = f.question;
  std::vector<std::uint8_t> base;
  std::uint16_t ede = 0xffff;
  std::string ede_text;
  // Clients with DO get the form with the signatures when there is one.
  std::vector<std::uint8_t> signed_form;
  if (f.cd) {
    // Checking disabled: the data as it came, unchecked, and not cached.
    std::vector<std::uint8_t> buf;
    Message query;
    (void)query_for(q, buf, query);
    BuiltAnswer b;
    build_answer(query, outcome, kMaxMessageSize, 0, b);
    base = std::move(b.wire);
    if (outcome.rcode == rcode::kServFail) stats_.servfail.fetch_add(1, kRelaxed);
    if (!outcome.sec_answer.empty() || !outcome.sec_authority.empty()) {
      BuiltAnswer sf;
      build_answer(query, with_dnssec_records(outcome, cache_, 0xffffffffU), kMaxMessageSize, 0,
                   sf);
      signed_form = std::move(sf.wire);
    }
  } else if (outcome.security == Outcome::Security::Bogus) {
    stats_.servfail.fetch_add(1, kRelaxed);
    ede = outcome.ede;
    ede_text = outcome.ede_text;
    if (bogus_.size() >= settings_.max_bogus) bogus_.clear();
    bogus_[joining_key(q, false)] =
        Bogus{now + std::chrono::seconds{settings_.bogus_ttl}, ede, ede_text};
    std::vector<std::uint8_t> buf;
    Message query;
    (void)query_for(q, buf, query);
    BuiltAnswer b;
    build_answer(query, Outcome{}, kMaxMessageSize, 0, b);
    base = std::move(b.wire);
  } else if (store(q, outcome, now, base)) {
    // answered
  } else if (cache_.settings().serve_stale && cache_.copy_message(q, 0, now, base, true) &&
             base.size() >= kHeaderSize && (base[3] & 0x0fU) != rcode::kServFail) {
    // RFC 8767 §4: every upstream failed; an expired answer beats none
    // (an expired cached failure is no answer).
    stats_.stale_answers.fetch_add(1, kRelaxed);
  } else {
    stats_.servfail.fetch_add(1, kRelaxed);
    std::vector<std::uint8_t> buf;
    Message query;
    (void)query_for(q, buf, query);
    BuiltAnswer b;
    build_answer(query, Outcome{}, kMaxMessageSize, 0, b);
    base = std::move(b.wire);
    // RFC 9520 §3: remember the failure a little while, so that clients
    // retrying a broken name do not make the resolver hammer its servers.
    cache_.insert_message(q, base, {}, settings_.failure_ttl, now);
    if (settings_.dnssec) cache_.insert_message(do_form(q), base, {}, settings_.failure_ttl, now);
  }
  const bool any_do = std::any_of(f.waiters.begin(), f.waiters.end(),
                                  [](const Waiter& w) { return w.dnssec_ok; });
  if (any_do && settings_.dnssec && !f.cd && outcome.security != Outcome::Security::Bogus &&
      outcome.security != Outcome::Security::Unchecked) {
    if (!cache_.copy_message(do_form(q), 0, now, signed_form)) signed_form.clear();
  }
  for (Waiter& w : f.waiters) {
    Reply r{w.client, w.dnssec_ok && !signed_form.empty() ? signed_form : base};
    (void)copy_question_case(r.wire, w.qname);
    if (finalize_reply(r.wire, w.header, w.edns, w.limit, settings_.edns_size, w.dnssec_ok, ede,
                       ede_text)) {
      stats_.truncated.fetch_add(1, kRelaxed);
    }
    replies.push_back(std::move(r));
  }
  waiting_ -= f.waiters.size();
  std::size_t released = f.bytes;
  for (const Waiter& w : f.waiters) released += waiter_bytes(w.qname);
  held_bytes_ -= std::min(released, held_bytes_);
}

std::size_t Front::waiter_bytes(const Name& qname) {
  return sizeof(Waiter) + qname.wire_length();
}

std::size_t Front::flight_bytes(const Question& q, const std::string& key) {
  // The flight in flights_, its question, and its key twice (the flight's
  // copy and joinable_'s) with that map's node.
  return sizeof(std::pair<const std::uint64_t, Flight>) + q.qname.wire_length() +
         2 * key.size() + sizeof(std::pair<const std::string, std::uint64_t>) + 64;
}

void Front::on_refreshed(const Question& q, const Outcome& outcome, Time now) {
  if (inflight_ > 0) --inflight_;
  std::vector<std::uint8_t> base;
  (void)store(q, outcome, now, base);
}

}  // namespace diode::resolver

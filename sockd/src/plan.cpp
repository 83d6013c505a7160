#include "diode/sockd/plan.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace diode::sockd {

using platform::IpAddress;
using proto::ReplyKind;

proto::HandshakeOptions handshake_options(const platform::SockdSettings& s, bool have_users) {
  proto::HandshakeOptions o;
  o.allow_no_auth = false;
  o.allow_user_pass = false;
  for (auto m : s.methods) {
    if (m == platform::SocksMethod::None) o.allow_no_auth = true;
    if (m == platform::SocksMethod::UserPass && have_users) o.allow_user_pass = true;
  }
  // `methods` is the order of preference: of the methods the client offers,
  // the one listed first wins.
  const auto none_at = std::find(s.methods.begin(), s.methods.end(), platform::SocksMethod::None);
  o.prefer_user_pass =
      std::find(s.methods.begin(), none_at, platform::SocksMethod::UserPass) != none_at;
  return o;
}

bool handshake_denied(proto::Failure f) {
  return f == proto::Failure::AuthRejected || f == proto::Failure::Socks4NeedsNoAuth;
}

const char* limit_refusal(std::uint32_t open, std::uint32_t open_from_client,
                          const platform::SockdSettings& s) {
  if (open >= s.max_sessions) return "session limit";
  if (open_from_client >= s.max_sessions_per_client) return "per-client session limit";
  return nullptr;
}

std::string_view to_string(PlanStep s) {
  switch (s) {
    case PlanStep::Resolve: return "resolve";
    case PlanStep::AskIdent: return "ask-identd";
    case PlanStep::Deny: return "deny";
    case PlanStep::Associate: return "associate";
    case PlanStep::Bind: return "bind";
    case PlanStep::Connect: return "connect";
    case PlanStep::Send: return "send";
    case PlanStep::Relay: return "relay";
    case PlanStep::Failed: return "failed";
  }
  return "?";
}

SessionPlan::SessionPlan(const RelayPolicy& policy, RuleRequest q, Mode mode)
    : policy_(policy), q_(std::move(q)), mode_(mode) {
  if (mode_ == Mode::Session && q_.command == RuleCommand::Udp) {
    // The association itself: some cmd=udp line must be able to apply to
    // this client; each datagram is then decided on its own.
    if (may_use_udp(policy_, q_)) {
      step_ = PlanStep::Associate;
    } else {
      deny(ReplyKind::NotAllowed, "udp needs a rule with cmd=udp", nullptr);
      verdict_ = true;
    }
    return;
  }
  if (q_.dst_name && !q_.dst_addr) {
    step_ = PlanStep::Resolve;
    return;
  }
  if (q_.dst_addr) addrs_.push_back(*q_.dst_addr);
  decide();
}

void SessionPlan::resolved(std::vector<IpAddress> addrs, std::string_view error) {
  if (step_ != PlanStep::Resolve) return;
  if (addrs.empty()) {
    deny(ReplyKind::HostUnreachable, "cannot resolve: " + std::string(error), nullptr);
    return;
  }
  addrs_.assign(addrs.begin(), addrs.end());
  decide();
}

void SessionPlan::ident(IdentResult result, std::string reported) {
  if (step_ != PlanStep::AskIdent) return;
  // Asked once a session (or association): the answer holds for every address.
  q_.ident = result;
  q_.ident_user = std::move(reported);
  decide();
}

void SessionPlan::deny(ReplyKind kind, std::string reason, const Check* by) {
  step_ = PlanStep::Deny;
  reply_ = kind;
  reason_ = std::move(reason);
  decided_ = by;
}

// Decides each address in turn (resuming after an identd question): every
// permitted one is a candidate, the first refused one is the refusal.
void SessionPlan::decide() {
  if (mode_ == Mode::Session && candidates_.capacity() == 0) {
    candidates_.reserve(std::min(addrs_.size(), kMaxCandidates));
  }
  for (; next_ < addrs_.size(); ++next_) {
    const IpAddress a = addrs_[next_].unmapped();
    q_.dst_addr = a;
    Check c = check_destination(policy_, q_);
    if (c.needs_ident) {
      step_ = PlanStep::AskIdent;
      return;
    }
    if (c.permitted) {
      if (mode_ == Mode::Datagram) {
        sent_ = std::move(c);
        decided_ = &*sent_;
        target_ = a;
        address_ = a;
        step_ = PlanStep::Send;
        return;
      }
      if (candidates_.size() < kMaxCandidates) candidates_.push_back({a, std::move(c)});
    } else if (!refusal_) {
      refusal_.emplace(Candidate{a, std::move(c)});
    }
  }
  if (candidates_.empty()) {
    // Every address refused (a name needs one permitted address).
    address_ = refusal_->addr;
    q_.dst_addr = refusal_->addr;
    deny(refusal_->check.reply, refusal_->check.reason, &refusal_->check);
    verdict_ = true;
    return;
  }
  if (mode_ == Mode::Session && q_.command == RuleCommand::Bind) {
    decided_ = &candidates_.front().check;
    address_ = candidates_.front().addr;
    q_.dst_addr = candidates_.front().addr;
    step_ = PlanStep::Bind;
    return;
  }
  // RFC 8305 §4: families interleaved, IPv6 first, each family in its DNS
  // order. In place (at most kMaxCandidates): no allocation.
  auto want = platform::Family::V6;
  for (std::size_t i = 0; i < candidates_.size(); ++i) {
    auto it = std::find_if(candidates_.begin() + static_cast<std::ptrdiff_t>(i), candidates_.end(),
                           [want](const Candidate& c) { return c.addr.family == want; });
    if (it != candidates_.end()) {
      std::rotate(candidates_.begin() + static_cast<std::ptrdiff_t>(i), it, it + 1);
      want = want == platform::Family::V6 ? platform::Family::V4 : platform::Family::V6;
    }
  }
  step_ = PlanStep::Connect;
}

void SessionPlan::connected(std::size_t i) {
  if (step_ != PlanStep::Connect || i >= candidates_.size()) return;
  // The rule that permitted the address actually connected is the one
  // logged, and the one whose hook runs.
  decided_ = &candidates_[i].check;
  address_ = candidates_[i].addr;
  q_.dst_addr = candidates_[i].addr;
  step_ = PlanStep::Relay;
}

void SessionPlan::connect_failed(std::size_t last, int err, bool timed_out) {
  if (step_ != PlanStep::Connect || candidates_.empty()) return;
  last = std::min(last, candidates_.size() - 1);
  decided_ = &candidates_[last].check;
  address_ = candidates_[last].addr;
  q_.dst_addr = candidates_[last].addr;
  if (timed_out) err = ETIMEDOUT;
  step_ = PlanStep::Failed;
  reply_ = proto::reply_kind_from_errno(err);
  reason_ = std::string("connect: ") + std::strerror(err);
}

bool SessionPlan::bind_peer_ok(const IpAddress& peer) const {
  const IpAddress p = peer.unmapped();
  return std::any_of(candidates_.begin(), candidates_.end(),
                     [&p](const Candidate& c) { return c.addr == p; });
}

void SessionPlan::bind_accepted(const IpAddress& peer) {
  if (step_ != PlanStep::Bind || !bind_peer_ok(peer)) return;
  step_ = PlanStep::Relay;  // decided_: the front candidate, whose rule BIND was granted by
}

void SessionPlan::failed(ReplyKind kind, std::string reason) {
  step_ = PlanStep::Failed;
  reply_ = kind;
  reason_ = std::move(reason);
}

void SessionPlan::describe(SessionRecord& rec, bool detail) const {
  const auto port = q_.dst_port;
  // rule= and addr= are only shown: without `detail` they stay as they are.
  const auto name = [&] {
    if (!detail) return;
    rec.rule = decided_ != nullptr && decided_->rule != nullptr ? rule_label(*decided_->rule)
                                                                : std::string();
    rec.addr = address_ && step_ != PlanStep::Connect
                   ? platform::Endpoint{*address_, port}.to_string()
                   : std::string();
  };
  switch (step_) {
    case PlanStep::Deny:
      rec.event = "refused";
      if (verdict_) rec.verdict = "deny";
      name();
      rec.reason = reason_;
      break;
    case PlanStep::Failed:
      rec.event = "failed";
      rec.verdict = "permit";
      name();
      rec.reason = reason_;
      break;
    case PlanStep::Relay:
    case PlanStep::Bind:
    case PlanStep::Connect:
      rec.verdict = "permit";
      name();
      break;
    case PlanStep::Associate:
    case PlanStep::Send:
      rec.verdict = "permit";
      break;
    case PlanStep::Resolve:
    case PlanStep::AskIdent:
      break;
  }
}

std::vector<std::pair<std::string, std::string>> hooks_of(const Check& c) {
  std::vector<std::pair<std::string, std::string>> out;
  if (c.command && c.rule != nullptr) out.emplace_back(*c.command, rule_label(*c.rule));
  if (c.ident_command) out.emplace_back(*c.ident_command, c.ident_origin);
  return out;
}

}  // namespace diode::sockd

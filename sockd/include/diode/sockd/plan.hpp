#pragma once
// The session plan: everything sockd decides about one request, and in
// which order, without I/O. The facts of a request go in (listener
// interface, client, user and method, version, command, destination as a
// name or an address, through make_rule_request), then step by step the
// outcomes of what the plan asked for (the DNS answer, identd's reply, the
// connection attempts); the plan says what to do next. sockd's session
// coroutine only executes it; `sockd-check simulate` drives the very same
// plan with outcomes given on its command line, so the two cannot drift.
//
// Rules, routes, protect_internal, the methods offered, SOCKS4's need of
// method `none` and the per-client limits are decided here and nowhere
// else (check_destination and may_use_udp in session.hpp are its parts).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "diode/platform/address.hpp"
#include "diode/platform/config.hpp"
#include "diode/sockd/log.hpp"
#include "diode/sockd/session.hpp"
#include "diode/sockd/socks_proto.hpp"

namespace diode::sockd {

/// The handshake options under `[sockd]`: `methods` in its order of
/// preference; userpass only with a users file (`have_users`); without
/// `none` in `methods`, SOCKS4 and 4a are refused (they cannot authenticate).
proto::HandshakeOptions handshake_options(const platform::SockdSettings& s, bool have_users);

/// True when a refused handshake is a denial (verdict=deny) rather than a
/// malformed request: a failed login, SOCKS4 without method none.
bool handshake_denied(proto::Failure f);

/// Why a new session is refused by the limits ("session limit",
/// "per-client session limit"), or null: `open` sessions in all, of which
/// `open_from_client` under the client's key (client_limit_key).
const char* limit_refusal(std::uint32_t open, std::uint32_t open_from_client,
                          const platform::SockdSettings& s);

/// One destination address a request may go to, with the check that
/// permitted it (rule, route, expanded hooks).
struct Candidate {
  platform::IpAddress addr;
  Check check;
};

/// What the plan asks for next.
enum class PlanStep : std::uint8_t {
  Resolve,    // look name() up (A and AAAA), then resolved()
  AskIdent,   // ask the client's identd (RFC 1413) about user(), then ident()
  Deny,       // refuse with reply() and reason(); run the hooks of decided() (may be null)
  Associate,  // UDP ASSOCIATE granted; each datagram is decided by a plan of its own
  Bind,       // listen toward candidates().front() through its route; accept only a peer
              // for which bind_peer_ok(), then bind_accepted() or failed()
  Connect,    // try candidates() in this order, each through its route (happy
              // eyeballs); then connected(i) or connect_failed()
  Send,       // a datagram: send it to target() through decided()->route
  Relay,      // granted: relay; run the hooks of decided(), the rule logged
  Failed,     // permitted but not reached: reply(), reason(); run the hooks of decided()
};

std::string_view to_string(PlanStep s);

/// The plan of one request. Holds a reference to the policy, which must
/// outlive it, and nothing else shared.
class SessionPlan {
 public:
  enum class Mode : std::uint8_t { Session, Datagram };
  static constexpr std::size_t kMaxCandidates = 8;  // addresses of one name tried in turn

  /// `q` from make_rule_request (or built by hand); a Datagram plan decides
  /// one UDP datagram of an association (q.command is Udp, q.ident kept
  /// from earlier datagrams), choosing the first permitted address.
  SessionPlan(const RelayPolicy& policy, RuleRequest q, Mode mode = Mode::Session);
  // decided() points into the plan itself (its candidates are kept inline).
  SessionPlan(const SessionPlan&) = delete;
  SessionPlan& operator=(const SessionPlan&) = delete;

  /// The permitted addresses: one, unless a name gave several (no
  /// allocation for one).
  using Candidates = boost::container::small_vector<Candidate, 1>;

  PlanStep step() const { return step_; }

  /// Resolve: the name to look up (lower case).
  const std::string& name() const { return *q_.dst_name; }
  /// The DNS answer: the addresses (IPv6 first when both), or none with
  /// the resolver's error text.
  void resolved(std::vector<platform::IpAddress> addrs, std::string_view error = {});

  /// AskIdent: the user the client claimed, to compare with identd's answer.
  const std::string& user() const { return q_.user; }
  /// identd's outcome (result and the user it reported).
  void ident(IdentResult result, std::string reported);

  /// Connect / Bind: the permitted addresses, in the order to try them.
  const Candidates& candidates() const { return candidates_; }
  /// Connect: candidate `i` connected first; the rest are abandoned.
  void connected(std::size_t i);
  /// Connect: every attempt failed (the last one tried was `last`), with
  /// errno `err`, or the connect timeout passed.
  void connect_failed(std::size_t last, int err, bool timed_out);
  /// Bind: may a connection from `peer` be accepted?
  bool bind_peer_ok(const platform::IpAddress& peer) const;
  /// Bind: the expected peer connected.
  void bind_accepted(const platform::IpAddress& peer);
  /// Bind (or any granted step): it could not be done; `kind` and `reason`
  /// are what the client is told and what is logged.
  void failed(proto::ReplyKind kind, std::string reason);

  /// Send: where the datagram goes.
  const platform::IpAddress& target() const { return target_; }

  /// The check that decides what is logged now: the refusal (Deny), the
  /// candidate connected, tried last or bound (Relay, Failed, Bind), the
  /// datagram's (Send); null when no address was decided (cannot resolve,
  /// UDP without a cmd=udp line).
  const Check* decided() const { return decided_; }
  /// The reply kind for Deny / Failed (Granted otherwise).
  proto::ReplyKind reply() const { return reply_; }
  /// The log reason for Deny / Failed ("" otherwise).
  const std::string& reason() const { return reason_; }
  /// The address the log names (addr=): the refused, connected or last tried one.
  const std::optional<platform::IpAddress>& address() const { return address_; }
  /// The request as last decided (dst_addr: the address of decided(); the identd answer).
  const RuleRequest& request() const { return q_; }

  /// Fills the decision's part of the session's log line: event, verdict,
  /// rule, addr, reason (reply= is the code actually sent). Without
  /// `detail` (no line will be written), not rule and addr, which are only
  /// shown; the rest also decides how the session is counted.
  void describe(SessionRecord& rec, bool detail = true) const;

 private:
  void decide();
  void deny(proto::ReplyKind kind, std::string reason, const Check* by);

  const RelayPolicy& policy_;
  RuleRequest q_;
  Mode mode_;
  PlanStep step_ = PlanStep::Deny;
  boost::container::small_vector<platform::IpAddress, 1> addrs_;
  std::size_t next_ = 0;  // the next address of addrs_ to decide
  Candidates candidates_;
  std::optional<Candidate> refusal_;  // the first refused address, if any
  std::optional<Check> sent_;          // Datagram: the check that permitted target_
  const Check* decided_ = nullptr;
  platform::IpAddress target_;
  std::optional<platform::IpAddress> address_;
  bool verdict_ = false;  // a Deny that is a verdict (not "cannot resolve")
  proto::ReplyKind reply_ = proto::ReplyKind::Granted;
  std::string reason_;
};

/// The hooks a check asks to run, as (expanded command, origin file:line):
/// the rule's `: command`, then #NO_IDENTD: / #BAD_ID:.
std::vector<std::pair<std::string, std::string>> hooks_of(const Check& c);

}  // namespace diode::sockd

// The TCP session: the handshake, then what the session plan asks for —
// names, identd, BIND's listener and peer, the CONNECT race — and the
// relay. The coroutine only does I/O; the decisions are the plan's.
#include <sys/socket.h>

#include <cerrno>

#include "connect_race.hpp"
#include "diode/sockd/identd.hpp"
#include "server_impl.hpp"

namespace diode::sockd {

namespace {

// The address the kernel would send from toward `peer` (a UDP connect()
// sends nothing), out of `iface` if one is named, for BIND without a
// sockd.route address.
std::optional<IpAddress> local_address_toward(const IpAddress& peer, const std::string& iface) {
  net::io_context io;
  net::ip::udp::socket u(io);
  error_code ec;
  const net::ip::udp::endpoint ep(to_asio(peer), 9);
  u.open(ep.protocol(), ec);
  if (!ec && bind_to_device(u.native_handle(), iface) != 0) return std::nullopt;
  if (!ec) u.connect(ep, ec);
  if (ec) return std::nullopt;
  const auto local = u.local_endpoint(ec);
  if (ec) return std::nullopt;
  return from_asio(local.address());
}

// BIND's wait for the peer: when the client's side becomes readable with
// EOF or an error (not data, which the relay will carry), the client is
// gone: close the listener so the wait ends now, not at connect_timeout.
net::awaitable<void> bind_client_watch(std::shared_ptr<SessionState> st,
                                       std::shared_ptr<bool> waiting,
                                       std::shared_ptr<bool> client_gone) {
  error_code ec;
  co_await st->client.async_wait(tcp::socket::wait_read, net::redirect_error(net::use_awaitable, ec));
  if (ec || !*waiting) co_return;
  char b = 0;
  const ssize_t n = ::recv(st->client.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) co_return;
  *client_gone = true;
  st->acceptor.close(ec);
}

int reply_code_of(std::span<const std::uint8_t> reply) {
  return reply.size() >= 2 ? reply[1] : -1;
}

proto::Address bound_of(const tcp::socket& s) {
  error_code ec;
  const auto ep = s.local_endpoint(ec);
  if (ec) return proto::Address::from_ip(IpAddress::v4(0), 0);
  return proto::Address::from_ip(from_asio(ep.address()), ep.port());
}

}  // namespace

// The session's own frame stays alive, suspended, for as long as the relay
// runs: it holds only the log record, the limits' slot and the sockets.
// Everything the handshake and the connect phase need lives in negotiate()'s
// frame, which is gone before the relay starts.
net::awaitable<void> Server::Impl::session(RelayWorker& w, tcp::socket sock, Endpoint peer,
                                           Endpoint listener, std::string iface, Slot slot,
                                           std::shared_ptr<const RelayPolicy> pol,
                                           std::unique_ptr<HandshakeBuffers> resumed) {
  (void)slot;  // held for the session's lifetime
  const auto started = resumed ? resumed->started : Clock::now();
  if (!resumed) w.counters.accepted.fetch_add(1, std::memory_order_relaxed);
  SessionRecord rec;
  rec.client = peer.to_string();
  if (listener.addr.is_unspecified()) {
    // A wildcard listener: the address this client reached is the socket's own.
    error_code ec;
    const auto local = sock.local_endpoint(ec);
    rec.listener = ec ? "" : from_asio(local).to_string();
  } else {
    rec.listener = listener.to_string();
  }
  auto st = std::make_shared<SessionState>(std::move(sock));
  LiveFds live(w);
  live.add(st->client.native_handle());
  // The policy goes to negotiate(): the session's long-lived frame keeps
  // only the idle timeout it started with.
  const auto idle_timeout = pol->settings.idle_timeout;
  const Next next =
      co_await negotiate(w, st, live, rec, peer, iface, started, std::move(pol), std::move(resumed));
  if (next == Next::Relay) {
    RelayOptions ropts;
    ropts.idle_timeout = idle_timeout;
    const RelayResult rr =
        co_await relay(std::move(st->client), std::move(st->target), w.pool, ropts);
    rec.event = "terminated";
    rec.up += rr.up;
    rec.down = rr.down;
    rec.reason = std::string(to_string(rr.end));
  }
  if (next != Next::Logged) {
    rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    finish(w, rec);
  }
}

net::awaitable<Server::Impl::Next> Server::Impl::negotiate(RelayWorker& w,
                                                           std::shared_ptr<SessionState> st,
                                                           LiveFds& live, SessionRecord& rec,
                                                           Endpoint client_ep, std::string iface,
                                                           Clock::time_point started,
                                                           std::shared_ptr<const RelayPolicy> pol,
                                                           std::unique_ptr<HandshakeBuffers> resumed) {
  error_code ec;
  const auto& settings = pol->settings;

  const proto::HandshakeOptions hopts = handshake_options(settings, pol->users != nullptr);
  // A handed-over machine is fed what it holds before anything is read.
  bool fed = resumed == nullptr;
  auto hx = resumed ? std::move(resumed) : std::make_unique<HandshakeBuffers>(hopts);
  proto::ServerHandshake& hs = hx->hs;

  // --- handshake (RFC 1928 §3-§4, RFC 1929, SOCKS4/4a), bounded in time
  // from the accept
  arm(st, std::max(std::chrono::milliseconds{1},
                   settings.handshake_timeout -
                       std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started)),
      true);
  auto& in = hx->in;
  std::size_t have = hx->have;
  std::size_t off = 0;
  std::string auth_refusal;         // why a login was refused without a hash
  std::vector<std::uint8_t> early;  // bytes the client sent after its request
  bool done = false;
  while (!done) {
    if (off == have && fed) {
      have = co_await st->client.async_read_some(net::buffer(in),
                                                 net::redirect_error(net::use_awaitable, ec));
      off = 0;
      if (ec) {
        rec.reason = st->expired ? "handshake timeout" : "client closed during handshake";
        disarm(st);
        co_return Next::Log;
      }
    }
    fed = true;
    proto::Step step = hs.feed(std::span<const std::uint8_t>(in.data() + off, have - off));
    off += step.consumed;
    if (step.kind == proto::StepKind::Authenticate) {
      // The machine holds its own copy now: the password leaves the read buffer.
      proto::wipe_except(in, off, have);
      rec.user = std::string(hs.username());
      const bool ok = co_await verify_password(*pol, hs.username(), hs.password(), client_ep.addr,
                                               auth_refusal);
      step = hs.accept_auth(ok);
      rec.method = "userpass";
    }
    switch (step.kind) {
      case proto::StepKind::NeedMore:
      case proto::StepKind::Authenticate:
        break;
      case proto::StepKind::Send:
        if (!co_await write_all(st->client, step.reply)) {
          rec.reason = st->expired ? "handshake timeout" : "client closed during handshake";
          disarm(st);
          co_return Next::Log;
        }
        break;
      case proto::StepKind::Malformed:
        disarm(st);
        if (!step.reply.empty()) {
          rec.reply = reply_code_of(step.reply);
          co_await write_all(st->client, step.reply);
        }
        rec.verdict = handshake_denied(step.failure) ? "deny" : "";
        rec.reason = std::string(proto::to_string(step.failure));
        if (!auth_refusal.empty()) rec.reason += ": " + auth_refusal;
        co_return Next::Log;
      case proto::StepKind::Request:
        early.assign(in.begin() + static_cast<std::ptrdiff_t>(off),
                     in.begin() + static_cast<std::ptrdiff_t>(have));
        done = true;
        break;
    }
  }
  disarm(st);
  w.counters.handshake.observe(Clock::now() - started);

  hx->req = hs.request();
  const proto::Request& req = hx->req;
  describe_request(req, rec);
  const auto fail = [&](ReplyKind kind, std::string reason) -> net::awaitable<void> {
    rec.reply = co_await send_reply(st->client, req.version, kind,
                                    proto::Address::from_ip(IpAddress::v4(0), 0));
    rec.reason = std::move(reason);
  };

  if (req.command == proto::Command::UdpAssociate) {
    co_await udp_associate(w, st, pol, req, make_rule_request(req, client_ep, iface), rec, started);
    co_return Next::Logged;
  }

  // --- the decision: the session plan says what to do next; this
  // coroutine only does the I/O it asks for (docs/sockd.md, "Pipeline").
  arm(st, settings.connect_timeout, false);
  const auto connect_deadline = Clock::now() + settings.connect_timeout;
  SessionPlan plan(*pol, make_rule_request(req, client_ep, iface));
  // Ends the session as the plan decided (Deny, Failed): hooks, hits, log, reply.
  const auto conclude = [&]() -> net::awaitable<void> {
    disarm(st);
    if (plan.decided() != nullptr) run_hooks(w, *plan.decided());
    if (plan.step() != PlanStep::Deny || plan.decided() != nullptr) {
      record_decision(*pol, plan.decided() != nullptr ? plan.decided()->rule : nullptr);
    }
    plan.describe(rec);
    co_await fail(plan.reply(), plan.reason());
  };
  while (plan.step() == PlanStep::Resolve || plan.step() == PlanStep::AskIdent) {
    if (plan.step() == PlanStep::Resolve) {
      NameLookup* r = lookup_for(w);
      if (r == nullptr) {
        plan.resolved({}, w.lookup_error);
        continue;
      }
      Resolved res = co_await r->resolve(plan.name());
      plan.resolved(std::move(res.addrs), res.error);
    } else {
      // RFC 1413, once per session: the answer holds for every address.
      IdentOutcome id = co_await ask_identd(st->client, plan.user(), settings.identd_timeout);
      plan.ident(id.result, std::move(id.user));
    }
  }
  if (plan.step() == PlanStep::Deny) {
    co_await conclude();
    co_return Next::Log;
  }
  const SessionPlan::Candidates& candidates = plan.candidates();

  if (plan.step() == PlanStep::Bind) {
    // --- BIND (RFC 1928 §4, §6; SOCKS4): listen on the egress toward the
    // expected peer, accept one connection, and only from a peer the plan expects.
    const Candidate& c = candidates.front();
    IpAddress local;
    const std::string egress_iface = c.check.route != nullptr ? c.check.route->egress_iface : "";
    if (c.check.route != nullptr && c.check.route->egress_addr) {
      local = *c.check.route->egress_addr;
    } else if (auto l = local_address_toward(c.addr, egress_iface)) {
      local = *l;
    } else {
      plan.failed(ReplyKind::NetUnreachable, "bind: no local address toward the peer");
      co_await conclude();
      co_return Next::Log;
    }
    const tcp::endpoint lep(to_asio(local), 0);
    st->acceptor.open(lep.protocol(), ec);
    // An interface line: the peer's connection must come in on it.
    if (!ec && bind_to_device(st->acceptor.native_handle(), egress_iface) != 0) {
      ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) st->acceptor.bind(lep, ec);
    if (!ec) st->acceptor.listen(1, ec);
    if (ec) {
      plan.failed(proto::reply_kind_from_errno(ec.value()), "bind: " + ec.message());
      co_await conclude();
      co_return Next::Log;
    }
    const auto bound_ep = st->acceptor.local_endpoint(ec);
    rec.reply = co_await send_reply(st->client, req.version, ReplyKind::Granted,
                                    proto::Address::from_ip(local, bound_ep.port()));
    // While waiting for the peer, notice a client that goes away.
    auto waiting = std::make_shared<bool>(true);
    auto client_gone = std::make_shared<bool>(false);
    net::co_spawn(st->client.get_executor(),
                  bind_client_watch(st, waiting, client_gone), net::detached);
    // A connection from another host is closed and logged; the wait goes on
    // for the expected peer until connect_timeout.
    tcp::endpoint peer;
    IpAddress peer_addr;
    for (;;) {
      co_await st->acceptor.async_accept(st->target, net::redirect_error(net::use_awaitable, ec));
      if (ec || !st->target.is_open()) break;
      peer = st->target.remote_endpoint(ec);
      peer_addr = ec ? IpAddress{} : from_asio(peer.address());
      if (!ec && plan.bind_peer_ok(peer_addr)) break;
      log.limited_event(log_limit, platform::LogLevel::Warning, "bind_refused",
                        {{"client", rec.client}, {"peer", ec ? "-" : from_asio(peer).to_string()},
                         {"dst", rec.dst}, {"reason", "not the expected peer"}});
      st->target.close(ec);
    }
    *waiting = false;
    if (!*client_gone) st->client.cancel(ec);  // ends the watch
    if (st->target.is_open()) live.add(st->target.native_handle());
    const bool timed_out = st->expired;
    disarm(st);
    st->acceptor.close(ec);
    if (*client_gone) {
      plan.failed(ReplyKind::GeneralFailure, "bind: client closed before the peer connected");
      run_hooks(w, *plan.decided());
      record_decision(*pol, plan.decided()->rule);
      plan.describe(rec);
      co_return Next::Log;
    }
    if (!st->target.is_open()) {
      plan.failed(timed_out ? ReplyKind::TtlExpired : ReplyKind::GeneralFailure,
                  timed_out ? "bind: no connection in time" : "bind: accept failed");
      co_await conclude();
      co_return Next::Log;
    }
    plan.bind_accepted(peer_addr);
    run_hooks(w, *plan.decided());
    record_decision(*pol, plan.decided()->rule);
    plan.describe(rec);
    rec.addr = from_asio(peer).to_string();
    rec.reply = co_await send_reply(st->client, req.version, ReplyKind::Granted,
                                    proto::Address::from_ip(peer_addr, peer.port()));
  } else {
    // --- CONNECT (happy eyeballs, RFC 8305 §5): the candidates in the
    // plan's order; a new attempt every kAttemptDelay until one connects;
    // each socket leaves by the egress sockd.route chose for its address.
    auto race = std::make_shared<Race>(st->client.get_executor(), candidates.size());
    std::size_t next = 0;
    auto next_attempt = Clock::now();
    const auto first_attempt = next_attempt;
    while (race->winner < 0 && !st->expired && Clock::now() < connect_deadline) {
      if (next < candidates.size() &&
          (Clock::now() >= next_attempt || race->failed == race->started)) {
        const Candidate& c = candidates[next];
        start_attempt(race, next, tcp::endpoint(to_asio(c.addr), req.destination.port),
                      c.check.route);
        ++next;
        next_attempt = Clock::now() + kAttemptDelay;
        continue;
      }
      if (next >= candidates.size() && race->failed == race->started) break;  // all failed
      auto wake_at = connect_deadline;
      if (next < candidates.size()) wake_at = std::min(wake_at, next_attempt);
      race->wake.expires_at(wake_at);
      co_await race->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    const bool timed_out = race->winner < 0 && (st->expired || Clock::now() >= connect_deadline);
    disarm(st);
    for (std::size_t i = 0; i < race->sockets.size(); ++i) {
      if (static_cast<int>(i) != race->winner) race->sockets[i].close(ec);  // the losers
    }
    if (race->winner < 0) {
      plan.connect_failed(std::min(next, candidates.size()) - 1, race->last_error, timed_out);
      co_await conclude();
      co_return Next::Log;
    }
    w.counters.connect.observe(Clock::now() - first_attempt);
    plan.connected(static_cast<std::size_t>(race->winner));
    run_hooks(w, *plan.decided());
    record_decision(*pol, plan.decided()->rule);
    plan.describe(rec);
    st->target = std::move(race->sockets[static_cast<std::size_t>(race->winner)]);
    live.add(st->target.native_handle());
    rec.reply =
        co_await send_reply(st->client, req.version, ReplyKind::Granted, bound_of(st->target));
  }

  // --- relay: the early bytes first; the caller runs the relay once this
  // frame, with everything the handshake needed, is gone.
  if (!early.empty()) {
    if (!co_await write_all(st->target, early)) {
      rec.event = "terminated";
      rec.reason = "target_error";
      co_return Next::Log;
    }
    rec.up += early.size();
  }
  co_return Next::Relay;
}

}  // namespace diode::sockd

// UDP ASSOCIATE (RFC 1928 §7): the association's sockets and pumps; each
// datagram is decided by a session plan of its own (Mode::Datagram).
#include <cctype>

#include "diode/sockd/identd.hpp"
#include "server_impl.hpp"

namespace diode::sockd {

using udp = net::ip::udp;

// One UDP association (RFC 1928 §7): the client-facing socket, one outgoing
// socket per family, and what the pumps share. Lives as long as its TCP
// control connection.
struct UdpAssoc {
  explicit UdpAssoc(const net::any_io_executor& ex, tcp::socket& ctl)
      : front(ex), out4(ex), out6(ex), idle(ex), control(ctl) {}
  udp::socket front;
  udp::socket out4;
  udp::socket out6;
  std::optional<IpAddress> egress4;  // where out4 / out6 were bound, if anywhere
  std::optional<IpAddress> egress6;
  std::string egress_iface4;  // the interface line's device, if that was the route
  std::string egress_iface6;
  bool used4 = false;
  bool used6 = false;
  net::steady_timer idle;
  tcp::socket& control;
  Clock::time_point last = Clock::now();
  IpAddress client_ip;
  std::uint16_t client_port = 0;  // 0: learned from the first datagram
  std::optional<udp::endpoint> client_udp;
  std::set<Endpoint> peers;  // destinations the client sent to: only they may answer
  std::map<std::string, std::vector<IpAddress>> names;  // resolved once per association
  std::string first_rule;
  const Rule* first_rule_ptr = nullptr;  // the rule the log names, counted at the end
  std::uint64_t up = 0;
  std::uint64_t down = 0;
  std::uint64_t dropped = 0;
  bool closed = false;
  std::string reason;

  void close(std::string why) {
    if (closed) return;
    closed = true;
    reason = std::move(why);
    error_code ignored;
    front.close(ignored);
    out4.close(ignored);
    out6.close(ignored);
    control.close(ignored);
    idle.cancel();
  }
};

namespace {

constexpr std::size_t kMaxPeers = 4096;
constexpr std::size_t kMaxNames = 64;
constexpr std::size_t kDatagram = 65536;

net::awaitable<void> udp_back_pump(std::shared_ptr<UdpAssoc> a, bool v6) {
  udp::socket& sock = v6 ? a->out6 : a->out4;
  std::vector<std::uint8_t> buf(kDatagram);
  std::array<std::uint8_t, 32> hdr{};
  error_code ec;
  while (!a->closed) {
    udp::endpoint from;
    const std::size_t n = co_await sock.async_receive_from(net::buffer(buf), from,
                                                           net::redirect_error(net::use_awaitable, ec));
    if (a->closed || ec == net::error::operation_aborted || ec == net::error::bad_descriptor) break;
    if (ec) continue;
    const Endpoint src{from_asio(from.address()), from.port()};
    if (!a->client_udp || a->peers.count(src) == 0) {
      ++a->dropped;  // not an answer to this client: the relay is no reflector
      continue;
    }
    const std::size_t h = proto::encode_udp_header(proto::Address::from_ip(src.addr, src.port), hdr);
    if (h == 0) continue;
    const std::array<net::const_buffer, 2> out{net::buffer(hdr.data(), h), net::buffer(buf.data(), n)};
    co_await a->front.async_send_to(out, *a->client_udp, net::redirect_error(net::use_awaitable, ec));
    if (!ec) {
      a->down += n;
      a->last = Clock::now();
    }
  }
}

}  // namespace

net::awaitable<void> Server::Impl::udp_front_pump(RelayWorker& w, std::shared_ptr<UdpAssoc> a,
                                                  std::shared_ptr<const RelayPolicy> pol, RuleRequest q) {
  std::vector<std::uint8_t> buf(kDatagram);
  error_code ec;
  q.command = RuleCommand::Udp;
  while (!a->closed) {
    udp::endpoint from;
    const std::size_t n = co_await a->front.async_receive_from(
        net::buffer(buf), from, net::redirect_error(net::use_awaitable, ec));
    if (a->closed || ec == net::error::operation_aborted || ec == net::error::bad_descriptor) break;
    if (ec) continue;
    // RFC 1928 §7: only the client's address; its port once known.
    if (from_asio(from.address()) != a->client_ip ||
        (a->client_port != 0 && from.port() != a->client_port) ||
        (a->client_udp && *a->client_udp != from)) {
      ++a->dropped;
      continue;
    }
    const proto::UdpParse p = proto::parse_udp_header(std::span<const std::uint8_t>(buf.data(), n));
    if (p.status != proto::ParseStatus::Ok || p.header.fragmented()) {
      ++a->dropped;  // no reassembly: FRAG != 0 is dropped, as §7 allows
      continue;
    }
    if (!a->client_udp) a->client_udp = from;
    const proto::Address& d = p.header.destination;
    q.dst_name.reset();
    q.dst_addr.reset();
    std::string name;
    if (d.type == proto::AddressType::Domain) {
      name = std::string(d.name.view());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      q.dst_name = name;
    } else {
      q.dst_addr = d.ip.unmapped();
    }
    q.dst_port = d.port;
    // Each datagram is decided by the plan, as a session is.
    SessionPlan plan(*pol, q, SessionPlan::Mode::Datagram);
    while (!a->closed &&
           (plan.step() == PlanStep::Resolve || plan.step() == PlanStep::AskIdent)) {
      if (plan.step() == PlanStep::Resolve) {
        auto it = a->names.find(name);
        if (it != a->names.end()) {
          plan.resolved(it->second);
        } else if (NameLookup* r = lookup_for(w); r != nullptr) {
          Resolved res = co_await r->resolve(name);
          if (a->closed) break;
          if (a->names.size() < kMaxNames) a->names.emplace(name, res.addrs);
          plan.resolved(std::move(res.addrs), res.error);
        } else {
          plan.resolved({}, w.lookup_error);
        }
      } else {
        IdentOutcome id = co_await ask_identd(a->control, q.user, pol->settings.identd_timeout);
        if (a->closed) break;
        // Kept in q: identd is asked once per association.
        q.ident = id.result;
        q.ident_user = id.user;
        plan.ident(id.result, std::move(id.user));
      }
    }
    if (a->closed) break;
    if (plan.step() != PlanStep::Send) {
      ++a->dropped;
      continue;
    }
    const std::optional<IpAddress> target = plan.target();
    const Check& chosen = *plan.decided();
    if (a->first_rule.empty() && chosen.rule != nullptr) {
      a->first_rule = rule_label(*chosen.rule);
      a->first_rule_ptr = chosen.rule;
    }
    const bool v6 = target->family == platform::Family::V6;
    udp::socket& out = v6 ? a->out6 : a->out4;
    std::optional<IpAddress>& egress = v6 ? a->egress6 : a->egress4;
    bool& used = v6 ? a->used6 : a->used4;
    if (!out.is_open()) {
      ++a->dropped;
      continue;
    }
    // A socket takes one source address: the first routed datagram binds it.
    std::optional<IpAddress> want;
    if (chosen.route != nullptr && chosen.route->egress_addr) want = chosen.route->egress_addr;
    const std::string want_iface = chosen.route != nullptr ? chosen.route->egress_iface : "";
    std::string& egress_iface = v6 ? a->egress_iface6 : a->egress_iface4;
    if (!used) {
      if (want) {
        out.bind(udp::endpoint(to_asio(*want), 0), ec);
        if (ec) {
          ++a->dropped;
          continue;
        }
      }
      if (bind_to_device(out.native_handle(), want_iface) != 0) {
        ++a->dropped;
        continue;
      }
      egress = want;
      egress_iface = want_iface;
      used = true;
    } else if (want != egress || want_iface != egress_iface) {
      ++a->dropped;
      continue;
    }
    const std::size_t len = n - p.payload_offset;
    co_await out.async_send_to(net::buffer(buf.data() + p.payload_offset, len),
                               udp::endpoint(to_asio(*target), d.port),
                               net::redirect_error(net::use_awaitable, ec));
    if (ec) continue;
    if (a->peers.size() < kMaxPeers) a->peers.insert(Endpoint{*target, d.port});
    a->up += len;
    a->last = Clock::now();
  }
}

net::awaitable<void> Server::Impl::udp_associate(RelayWorker& w, std::shared_ptr<SessionState> st,
                                                 std::shared_ptr<const RelayPolicy> pol,
                                                 proto::Request req, RuleRequest q,
                                                 SessionRecord& rec, Clock::time_point started) {
  error_code ec;
  const auto finish = [&] {
    rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    this->finish(w, rec);
  };
  const proto::Address none = proto::Address::from_ip(IpAddress::v4(0), 0);
  {
    const SessionPlan plan(*pol, q);
    if (plan.step() == PlanStep::Deny) {
      record_decision(*pol, nullptr);
      plan.describe(rec);
      rec.reply = co_await send_reply(st->client, req.version, plan.reply(), none);
      finish();
      co_return;
    }
  }
  auto a = std::make_shared<UdpAssoc>(st->client.get_executor(), st->client);
  // Datagrams are taken only from the control connection's peer: a DST.ADDR
  // naming another host would let that host (or a spoofer) use the relay.
  a->client_ip = q.src_addr;
  a->client_port = req.destination.port;
  // The client sends its datagrams to the address it reached us on.
  const auto local = st->client.local_endpoint(ec);
  if (!ec) {
    const udp::endpoint fep(local.address(), 0);
    a->front.open(fep.protocol(), ec);
    if (!ec) a->front.bind(fep, ec);
  }
  if (ec) {
    rec.event = "failed";
    rec.reply = co_await send_reply(st->client, req.version, proto::reply_kind_from_errno(ec.value()), none);
    rec.reason = "udp: " + ec.message();
    finish();
    co_return;
  }
  a->out4.open(udp::v4(), ec);
  a->out6.open(udp::v6(), ec);
  if (a->out6.is_open()) a->out6.set_option(net::ip::v6_only(true), ec);
  const auto fb = a->front.local_endpoint(ec);
  rec.verdict = "permit";
  rec.reply = co_await send_reply(st->client, req.version, ReplyKind::Granted,
                                  proto::Address::from_ip(from_asio(fb.address()), fb.port()));
  if (rec.reply != 0) {
    a->close("reply failed");
  } else {
    const auto ex = st->client.get_executor();
    net::co_spawn(ex, udp_front_pump(w, a, pol, q), net::detached);
    net::co_spawn(ex, udp_back_pump(a, false), net::detached);
    net::co_spawn(ex, udp_back_pump(a, true), net::detached);
    // The idle watchdog.
    net::co_spawn(ex, [](std::shared_ptr<UdpAssoc> as, std::chrono::milliseconds idle) -> net::awaitable<void> {
      error_code e;
      while (!as->closed) {
        as->idle.expires_at(as->last + idle);
        co_await as->idle.async_wait(net::redirect_error(net::use_awaitable, e));
        if (!as->closed && Clock::now() >= as->last + idle) as->close("idle");
      }
    }(a, pol->settings.idle_timeout), net::detached);
    // RFC 1928 §7: the association ends with its TCP connection.
    std::array<char, 512> sink{};
    for (;;) {
      co_await st->client.async_read_some(net::buffer(sink), net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
    }
    a->close(ec == net::error::eof ? "eof" : (a->closed ? a->reason : "client_error"));
  }
  rec.event = "terminated";
  // An association that relayed nothing was decided by no line: it counts
  // for none (its log line has no rule= either).
  if (a->first_rule_ptr != nullptr) record_decision(*pol, a->first_rule_ptr);
  rec.rule = a->first_rule;
  rec.up = a->up;
  rec.down = a->down;
  rec.reason = a->reason;
  finish();
}

}  // namespace diode::sockd

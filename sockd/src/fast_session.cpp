// The I/O-free steps of sockd's hand-written session loops (fast_session.hpp),
// the same calls in the same order as the Asio path's negotiate().
#include "fast_session.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace diode::sockd::fast {

void FastSession::gather(std::span<const std::uint8_t> bytes) {
  const std::size_t n = std::min(bytes.size(), out.size() - out_len);
  std::copy_n(bytes.data(), n, out.data() + out_len);
  out_len += n;
}

bool fill_sockaddr(const IpAddress& a, std::uint16_t port, sockaddr_storage& ss, socklen_t& len) {
  ss = {};
  if (a.family == platform::Family::V4) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(a.v4_value());
    std::memcpy(&ss, &sin, sizeof sin);
    len = sizeof sin;
    return true;
  }
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  std::memcpy(&sin6.sin6_addr, a.bytes.data(), 16);
  std::memcpy(&ss, &sin6, sizeof sin6);
  len = sizeof sin6;
  return true;
}

Endpoint from_sockaddr(const sockaddr_storage& ss) {
  Endpoint ep;
  if (ss.ss_family == AF_INET) {
    sockaddr_in sin{};
    std::memcpy(&sin, &ss, sizeof sin);
    ep.addr = IpAddress::v4(ntohl(sin.sin_addr.s_addr));
    ep.port = ntohs(sin.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6{};
    std::memcpy(&sin6, &ss, sizeof sin6);
    ep.addr.family = platform::Family::V6;
    std::memcpy(ep.addr.bytes.data(), &sin6.sin6_addr, 16);
    ep.addr = ep.addr.unmapped();
    ep.port = ntohs(sin6.sin6_port);
  }
  return ep;
}

std::optional<Endpoint> local_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return from_sockaddr(ss);
}

bool admit(Server::Impl& server, RelayWorker& w, int fd, const Endpoint& client,
           const FastListener& l, FastSession& s, Clock::time_point now) {
  std::string why;
  // The session decides under the policy in force when it was accepted.
  std::shared_ptr<const RelayPolicy> pol = server.worker_policy(w);
  auto slot = server.admit(client.addr, pol->settings, why);
  w.counters.accepted.fetch_add(1, std::memory_order_relaxed);
  if (!slot) {
    SessionRecord rec;
    rec.client = client.to_string();
    rec.reason = why;
    w.counters.add_outcome(Outcome::Limited);
    server.log_limited(rec);
    return false;
  }
  s.started = now;
  s.listener = &l;
  s.peer = client;
  s.slot.emplace(std::move(*slot));
  s.detail = server.log.enabled(platform::LogLevel::Info);
  // A wildcard listener: the address this client reached is the socket's own.
  if (l.local.addr.is_unspecified()) s.reached = local_of(fd);
  s.deadline = s.started + pol->settings.handshake_timeout;
  s.hx = std::make_unique<HandshakeBuffers>(handshake_options(pol->settings, pol->users != nullptr),
                                            0);
  s.hx->started = s.started;
  s.pol = std::move(pol);
  return true;
}

namespace {

// Keeps the handshake machine and the bytes of `in` from `off` on, not fed
// yet, for the Asio path (`in` may be hx.in itself).
HsNext hand_off(FastSession& s, std::span<const std::uint8_t> in, std::size_t off) {
  HandshakeBuffers& hx = *s.hx;
  const std::size_t n = in.size() - off;
  // The Asio path reads into hx.in next: never less than its read size.
  // (No resize when `in` is hx.in: it holds kReadSize already.)
  if (hx.in.size() < std::max(n, HandshakeBuffers::kReadSize)) {
    hx.in.resize(std::max(n, HandshakeBuffers::kReadSize));
  }
  std::memmove(hx.in.data(), in.data() + off, n);
  hx.have = n;
  // What was fed may have held a password: only the unfed bytes stay.
  proto::wipe_except(hx.in, 0, hx.have);
  s.handoff = true;
  return HsNext::HandOff;
}

// The decision: the same plan, the same calls as negotiate().
HsNext decide(RelayWorker& w, FastSession& s, std::span<const std::uint8_t> in, std::size_t off,
              Clock::time_point now) {
  const proto::Request& req = s.hx->req;
  describe_request(req, s.rec, s.detail);
  s.version = req.version;
  if (req.command == proto::Command::UdpAssociate) return hand_off(s, in, off);
  s.plan = make_recycled<SessionPlan>(*s.pol,
                                      make_rule_request(req, s.peer, s.listener->iface));
  SessionPlan& plan = *s.plan;
  const bool ours = plan.step() == PlanStep::Deny ||
                    (plan.step() == PlanStep::Connect && plan.candidates().size() == 1);
  if (ours) w.counters.handshake.observe(now - s.started);  // else negotiate()'s
  if (plan.step() == PlanStep::Deny) {
    s.hx.reset();
    conclude(w, s);
    return HsNext::Final;
  }
  if (!ours) {
    // A name, identd, BIND, several addresses to race: the Asio path's
    // (negotiate() builds the same plan again from the same request).
    s.plan.reset();
    return hand_off(s, in, off);
  }
  s.port = req.destination.port;
  s.hx.reset();
  return HsNext::Connect;
}

}  // namespace

HsNext feed(RelayWorker& w, FastSession& s, std::span<const std::uint8_t> in,
            Clock::time_point now, std::size_t& off) {
  HandshakeBuffers& hx = *s.hx;
  proto::ServerHandshake& hs = hx.hs;
  off = 0;
  for (;;) {
    const proto::Step step = hs.feed(in.subspan(off));
    off += step.consumed;
    switch (step.kind) {
      case proto::StepKind::NeedMore:
        if (off < in.size()) continue;  // cannot happen: NeedMore takes everything
        return HsNext::NeedMore;
      case proto::StepKind::Send:
        s.gather(step.reply);
        continue;
      case proto::StepKind::Authenticate:
        // A password check is the Asio path's (its hash threads, the
        // throttle): hand the machine over with the bytes not fed yet.
        return hand_off(s, in, off);
      case proto::StepKind::Malformed:
        if (!step.reply.empty()) {
          s.rec.reply = step.reply.size() >= 2 ? step.reply[1] : -1;
          s.gather(step.reply);
        }
        s.rec.verdict = handshake_denied(step.failure) ? "deny" : "";
        s.rec.reason = std::string(proto::to_string(step.failure));
        return HsNext::Final;
      case proto::StepKind::Request:
        hx.req = hs.request();
        s.early.assign(in.begin() + static_cast<std::ptrdiff_t>(off), in.end());
        return decide(w, s, in, off, now);
    }
  }
}

void run_hooks(RelayWorker& w, const Check& c) {
  auto hooks = hooks_of(c);
  if (hooks.empty()) return;
  RelayWorker* wp = &w;
  net::post(w.io, [wp, hooks = std::move(hooks)] {
    for (const auto& [command, origin] : hooks) wp->hooks->run(command, origin);
  });
}

void conclude(RelayWorker& w, FastSession& s) {
  SessionPlan& plan = *s.plan;
  if (plan.decided() != nullptr) run_hooks(w, *plan.decided());
  if (plan.step() != PlanStep::Deny || plan.decided() != nullptr) {
    record_decision(*s.pol, plan.decided() != nullptr ? plan.decided()->rule : nullptr,
                    w.loop_wall);
  }
  plan.describe(s.rec, s.detail);
  proto::Encoded enc;
  s.rec.reply =
      encode_reply(s.version, plan.reply(), proto::Address::from_ip(IpAddress::v4(0), 0), enc);
  s.rec.reason = plan.reason();
  s.gather(enc.view());
  s.plan.reset();
}

void granted(RelayWorker& w, FastSession& s, const std::optional<Endpoint>& bound,
             Clock::time_point now) {
  SessionPlan& plan = *s.plan;
  w.counters.connect.observe(now - s.connect_started);
  plan.connected(0);
  run_hooks(w, *plan.decided());
  record_decision(*s.pol, plan.decided()->rule, w.loop_wall);
  plan.describe(s.rec, s.detail);
  proto::Encoded enc;
  s.rec.reply = encode_reply(
      s.version, ReplyKind::Granted,
      proto::Address::from_ip(bound ? bound->addr : IpAddress::v4(0), bound ? bound->port : 0),
      enc);
  s.gather(enc.view());
  s.plan.reset();
  s.idle = s.pol->settings.idle_timeout;
  s.pol.reset();  // as on the Asio path, the relay keeps only its idle timeout
}

void post_hand_off(Server::Impl& server, RelayWorker& w, FastSession& s, int fd,
                   bool nonblocking) {
  struct Pack {
    int fd;
    int family;
    bool nonblocking;
    Endpoint peer;
    Endpoint listener;
    std::string iface;
    std::optional<Server::Impl::Slot> slot;
    std::shared_ptr<const RelayPolicy> pol;
    std::unique_ptr<HandshakeBuffers> hx;
  };
  auto p = std::make_shared<Pack>();
  p->fd = fd;
  p->family = s.listener->family;
  p->nonblocking = nonblocking;
  p->peer = s.peer;
  p->listener = s.listener->local;
  p->iface = s.listener->iface;
  p->slot.emplace(std::move(*s.slot));
  s.slot.reset();
  p->pol = std::move(s.pol);
  p->hx = std::move(s.hx);
  Server::Impl* impl = &server;
  RelayWorker* wp = &w;
  net::post(w.io, [impl, wp, p] {
    tcp::socket sock(wp->io);
    error_code ec;
    const tcp protocol = p->family == AF_INET6 ? tcp::v6() : tcp::v4();
    if (p->nonblocking) {
      if (!adopt_socket(sock, protocol, p->fd, ec)) return;  // the slot goes with the pack
    } else {
      sock.assign(protocol, p->fd, ec);
      if (ec) {
        ::close(p->fd);
        return;
      }
    }
    net::co_spawn(wp->io,
                  impl->session(*wp, std::move(sock), p->peer, p->listener, p->iface,
                                std::move(*p->slot), std::move(p->pol), std::move(p->hx)),
                  net::detached);
  });
}

void take_listener(tcp::socket& acc, const std::string& iface, FastListener& l) {
  error_code ec;
  l.fd = acc.release(ec);
  l.iface = iface;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(l.fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    l.family = ss.ss_family;
    l.local = from_sockaddr(ss);
  }
  l.local_text = l.local.to_string();
}

void give_back_fds(Server::Impl& server, RelayWorker& w, std::vector<std::pair<int, int>> fds) {
  Server::Impl* impl = &server;
  RelayWorker* wp = &w;
  net::post(w.io, [impl, wp, fds = std::move(fds)] {
    for (std::size_t i = 0; i < fds.size() && i < wp->acceptors.size(); ++i) {
      auto& [acc, iface] = wp->acceptors[i];
      const auto [fd, family] = fds[i];
      error_code ec;
      acc->assign(family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
      if (ec) {
        ::close(fd);
        continue;
      }
      net::co_spawn(wp->io, impl->accept_loop(*wp, *acc, iface), net::detached);
    }
  });
}

Fill fill_pipe(PipePool& pool, int src, std::size_t chunk, PipePool::Pipe& pipe,
               std::uint32_t& inpipe, int& err) {
  pipe = pool.get();
  if (pipe.read_fd < 0) return Fill::NoPipe;
  for (;;) {
    const ssize_t r =
        ::splice(src, nullptr, pipe.write_fd, nullptr, chunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (r > 0) {
      inpipe = static_cast<std::uint32_t>(r);
      return Fill::Filled;
    }
    err = r == 0 ? 0 : errno;
    if (r < 0 && err == EINTR) continue;
    pool.put(pipe);
    pipe = {};
    if (r == 0) return Fill::Eof;
    return err == EAGAIN || err == EWOULDBLOCK ? Fill::Empty : Fill::Failed;
  }
}

void finish(Server::Impl& server, RelayWorker& w, FastSession& s, bool relay,
            Clock::time_point now) {
  if (relay) {
    s.rec.event = "terminated";
    s.rec.up += s.up;
    s.rec.down = s.down;
    s.rec.reason = std::string(to_string(s.end));
  }
  s.rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(now - s.started);
  if (server.log.enabled(platform::LogLevel::Info)) {
    // Formatted only for a line that is written. (A session admitted while
    // the log was above info, which a reload then lowered, has no
    // destination or user in its line.)
    s.rec.start = std::chrono::system_clock::now() -
                  std::chrono::duration_cast<std::chrono::system_clock::duration>(now - s.started);
    s.rec.client = s.peer.to_string();
    if (!s.listener->local.addr.is_unspecified()) {
      s.rec.listener = s.listener->local_text;
    } else {
      s.rec.listener = s.reached ? s.reached->to_string() : "";
    }
  }
  server.finish(w, s.rec);
}

}  // namespace diode::sockd::fast

#include "diode/resolver/server.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <sstream>
#include <map>
#include <memory>
#include <mutex>
#include <iostream>
#include <thread>
#include <unordered_map>

#include "diode/platform/asio.hpp"
#include "diode/platform/control_client.hpp"
#include "diode/platform/log_text.hpp"
#include "diode/platform/notify.hpp"
#include "diode/platform/privileges.hpp"
#include "diode/platform/sockets.hpp"
#include "diode/platform/metrics.hpp"
#include "diode/resolver/aggressive.hpp"
#include "diode/resolver/anchor_state.hpp"
#include "diode/resolver/answer.hpp"
#include "diode/resolver/builder.hpp"
#include "diode/resolver/cache.hpp"
#include "diode/resolver/cache_file.hpp"
#include "diode/resolver/front.hpp"
#include "diode/resolver/iterator.hpp"

namespace diode::resolver {

namespace {

namespace net = boost::asio;
using net::awaitable;
using net::use_awaitable;
using udp = net::ip::udp;
using tcp = net::ip::tcp;
using boost::system::error_code;
using platform::Family;
using platform::IpAddress;
using std::chrono::milliseconds;

constexpr std::size_t kMaxInflight = 10000;   // resolutions per thread (the front end keeps count)
constexpr std::size_t kMaxTcpClients = 256;   // connections per thread
constexpr std::size_t kMaxTcpPending = 64;    // unanswered queries per connection
constexpr std::size_t kMaxTcpPerClient = 8;   // connections per client address (IPv6: /64)
constexpr std::size_t kTcpQueueLimit = 64 * 1024;    // queued answer bytes: stop reading
constexpr std::size_t kTcpQueueHard = 1024 * 1024;   // queued answer bytes: close
constexpr std::size_t kMaxJoiners = 256;      // clients waiting on one resolution
constexpr std::size_t kUdpBurst = 256;        // datagrams handled per wake-up of a UDP socket
constexpr std::size_t kUdpBatch = 32;         // datagrams per recvmmsg/sendmmsg
constexpr std::size_t kUdpQueryMax = 4096;    // a larger UDP query is dropped
constexpr std::uint32_t kFailureTtl = 5;      // seconds a SERVFAIL is cached (RFC 9520)
constexpr std::uint16_t kDnsPort = 53;
// DNSSEC work bounds (KeyTrap, CVE-2023-50387; NSEC3 floods, CVE-2023-50868):
// per client question, and per thread and second for all questions.
constexpr unsigned kSigChecksPerQuery = 60;
constexpr unsigned kHashesPerQuery = 20000;
constexpr unsigned kSigChecksPerSecond = 4000;
constexpr unsigned kHashesPerSecond = 2000000;
constexpr unsigned kValidationQueries = 2;  // x max_upstream_queries, for one validation's fetches
constexpr std::uint32_t kBogusTtl = 60;  // seconds a bogus answer is answered SERVFAIL unasked
constexpr std::size_t kAnchorStateMax = 1024 * 1024;  // a larger state file is refused

using platform::LogLevel;

// `k=v k=v` text (Stats::to_text) as log fields.
platform::LogFields fields_of(const std::string& pairs, platform::LogFields out = {}) {
  std::size_t start = 0;
  while (start < pairs.size()) {
    std::size_t end = pairs.find(' ', start);
    if (end == std::string::npos) end = pairs.size();
    const std::string kv = pairs.substr(start, end - start);
    const std::size_t eq = kv.find('=');
    if (eq != std::string::npos) out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    start = end + 1;
  }
  return out;
}

// A burst of queries must not overflow a small default receive buffer
// (about 200 KiB, some 1,500 queries): 4 MiB where the process may set it
// (SO_RCVBUFFORCE needs CAP_NET_ADMIN), else as much as the system allows.
void enlarge_receive_buffer(int fd) {
  const int want = 4 * 1024 * 1024;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  }
}

Time now_ms() {
  return std::chrono::duration_cast<milliseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
}

net::ip::address to_asio(const IpAddress& a) {
  if (a.family == Family::V4) {
    net::ip::address_v4::bytes_type b{};
    std::copy_n(a.bytes.begin(), 4, b.begin());
    return net::ip::address_v4(b);
  }
  net::ip::address_v6::bytes_type b{};
  std::copy_n(a.bytes.begin(), 16, b.begin());
  return net::ip::address_v6(b);
}

IpAddress from_asio(const net::ip::address& a) {
  IpAddress out;
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
  } else {
    out.family = Family::V6;
    const auto b = a.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
  }
  return out.unmapped();
}

// Query IDs and 0x20 bits come from the kernel's CSPRNG (RFC 5452 §9.2).
class SecureRandom {
 public:
  std::uint32_t next() {
    if (pos_ + 4 > buf_.size()) refill();
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | buf_[pos_++];
    return v;
  }
  std::uint16_t next16() { return static_cast<std::uint16_t>(next() >> 16); }

 private:
  void refill() {
    std::size_t got = 0;
    for (int tries = 0; got < buf_.size() && tries < 100; ++tries) {
      const ssize_t n = ::getrandom(buf_.data() + got, buf_.size() - got, 0);
      if (n > 0) got += static_cast<std::size_t>(n);
      else if (errno != EINTR) break;
    }
    if (got < buf_.size()) {
      // Without unpredictable IDs the cache can be poisoned: stop. Straight
      // to stderr: this deep, there is no logger at hand, and we abort.
      static constexpr char kLine[] = "event=fatal reason=getrandom_failed\n";
      (void)!::write(2, kLine, sizeof kLine - 1);
      std::abort();
    }
    pos_ = 0;
  }
  std::array<std::uint8_t, 512> buf_{};
  std::size_t pos_ = 512;
};

// Closes `sock` when `d` passes, unless the Deadline is gone first: how a
// whole exchange (several receives, or connect+write+read) gets one timeout.
class Deadline {
 public:
  template <class Socket>
  Deadline(net::io_context& io, const std::shared_ptr<Socket>& sock, milliseconds d)
      : timer_(std::make_shared<net::steady_timer>(io, d)) {
    timer_->async_wait([w = std::weak_ptr<Socket>(sock)](error_code ec) {
      if (ec) return;
      if (auto s = w.lock()) {
        error_code ignored;
        s->close(ignored);
      }
    });
  }
  ~Deadline() { timer_->cancel(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

 private:
  std::shared_ptr<net::steady_timer> timer_;
};

std::uint16_t read16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
void write16(std::uint8_t* p, std::size_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

// What a reload may change, built from gateway.toml and the root hints.
// Workers hold it by shared_ptr: a reload swaps in a new one, and work
// under way keeps the one it started with.
struct Policy {
  std::vector<platform::Prefix> allow;
  CacheSettings cache;  // for the whole process; each worker has its share
  IteratorSettings iter;
  std::vector<IpAddress> outgoing;
  RootHints hints;
  std::uint16_t edns_size = 1232;
  milliseconds tcp_idle{10000};
  bool builtin_local_zones = true;
  bool prefetch = true;
  // DNSSEC: the anchors (null = no validation) and the negative trust anchors.
  std::shared_ptr<const dnssec::TrustAnchors> anchors;
  std::vector<Name> insecure_domains;
  bool aggressive_nsec = true;  // RFC 8198, with anchors only
};

std::shared_ptr<const Policy> make_policy(const platform::GatewayConfig& cfg, RootHints hints,
                                          std::shared_ptr<const dnssec::TrustAnchors> anchors) {
  auto p = std::make_shared<Policy>();
  const platform::ResolverSettings& rs = cfg.resolver;
  auto secs = [](milliseconds m) {
    return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(m).count());
  };
  p->allow = platform::effective_resolver_allow(cfg);
  p->cache.max_bytes = rs.cache_size;
  p->cache.min_ttl = secs(rs.min_ttl);
  p->cache.max_ttl = secs(rs.max_ttl);
  p->cache.max_negative_ttl = secs(rs.max_negative_ttl);
  p->cache.serve_stale = rs.serve_stale;
  p->cache.max_stale = secs(rs.max_stale);
  p->cache.stale_answer_ttl = secs(rs.stale_answer_ttl);
  p->iter.max_upstream_queries = rs.max_upstream_queries;
  p->iter.max_referral_depth = rs.max_referral_depth;
  p->iter.max_cname_chain = rs.max_cname_chain;
  p->iter.max_ns_names_resolved = rs.max_ns_names_resolved;
  p->iter.upstream_timeout = rs.upstream_timeout;
  p->iter.qname_minimisation = rs.qname_minimisation;
  p->iter.query_documentation_addresses = rs.query_documentation_addresses;
  p->iter.refused_networks =
      std::make_shared<const std::vector<platform::Prefix>>(refused_server_networks(cfg));
  p->edns_size = rs.edns_buffer_size;
  p->tcp_idle = rs.tcp_idle_timeout;
  p->builtin_local_zones = rs.builtin_local_zones;
  p->prefetch = rs.prefetch;
  p->outgoing = rs.outgoing_address;
  if (p->outgoing.empty()) {
    if (const auto* ext = platform::external_interface(cfg)) {
      for (const auto& a : ext->addresses) p->outgoing.push_back(a.addr);
    }
  }
  p->hints = std::move(hints);
  p->anchors = std::move(anchors);
  p->iter.dnssec = p->anchors != nullptr;
  p->aggressive_nsec = rs.aggressive_nsec;
  for (const std::string& d : rs.insecure_domains) {
    if (auto n = Name::from_text(d)) p->insecure_domains.push_back(*n);
  }
  return p;
}

// Where the daemon listens, when no socket was handed down: the DNS
// sockets gateway.toml implies (derived once, in platform::implied_sockets).
// What a reload cannot change.
std::vector<platform::SocketSpec> dns_sockets(const platform::GatewayConfig& cfg) {
  std::vector<platform::SocketSpec> out;
  for (auto& spec : platform::implied_sockets(cfg)) {
    if (spec.purpose == platform::SocketPurpose::DnsUdp || spec.purpose == platform::SocketPurpose::DnsTcp) {
      out.push_back(std::move(spec));
    }
  }
  return out;
}

// resolver.threads, 0 meaning one per core.
unsigned thread_count(const platform::GatewayConfig& cfg) {
  const unsigned t = cfg.resolver.threads;
  return t == 0 ? std::max(1U, std::thread::hardware_concurrency()) : t;
}

struct Shared {
  Shared(const DaemonOptions& o, platform::Logger& l)
      : opts(o), log(l), cache_file(o.config.resolver.cache_file), cache_size(o.config.resolver.cache_size) {}
  DaemonOptions opts;
  platform::Logger& log;
  // resolver.cache_file and cache_size as last (re)loaded; main thread only.
  std::string cache_file;
  std::uint64_t cache_size = 0;
  // Lines that clients can cause (a SERVFAIL per query) go through this.
  platform::LogRateLimiter log_limit;
  Stats stats;
  // TCP connections per client (an IPv4 address, an IPv6 /64), all threads.
  std::mutex tcp_mu;
  std::map<IpAddress, std::size_t> tcp_per_client;
  // RFC 5011 (files.trust_anchor_state): the key states and the anchors
  // built from them, which every policy uses while `tracker` is set. Main
  // thread only; null tracker = no automated updates.
  std::string anchor_state_file;
  std::unique_ptr<dnssec::AnchorTracker> tracker;
  std::shared_ptr<const dnssec::TrustAnchors> managed_anchors;
};

// The key of a client for the per-client connection cap: an IPv4 address,
// or the /64 of an IPv6 address (one host has a whole /64).
IpAddress client_key(IpAddress a) {
  a = a.unmapped();
  if (a.family == Family::V6) std::fill(a.bytes.begin() + 8, a.bytes.begin() + 16, 0);
  return a;
}

struct TcpConn {
  explicit TcpConn(tcp::socket s, net::io_context& io) : sock(std::move(s)), idle(io), drained(io) {}
  tcp::socket sock;
  net::steady_timer idle;
  net::steady_timer drained;  // the reader waits on it while the queue is full
  std::deque<std::vector<std::uint8_t>> queue;
  std::size_t queued_bytes = 0;
  std::uint64_t written = 0;          // answers written, to see a client that does not drain
  std::uint64_t written_at_arm = 0;
  bool writing = false;
  bool closed = false;
  std::size_t pending = 0;
  void close() {
    closed = true;
    error_code ignored;
    sock.close(ignored);
    idle.cancel();
    drained.cancel();
  }
};

struct Responder {
  udp::socket* udp_sock = nullptr;
  udp::endpoint udp_peer;
  std::shared_ptr<TcpConn> tcp_conn;
};

class Worker {
 public:
  Worker(Shared& shared, std::shared_ptr<const Policy> policy, unsigned index, unsigned count)
      : sh_(shared),
        index_(index),
        policy_(std::move(policy)),
        count_(count),
        cache_(scaled(policy_->cache, count)),
        front_(cache_, shared.stats, front_settings(*policy_)) {}

  /// A reloaded configuration; called on this worker's own thread.
  void apply(std::shared_ptr<const Policy> p) {
    // Other anchors (a reload, an RFC 5011 change): what the chain walk
    // proved from the old ones is not kept.
    if (p->anchors != policy_->anchors) zone_cache_.clear();
    policy_ = std::move(p);
    cache_.set_settings(scaled(policy_->cache, count_));
    front_.set_settings(front_settings(*policy_));
    // New anchors, negative trust anchors or aggressive_nsec: the kept
    // denials are proved again under the new policy.
    denial_cache_.clear();
    publish();
  }

  net::io_context& io() { return io_; }
  Cache& cache() { return cache_; }
  const std::shared_ptr<const Policy>& policy() const { return policy_; }

  /// The DNSKEY set of trust point `zone` for RFC 5011, asked upstream
  /// (the message cache bypassed) through the iterator like any question;
  /// on this worker's own thread.
  awaitable<Outcome> fetch_dnskeys(Name zone) {
    const std::shared_ptr<const Policy> policy = policy_;
    IteratorSettings is = policy->iter;
    is.refresh = true;
    Work work;
    Outcome out = co_await run_iterator(Question{zone, rrtype::kDNSKEY, rrclass::kIN}, is, policy, work);
    co_return out;
  }
  /// The cache's size as last published by this worker's own thread, so
  /// that another thread may read it without a data race.
  std::size_t published_entries() const { return entries_.load(std::memory_order_relaxed); }
  std::size_t published_bytes() const { return bytes_.load(std::memory_order_relaxed); }
  void publish() {
    entries_.store(cache_.entries(), std::memory_order_relaxed);
    bytes_.store(cache_.bytes(), std::memory_order_relaxed);
  }

  // Takes over listening sockets opened by someone else (the supervisor,
  // systemd, --udp-fd/--tcp-fd): UDP sockets bound, TCP sockets bound and
  // listening. SO_REUSEPORT cannot be added to a socket already bound, so
  // every worker serves its own duplicate of each inherited socket: a
  // datagram or connection wakes every worker, one takes it and the others'
  // recvmmsg or accept finds the queue empty (EAGAIN) and waits again. The
  // callers keep the originals and close them once every worker has its copy.
  bool adopt(const std::vector<int>& udp_fds, const std::vector<int>& tcp_fds) {
    for (const bool is_udp : {true, false}) {
      for (const int fd : is_udp ? udp_fds : tcp_fds) {
        int type = 0;
        socklen_t tl = sizeof type;
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0 ||
            type != (is_udp ? SOCK_DGRAM : SOCK_STREAM) ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
          sh_.log.event(LogLevel::Error, "error",
                        {{"what", "inherited_socket"}, {"fd", std::to_string(fd)},
                         {"reason", std::string("not a bound ") + (is_udp ? "UDP" : "TCP") + " socket"}});
          return false;
        }
        error_code ec;
        const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (own < 0) {
          ec = error_code(errno, boost::system::system_category());
        } else if (is_udp) {
          auto u = std::make_unique<udp::socket>(io_);
          u->assign(ss.ss_family == AF_INET ? udp::v4() : udp::v6(), own, ec);
          if (!ec) {
            enlarge_receive_buffer(own);
            udp_.push_back(std::move(u));
          }
        } else {
          auto t = std::make_unique<tcp::acceptor>(io_);
          t->assign(ss.ss_family == AF_INET ? tcp::v4() : tcp::v6(), own, ec);
          if (!ec) tcp_.push_back(std::move(t));
        }
        if (ec) {
          if (own >= 0) ::close(own);
          sh_.log.event(LogLevel::Error, "error",
                        {{"what", "inherited_socket"}, {"fd", std::to_string(fd)}, {"error", ec.message()}});
          return false;
        }
      }
    }
    return true;
  }

  std::string describe_sockets() const {
    std::string out;
    for (const auto& u : udp_) {
      error_code ec;
      const auto ep = u->local_endpoint(ec);
      if (!ec) out += (out.empty() ? "" : ",") + platform::Endpoint{from_asio(ep.address()), ep.port()}.to_string() + "/udp";
    }
    for (const auto& t : tcp_) {
      error_code ec;
      const auto ep = t->local_endpoint(ec);
      if (!ec) out += (out.empty() ? "" : ",") + platform::Endpoint{from_asio(ep.address()), ep.port()}.to_string() + "/tcp";
    }
    return out;
  }

  bool open(const std::vector<platform::SocketSpec>& listen, bool reuse_port) {
    for (const auto& spec : listen) {
      const platform::Endpoint& ep = spec.endpoint;
      error_code ec;
      if (spec.purpose == platform::SocketPurpose::DnsTcp) {
        auto t = std::make_unique<tcp::acceptor>(io_);
        const tcp::endpoint tep(to_asio(ep.addr), ep.port);
        t->open(tep.protocol(), ec);
        if (!ec) t->set_option(net::socket_base::reuse_address(true), ec);
        if (!ec && reuse_port) {
          const int one = 1;
          ::setsockopt(t->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        }
        if (!ec) t->bind(tep, ec);
        if (!ec) t->listen(net::socket_base::max_listen_connections, ec);
        if (ec) {
          sh_.log.event(LogLevel::Error, "error",
                        {{"what", "bind_tcp"}, {"listen", ep.to_string()}, {"error", ec.message()}});
          return false;
        }
        tcp_.push_back(std::move(t));
        continue;
      }
      auto u = std::make_unique<udp::socket>(io_);
      const udp::endpoint uep(to_asio(ep.addr), ep.port);
      u->open(uep.protocol(), ec);
      if (!ec && reuse_port) {
        const int one = 1;
        ::setsockopt(u->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      }
      if (!ec) u->bind(uep, ec);
      if (!ec) enlarge_receive_buffer(u->native_handle());
      if (ec) {
        sh_.log.event(LogLevel::Error, "error",
                      {{"what", "bind_udp"}, {"listen", ep.to_string()}, {"error", ec.message()}});
        return false;
      }
      udp_.push_back(std::move(u));
    }
    return true;
  }

  void start() {
    for (auto& u : udp_) net::co_spawn(io_, udp_loop(*u), net::detached);
    for (auto& t : tcp_) net::co_spawn(io_, accept_loop(*t), net::detached);
  }

  void run() { io_.run(); }
  void stop() { io_.stop(); }

 private:
  static FrontSettings front_settings(const Policy& p) {
    FrontSettings f;
    f.allow = p.allow;
    f.edns_size = p.edns_size;
    f.builtin_local_zones = p.builtin_local_zones;
    f.prefetch = p.prefetch;
    f.max_inflight = kMaxInflight;
    f.max_joiners = kMaxJoiners;
    f.failure_ttl = kFailureTtl;
    f.dnssec = p.anchors != nullptr;
    f.bogus_ttl = kBogusTtl;
    return f;
  }

  static CacheSettings scaled(CacheSettings s, unsigned count) {
    s.max_bytes /= std::max(count, 1U);
    return s;
  }

  // The UDP hot path. One wake-up drains what is queued in batches:
  // recvmmsg takes up to kUdpBatch datagrams in one system call, each is
  // handled (a cache hit leaves its answer ready), and the answers go back
  // with one sendmmsg. At most kUdpBurst datagrams per wake-up before the
  // others' turn (TCP clients, timers, upstream replies).
  awaitable<void> udp_loop(udp::socket& sock) {
    struct Slot {
      std::array<std::uint8_t, kUdpQueryMax> in{};
      sockaddr_storage from{};
      std::vector<std::uint8_t> out;
    };
    std::vector<Slot> slots(kUdpBatch);
    std::array<iovec, kUdpBatch> in_iov{};
    std::array<mmsghdr, kUdpBatch> in_msg{};
    std::array<iovec, kUdpBatch> out_iov{};
    std::array<mmsghdr, kUdpBatch> out_msg{};
    error_code nb;
    sock.non_blocking(true, nb);
    const int fd = sock.native_handle();
    bool queued = false;  // left the last burst with datagrams still queued
    for (;;) {
      error_code ec;
      if (queued) {
        // Let the others have their turn, then go on without a wait.
        co_await net::post(io_, use_awaitable);
      } else {
        co_await sock.async_wait(udp::socket::wait_read, net::redirect_error(use_awaitable, ec));
      }
      if (!sock.is_open()) co_return;
      if (ec == net::error::operation_aborted) co_return;
      if (ec) continue;
      queued = true;
      // Until the queue is empty (recvmmsg says EAGAIN), as long as the
      // budget lasts: a client that sends steadily keeps the loop here
      // instead of in epoll_wait.
      for (std::size_t done = 0; done < kUdpBurst;) {
        for (std::size_t i = 0; i < kUdpBatch; ++i) {
          in_iov[i] = iovec{slots[i].in.data(), slots[i].in.size()};
          in_msg[i] = mmsghdr{};
          in_msg[i].msg_hdr.msg_name = &slots[i].from;
          in_msg[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
          in_msg[i].msg_hdr.msg_iov = &in_iov[i];
          in_msg[i].msg_hdr.msg_iovlen = 1;
        }
        const int got = ::recvmmsg(fd, in_msg.data(), kUdpBatch, MSG_DONTWAIT, nullptr);
        if (got <= 0) {  // EAGAIN: nothing more queued (errors: wait again)
          queued = false;
          break;
        }
        unsigned replies = 0;
        for (int i = 0; i < got; ++i) {
          Slot& sl = slots[static_cast<std::size_t>(i)];
          const mmsghdr& mh = in_msg[static_cast<std::size_t>(i)];
          udp::endpoint peer;
          if (mh.msg_hdr.msg_namelen > peer.capacity()) continue;
          std::memcpy(peer.data(), &sl.from, mh.msg_hdr.msg_namelen);
          peer.resize(mh.msg_hdr.msg_namelen);
          if ((mh.msg_hdr.msg_flags & MSG_TRUNC) != 0) {
            // Larger than any query a client has reason to send over UDP.
            sh_.stats.queries.fetch_add(1, std::memory_order_relaxed);
            sh_.stats.dropped.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          Responder r;
          r.udp_sock = &sock;
          r.udp_peer = peer;
          if (!handle(std::span<const std::uint8_t>(sl.in.data(), mh.msg_len),
                      from_asio(peer.address()), false, r, sl.out)) {
            continue;
          }
          out_iov[replies] = iovec{sl.out.data(), sl.out.size()};
          out_msg[replies] = mmsghdr{};
          out_msg[replies].msg_hdr.msg_name = &sl.from;
          out_msg[replies].msg_hdr.msg_namelen = mh.msg_hdr.msg_namelen;
          out_msg[replies].msg_hdr.msg_iov = &out_iov[replies];
          out_msg[replies].msg_hdr.msg_iovlen = 1;
          ++replies;
        }
        // The answers on the non-blocking socket; when its buffer is full the
        // rest are dropped, as the network itself might.
        for (unsigned sent = 0; sent < replies;) {
          const int n = ::sendmmsg(fd, out_msg.data() + sent, replies - sent, MSG_DONTWAIT);
          if (n > 0) {
            sent += static_cast<unsigned>(n);
          } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            ++sent;  // this one cannot go (e.g. an unreachable peer); the rest can
          } else if (n < 0 && errno == EINTR) {
            continue;
          } else {
            break;
          }
        }
        done += static_cast<std::size_t>(got);
      }
    }
  }

  awaitable<void> accept_loop(tcp::acceptor& acc) {
    for (;;) {
      error_code ec;
      tcp::socket s = co_await acc.async_accept(net::redirect_error(use_awaitable, ec));
      if (ec == net::error::operation_aborted || !acc.is_open()) co_return;
      if (ec) continue;
      if (tcp_clients_ >= kMaxTcpClients) continue;  // s closes here
      // The ACL at once: an outsider holds no connection (and no memory).
      const auto peer = s.remote_endpoint(ec);
      if (ec) continue;
      const IpAddress client = from_asio(peer.address());
      if (!front_.allowed(client)) {
        sh_.stats.tcp_refused.fetch_add(1, std::memory_order_relaxed);
        continue;  // s closes here
      }
      // One client cannot hold every connection.
      const IpAddress key = client_key(client);
      {
        std::lock_guard lock(sh_.tcp_mu);
        std::size_t& n = sh_.tcp_per_client[key];
        if (n >= kMaxTcpPerClient) {
          sh_.stats.tcp_refused.fetch_add(1, std::memory_order_relaxed);
          continue;  // s closes here
        }
        ++n;
      }
      auto c = std::make_shared<TcpConn>(std::move(s), io_);
      net::co_spawn(io_, tcp_session(c, client, key), net::detached);
    }
  }

  void release_client(const IpAddress& key) {
    std::lock_guard lock(sh_.tcp_mu);
    auto it = sh_.tcp_per_client.find(key);
    if (it != sh_.tcp_per_client.end() && --it->second == 0) sh_.tcp_per_client.erase(it);
  }

  void arm_idle(const std::shared_ptr<TcpConn>& c) {
    c->idle.expires_after(policy_->tcp_idle);
    c->idle.async_wait([this, w = std::weak_ptr<TcpConn>(c)](error_code ec) {
      if (ec) return;
      auto conn = w.lock();
      if (!conn || conn->closed) return;
      // RFC 7766 §6.2.3: idle means no query pending and nothing read. A
      // client that leaves answers queued and reads none of them for as
      // long is closed too.
      const bool draining = conn->queued_bytes == 0 || conn->written != conn->written_at_arm;
      if (conn->pending > 0 && draining) {
        conn->written_at_arm = conn->written;
        arm_idle(conn);
        return;
      }
      if (conn->queued_bytes > 0 && draining) {
        conn->written_at_arm = conn->written;
        arm_idle(conn);
        return;
      }
      conn->close();
    });
  }

  awaitable<void> tcp_session(std::shared_ptr<TcpConn> c, IpAddress client, IpAddress key) {
    ++tcp_clients_;
    error_code ec;
    std::vector<std::uint8_t> buf(kMaxMessageSize);
    std::array<std::uint8_t, 2> len{};
    while (!c->closed) {
      c->written_at_arm = c->written;
      arm_idle(c);
      // Answers the client has not read yet: no more queries until they
      // drain (the client's own writes then block; its answers never pile
      // up in our memory).
      while (c->queued_bytes >= kTcpQueueLimit && !c->closed) {
        c->drained.expires_at(net::steady_timer::time_point::max());
        co_await c->drained.async_wait(net::redirect_error(use_awaitable, ec));
      }
      if (c->closed) break;
      co_await net::async_read(c->sock, net::buffer(len), net::redirect_error(use_awaitable, ec));
      if (ec) break;
      const std::size_t n = read16(len.data());
      if (n == 0) break;
      co_await net::async_read(c->sock, net::buffer(buf.data(), n),
                               net::redirect_error(use_awaitable, ec));
      if (ec) break;
      if (c->pending >= kMaxTcpPending) continue;  // RFC 7766 §6.2.1.1 allows dropping
      Responder r;
      r.tcp_conn = c;
      std::vector<std::uint8_t> out;
      if (handle(std::span<const std::uint8_t>(buf.data(), n), client, true, r, out)) {
        co_await send(r, std::move(out));
      }
    }
    c->close();
    --tcp_clients_;
    release_client(key);
  }

  awaitable<void> send(Responder& r, std::vector<std::uint8_t> msg) {
    if (r.udp_sock != nullptr) {
      error_code ec;
      co_await r.udp_sock->async_send_to(net::buffer(msg), r.udp_peer,
                                         net::redirect_error(use_awaitable, ec));
      co_return;
    }
    auto& c = r.tcp_conn;
    if (!c || c->closed) co_return;
    if (c->queued_bytes + msg.size() + 2 > kTcpQueueHard) {
      c->close();  // answers to queries already read, never read back: give up on it
      co_return;
    }
    std::vector<std::uint8_t> framed(msg.size() + 2);
    write16(framed.data(), msg.size());
    std::copy(msg.begin(), msg.end(), framed.begin() + 2);
    c->queued_bytes += framed.size();
    c->queue.push_back(std::move(framed));
    if (!c->writing) {
      c->writing = true;
      net::co_spawn(io_, tcp_writer(c), net::detached);
    }
  }

  awaitable<void> tcp_writer(std::shared_ptr<TcpConn> c) {
    // Answers go out in the order they are ready, not the order asked
    // (RFC 7766 §7); one write at a time on the socket.
    while (!c->queue.empty() && !c->closed) {
      std::vector<std::uint8_t> m = std::move(c->queue.front());
      c->queue.pop_front();
      error_code ec;
      co_await net::async_write(c->sock, net::buffer(m), net::redirect_error(use_awaitable, ec));
      c->queued_bytes -= std::min(c->queued_bytes, m.size());
      ++c->written;
      if (ec) {
        c->close();
        break;
      }
      if (c->queued_bytes < kTcpQueueLimit / 2) c->drained.cancel();  // the reader may go on
    }
    c->queue.clear();
    c->queued_bytes = 0;
    c->drained.cancel();
    c->writing = false;
  }

  // One client message, decided by the front end. An answer ready now is
  // left in `out` and true returned; a client that must wait for a
  // resolution is parked under a handle and answered later through `r`.
  bool handle(std::span<const std::uint8_t> wire, const IpAddress& client, bool over_tcp,
              Responder& r, std::vector<std::uint8_t>& out) {
    const ClientHandle h = next_client_;
    const Front::Decision d =
        front_.on_query(wire, client, over_tcp ? Transport::Tcp : Transport::Udp, h, now_ms(), out);
    switch (d.action) {
      case Front::Action::Answer:
        if (d.prefetch) net::co_spawn(io_, refresh(d.question), net::detached);
        return true;
      case Front::Action::Drop:
        return false;
      case Front::Action::Wait:
        park(h, r);
        return false;
      case Front::Action::Resolve:
        park(h, r);
        net::co_spawn(io_, resolve_for_clients(d.ticket, d.question, d.checking_disabled),
                      net::detached);
        return false;
    }
    return false;
  }

  void park(ClientHandle h, Responder& r) {
    ++next_client_;
    if (r.tcp_conn) ++r.tcp_conn->pending;
    parked_.emplace(h, std::move(r));
  }

  // One run of the iterator for `q`, its upstream queries sent and their
  // answers fed back.
  awaitable<Outcome> run_iterator(Question q, IteratorSettings is,
                                  std::shared_ptr<const Policy> policy, Work& work) {
    Resolution res(q, cache_, infra_, policy->hints, is, [this] { return rnd_.next(); });
    auto step = res.start(now_ms());
    for (unsigned guard = 0; step == Resolution::Step::Send && guard < 10000; ++guard) {
      const Outgoing o = res.outgoing();
      sh_.stats.upstream_queries.fetch_add(1, std::memory_order_relaxed);
      const auto t0 = std::chrono::steady_clock::now();
      // Two statements, not a conditional expression: gcc 12 destroys the
      // temporary awaitable of `co_await (c ? a() : b())` twice.
      std::optional<std::vector<std::uint8_t>> reply;
      if (o.tcp) {
        reply = co_await upstream_tcp(o);
      } else {
        reply = co_await upstream_udp(o);
      }
      const auto rtt = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0);
      if (!reply) {
        sh_.stats.upstream_timeouts.fetch_add(1, std::memory_order_relaxed);
        step = res.on_timeout(now_ms());
      } else {
        step = res.on_response(*reply, rtt, now_ms());
      }
    }
    Outcome out = res.outcome();
    if (step != Resolution::Step::Done) {
      out = Outcome{};
      out.reason = "driver step guard";
    }
    work.upstream_queries += res.work().upstream_queries;
    work.timeouts += res.work().timeouts;
    co_return out;
  }

  static dnssec::Response response_of(const Outcome& o) {
    dnssec::Response r;
    r.rcode = o.rcode;
    r.answer = o.sec_answer;
    r.authority = o.sec_authority;
    return r;
  }

  // The global signature and hash allowance, refilled with the time passed.
  void refill_budget() {
    const auto now = std::chrono::steady_clock::now();
    const auto ms = std::chrono::duration_cast<milliseconds>(now - budget_refilled_).count();
    if (ms < 10) return;
    budget_refilled_ = now;
    const auto add = [&](unsigned per_second, unsigned left) {
      const auto more = static_cast<std::uint64_t>(per_second) * static_cast<std::uint64_t>(ms) / 1000;
      return static_cast<unsigned>(std::min<std::uint64_t>(more, per_second - std::min(left, per_second)));
    };
    global_budget_.refill(add(kSigChecksPerSecond, global_budget_.signatures_left()),
                          add(kHashesPerSecond, global_budget_.hashes_left()));
  }

  // Validates `out`, the outcome for `q`, in place (RFC 4035 §5): the
  // DNSKEY and DS sets the validator asks for are resolved by the iterator
  // like any question (a DS from the parent's servers: find_cut starts DS
  // questions above the name).
  awaitable<void> validate(const Question& q, Outcome& out, const IteratorSettings& is,
                           std::shared_ptr<const Policy> policy, Work& work) {
    if (out.rcode != rcode::kNoError && out.rcode != rcode::kNxDomain) co_return;
    if (under_nta(q.qname, *policy)) {
      out.security = Outcome::Security::Insecure;
      co_return;
    }
    // Built wholly from cached RRsets the validator already judged.
    if (out.security != Outcome::Security::Unchecked) {
      sh_.stats.validated_rrset_answers.fetch_add(1, std::memory_order_relaxed);
      co_return;
    }
    refill_budget();
    dnssec::Budget budget(kSigChecksPerQuery, kHashesPerQuery, &global_budget_);
    dnssec::Clock clock;
    clock.now = static_cast<std::uint64_t>(std::time(nullptr));
    dnssec::Validator v(*policy->anchors, validator_settings_, budget, clock, &zone_cache_);
    auto step = v.start(q.qname, q.qtype, response_of(out));
    // The DNSKEY/DS questions of one validation share one bound on upstream
    // queries (each also has its own max_upstream_queries): past it, the
    // answer is indeterminate.
    const unsigned max_queries = work.upstream_queries + kValidationQueries * is.max_upstream_queries;
    for (unsigned guard = 0; step.kind != dnssec::Validator::Step::Kind::Done && guard < 64 &&
                             work.upstream_queries < max_queries;
         ++guard) {
      const bool key = step.kind == dnssec::Validator::Step::Kind::NeedDnskey;
      const Question sub{step.name, key ? rrtype::kDNSKEY : rrtype::kDS, rrclass::kIN};
      const Outcome so = co_await run_iterator(sub, is, policy, work);
      dnssec::Response r = response_of(so);
      if (so.rcode != rcode::kNoError && so.rcode != rcode::kNxDomain) r.rcode = rcode::kServFail;
      step = v.provide(std::move(r));
    }
    const dnssec::Verdict& vd = step.verdict;
    switch (step.kind == dnssec::Validator::Step::Kind::Done ? vd.security
                                                              : dnssec::Security::Indeterminate) {
      case dnssec::Security::Secure: {
        out.security = Outcome::Security::Secure;
        for (auto* sets : {&out.answer, &out.authority, &out.sec_answer, &out.sec_authority}) {
          for (RRset& r : *sets) r.ttl = std::min(r.ttl, vd.ttl_cap);
        }
        // Every RRset of a secure answer is secure: later questions may
        // be answered from the RRset cache (Cache::set_security).
        for (const RRset& r : out.answer) {
          (void)cache_.set_security(r, RRsetSecurity::Secure, r.ttl, now_ms());
        }
        if (policy->aggressive_nsec && vd.denial_zone) {
          denial_cache_.add(*vd.denial_zone, vd.denial_records, out.sec_authority, vd.ttl_cap,
                            now_s());
        }
        break;
      }
      case dnssec::Security::Insecure:
        out.security = Outcome::Security::Insecure;
        // The verdict is the answer's; with one RRset, it is that RRset's
        // (in a chain, some links may be secure: they stay unchecked).
        if (out.answer.size() == 1) {
          (void)cache_.set_security(out.answer.front(), RRsetSecurity::Insecure,
                                    out.answer.front().ttl, now_ms());
        }
        break;
      case dnssec::Security::Bogus:
      case dnssec::Security::Indeterminate: {
        out.security = Outcome::Security::Bogus;
        const dnssec::Ede code = step.kind == dnssec::Validator::Step::Kind::Done
                                     ? vd.ede
                                     : dnssec::Ede::DnssecIndeterminate;
        out.ede = code == dnssec::Ede::None ? static_cast<std::uint16_t>(dnssec::Ede::DnssecBogus)
                                            : static_cast<std::uint16_t>(code);
        out.ede_text = vd.reason;
        out.reason = "dnssec " + std::string(dnssec::to_string(vd.security)) + ": " + vd.reason;
        if (out.answer.size() == 1) {
          (void)cache_.set_security(out.answer.front(),
                                    vd.security == dnssec::Security::Bogus
                                        ? RRsetSecurity::Bogus
                                        : RRsetSecurity::Indeterminate,
                                    kBogusTtl, now_ms());
        }
        break;
      }
    }
  }

  static bool under_nta(const Name& n, const Policy& p) {
    return std::any_of(p.insecure_domains.begin(), p.insecure_domains.end(),
                       [&](const Name& nta) { return n.is_subdomain_of(nta); });
  }

  static std::uint64_t now_s() { return static_cast<std::uint64_t>(now_ms().count() / 1000); }

  // RFC 8198: a secure NXDOMAIN or NODATA from the kept NSEC/NSEC3 records,
  // without asking upstream; nullopt when they prove nothing.
  std::optional<Outcome> aggressive_answer(const Question& q) {
    refill_budget();
    dnssec::Budget budget(kSigChecksPerQuery, kHashesPerQuery, &global_budget_);
    auto a = denial_cache_.lookup(q.qname, q.qtype, now_s(), validator_settings_.nsec3, budget);
    if (!a) return std::nullopt;
    Outcome o;
    o.rcode = a->rcode;
    o.authority = a->soa;
    o.sec_authority = a->soa;
    o.sec_authority.insert(o.sec_authority.end(), a->records.begin(), a->records.end());
    o.security = Outcome::Security::Secure;
    return o;
  }

  awaitable<Outcome> iterate(Question q, bool refresh_answer, bool checking_disabled = false) {
    // This resolution keeps the policy it started with, whatever a reload does.
    const std::shared_ptr<const Policy> policy = policy_;
    if (policy->anchors && policy->aggressive_nsec && !checking_disabled &&
        !under_nta(q.qname, *policy)) {
      if (auto o = aggressive_answer(q)) {
        sh_.stats.aggressive_answers.fetch_add(1, std::memory_order_relaxed);
        co_return *o;
      }
    }
    IteratorSettings is = policy->iter;
    is.refresh = refresh_answer;
    is.checking_disabled = checking_disabled;
    Work work;
    Outcome out = co_await run_iterator(q, is, policy, work);
    if (policy->anchors && !checking_disabled) {
      IteratorSettings sub = policy->iter;
      co_await validate(q, out, sub, policy, work);
      if (out.security == Outcome::Security::Bogus) {
        sh_.log.limited_event(sh_.log_limit, LogLevel::Info, "bogus",
                              {{"qname", q.qname.to_text()},
                               {"qtype", type_to_text(q.qtype)},
                               {"ede", std::to_string(out.ede)},
                               {"reason", out.reason},
                               {"answer", std::to_string(out.answer.size())},
                               {"signed_answer", std::to_string(out.sec_answer.size())},
                               {"signed_authority", std::to_string(out.sec_authority.size())}});
      }
    }
    if (out.rcode == rcode::kServFail) {
      sh_.log.limited_event(sh_.log_limit, LogLevel::Info, "servfail",
                    {{"qname", q.qname.to_text()}, {"qtype", type_to_text(q.qtype)}, {"reason", out.reason},
                     {"upstream", std::to_string(work.upstream_queries)},
                     {"timeouts", std::to_string(work.timeouts)}});
    }
    co_return out;
  }

  // One resolution for every client parked on `ticket`: the front end
  // caches the outcome and shapes each client's answer; this sends them.
  awaitable<void> resolve_for_clients(std::uint64_t ticket, Question q, bool checking_disabled) {
    const Outcome o = co_await iterate(q, false, checking_disabled);
    std::vector<Front::Reply> replies;
    front_.on_resolved(ticket, o, now_ms(), replies);
    publish();
    for (Front::Reply& rep : replies) {
      auto it = parked_.find(rep.client);
      if (it == parked_.end()) continue;
      Responder r = std::move(it->second);
      parked_.erase(it);
      if (r.tcp_conn && r.tcp_conn->pending > 0) --r.tcp_conn->pending;
      co_await send(r, std::move(rep.wire));
    }
  }

  // Prefetch (refresh before expiry): resolve again, bypassing the cached
  // answer, so the next client still gets a cache hit.
  awaitable<void> refresh(Question q) {
    const Outcome o = co_await iterate(q, true);
    front_.on_refreshed(q, o, now_ms());
    publish();
  }

  std::optional<IpAddress> source_for(Family f) const {
    for (const auto& a : policy_->outgoing) {
      if (a.family == f) return a;
    }
    return std::nullopt;
  }

  // One upstream query over UDP (RFC 1035 §4.2.1): a fresh connected socket
  // on a kernel-chosen random port, a random ID; only a datagram from the
  // server (connect), with the ID and the exact question (0x20), counts.
  // Anything else is dropped (counted in upstream_ignored) and the wait goes
  // on until the true answer or the deadline: however many forged datagrams
  // arrive, they never end the wait early (only the Deadline does).
  awaitable<std::optional<std::vector<std::uint8_t>>> upstream_udp(Outgoing o) {
    auto sock = std::make_shared<udp::socket>(io_);
    const udp::endpoint ep(to_asio(o.server), kDnsPort);
    error_code ec;
    sock->open(ep.protocol(), ec);
    if (ec) co_return std::nullopt;
    if (auto src = source_for(o.server.family)) sock->bind(udp::endpoint(to_asio(*src), 0), ec);
    if (!ec) sock->connect(ep, ec);
    if (ec) co_return std::nullopt;
    const std::uint16_t id = rnd_.next16();
    std::vector<std::uint8_t> q;
    build_upstream_query(o, id, policy_->edns_size, q);
    Deadline deadline(io_, sock, o.timeout);
    co_await sock->async_send(net::buffer(q), net::redirect_error(use_awaitable, ec));
    if (ec) co_return std::nullopt;
    // Received into room for the largest message, left uninitialised (a
    // zero-filled 64 KiB vector per miss was a sixth of a validated miss's
    // CPU); the answer is returned in a vector of its own size.
    const std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[kMaxMessageSize]);
    for (;;) {
      const std::size_t n = co_await sock->async_receive(net::buffer(buf.get(), kMaxMessageSize),
                                                         net::redirect_error(use_awaitable, ec));
      if (ec) co_return std::nullopt;
      Message m;
      if (n < kHeaderSize || read16(buf.get()) != id ||
          !m.parse(std::span<const std::uint8_t>(buf.get(), n)).ok() || !response_matches(m, o)) {
        sh_.stats.upstream_ignored.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      co_return std::vector<std::uint8_t>(buf.get(), buf.get() + n);
    }
  }

  // The same over TCP (RFC 7766 §8), after TC: connect, one query, one answer.
  awaitable<std::optional<std::vector<std::uint8_t>>> upstream_tcp(Outgoing o) {
    auto sock = std::make_shared<tcp::socket>(io_);
    const tcp::endpoint ep(to_asio(o.server), kDnsPort);
    error_code ec;
    sock->open(ep.protocol(), ec);
    if (ec) co_return std::nullopt;
    if (auto src = source_for(o.server.family)) sock->bind(tcp::endpoint(to_asio(*src), 0), ec);
    if (ec) co_return std::nullopt;
    Deadline deadline(io_, sock, o.timeout);
    co_await sock->async_connect(ep, net::redirect_error(use_awaitable, ec));
    if (ec) co_return std::nullopt;
    const std::uint16_t id = rnd_.next16();
    std::vector<std::uint8_t> q;
    build_upstream_query(o, id, policy_->edns_size, q);
    std::vector<std::uint8_t> framed(q.size() + 2);
    write16(framed.data(), q.size());
    std::copy(q.begin(), q.end(), framed.begin() + 2);
    co_await net::async_write(*sock, net::buffer(framed), net::redirect_error(use_awaitable, ec));
    if (ec) co_return std::nullopt;
    std::array<std::uint8_t, 2> len{};
    co_await net::async_read(*sock, net::buffer(len), net::redirect_error(use_awaitable, ec));
    if (ec) co_return std::nullopt;
    std::vector<std::uint8_t> buf(read16(len.data()));
    co_await net::async_read(*sock, net::buffer(buf), net::redirect_error(use_awaitable, ec));
    if (ec) co_return std::nullopt;
    Message m;
    if (buf.size() < kHeaderSize || read16(buf.data()) != id || !m.parse(buf).ok() ||
        !response_matches(m, o)) {
      sh_.stats.upstream_ignored.fetch_add(1, std::memory_order_relaxed);
      co_return std::nullopt;
    }
    co_return buf;
  }

  Shared& sh_;
  [[maybe_unused]] unsigned index_;
  net::io_context io_{1};
  std::shared_ptr<const Policy> policy_;
  unsigned count_ = 1;
  Cache cache_;
  Infra infra_;
  SecureRandom rnd_;
  Front front_;
  // DNSSEC: zone conclusions shared by this thread's validations, and the
  // thread's signature/hash allowance per second.
  dnssec::ValidatorSettings validator_settings_;
  dnssec::ZoneCache zone_cache_{10000, kBogusTtl};
  dnssec::DenialCache denial_cache_;  // RFC 8198: validated NSEC/NSEC3 records per zone
  dnssec::Budget global_budget_{kSigChecksPerSecond, kHashesPerSecond};
  std::chrono::steady_clock::time_point budget_refilled_ = std::chrono::steady_clock::now();
  std::unordered_map<ClientHandle, Responder> parked_;  // clients waiting for a resolution
  ClientHandle next_client_ = 1;
  std::size_t tcp_clients_ = 0;
  std::atomic<std::size_t> entries_{0};
  std::atomic<std::size_t> bytes_{0};
  std::vector<std::unique_ptr<udp::socket>> udp_;
  std::vector<std::unique_ptr<tcp::acceptor>> tcp_;
};

std::string run_control_command(const std::string& line, std::vector<std::unique_ptr<Worker>>& workers,
                                Shared& sh) {
  if (line == "stats" || line == "metrics") {
    std::size_t entries = 0, bytes = 0;
    workers.front()->publish();  // this thread's own; the others' as last published
    for (auto& w : workers) {
      entries += w->published_entries();
      bytes += w->published_bytes();
    }
    if (line == "metrics") return format_metrics(sh.stats, entries, bytes);
    return sh.stats.to_text() + " cache_entries=" + std::to_string(entries) +
           " cache_bytes=" + std::to_string(bytes) + "\n";
  }
  if (line == "flush") {
    std::size_t n = workers.front()->cache().flush();
    workers.front()->publish();
    for (std::size_t i = 1; i < workers.size(); ++i) {
      net::post(workers[i]->io(), [w = workers[i].get()] {
        (void)w->cache().flush();
        w->publish();
      });
    }
    sh.log.event(LogLevel::Info, "flush", {{"name", "."}, {"removed", std::to_string(n)}});
    return "flushed removed=" + std::to_string(n) + "\n";
  }
  if (line.rfind("flush ", 0) == 0) {
    const auto name = Name::from_text(line.substr(6));
    if (!name) return "error bad name\n";
    std::size_t n = workers.front()->cache().flush_name(*name);
    workers.front()->publish();
    for (std::size_t i = 1; i < workers.size(); ++i) {
      net::post(workers[i]->io(), [w = workers[i].get(), nm = *name] {
        (void)w->cache().flush_name(nm);
        w->publish();
      });
    }
    sh.log.event(LogLevel::Info, "flush", {{"name", name->to_text()}, {"removed", std::to_string(n)}});
    return "flushed name=" + name->to_text() + " removed=" + std::to_string(n) + "\n";
  }
  return "error unknown command (stats, metrics, flush, flush NAME)\n";
}

awaitable<void> control_session(net::local::stream_protocol::socket s,
                                std::vector<std::unique_ptr<Worker>>& workers, Shared& sh) {
  std::string line;
  error_code ec;
  co_await net::async_read_until(s, net::dynamic_buffer(line, 512), '\n',
                                 net::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  line.resize(line.find('\n'));
  const std::string reply = run_control_command(line, workers, sh);
  co_await net::async_write(s, net::buffer(reply), net::redirect_error(use_awaitable, ec));
}

awaitable<void> control_loop(net::local::stream_protocol::acceptor& acc,
                             std::vector<std::unique_ptr<Worker>>& workers, Shared& sh) {
  for (;;) {
    error_code ec;
    auto s = co_await acc.async_accept(net::redirect_error(use_awaitable, ec));
    if (ec == net::error::operation_aborted || !acc.is_open()) co_return;
    if (ec) continue;
    net::co_spawn(acc.get_executor(), control_session(std::move(s), workers, sh), net::detached);
  }
}

}  // namespace

std::string format_metrics(const Stats& st, std::size_t cache_entries, std::size_t cache_bytes) {
  const auto v = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  platform::metrics::TextWriter w;
  w.counter("diode_resolver_queries_total", "Client queries received, well-formed or not.", v(st.queries));
  w.counter("diode_resolver_tcp_queries_total", "Client queries received over TCP.", v(st.tcp_queries));
  w.counter("diode_resolver_cache_hits_total", "Queries answered from the message cache.", v(st.cache_hits));
  w.counter("diode_resolver_cache_misses_total", "Queries that needed the iterator.", v(st.cache_misses));
  w.counter("diode_resolver_upstream_queries_total", "Queries sent to authoritative servers.",
            v(st.upstream_queries));
  w.counter("diode_resolver_upstream_timeouts_total", "Queries to authoritative servers that timed out.",
            v(st.upstream_timeouts));
  w.counter("diode_resolver_upstream_ignored_total",
            "Upstream datagrams ignored for a wrong ID or question.", v(st.upstream_ignored));
  w.family("diode_resolver_responses_total", "counter",
           "Responses by rcode, for the rcodes the resolver counts.");
  w.sample("diode_resolver_responses_total", platform::metrics::label("rcode", "SERVFAIL"), v(st.servfail));
  w.sample("diode_resolver_responses_total", platform::metrics::label("rcode", "NXDOMAIN"), v(st.nxdomain));
  w.sample("diode_resolver_responses_total", platform::metrics::label("rcode", "REFUSED"), v(st.refused));
  w.sample("diode_resolver_responses_total", platform::metrics::label("rcode", "FORMERR"), v(st.formerr));
  w.counter("diode_resolver_dropped_total", "Unanswerable input dropped (no header, responses).",
            v(st.dropped));
  w.counter("diode_resolver_truncated_total", "Answers sent with TC set.", v(st.truncated));
  w.counter("diode_resolver_stale_answers_total", "Answers served stale.", v(st.stale_answers));
  w.counter("diode_resolver_prefetches_total", "Cache entries refreshed ahead of expiry.",
            v(st.prefetches));
  w.counter("diode_resolver_local_answers_total", "Queries answered from RFC 6761 local zones.",
            v(st.local_answers));
  w.counter("diode_resolver_joined_total",
            "Queries that waited for an identical question's resolution.", v(st.joined));
  w.counter("diode_resolver_validated_rrset_answers_total",
            "Validated questions answered from RRsets already judged secure or insecure.",
            v(st.validated_rrset_answers));
  w.counter("diode_resolver_aggressive_answers_total",
            "NXDOMAIN/NODATA answered from validated NSEC/NSEC3 records (RFC 8198).",
            v(st.aggressive_answers));
  w.counter("diode_resolver_tcp_refused_total",
            "TCP connections closed at accept: outside resolver.allow, or over the per-client cap.",
            v(st.tcp_refused));
  w.gauge("diode_resolver_cache_entries", "Entries in the cache.", cache_entries);
  w.gauge("diode_resolver_cache_bytes", "Bytes held by the cache.", cache_bytes);
  return w.text();
}

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string millis_since(std::chrono::steady_clock::time_point t0) {
  return std::to_string(
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count());
}

// resolver.cache_file at start: every thread's cache filled from it, or,
// for a file that is missing, too large, damaged, foreign or from the
// future, one log line and a cold start. Before the threads run.
void load_cache(Shared& sh, std::vector<std::unique_ptr<Worker>>& workers) {
  const std::string& path = sh.cache_file;
  if (path.empty()) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::string error;
  bool missing = false;
  // The file holds less than the cache it came from: cache_size bounds it.
  const std::size_t bound = static_cast<std::size_t>(sh.cache_size) + 1024 * 1024;
  const auto bytes = read_file_bounded(path, bound, error, &missing);
  if (!bytes) {
    if (missing) {
      sh.log.event(LogLevel::Info, "cache_load", {{"status", "none"}, {"path", path}, {"reason", "no file"}});
    } else {
      sh.log.event(LogLevel::Warning, "cache_load",
                   {{"status", "ignored"}, {"path", path}, {"reason", error}});
    }
    return;
  }
  std::vector<Cache*> caches;
  for (auto& w : workers) caches.push_back(&w->cache());
  const CacheFileLoaded r = decode_cache_file(*bytes, now_ms(), wall_ms(), caches);
  if (!r.ok) {
    sh.log.event(LogLevel::Warning, "cache_load",
                 {{"status", "ignored"}, {"path", path}, {"reason", r.error}});
    return;
  }
  for (auto& w : workers) w->publish();
  sh.log.event(LogLevel::Notice, "cache_load",
               {{"status", "ok"}, {"path", path}, {"entries", std::to_string(r.entries)},
                {"restored", std::to_string(r.restored)}, {"expired", std::to_string(r.expired)},
                {"age_s", std::to_string(r.elapsed_ms / 1000)}, {"ms", millis_since(t0)}});
}

// resolver.cache_file at stop, once every thread has stopped.
void save_cache(Shared& sh, std::vector<std::unique_ptr<Worker>>& workers) {
  const std::string& path = sh.cache_file;
  if (path.empty()) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Cache*> caches;
  for (auto& w : workers) caches.push_back(&w->cache());
  CacheFileSaved saved;
  const auto bytes = encode_cache_file(caches, now_ms(), wall_ms(), &saved);
  std::string error;
  if (!write_file_atomically(path, bytes, error)) {
    sh.log.event(LogLevel::Warning, "cache_save", {{"status", "failed"}, {"path", path}, {"error", error}});
    return;
  }
  sh.log.event(LogLevel::Notice, "cache_save",
               {{"status", "ok"}, {"path", path}, {"entries", std::to_string(saved.entries)},
                {"skipped", std::to_string(saved.skipped)}, {"bytes", std::to_string(bytes.size())},
                {"ms", millis_since(t0)}});
}

std::uint64_t wall_seconds() {
  return static_cast<std::uint64_t>(std::time(nullptr));
}

dnssec::AnchorTimings anchor_timings(const platform::GatewayConfig& cfg) {
  dnssec::AnchorTimings t;
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(cfg.resolver.trust_anchor_hold_down);
  t.add_hold_down = t.remove_hold_down =
      static_cast<std::uint32_t>(std::clamp<std::int64_t>(s.count(), 1, 0xffffffff));
  return t;
}

// Writes files.trust_anchor_state (temporary file, fsync, rename, fsync of
// the folder); a failure is logged and the anchors in memory go on.
void save_anchor_state(Shared& sh) {
  const std::string text = sh.tracker->to_text();
  std::string error;
  const auto* b = reinterpret_cast<const std::uint8_t*>(text.data());
  if (!write_file_atomically(sh.anchor_state_file, std::span<const std::uint8_t>(b, text.size()),
                             error)) {
    sh.log.event(LogLevel::Warning, "trust_anchor_save",
                 {{"status", "failed"}, {"path", sh.anchor_state_file}, {"error", error}});
    return;
  }
  sh.log.event(LogLevel::Info, "trust_anchor_save",
               {{"status", "ok"}, {"path", sh.anchor_state_file}});
}

// The tracker's anchors into every worker's policy, for the validations
// that start from now on (those under way finish with the old ones).
void apply_anchors(Shared& sh, std::vector<std::unique_ptr<Worker>>& workers) {
  sh.managed_anchors = std::make_shared<const dnssec::TrustAnchors>(sh.tracker->anchors());
  if (!workers.front()->policy()->anchors) return;  // validation turned off by a reload
  auto p = std::make_shared<Policy>(*workers.front()->policy());
  p->anchors = sh.managed_anchors;
  std::shared_ptr<const Policy> policy = std::move(p);
  workers.front()->apply(policy);
  for (std::size_t i = 1; i < workers.size(); ++i) {
    net::post(workers[i]->io(), [w = workers[i].get(), policy] { w->apply(policy); });
  }
}

// files.trust_anchor_state at start, as the unprivileged user: a valid file
// is the anchor (matched with the configured trust points); a missing one
// is seeded from files.trust_anchor; a damaged one is moved aside to
// PATH.bad, said in one line, and the anchors seeded from files.trust_anchor.
void load_anchor_state(Shared& sh, std::vector<std::unique_ptr<Worker>>& workers) {
  const platform::GatewayConfig& cfg = sh.opts.config;
  if (!cfg.resolver.dnssec || cfg.files.trust_anchor_state.empty() || !sh.opts.anchors) return;
  const std::string& path = sh.anchor_state_file = cfg.files.trust_anchor_state;
  const dnssec::AnchorTimings timings = anchor_timings(cfg);
  const std::uint64_t now = wall_seconds();
  std::string error;
  bool missing = false;
  std::optional<dnssec::AnchorTracker> t;
  if (const auto bytes = read_file_bounded(path, kAnchorStateMax, error, &missing)) {
    t = dnssec::AnchorTracker::parse(
        std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()), timings,
        error);
  }
  bool changed = false;
  if (t) {
    changed = t->adopt_configured(*sh.opts.anchors, now);
    std::size_t keys = 0;
    for (const auto& tp : t->points()) keys += tp.keys.size();
    sh.log.event(LogLevel::Notice, "trust_anchor_load",
                 {{"status", "ok"}, {"path", path},
                  {"trust_points", std::to_string(t->points().size())},
                  {"keys", std::to_string(keys)}});
  } else if (missing) {
    sh.log.event(LogLevel::Info, "trust_anchor_load",
                 {{"status", "none"}, {"path", path}, {"reason", "no file"},
                  {"seeded_from", cfg.files.trust_anchor}});
  } else {
    platform::LogFields f{{"status", "ignored"}, {"path", path}, {"reason", error},
                          {"seeded_from", cfg.files.trust_anchor}};
    const std::string aside = path + ".bad";
    if (::rename(path.c_str(), aside.c_str()) == 0) f.emplace_back("kept_as", aside);
    sh.log.event(LogLevel::Warning, "trust_anchor_load", f);
  }
  if (!t) {
    t = dnssec::AnchorTracker::seed(*sh.opts.anchors, timings, now);
    changed = true;
  }
  sh.tracker = std::make_unique<dnssec::AnchorTracker>(std::move(*t));
  apply_anchors(sh, workers);
  if (changed) save_anchor_state(sh);
}

// RFC 5011 §2.3: each trust point's DNSKEY set is fetched when its refresh
// is due, checked and fed to the tracker; a change of a key's state is
// logged, swapped into the policies and saved. Runs on the main thread.
awaitable<void> anchor_refresh_loop(Shared& sh, std::vector<std::unique_ptr<Worker>>& workers) {
  net::steady_timer timer(workers.front()->io());
  for (;;) {
    const std::uint64_t now = wall_seconds();
    const std::uint64_t next = sh.tracker->next_refresh();
    if (next > now || !workers.front()->policy()->anchors) {
      // At most ten minutes at a time: a wall clock that jumps is seen soon.
      const std::uint64_t wait = next > now ? std::min<std::uint64_t>(next - now, 600) : 600;
      timer.expires_after(std::chrono::seconds(wait));
      error_code ec;
      co_await timer.async_wait(net::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      continue;
    }
    for (const Name& zone : sh.tracker->due(now)) {
      const Outcome o = co_await workers.front()->fetch_dnskeys(zone);
      const std::uint64_t at = wall_seconds();
      const RRset* keys = nullptr;
      std::vector<std::span<const std::uint8_t>> sigs;
      for (const RRset& r : o.sec_answer) {
        if (!(r.owner == zone)) continue;
        if (r.type == rrtype::kDNSKEY) keys = &r;
        if (r.type == rrtype::kRRSIG)
          for (auto rd : r) sigs.push_back(rd);
      }
      platform::LogFields f{{"zone", zone.to_text()}};
      dnssec::RefreshOutcome r;
      if (o.rcode != rcode::kNoError || keys == nullptr) {
        sh.tracker->on_failure(zone, at);
        f.emplace_back("status", "failed");
        f.emplace_back("reason", o.rcode != rcode::kNoError ? o.reason : "no DNSKEY set");
      } else {
        dnssec::Budget budget(kSigChecksPerQuery, kHashesPerQuery);
        r = sh.tracker->on_dnskeys(zone, *keys, sigs, at, dnssec::AlgorithmPolicy{}, budget);
        f.emplace_back("status", r.validated ? "ok" : "not_validated");
        f.emplace_back("keys", std::to_string(keys->size()));
        if (!r.validated) f.emplace_back("reason", r.reason);
      }
      // The new anchors in use and on disk first: whoever reads a line below
      // finds the file and the validations already saying it.
      if (r.changed) {
        apply_anchors(sh, workers);
        save_anchor_state(sh);
      }
      for (const dnssec::KeyChange& c : r.changes) {
        sh.log.event(LogLevel::Notice, "trust_anchor",
                     {{"zone", c.zone.to_text()}, {"key", std::to_string(c.tag)},
                      {"state", std::string(dnssec::to_string(c.to))},
                      {"from", std::string(dnssec::to_string(c.from))}});
      }
      const std::uint64_t next_at = sh.tracker->next_refresh();
      f.emplace_back("next_s", std::to_string(next_at > at ? next_at - at : 0));
      sh.log.event(r.validated ? LogLevel::Info : LogLevel::Warning, "trust_anchor_refresh", f);
    }
  }
}

}  // namespace

// SIGHUP: gateway.toml (or the embedded default) and the root hints read
// again. Valid files: every worker takes the new policy on its own thread;
// resolutions under way finish with the old one; caches are kept (and
// shrunk if cache_size fell). Invalid files: the old configuration stays
// and each error is logged with its file:line:col. What cannot change
// without a restart (listening addresses and ports, threads) is reported.
void reload(Shared& sh, std::vector<std::unique_ptr<Worker>>& workers,
            const std::vector<platform::SocketSpec>& listen, unsigned threads) {
  platform::Diagnostics diags;
  std::optional<platform::GatewayConfig> cfg;
  const std::string& path = sh.opts.config_path;
  if (path.empty()) {
    cfg = platform::parse_gateway_config(platform::embedded_default_config(), "<embedded>", diags);
  } else {
    cfg = platform::load_gateway_config(path, diags);
  }
  std::optional<RootHints> hints;
  if (cfg) hints = load_root_hints(cfg->files.root_hints, diags);
  std::optional<std::shared_ptr<const dnssec::TrustAnchors>> anchors;
  if (cfg) anchors = load_trust_anchors(*cfg, diags);
  if (!cfg || !hints || !anchors || diags.has_errors()) {
    std::string first;
    for (const auto& d : diags.items()) {
      if (d.severity == platform::Severity::Error) {
        first = d.format();
        break;
      }
    }
    sh.log.diagnostics(diags.format());
    sh.log.event(LogLevel::Error, "reload",
                 {{"status", "failed"},
                  {"errors", std::to_string(diags.count(platform::Severity::Error))},
                  {"error", first},
                  {"kept", "old"}});
    return;
  }
  std::string restart;
  auto differs = [&](const char* what) { restart += (restart.empty() ? "" : ",") + std::string(what); };
  const bool inherited = !sh.opts.udp_fds.empty() || !sh.opts.tcp_fds.empty();
  if (!inherited && dns_sockets(*cfg) != listen) differs("listen");
  if (thread_count(*cfg) != threads) differs("threads");
  if (cfg->gateway != sh.opts.config.gateway) differs("user");
  // RFC 5011: the anchors kept up to date stay the ones in use, whatever
  // files.trust_anchor now holds; only the hold-down may change here.
  if (sh.tracker && cfg->resolver.dnssec && *anchors) {
    sh.tracker->set_timings(anchor_timings(*cfg));
    *anchors = sh.managed_anchors;
  }
  if (cfg->files.trust_anchor_state != sh.anchor_state_file &&
      (sh.tracker || (cfg->resolver.dnssec && !cfg->files.trust_anchor_state.empty())))
    differs("trust_anchor_state");
  auto policy = make_policy(*cfg, std::move(*hints), std::move(*anchors));
  const std::size_t roots = policy->hints.servers.size();
  workers.front()->apply(policy);
  for (std::size_t i = 1; i < workers.size(); ++i) {
    net::post(workers[i]->io(), [w = workers[i].get(), policy] { w->apply(policy); });
  }
  sh.log.configure(cfg->log);
  sh.cache_file = cfg->resolver.cache_file;  // where the cache goes at stop
  sh.cache_size = cfg->resolver.cache_size;
  platform::LogFields f{{"status", "ok"}, {"root_servers", std::to_string(roots)}};
  if (!restart.empty()) f.emplace_back("restart_needed", restart);
  sh.log.event(LogLevel::Notice, "reload", f);
}

std::optional<std::shared_ptr<const dnssec::TrustAnchors>> load_trust_anchors(
    const platform::GatewayConfig& cfg, platform::Diagnostics& diags) {
  if (!cfg.resolver.dnssec) return std::shared_ptr<const dnssec::TrustAnchors>{};
  const std::string& path = cfg.files.trust_anchor;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.error({path, 0, 0}, "cannot read the trust anchor file (resolver.dnssec = true)",
                "trust-anchor");
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::vector<TextError> errors;
  auto anchors = dnssec::TrustAnchors::parse(ss.str(), errors);
  if (!anchors) {
    for (const TextError& e : errors) {
      diags.error({path, static_cast<std::uint32_t>(e.line), static_cast<std::uint32_t>(e.column)},
                  e.message, "trust-anchor");
    }
    if (errors.empty()) diags.error({path, 0, 0}, "no trust anchor in the file", "trust-anchor");
    return std::nullopt;
  }
  return std::make_shared<const dnssec::TrustAnchors>(std::move(*anchors));
}

int run_daemon(const DaemonOptions& options, platform::Logger& log) {
  auto sh = std::make_unique<Shared>(options, log);
  const platform::GatewayConfig& cfg = sh->opts.config;
  std::shared_ptr<const Policy> policy = make_policy(cfg, sh->opts.hints, sh->opts.anchors);
  const std::vector<platform::SocketSpec> listen = dns_sockets(cfg);
  const bool inherited = !options.udp_fds.empty() || !options.tcp_fds.empty();
  if (listen.empty() && !inherited) {
    log.event(LogLevel::Error, "error",
              {{"what", "no_listener"}, {"reason", "no internal interface has a dns_port"}});
    return 1;
  }
  // Inherited sockets too are served by every thread (see Worker::adopt).
  const unsigned threads = thread_count(cfg);
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < threads; ++i) {
    workers.push_back(std::make_unique<Worker>(*sh, policy, i, threads));
    const bool ok = inherited ? workers.back()->adopt(options.udp_fds, options.tcp_fds)
                              : workers.back()->open(listen, threads > 1);
    if (!ok) return 1;
  }
  if (inherited) {
    for (const int fd : options.udp_fds) ::close(fd);
    for (const int fd : options.tcp_fds) ::close(fd);
  }
  net::io_context& main_io = workers.front()->io();

  std::unique_ptr<net::local::stream_protocol::acceptor> control;
  std::string control_name = options.control_path;
  int control_fd = options.control_fd;
  if (control_fd < 0 && !options.control_path.empty()) {
    std::string error;
    control_fd = platform::open_control_socket(options.control_path, error);
    if (control_fd < 0) {
      log.event(LogLevel::Error, "error",
                {{"what", "control_socket"}, {"path", options.control_path}, {"error", error}});
      return 1;
    }
  } else if (control_fd >= 0) {
    control_name = "inherited";
  }
  if (control_fd >= 0) {
    error_code ec;
    control = std::make_unique<net::local::stream_protocol::acceptor>(main_io);
    control->assign(net::local::stream_protocol(), control_fd, ec);
    if (ec) {
      ::close(control_fd);
      log.event(LogLevel::Error, "error",
                {{"what", "control_socket"}, {"path", control_name}, {"error", ec.message()}});
      return 1;
    }
    net::co_spawn(main_io, control_loop(*control, workers, *sh), net::detached);
  }

  // Every socket is open: root goes for good, before a byte is read from the
  // network and before the other threads exist (capabilities are per thread).
  {
    std::string error;
    if (!platform::drop_privileges({cfg.gateway.user, cfg.gateway.group, "/"}, error)) {
      log.event(LogLevel::Error, "privilege_drop_failed",
                {{"user", cfg.gateway.user}, {"group", cfg.gateway.group}, {"error", error}});
      return 1;
    }
  }

  const std::string where = workers.front()->describe_sockets();
  const std::string status = "serving DNS on " + where;
  auto notify = [&](bool ok, const char* what) {
    if (!ok) log.event(LogLevel::Warning, "notify_error", {{"state", what}});
  };
  net::signal_set signals(main_io, SIGINT, SIGTERM, SIGUSR1);
  signals.add(SIGHUP);
  std::function<void(error_code, int)> on_signal = [&](error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGUSR1) {
      log.event(LogLevel::Info, "stats", fields_of(sh->stats.to_text()));
    } else if (sig == SIGHUP) {
      notify(platform::notify_reloading(), "reloading");
      reload(*sh, workers, listen, threads);
      notify(platform::notify_ready(status), "ready");
    } else {
      notify(platform::notify_stopping(), "stopping");
      log.event(LogLevel::Notice, "stop", {{"signal", std::to_string(sig)}});
      for (auto& w : workers) w->stop();
      return;
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  net::steady_timer watchdog(main_io);
  const auto watchdog_every = platform::watchdog_interval();
  std::function<void()> pet_watchdog = [&] {
    notify(platform::notify_watchdog(), "watchdog");
    watchdog.expires_after(*watchdog_every);
    watchdog.async_wait([&](error_code ec) {
      if (!ec) pet_watchdog();
    });
  };
  if (watchdog_every) pet_watchdog();

  // How many client-caused lines were suppressed, once the flood is over.
  net::steady_timer log_limit_timer(main_io);
  std::function<void()> report_suppressed = [&] {
    log.report_suppressed(sh->log_limit);
    log_limit_timer.expires_after(std::chrono::seconds{1});
    log_limit_timer.async_wait([&](error_code ec) {
      if (!ec) report_suppressed();
    });
  };
  report_suppressed();

  std::string allow;
  for (const auto& p : policy->allow) allow += (allow.empty() ? "" : ",") + p.to_string();
  platform::LogFields start{{"listen", where},
                            {"allow", allow},
                            {"threads", std::to_string(threads)},
                            {"root_servers", std::to_string(options.hints.servers.size())}};
  if (!control_name.empty()) start.emplace_back("control", control_name);
  log.event(LogLevel::Notice, "start", start);
  // As the unprivileged user: the file is its own.
  load_cache(*sh, workers);
  load_anchor_state(*sh, workers);
  for (auto& w : workers) w->start();
  if (sh->tracker) net::co_spawn(main_io, anchor_refresh_loop(*sh, workers), net::detached);
  std::vector<std::thread> pool;
  for (std::size_t i = 1; i < workers.size(); ++i) {
    pool.emplace_back([w = workers[i].get()] { w->run(); });
  }
  notify(platform::notify_ready(status), "ready");
  workers.front()->run();
  for (auto& w : workers) w->stop();
  for (auto& t : pool) t.join();
  save_cache(*sh, workers);
  log.report_suppressed(sh->log_limit, true);
  log.event(LogLevel::Info, "stats", fields_of(sh->stats.to_text(), {{"final", "1"}}));
  // As the unprivileged user this may fail (a directory root owns): the
  // next start replaces the old socket anyway.
  if (!options.control_path.empty() && options.control_fd < 0) ::unlink(options.control_path.c_str());
  return 0;
}

int control_client(const std::string& path, const std::string& command) {
  return platform::run_control_client("diode-resolver", path, command);
}

}  // namespace diode::resolver

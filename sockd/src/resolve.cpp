#include "diode/sockd/resolve.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>

namespace diode::sockd {

namespace {

using boost::system::error_code;

// A watched c-ares socket. c-ares owns the descriptor: we release it, never
// close it.
struct Watch {
  explicit Watch(net::io_context& io, int fd) : desc(io, fd) {}
  net::posix::stream_descriptor desc;
  bool want_read = false;
  bool want_write = false;
  bool reading = false;
  bool writing = false;
  bool active = true;
};

// One lookup's rendezvous: the c-ares callback fills it and wakes the
// coroutine through the timer.
struct Pending {
  explicit Pending(net::io_context& io) : wake(io) { wake.expires_at(net::steady_timer::time_point::max()); }
  net::steady_timer wake;
  bool done = false;
  Resolved result;
};

}  // namespace

std::optional<std::vector<platform::IpAddress>> special_use_addresses(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  constexpr std::string_view kLocal = "localhost";
  if (name.size() < kLocal.size()) return std::nullopt;
  const std::string_view tail = name.substr(name.size() - kLocal.size());
  for (std::size_t i = 0; i < kLocal.size(); ++i) {
    const char c = tail[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kLocal[i]) return std::nullopt;
  }
  // "localhost" itself, or a label boundary before it ("x.localhost", not "xlocalhost").
  if (name.size() > kLocal.size() && name[name.size() - kLocal.size() - 1] != '.') return std::nullopt;
  return std::vector<platform::IpAddress>{*platform::IpAddress::parse("::1"),
                                          platform::IpAddress::v4(0x7f000001)};
}

struct NameLookup::Impl {
  explicit Impl(net::io_context& i) : io(i), timer(i) {}

  net::io_context& io;
  ares_channel channel = nullptr;
  net::steady_timer timer;
  std::map<int, std::shared_ptr<Watch>> watches;
  std::size_t pending = 0;
  bool destroying = false;

  static void sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<Impl*>(data)->on_sock_state(fd, readable != 0, writable != 0);
  }

  void on_sock_state(int fd, bool readable, bool writable) {
    if (!readable && !writable) {
      auto it = watches.find(fd);
      if (it != watches.end()) {
        it->second->active = false;
        it->second->desc.release();  // cancels the waits; the fd stays c-ares'
        watches.erase(it);
      }
      return;
    }
    auto& w = watches[fd];
    if (!w) w = std::make_shared<Watch>(io, fd);
    w->want_read = readable;
    w->want_write = writable;
    arm(w, fd);
  }

  void arm(const std::shared_ptr<Watch>& w, int fd) {
    if (w->want_read && !w->reading) {
      w->reading = true;
      w->desc.async_wait(net::posix::descriptor::wait_read, [this, w, fd](error_code ec) {
        w->reading = false;
        if (ec || !w->active || destroying) return;
        ares_process_fd(channel, fd, ARES_SOCKET_BAD);
        if (w->active) arm(w, fd);
        schedule();
      });
    }
    if (w->want_write && !w->writing) {
      w->writing = true;
      w->desc.async_wait(net::posix::descriptor::wait_write, [this, w, fd](error_code ec) {
        w->writing = false;
        if (ec || !w->active || destroying) return;
        ares_process_fd(channel, ARES_SOCKET_BAD, fd);
        if (w->active) arm(w, fd);
        schedule();
      });
    }
  }

  // c-ares' own retransmission and timeout clock.
  void schedule() {
    if (pending == 0 || destroying) {
      timer.cancel();
      return;
    }
    timeval max{1, 0};
    timeval tv{};
    const timeval* t = ares_timeout(channel, &max, &tv);
    const auto wait = std::chrono::seconds(t->tv_sec) + std::chrono::microseconds(t->tv_usec);
    timer.expires_after(wait);
    timer.async_wait([this](error_code ec) {
      if (ec || destroying) return;
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      schedule();
    });
  }

  static void on_result(void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
    auto* holder = static_cast<std::shared_ptr<Pending>*>(arg);
    std::shared_ptr<Pending> p = std::move(*holder);
    delete holder;
    p->result.status = status;
    if (status == ARES_SUCCESS && res != nullptr) {
      for (ares_addrinfo_node* n = res->nodes; n != nullptr; n = n->ai_next) {
        platform::IpAddress a;
        if (n->ai_family == AF_INET && n->ai_addr != nullptr) {
          sockaddr_in sin{};
          std::memcpy(&sin, n->ai_addr, sizeof sin);
          a = platform::IpAddress::v4(ntohl(sin.sin_addr.s_addr));
        } else if (n->ai_family == AF_INET6 && n->ai_addr != nullptr) {
          sockaddr_in6 sin6{};
          std::memcpy(&sin6, n->ai_addr, sizeof sin6);
          a.family = platform::Family::V6;
          std::memcpy(a.bytes.data(), &sin6.sin6_addr, 16);
        } else {
          continue;
        }
        p->result.addrs.push_back(a);
      }
    }
    if (res != nullptr) ares_freeaddrinfo(res);
    if (status != ARES_SUCCESS) p->result.error = ares_strerror(status);
    if (status == ARES_SUCCESS && p->result.addrs.empty()) {
      p->result.status = ARES_ENODATA;
      p->result.error = ares_strerror(ARES_ENODATA);
    }
    p->done = true;
    p->wake.cancel();
  }
};

NameLookup::NameLookup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NameLookup::~NameLookup() {
  if (impl_ && impl_->channel != nullptr) {
    // Pending callbacks run now with ARES_EDESTRUCTION and wake their waiters.
    ares_destroy(impl_->channel);
    impl_->destroying = true;
    for (auto& [fd, w] : impl_->watches) {
      w->active = false;
      w->desc.release();
    }
    impl_->watches.clear();
    impl_->timer.cancel();
  }
}

std::unique_ptr<NameLookup> NameLookup::create(net::io_context& io, const platform::Endpoint& server,
                                           std::string& error) {
  static const int lib_status = ares_library_init(ARES_LIB_INIT_ALL);
  if (lib_status != ARES_SUCCESS) {
    error = std::string("ares_library_init: ") + ares_strerror(lib_status);
    return nullptr;
  }
  auto impl = std::make_unique<Impl>(io);
  ares_options opts{};
  int mask = 0;
  opts.sock_state_cb = &Impl::sock_state;
  opts.sock_state_cb_data = impl.get();
  mask |= ARES_OPT_SOCK_STATE_CB;
  // Names from SOCKS clients are absolute: no search list, DNS only (no
  // /etc/hosts), a bounded number of tries.
  opts.flags = ARES_FLAG_NOSEARCH;
  mask |= ARES_OPT_FLAGS;
  char lookups[] = "b";
  opts.lookups = lookups;
  mask |= ARES_OPT_LOOKUPS;
  opts.timeout = 2000;
  mask |= ARES_OPT_TIMEOUTMS;
  opts.tries = 2;
  mask |= ARES_OPT_TRIES;
  int st = ares_init_options(&impl->channel, &opts, mask);
  if (st != ARES_SUCCESS) {
    error = std::string("ares_init_options: ") + ares_strerror(st);
    return nullptr;
  }
  ares_addr_port_node node{};
  node.next = nullptr;
  if (server.addr.family == platform::Family::V4) {
    node.family = AF_INET;
    std::memcpy(&node.addr.addr4, server.addr.bytes.data(), 4);
  } else {
    node.family = AF_INET6;
    std::memcpy(&node.addr.addr6, server.addr.bytes.data(), 16);
  }
  node.udp_port = server.port;
  node.tcp_port = server.port;
  st = ares_set_servers_ports(impl->channel, &node);
  if (st != ARES_SUCCESS) {
    error = std::string("ares_set_servers_ports: ") + ares_strerror(st);
    ares_destroy(impl->channel);
    impl->channel = nullptr;
    return nullptr;
  }
  return std::unique_ptr<NameLookup>(new NameLookup(std::move(impl)));
}

net::awaitable<Resolved> NameLookup::resolve(std::string name) {
  // c-ares 1.18 answers a bare "localhost" itself, differently from
  // "localhost.", and would ask DNS for names below it: decide them here.
  if (auto local = special_use_addresses(name)) {
    Resolved r;
    r.addrs = std::move(*local);
    co_return r;
  }
  auto p = std::make_shared<Pending>(impl_->io);
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  ++impl_->pending;
  ares_getaddrinfo(impl_->channel, name.c_str(), nullptr, &hints, &Impl::on_result,
                   new std::shared_ptr<Pending>(p));
  impl_->schedule();
  error_code ec;
  // The wait ends when the callback cancels the timer; bounded by c-ares'
  // own timeouts (2 s, 2 tries).
  for (int i = 0; i < 64 && !p->done; ++i) {
    co_await p->wake.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  --impl_->pending;
  if (!p->done) {
    p->result.status = ARES_ETIMEOUT;
    p->result.error = ares_strerror(ARES_ETIMEOUT);
  }
  co_return p->result;
}

void NameLookup::cancel_all() {
  if (impl_->channel != nullptr) ares_cancel(impl_->channel);
}

}  // namespace diode::sockd

#pragma once
// What sockd's two hand-written session loops (docs/sockd.md, "I/O paths":
// the io_uring loop and the epoll loop) share that is not I/O: the
// admission of a new session and its log record, the handshake fed batch by
// batch, the decision after a parsed request (which requests a loop keeps,
// which it hands to the worker's Asio path), a Deny or Failed plan turned
// into reply bytes, the Granted reply's bookkeeping, hooks, and the hand-off
// itself. A loop keeps its sessions in a type derived from FastSession and
// only moves bytes; every decision here is the session plan's, as on the
// Asio path. Nothing here names an io_uring or epoll type.

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server_impl.hpp"

namespace diode::sockd::fast {

/// A listening socket a loop took from its worker's acceptors.
struct FastListener {
  int fd = -1;
  std::string iface;
  Endpoint local;  // unspecified address: a wildcard listener
  std::string local_text;  // `local` as the log writes it
  int family = AF_INET;
};

/// A session's state while a loop runs its handshake and connect.
struct FastSession {
  Clock::time_point started;
  Clock::time_point deadline;  // handshake, then connect
  Clock::time_point connect_started;
  const FastListener* listener = nullptr;
  Endpoint peer;
  std::optional<Endpoint> reached;  // a wildcard listener's: the address the client reached
  // The log writes session lines (at admission): the record's display-only
  // fields (client, listener, destination, user) are filled; else not.
  bool detail = true;
  std::optional<Server::Impl::Slot> slot;
  std::shared_ptr<const RelayPolicy> pol;
  // `start` is filled when the line is written (not read from the clock for
  // every session); the other fields keep their defaults.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
  SessionRecord rec{.start = {}};
#pragma GCC diagnostic pop
  std::unique_ptr<HandshakeBuffers> hx;  // until the request is parsed
  proto::Version version = proto::Version::Socks5;
  RecycledPtr<SessionPlan> plan;  // from the request to the connect's outcome
  std::uint16_t port = 0;             // the destination's
  std::chrono::milliseconds idle{};   // the relay's idle timeout, once granted
  bool handoff = false;               // the Asio path takes it over
  // Replies gathered while one batch of input is fed, then sent at once
  // (with the request's reply, when a request came pipelined).
  std::array<std::uint8_t, 64> out{};
  std::size_t out_len = 0;
  std::vector<std::uint8_t> early;  // the client's bytes after its request
  // How the session ended, the first cause only (RelayEnd::Eof: normally).
  RelayEnd end = RelayEnd::Eof;
  bool failed = false;
  // Up and down bytes the relay moved.
  std::uint64_t up = 0, down = 0;

  void gather(std::span<const std::uint8_t> bytes);
  void record(RelayEnd why) {
    if (failed) return;
    failed = true;
    end = why;
  }
};

/// Takes listening socket `acc` out of its worker's io_context for a loop:
/// its descriptor, interface, address family and local address into `l`.
void take_listener(tcp::socket& acc, const std::string& iface, FastListener& l);

/// A loop could not start: the listening descriptors it took (in the
/// worker's order) go back to the worker's acceptors, whose Asio accept
/// loops serve them instead. The descriptors in `listeners` become -1.
template <typename L>
void give_back_listeners(Server::Impl& server, RelayWorker& w,
                         std::vector<std::unique_ptr<L>>& listeners);
void give_back_fds(Server::Impl& server, RelayWorker& w, std::vector<std::pair<int, int>> fds);

/// A loop's live sessions: an intrusive list through their prev and next.
template <typename S>
void list_push(S*& head, S* s) {
  s->next = head;
  if (head != nullptr) head->prev = s;
  head = s;
}
template <typename S>
void list_remove(S*& head, S* s) {
  if (s->prev != nullptr) s->prev->next = s->next;
  else head = s->next;
  if (s->next != nullptr) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
}

/// A loop's thread: its setup (else its listeners go back to Asio), its
/// loop until the daemon stops, its teardown.
template <typename State>
void run_loop(State& st) {
  if (!st.setup()) {
    st.give_back_listeners();
    st.teardown();
    return;
  }
  st.loop();
  st.teardown();
}

template <typename L>
void give_back_listeners(Server::Impl& server, RelayWorker& w,
                         std::vector<std::unique_ptr<L>>& listeners) {
  std::vector<std::pair<int, int>> fds;  // descriptor, family
  for (auto& l : listeners) {
    fds.emplace_back(l->fd, l->family);
    l->fd = -1;
  }
  give_back_fds(server, w, std::move(fds));
}

bool fill_sockaddr(const IpAddress& a, std::uint16_t port, sockaddr_storage& ss, socklen_t& len);
Endpoint from_sockaddr(const sockaddr_storage& ss);
/// getsockname(2) of `fd`, or nullopt.
std::optional<Endpoint> local_of(int fd);

/// Admits a session accepted on `l` from `client` under the policy in force
/// now: true with `s` ready for its handshake (limits' slot, policy, record,
/// deadline, handshake machine); false when a limit refused it, counted and
/// logged (the caller closes `fd`). Counts the accept either way.
/// `now`: the loop's time of the accept. The loop reads the handshake into
/// buffers of its own (`hx->in` stays empty until a hand-off).
bool admit(Server::Impl& server, RelayWorker& w, int fd, const Endpoint& client,
           const FastListener& l, FastSession& s, Clock::time_point now);

/// What a batch of handshake bytes leads to.
enum class HsNext : std::uint8_t {
  NeedMore,  // send `out` if anything is in it, then read more
  HandOff,   // the Asio path's: send `out`, then post_hand_off (hand_off() done)
  Final,     // send `out` and end the session (record filled)
  Connect,   // the plan has one address to connect to (plan, port set)
};

/// Feeds `in` (the client's next bytes, which may be hx->in itself) to the
/// handshake machine, gathering its replies into `out` after what is there,
/// and decides once a request is parsed. `off` is then how much of `in` was
/// fed; what followed a request is in `early` (for the target, with
/// Connect), and with HandOff in hx->in[0, hx->have) too.
HsNext feed(RelayWorker& w, FastSession& s, std::span<const std::uint8_t> in,
            Clock::time_point now, std::size_t& off);

/// Ends the session as its plan decided (Deny, or Failed after a connect):
/// hooks, rule hits, the record and the reply gathered into `out`.
void conclude(RelayWorker& w, FastSession& s);

/// The target is connected (its own address `bound`): counters, hooks, rule
/// hits, the record, and the Granted reply gathered into `out`; the plan and
/// the policy are dropped (the relay keeps only `idle`).
void granted(RelayWorker& w, FastSession& s, const std::optional<Endpoint>& bound,
             Clock::time_point now);

/// Runs a decision's hooks on the worker's io_context.
void run_hooks(RelayWorker& w, const Check& c);

/// Gives client socket `fd` (no loop watches it any more) to the worker's
/// Asio path with the handshake machine, the unfed bytes, the limits' slot
/// and the policy; `nonblocking`: the descriptor already has O_NONBLOCK.
void post_hand_off(Server::Impl& server, RelayWorker& w, FastSession& s, int fd,
                   bool nonblocking);

/// What fill_pipe did.
enum class Fill : std::uint8_t {
  Filled,  // `inpipe` bytes are in `pipe`
  NoPipe,  // no pipe could be had (the descriptor limit)
  Eof,     // the source's end; no pipe held
  Empty,   // nothing to read now; no pipe held
  Failed,  // a read error (errno in `err`); no pipe held
};

/// Bulk's first step, on both loops: a pooled pipe, and a non-blocking
/// splice(2) of up to `chunk` bytes from socket `src` into it. The pipe is
/// held only when bytes went in.
Fill fill_pipe(PipePool& pool, int src, std::size_t chunk, PipePool::Pipe& pipe,
               std::uint32_t& inpipe, int& err);

/// Logs and counts a session that ends on a loop; `relay` when it got as far
/// as relaying (then `up`, `down` and `end` go into its record).
void finish(Server::Impl& server, RelayWorker& w, FastSession& s, bool relay,
            Clock::time_point now);

}  // namespace diode::sockd::fast

#pragma once
// The byte pump between a client and its target once a CONNECT (or BIND)
// has succeeded: small messages by one recv and one send through the
// thread's 64 KiB buffer (a session holds no buffer of its own); a read that
// fills it shows bulk, and that direction then moves by splice(2) through a
// pipe (bytes never enter user space) for the rest of the session. Half-closes are passed on in both directions and no byte is lost
// when one side closes first. Pipes come from a per-thread pool and are held
// only while bytes are in flight, so an idle session holds none.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "diode/platform/asio.hpp"

namespace diode::sockd {

namespace net = boost::asio;
using tcp = net::ip::tcp;

/// A pool of non-blocking pipes for one thread (one io_context). Not
/// thread-safe by design: every relay of a thread shares it.
class PipePool {
 public:
  struct Pipe {
    int read_fd = -1;
    int write_fd = -1;
  };

  /// `pipe_size`: a capacity asked of each new pipe (F_SETPIPE_SZ; where
  /// the kernel refuses, the default 64 KiB stays); 0 keeps the default.
  explicit PipePool(std::size_t max_idle = 64, int pipe_size = 0)
      : max_idle_(max_idle), pipe_size_(pipe_size) {}
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  /// A pipe from the pool, or a new one; read_fd is -1 when pipe2() failed
  /// (EMFILE): the caller then falls back to copying through a buffer.
  Pipe get();
  /// Returns an empty pipe to the pool (closes it when the pool is full).
  void put(Pipe p);
  /// Closes a pipe that may still hold bytes.
  static void discard(Pipe p);

  std::size_t idle() const { return idle_.size(); }
  std::size_t created() const { return created_; }

 private:
  std::vector<Pipe> idle_;
  std::size_t max_idle_;
  int pipe_size_;
  std::size_t created_ = 0;
};

/// Why a relay ended.
enum class RelayEnd : std::uint8_t {
  Eof,          // both directions closed cleanly
  Idle,         // no byte either way for idle_timeout
  ClientError,  // reset or error on the client's socket
  TargetError,  // reset or error on the target's socket
  Stopped,      // stop() was called (shutdown)
};

std::string_view to_string(RelayEnd e);

struct RelayResult {
  std::uint64_t up = 0;    // client → target bytes
  std::uint64_t down = 0;  // target → client bytes
  RelayEnd end = RelayEnd::Eof;
};

struct RelayOptions {
  std::chrono::milliseconds idle_timeout{std::chrono::hours(2)};
  std::size_t chunk = 256 * 1024;  // most bytes moved by one splice call
  bool use_splice = true;          // false: bulk too is copied through a user-space buffer
};

/// Relays between two connected sockets until both directions are closed,
/// one side fails, or nothing moves for idle_timeout. Takes ownership of
/// both sockets and closes them before it returns.
net::awaitable<RelayResult> relay(tcp::socket client, tcp::socket target, PipePool& pool,
                                  RelayOptions options);

}  // namespace diode::sockd

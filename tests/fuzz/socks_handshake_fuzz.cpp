// Fuzzes the server-side SOCKS handshake machine. Input layout:
//   byte 0: bit 0 allow no-auth, bit 1 allow user/pass, bit 2 prefer
//           user/pass, bit 3 the verdict given to accept_auth
//   byte 1: seed of the read sizes
//   rest:   the bytes the client sends
// The same stream is driven in one read and in pseudo-random reads; both
// must end identically (kind, failure, replies, request, unconsumed rest),
// which is the property the relay relies on. Any violated invariant traps.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "diode/sockd/socks_proto.hpp"

using namespace diode::sockd::proto;

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

struct Outcome {
  StepKind kind = StepKind::NeedMore;
  Failure failure = Failure::None;
  std::vector<std::uint8_t> sent;
  std::size_t rest = 0;  // bytes left unconsumed after a final step
  Request request;
};

// Chunk sizes 1..64 from a tiny LCG, or the whole stream when seed is 0.
Outcome drive(const HandshakeOptions& options, bool verdict, std::span<const std::uint8_t> stream,
              std::uint8_t seed) {
  ServerHandshake hs(options);
  Outcome out;
  std::uint32_t state = seed;
  std::size_t pos = 0;
  // Each turn consumes a byte or finishes a step that needs no bytes; the
  // bound is generous and still finite.
  for (std::size_t turns = 0; turns < 4 * stream.size() + 16; ++turns) {
    std::size_t len = stream.size() - pos;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      len = std::min<std::size_t>(len, 1 + ((state >> 16) % 64));
    }
    const auto chunk = stream.subspan(pos, len);
    Step s = hs.feed(chunk);
    require(s.consumed <= chunk.size());
    require(s.reply.size() <= 10);
    pos += s.consumed;
    if (s.kind == StepKind::Authenticate) {
      require(hs.username().size() >= 1 && hs.username().size() <= kMaxField);
      require(hs.password().size() <= kMaxField);
      s = hs.accept_auth(verdict);
      require(hs.password().empty());
    }
    out.sent.insert(out.sent.end(), s.reply.begin(), s.reply.end());
    if (s.kind == StepKind::Request || s.kind == StepKind::Malformed) {
      out.kind = s.kind;
      out.failure = s.failure;
      out.rest = stream.size() - pos;
      if (s.kind == StepKind::Request) out.request = hs.request();
      require(hs.finished());
      // Finished means finished: nothing more is consumed or sent.
      const Step again = hs.feed(stream.subspan(pos));
      require(again.kind == s.kind && again.consumed == 0 && again.reply.empty());
      return out;
    }
    if (s.kind == StepKind::NeedMore) {
      require(s.consumed == chunk.size());
      if (pos == stream.size()) return out;
    }
  }
  require(false);  // no progress: a bug in the machine
  return out;
}

void check_request(const Request& r) {
  const Address& d = r.destination;
  if (d.type == AddressType::Domain) {
    require(!d.name.empty() && d.name.size() <= kMaxField);
    require(d.name.view().find('\0') == std::string_view::npos);
  }
  if (r.version != Version::Socks5) {
    require(r.command == Command::Connect || r.command == Command::Bind);
    require(r.method == kMethodNone);
  }
  // What the server parsed, the client side can encode and the server parse
  // again to the same request.
  if (r.version == Version::Socks5) {
    const auto enc = encode_socks5_request(r.command, d);
    require(enc.has_value());
    ServerHandshake again;
    const std::array<std::uint8_t, 3> hello{5, 1, 0};
    require(again.feed(hello).kind == StepKind::Send);
    const Step s = again.feed(enc->view());
    require(s.kind == StepKind::Request && s.consumed == enc->size);
    require(again.request().destination == d && again.request().command == r.command);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t flags = data[0];
  const HandshakeOptions options{(flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0};
  const bool verdict = (flags & 8) != 0;
  const std::span<const std::uint8_t> stream(data + 2, size - 2);

  const Outcome whole = drive(options, verdict, stream, 0);
  const Outcome split = drive(options, verdict, stream, data[1] == 0 ? 1 : data[1]);
  require(whole.kind == split.kind);
  require(whole.failure == split.failure);
  require(whole.sent == split.sent);
  require(whole.rest == split.rest);
  if (whole.kind == StepKind::Request) {
    const Request& a = whole.request;
    const Request& b = split.request;
    require(a.version == b.version && a.command == b.command && a.destination == b.destination &&
            a.userid == b.userid && a.username == b.username && a.method == b.method);
    check_request(a);
  }
  return 0;
}

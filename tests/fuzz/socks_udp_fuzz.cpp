// Fuzzes the RFC 1928 §7 UDP request header parser (the relay reads one per
// datagram from the client) and the client side, which shares its address
// reader: the reply decoders, and the client handshake machine fed the input
// as the server's bytes, in one read and one byte at a time, which must end
// alike. A header that parses must re-encode to the same bytes (RSV aside,
// which is not checked) and parse back to the same value.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "diode/sockd/proto_client.hpp"
#include "diode/sockd/socks_proto.hpp"

using namespace diode::sockd::proto;

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

struct ClientEnd {
  ClientStepKind kind = ClientStepKind::NeedMore;
  ClientFailure failure = ClientFailure::None;
  std::size_t consumed = 0;
  std::size_t replies = 0;
  std::uint8_t last_code = 0;
};

ClientEnd drive_client(const ClientRequest& req, std::span<const std::uint8_t> in, bool bytewise) {
  ClientHandshake c(req);
  ClientEnd end;
  require(c.start().kind == ClientStepKind::Send);
  // Each turn consumes at least one byte or ends; bounded by the input size.
  for (std::size_t turns = 0; turns <= in.size() + 4 && !c.finished(); ++turns) {
    if (end.consumed == in.size()) break;
    const std::size_t len = bytewise ? 1 : in.size() - end.consumed;
    const ClientStep s = c.feed(in.subspan(end.consumed, len));
    require(s.consumed <= len);
    end.consumed += s.consumed;
    end.kind = s.kind;
    end.failure = s.failure;
    if (s.kind == ClientStepKind::Reply) {
      ++end.replies;
      end.last_code = c.reply().code;
    }
    if (s.kind == ClientStepKind::NeedMore) require(s.consumed == len);
  }
  return end;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);

  const UdpParse p = parse_udp_header(in);
  if (p.status == ParseStatus::Ok) {
    require(p.payload_offset <= size);
    require(p.header.frag == in[2]);
    const Address& d = p.header.destination;
    require(p.payload_offset == 3 + d.wire_size());
    std::array<std::uint8_t, 3 + 1 + 1 + kMaxField + 2> out{};
    const std::size_t n = encode_udp_header(d, out, p.header.frag);
    require(n == p.payload_offset);
    for (std::size_t i = 2; i < n; ++i) require(out[i] == in[i]);
    const UdpParse back = parse_udp_header(std::span<const std::uint8_t>(out.data(), n));
    require(back.status == ParseStatus::Ok && back.header.destination == d &&
            back.header.frag == p.header.frag && back.payload_offset == n);
  } else if (p.status == ParseStatus::NeedMore) {
    // Truncated: the longest header is 3 + 1 + 1 + 255 + 2 bytes.
    require(size < 3 + 1 + 1 + kMaxField + 2);
  }

  const auto r5 = parse_socks5_reply(in);
  if (r5.status == ParseStatus::Ok) {
    require(r5.consumed <= size);
    const Encoded e = encode_socks5_reply_raw(r5.value.rep, r5.value.bound);
    require(e.size == r5.consumed);
    for (std::size_t i = 0; i < e.size; ++i) require(i == 2 || e.bytes[i] == in[i]);
  }
  const auto r4 = parse_socks4_reply(in);
  if (r4.status == ParseStatus::Ok) require(r4.consumed == 8 && size >= 8);
  const auto sel = parse_method_selection(in);
  if (sel.status == ParseStatus::Ok) require(sel.value == in[1]);
  const auto st = parse_auth_status(in);
  if (st.status == ParseStatus::Ok) require(st.value == (in[1] == 0));

  Address dst;
  dst.ip = diode::platform::IpAddress::v4(0xC0000201);  // 192.0.2.1
  dst.port = 80;
  const ClientRequest requests[] = {
      {Version::Socks4, Command::Bind, dst, "u", {}, {}, true},
      {Version::Socks5, Command::Connect, dst, {}, "user", "pw", true},
      {Version::Socks5, Command::Bind, dst, {}, {}, {}, true},
  };
  for (const ClientRequest& req : requests) {
    const ClientEnd whole = drive_client(req, in, false);
    const ClientEnd bytewise = drive_client(req, in, true);
    // Malformed input is refused in the read that proves it, so the
    // consumed counts of a failure may differ; everything else may not.
    require(whole.kind == bytewise.kind && whole.failure == bytewise.failure &&
            whole.replies == bytewise.replies && whole.last_code == bytewise.last_code);
    if (whole.kind != ClientStepKind::Failed) require(whole.consumed == bytewise.consumed);
  }
  return 0;
}

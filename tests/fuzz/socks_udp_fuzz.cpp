// Fuzzes the RFC 1928 §7 UDP request header parser (the relay reads one per
// datagram from the client) and the client-side reply decoders, which share
// its address reader. A header that parses must re-encode to the same bytes
// (RSV aside, which is not checked) and parse back to the same value.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "diode/sockd/socks_proto.hpp"

using namespace diode::sockd::proto;

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
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
  return 0;
}

// Stateless parts of the SOCKS codec: addresses, reply codes and builders,
// the RFC 1928 §7 UDP header, and the client-side encoders and decoders.

#include <cerrno>
#include <cstring>

#include "diode/sockd/socks_proto.hpp"
#include "socks_proto_wire.hpp"

namespace diode::sockd::proto {

using platform::Family;
using platform::IpAddress;

// ---------------------------------------------------------------------------
// Address

Address Address::from_ip(const IpAddress& ip, std::uint16_t port) {
  Address a;
  a.type = ip.family == Family::V4 ? AddressType::Ipv4 : AddressType::Ipv6;
  a.ip = ip;
  a.port = port;
  return a;
}

std::optional<Address> Address::from_name(std::string_view name, std::uint16_t port) {
  if (name.empty() || name.size() > kMaxField || name.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  Address a;
  a.type = AddressType::Domain;
  a.name.assign(name);
  a.port = port;
  return a;
}

std::string Address::to_string() const {
  const std::string port_text = std::to_string(port);
  switch (type) {
    case AddressType::Ipv4:
      return ip.to_string() + ':' + port_text;
    case AddressType::Ipv6:
      return '[' + ip.to_string() + "]:" + port_text;
    case AddressType::Domain:
      return std::string(name.view()) + ':' + port_text;
  }
  return "?";
}

std::size_t Address::wire_size() const {
  switch (type) {
    case AddressType::Ipv4:
      return 1 + 4 + 2;
    case AddressType::Ipv6:
      return 1 + 16 + 2;
    case AddressType::Domain:
      return 1 + 1 + name.size() + 2;
  }
  return 0;
}

namespace wire {

std::size_t write_address(const Address& a, std::uint8_t* out) {
  std::size_t n = 0;
  out[n++] = static_cast<std::uint8_t>(a.type);
  switch (a.type) {
    case AddressType::Ipv4:
      // An IPv6 address tagged Ipv4 would be a caller bug; the first four
      // bytes are written either way, never more.
      std::memcpy(out + n, a.ip.bytes.data(), 4);
      n += 4;
      break;
    case AddressType::Ipv6:
      std::memcpy(out + n, a.ip.bytes.data(), 16);
      n += 16;
      break;
    case AddressType::Domain:
      out[n++] = static_cast<std::uint8_t>(a.name.size());
      std::memcpy(out + n, a.name.view().data(), a.name.size());
      n += a.name.size();
      break;
  }
  put_port(out + n, a.port);
  return n + 2;
}

AddressParse read_address(std::span<const std::uint8_t> b) {
  AddressParse r;
  if (b.empty()) return r;
  const std::uint8_t atyp = b[0];
  std::size_t addr_len = 0;
  std::size_t offset = 1;
  if (atyp == 1) {
    addr_len = 4;
  } else if (atyp == 4) {
    addr_len = 16;
  } else if (atyp == 3) {
    if (b.size() < 2) return r;
    addr_len = b[1];  // an unsigned byte: 0..255, never sign-extended
    offset = 2;
    if (addr_len == 0) {
      r.status = ParseStatus::Malformed;
      r.failure = Failure::EmptyName;
      r.bad_offset = 2;
      return r;
    }
  } else {
    r.status = ParseStatus::Malformed;
    r.failure = Failure::UnknownAddressType;
    r.bad_offset = 1;
    return r;
  }
  const std::size_t total = offset + addr_len + 2;
  if (b.size() < total) return r;
  Address& a = r.address;
  if (atyp == 3) {
    const std::string_view name(reinterpret_cast<const char*>(b.data() + offset), addr_len);
    if (name.find('\0') != std::string_view::npos) {
      r.status = ParseStatus::Malformed;
      r.failure = Failure::NameHasNul;
      r.bad_offset = total;
      return r;
    }
    a.type = AddressType::Domain;
    a.name.assign(name);
  } else {
    a.type = atyp == 1 ? AddressType::Ipv4 : AddressType::Ipv6;
    a.ip.family = atyp == 1 ? Family::V4 : Family::V6;
    std::memcpy(a.ip.bytes.data(), b.data() + offset, addr_len);
  }
  a.port = get_port(b.data() + offset + addr_len);
  r.status = ParseStatus::Ok;
  r.size = total;
  return r;
}

}  // namespace wire

// ---------------------------------------------------------------------------
// Reply codes

Socks5Reply to_socks5(ReplyKind kind) {
  switch (kind) {
    case ReplyKind::Granted:
      return Socks5Reply::Succeeded;
    case ReplyKind::GeneralFailure:
      return Socks5Reply::GeneralFailure;
    case ReplyKind::NotAllowed:
      return Socks5Reply::NotAllowed;
    case ReplyKind::NetUnreachable:
      return Socks5Reply::NetworkUnreachable;
    case ReplyKind::HostUnreachable:
      return Socks5Reply::HostUnreachable;
    case ReplyKind::Refused:
      return Socks5Reply::ConnectionRefused;
    case ReplyKind::TtlExpired:
      return Socks5Reply::TtlExpired;
    case ReplyKind::CommandNotSupported:
      return Socks5Reply::CommandNotSupported;
    case ReplyKind::AddressTypeNotSupported:
      return Socks5Reply::AddressTypeNotSupported;
    // An ident check that fails is a rule saying no; v5 has nothing closer.
    case ReplyKind::IdentUnreachable:
    case ReplyKind::IdentMismatch:
      return Socks5Reply::NotAllowed;
  }
  return Socks5Reply::GeneralFailure;
}

Socks4Reply to_socks4(ReplyKind kind) {
  switch (kind) {
    case ReplyKind::Granted:
      return Socks4Reply::Granted;
    case ReplyKind::IdentUnreachable:
      return Socks4Reply::IdentUnreachable;
    case ReplyKind::IdentMismatch:
      return Socks4Reply::IdentMismatch;
    default:
      return Socks4Reply::Rejected;
  }
}

ReplyKind reply_kind_from_errno(int err) {
  switch (err) {
    case 0:
      return ReplyKind::Granted;
    case ECONNREFUSED:
      return ReplyKind::Refused;
    case ENETUNREACH:
    case ENETDOWN:
      return ReplyKind::NetUnreachable;
    case EHOSTUNREACH:
    case EHOSTDOWN:
      return ReplyKind::HostUnreachable;
    // A connect that never got an answer: the usual SOCKS5 reading of 06.
    case ETIMEDOUT:
      return ReplyKind::TtlExpired;
    // Local policy (netfilter, seccomp, a port below 1024 for BIND).
    case EACCES:
    case EPERM:
      return ReplyKind::NotAllowed;
    case EAFNOSUPPORT:
    case EPFNOSUPPORT:
      return ReplyKind::AddressTypeNotSupported;
    default:
      return ReplyKind::GeneralFailure;
  }
}

std::string_view to_string(ReplyKind kind) {
  switch (kind) {
    case ReplyKind::Granted:
      return "granted";
    case ReplyKind::GeneralFailure:
      return "general failure";
    case ReplyKind::NotAllowed:
      return "not allowed";
    case ReplyKind::NetUnreachable:
      return "network unreachable";
    case ReplyKind::HostUnreachable:
      return "host unreachable";
    case ReplyKind::Refused:
      return "connection refused";
    case ReplyKind::TtlExpired:
      return "ttl expired";
    case ReplyKind::CommandNotSupported:
      return "command not supported";
    case ReplyKind::AddressTypeNotSupported:
      return "address type not supported";
    case ReplyKind::IdentUnreachable:
      return "ident unreachable";
    case ReplyKind::IdentMismatch:
      return "ident mismatch";
  }
  return "?";
}

std::array<std::uint8_t, 8> encode_socks4_reply(ReplyKind kind, const Address& bound) {
  std::array<std::uint8_t, 8> out{};
  out[0] = 0;  // VN of a reply is 0, not 4
  out[1] = static_cast<std::uint8_t>(to_socks4(kind));
  wire::put_port(out.data() + 2, bound.port);
  if (bound.type == AddressType::Ipv4) std::memcpy(out.data() + 4, bound.ip.bytes.data(), 4);
  return out;
}

Encoded encode_socks5_reply_raw(std::uint8_t rep, const Address& bound) {
  Encoded e;
  e.bytes[0] = 5;
  e.bytes[1] = rep;
  e.bytes[2] = 0;
  e.size = 3 + wire::write_address(bound, e.bytes.data() + 3);
  return e;
}

Encoded encode_socks5_reply(ReplyKind kind, const Address& bound) {
  return encode_socks5_reply_raw(static_cast<std::uint8_t>(to_socks5(kind)), bound);
}

// ---------------------------------------------------------------------------
// UDP header, RFC 1928 §7

UdpParse parse_udp_header(std::span<const std::uint8_t> datagram) {
  UdpParse r;
  if (datagram.size() < 4) {
    r.status = ParseStatus::NeedMore;
    return r;
  }
  r.header.frag = datagram[2];
  const wire::AddressParse a = wire::read_address(datagram.subspan(3));
  r.status = a.status;
  if (a.status != ParseStatus::Ok) return r;
  r.header.destination = a.address;
  r.payload_offset = 3 + a.size;
  return r;
}

std::size_t encode_udp_header(const Address& destination, std::span<std::uint8_t> out,
                              std::uint8_t frag) {
  if (destination.type == AddressType::Domain && destination.name.empty()) return 0;
  const std::size_t need = 3 + destination.wire_size();
  if (out.size() < need) return 0;
  out[0] = 0;
  out[1] = 0;
  out[2] = frag;
  return 3 + wire::write_address(destination, out.data() + 3);
}

// ---------------------------------------------------------------------------
// Client side

std::optional<Encoded> encode_greeting(std::span<const std::uint8_t> methods) {
  if (methods.empty() || methods.size() > kMaxField) return std::nullopt;
  Encoded e;
  e.bytes[0] = 5;
  e.bytes[1] = static_cast<std::uint8_t>(methods.size());
  std::memcpy(e.bytes.data() + 2, methods.data(), methods.size());
  e.size = 2 + methods.size();
  return e;
}

std::optional<Encoded> encode_auth(std::string_view username, std::string_view password) {
  if (username.empty() || username.size() > kMaxField || password.size() > kMaxField) {
    return std::nullopt;
  }
  Encoded e;
  std::size_t n = 0;
  e.bytes[n++] = 1;
  e.bytes[n++] = static_cast<std::uint8_t>(username.size());
  std::memcpy(e.bytes.data() + n, username.data(), username.size());
  n += username.size();
  e.bytes[n++] = static_cast<std::uint8_t>(password.size());
  std::memcpy(e.bytes.data() + n, password.data(), password.size());
  n += password.size();
  e.size = n;
  return e;
}

std::optional<Encoded> encode_socks5_request(Command cmd, const Address& destination) {
  if (destination.type == AddressType::Domain && destination.name.empty()) return std::nullopt;
  Encoded e;
  e.bytes[0] = 5;
  e.bytes[1] = static_cast<std::uint8_t>(cmd);
  e.bytes[2] = 0;
  e.size = 3 + wire::write_address(destination, e.bytes.data() + 3);
  return e;
}

std::optional<Encoded> encode_socks4_request(Command cmd, const Address& destination,
                                             std::string_view userid) {
  if (cmd == Command::UdpAssociate || destination.type == AddressType::Ipv6) return std::nullopt;
  if (userid.size() > kMaxField || userid.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  if (destination.type == AddressType::Domain && destination.name.empty()) return std::nullopt;
  Encoded e;
  std::size_t n = 0;
  e.bytes[n++] = 4;
  e.bytes[n++] = static_cast<std::uint8_t>(cmd);
  wire::put_port(e.bytes.data() + n, destination.port);
  n += 2;
  if (destination.type == AddressType::Ipv4) {
    std::memcpy(e.bytes.data() + n, destination.ip.bytes.data(), 4);
  } else {
    // SOCKS4a: 0.0.0.x with x != 0 announces a name after the USERID.
    e.bytes[n + 3] = 1;
  }
  n += 4;
  std::memcpy(e.bytes.data() + n, userid.data(), userid.size());
  n += userid.size();
  e.bytes[n++] = 0;
  if (destination.type == AddressType::Domain) {
    std::memcpy(e.bytes.data() + n, destination.name.view().data(), destination.name.size());
    n += destination.name.size();
    e.bytes[n++] = 0;
  }
  e.size = n;
  return e;
}

Parsed<std::uint8_t> parse_method_selection(std::span<const std::uint8_t> bytes) {
  Parsed<std::uint8_t> r;
  if (bytes.empty()) return r;
  if (bytes[0] != 5) {
    r.status = ParseStatus::Malformed;
    return r;
  }
  if (bytes.size() < 2) return r;
  r.status = ParseStatus::Ok;
  r.value = bytes[1];
  r.consumed = 2;
  return r;
}

Parsed<bool> parse_auth_status(std::span<const std::uint8_t> bytes) {
  Parsed<bool> r;
  if (bytes.size() < 2) return r;
  r.status = ParseStatus::Ok;
  r.value = bytes[1] == 0;
  r.consumed = 2;
  return r;
}

Parsed<Socks5ReplyMessage> parse_socks5_reply(std::span<const std::uint8_t> bytes) {
  Parsed<Socks5ReplyMessage> r;
  if (bytes.empty()) return r;
  if (bytes[0] != 5) {
    r.status = ParseStatus::Malformed;
    return r;
  }
  if (bytes.size() < 4) return r;
  r.value.rep = bytes[1];
  const wire::AddressParse a = wire::read_address(bytes.subspan(3));
  r.status = a.status;
  if (a.status != ParseStatus::Ok) return r;
  r.value.bound = a.address;
  r.consumed = 3 + a.size;
  return r;
}

Parsed<Socks4ReplyMessage> parse_socks4_reply(std::span<const std::uint8_t> bytes) {
  Parsed<Socks4ReplyMessage> r;
  if (bytes.empty()) return r;
  if (bytes[0] != 0) {
    r.status = ParseStatus::Malformed;
    return r;
  }
  if (bytes.size() < 8) return r;
  r.value.cd = bytes[1];
  r.value.bound.type = AddressType::Ipv4;
  r.value.bound.ip.family = Family::V4;
  r.value.bound.port = wire::get_port(bytes.data() + 2);
  std::memcpy(r.value.bound.ip.bytes.data(), bytes.data() + 4, 4);
  r.status = ParseStatus::Ok;
  r.consumed = 8;
  return r;
}

}  // namespace diode::sockd::proto

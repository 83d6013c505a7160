#pragma once
// The client side of a SOCKS 4/4a/5 handshake as a sans-I/O state machine,
// for diode-socksify and for chaining: it says what to send and digests the
// server's bytes in whatever pieces they arrive, up to the server's reply
// (both replies for BIND). Built on the encoders and decoders of
// socks_proto.hpp.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "diode/sockd/socks_proto.hpp"

namespace diode::sockd::proto {

/// What the client asks for. The strings are copied by ClientHandshake.
struct ClientRequest {
  Version version = Version::Socks5;  // Socks4 needs an IPv4 destination; Socks4a also takes names
  Command command = Command::Connect;
  Address destination;
  std::string_view userid;    // SOCKS4/4a USERID
  std::string_view username;  // SOCKS5: non-empty offers RFC 1929 username/password
  std::string_view password;
  bool offer_no_auth = true;  // SOCKS5: offer method 00 as well
};

enum class ClientFailure : std::uint8_t {
  None,
  BadRequest,          // the request cannot be encoded (e.g. IPv6 over SOCKS4)
  BadServerVersion,    // a reply with the wrong VER/VN
  NoAcceptableMethod,  // the server answered 05 FF
  UnexpectedMethod,    // the server chose a method the client did not offer
  AuthFailed,          // RFC 1929 status not 0
  MalformedReply,      // unknown ATYP or an empty name in the reply
};

/// Stable lower-case reason text for logs.
std::string_view to_string(ClientFailure f);

enum class ClientStepKind : std::uint8_t {
  NeedMore,  // everything consumed; read more from the server
  Send,      // write `send` to the server, then feed the rest
  Reply,     // reply() holds the server's reply (granted or not)
  Failed,    // close; `failure` says why
};

struct ClientStep {
  ClientStepKind kind = ClientStepKind::NeedMore;
  std::size_t consumed = 0;
  std::span<const std::uint8_t> send;  // points into the machine; valid until its next call
  ClientFailure failure = ClientFailure::None;
};

struct ClientReply {
  bool granted = false;   // v5 REP 0, v4 CD 90
  std::uint8_t code = 0;  // raw REP or CD
  Address bound;          // BND (v5) or DSTIP/DSTPORT (v4)
};

/// One client handshake: start(), then feed() the server's bytes. After a
/// granted first BIND reply, feed() waits for the second; after the final
/// Reply, the unconsumed bytes are the first of the relayed stream.
class ClientHandshake {
 public:
  explicit ClientHandshake(const ClientRequest& request);

  /// The first bytes to send (greeting, or the whole SOCKS4 request), or
  /// Failed(BadRequest).
  ClientStep start();
  /// Consumes server bytes up to the end of the next message.
  ClientStep feed(std::span<const std::uint8_t> input);
  /// The latest reply, valid after a Reply step.
  const ClientReply& reply() const { return reply_; }
  /// True after the final Reply or a failure.
  bool finished() const { return state_ == State::Done || state_ == State::Failed; }

 private:
  enum class State : std::uint8_t { Init, Method, Auth, Reply, SecondReply, Done, Failed };

  ClientStep fail(ClientFailure f, std::size_t consumed);
  ClientStep send(const Encoded& e, std::size_t consumed);
  ClientStep on_message(std::span<const std::uint8_t> msg, std::size_t consumed);
  ClientStep encode_request(std::size_t consumed);

  Version version_;
  Command command_;
  Address destination_;
  Name userid_;
  Name username_;
  Name password_;
  bool offer_no_auth_;
  bool valid_ = true;
  State state_ = State::Init;
  ClientFailure failure_ = ClientFailure::None;
  Encoded out_;
  detail::Reassembly<3 + 1 + 1 + kMaxField + 2> pending_;
  ClientReply reply_;
};

}  // namespace diode::sockd::proto

// The client-side handshake machine: the mirror of ServerHandshake, with
// the same buffering rule (parse from the caller's bytes when a message
// arrived whole, else from a buffer no larger than the longest reply).

#include <algorithm>
#include <cstring>

#include "diode/sockd/proto_client.hpp"

namespace diode::sockd::proto {

std::string_view to_string(ClientFailure f) {
  switch (f) {
    case ClientFailure::None:
      return "none";
    case ClientFailure::BadRequest:
      return "request cannot be encoded";
    case ClientFailure::BadServerVersion:
      return "server reply has the wrong version";
    case ClientFailure::NoAcceptableMethod:
      return "no acceptable method";
    case ClientFailure::UnexpectedMethod:
      return "server chose a method not offered";
    case ClientFailure::AuthFailed:
      return "authentication failed";
    case ClientFailure::MalformedReply:
      return "malformed reply";
  }
  return "?";
}

ClientHandshake::ClientHandshake(const ClientRequest& request)
    : version_(request.version),
      command_(request.command),
      destination_(request.destination),
      offer_no_auth_(request.offer_no_auth) {
  const bool no_nul = request.userid.find('\0') == std::string_view::npos;
  valid_ = no_nul && userid_.assign(request.userid) && username_.assign(request.username) &&
           password_.assign(request.password);
}

ClientStep ClientHandshake::fail(ClientFailure f, std::size_t consumed) {
  state_ = State::Failed;
  failure_ = f;
  password_.wipe();
  return ClientStep{ClientStepKind::Failed, consumed, {}, f};
}

ClientStep ClientHandshake::send(const Encoded& e, std::size_t consumed) {
  out_ = e;
  return ClientStep{ClientStepKind::Send, consumed, out_.view(), ClientFailure::None};
}

ClientStep ClientHandshake::encode_request(std::size_t consumed) {
  password_.wipe();
  const auto e = encode_socks5_request(command_, destination_);
  if (!e) return fail(ClientFailure::BadRequest, consumed);
  state_ = State::Reply;
  return send(*e, consumed);
}

ClientStep ClientHandshake::start() {
  if (state_ != State::Init || !valid_) return fail(ClientFailure::BadRequest, 0);
  if (version_ != Version::Socks5) {
    // Plain SOCKS4 cannot carry a name; SOCKS4a encodes one as 0.0.0.1.
    if (version_ == Version::Socks4 && destination_.type == AddressType::Domain) {
      return fail(ClientFailure::BadRequest, 0);
    }
    const auto e = encode_socks4_request(command_, destination_, userid_.view());
    if (!e) return fail(ClientFailure::BadRequest, 0);
    state_ = State::Reply;
    return send(*e, 0);
  }
  std::array<std::uint8_t, 2> methods{};
  std::size_t n = 0;
  if (offer_no_auth_) methods[n++] = kMethodNone;
  if (!username_.empty()) methods[n++] = kMethodUserPass;
  const auto e = encode_greeting(std::span<const std::uint8_t>(methods.data(), n));
  if (!e) return fail(ClientFailure::BadRequest, 0);
  state_ = State::Method;
  return send(*e, 0);
}

namespace {

// Length of the next complete server message, by state; NeedMore or
// Malformed otherwise. RFC 1928 §3 and §6, RFC 1929 §2, SOCKS4.
struct Framed {
  ParseStatus status = ParseStatus::NeedMore;
  std::size_t length = 0;
  bool wrong_version = false;
};

}  // namespace

ClientStep ClientHandshake::feed(std::span<const std::uint8_t> input) {
  switch (state_) {
    case State::Done:
      return ClientStep{ClientStepKind::Reply, 0, {}, ClientFailure::None};
    case State::Failed:
      return ClientStep{ClientStepKind::Failed, 0, {}, failure_};
    case State::Init:
      return fail(ClientFailure::BadRequest, 0);
    default:
      break;
  }
  if (input.empty()) return ClientStep{};

  const std::span<const std::uint8_t> view = pending_.add(input);
  const std::size_t old = pending_.held_before();

  Framed f;
  if (state_ == State::Method) {
    const auto p = parse_method_selection(view);
    f = {p.status, p.consumed, p.status == ParseStatus::Malformed};
  } else if (state_ == State::Auth) {
    const auto p = parse_auth_status(view);
    f = {p.status, p.consumed, false};
  } else if (version_ == Version::Socks5) {
    const auto p = parse_socks5_reply(view);
    f = {p.status, p.consumed, p.status == ParseStatus::Malformed && view[0] != 5};
  } else {
    const auto p = parse_socks4_reply(view);
    f = {p.status, p.consumed, p.status == ParseStatus::Malformed};
  }

  if (f.status == ParseStatus::NeedMore) {
    // Every server message is decided within the buffer's size, so a full
    // buffer that still needs more is a bug; fail closed.
    if (!pending_.keep(input)) return fail(ClientFailure::MalformedReply, input.size());
    return ClientStep{ClientStepKind::NeedMore, input.size(), {}, ClientFailure::None};
  }
  pending_.clear();
  if (f.status == ParseStatus::Malformed) {
    return fail(f.wrong_version ? ClientFailure::BadServerVersion : ClientFailure::MalformedReply,
                input.size());
  }
  return on_message(view.first(f.length), f.length - old);
}

ClientStep ClientHandshake::on_message(std::span<const std::uint8_t> msg, std::size_t consumed) {
  switch (state_) {
    case State::Method: {
      const std::uint8_t m = msg[1];
      if (m == kMethodNoAcceptable) return fail(ClientFailure::NoAcceptableMethod, consumed);
      if (m == kMethodNone && offer_no_auth_) return encode_request(consumed);
      if (m == kMethodUserPass && !username_.empty()) {
        const auto e = encode_auth(username_.view(), password_.view());
        if (!e) return fail(ClientFailure::BadRequest, consumed);
        state_ = State::Auth;
        return send(*e, consumed);
      }
      return fail(ClientFailure::UnexpectedMethod, consumed);
    }
    case State::Auth:
      if (msg[1] != 0) return fail(ClientFailure::AuthFailed, consumed);
      return encode_request(consumed);
    case State::Reply:
    case State::SecondReply: {
      if (version_ == Version::Socks5) {
        const auto p = parse_socks5_reply(msg);
        reply_ = ClientReply{p.value.rep == 0, p.value.rep, p.value.bound};
      } else {
        const auto p = parse_socks4_reply(msg);
        reply_ = ClientReply{p.value.cd == static_cast<std::uint8_t>(Socks4Reply::Granted),
                             p.value.cd, p.value.bound};
      }
      // BIND answers twice: where it listens, then who connected.
      const bool first_bind = state_ == State::Reply && command_ == Command::Bind && reply_.granted;
      state_ = first_bind ? State::SecondReply : State::Done;
      return ClientStep{ClientStepKind::Reply, consumed, {}, ClientFailure::None};
    }
    case State::Init:
    case State::Done:
    case State::Failed:
      break;
  }
  return fail(ClientFailure::BadRequest, consumed);
}

}  // namespace diode::sockd::proto

// The server-side SOCKS handshake machine. Each state knows how to find the
// end of its message in a byte prefix ("framing"); a message is parsed only
// once it is whole, straight from the caller's buffer when it arrived in one
// piece, else from the machine's own buffer of at most kMaxMessage bytes.

#include "diode/sockd/socks_proto.hpp"

#include <algorithm>
#include <cstring>

#include "socks_proto_wire.hpp"

namespace diode::sockd::proto {

namespace {

constexpr std::size_t kSocks4Header = 8;               // VN CD DSTPORT DSTIP
constexpr std::size_t kNulTerminated = kMaxField + 1;  // up to 255 bytes + NUL
constexpr std::size_t kNotFound = static_cast<std::size_t>(-1);

// Index of the first NUL in b[from, from + window), or kNotFound.
std::size_t find_nul(std::span<const std::uint8_t> b, std::size_t from, std::size_t window) {
  if (from >= b.size()) return kNotFound;
  const std::size_t n = std::min(window, b.size() - from);
  const void* hit = std::memchr(b.data() + from, 0, n);
  if (hit == nullptr) return kNotFound;
  return static_cast<std::size_t>(static_cast<const std::uint8_t*>(hit) - b.data());
}

// SOCKS4a: DSTIP 0.0.0.x with x != 0 means a name follows the USERID.
bool is_socks4a(std::span<const std::uint8_t> b) {
  return b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] != 0;
}

bool is_socks4_failure(Failure f) {
  return f == Failure::Socks4BadCommand || f == Failure::Socks4UseridTooLong ||
         f == Failure::Socks4EmptyName || f == Failure::Socks4NameTooLong ||
         f == Failure::Socks4NeedsNoAuth;
}

}  // namespace

std::string_view to_string(Failure f) {
  switch (f) {
    case Failure::None:
      return "none";
    case Failure::WrongVersion:
      return "wrong version";
    case Failure::Socks4BadCommand:
      return "socks4 unknown command";
    case Failure::Socks4UseridTooLong:
      return "socks4 userid too long";
    case Failure::Socks4EmptyName:
      return "socks4a empty name";
    case Failure::Socks4NameTooLong:
      return "socks4a name too long";
    case Failure::Socks4NeedsNoAuth:
      return "socks4 without authentication not allowed";
    case Failure::NoMethods:
      return "no methods offered";
    case Failure::NoAcceptableMethod:
      return "no acceptable method";
    case Failure::BadAuthVersion:
      return "bad auth version";
    case Failure::EmptyUsername:
      return "empty username";
    case Failure::AuthRejected:
      return "authentication failed";
    case Failure::BadRequestVersion:
      return "bad request version";
    case Failure::UnknownCommand:
      return "unknown command";
    case Failure::UnknownAddressType:
      return "unknown address type";
    case Failure::EmptyName:
      return "empty name";
    case Failure::NameHasNul:
      return "name contains nul";
    case Failure::InternalLimit:
      return "internal limit";
  }
  return "?";
}

struct ServerHandshake::Frame {
  enum class Kind : std::uint8_t { NeedMore, Complete, Malformed };
  Kind kind = Kind::NeedMore;
  // Complete: the message's length. Malformed: bytes up to and including
  // the one that decided it.
  std::size_t length = 0;
  Failure failure = Failure::None;

  static Frame need() { return {}; }
  static Frame whole(std::size_t n) { return {Kind::Complete, n, Failure::None}; }
  static Frame bad(Failure f, std::size_t at) { return {Kind::Malformed, at, f}; }
};

// Framing never looks past what the longest valid message needs, so a blast
// of garbage costs a bounded scan and is refused at the first byte that
// proves it wrong.
ServerHandshake::Frame ServerHandshake::frame(std::span<const std::uint8_t> b) const {
  const std::size_t size = b.size();
  switch (state_) {
    case State::Socks4: {
      // SOCKS4: VN CD DSTPORT DSTIP USERID NUL; SOCKS4a adds NAME NUL.
      if (size < 2) return Frame::need();
      if (b[1] != 1 && b[1] != 2) return Frame::bad(Failure::Socks4BadCommand, 2);
      if (size < kSocks4Header) return Frame::need();
      const std::size_t uid_end = find_nul(b, kSocks4Header, kNulTerminated);
      if (uid_end == kNotFound) {
        if (size >= kSocks4Header + kNulTerminated) {
          return Frame::bad(Failure::Socks4UseridTooLong, kSocks4Header + kNulTerminated);
        }
        return Frame::need();
      }
      if (!is_socks4a(b)) return Frame::whole(uid_end + 1);
      const std::size_t name_start = uid_end + 1;
      if (size <= name_start) return Frame::need();
      if (b[name_start] == 0) return Frame::bad(Failure::Socks4EmptyName, name_start + 1);
      const std::size_t name_end = find_nul(b, name_start, kNulTerminated);
      if (name_end == kNotFound) {
        if (size >= name_start + kNulTerminated) {
          return Frame::bad(Failure::Socks4NameTooLong, name_start + kNulTerminated);
        }
        return Frame::need();
      }
      return Frame::whole(name_end + 1);
    }
    case State::Greeting: {
      // RFC 1928 §3: VER NMETHODS METHODS.
      if (size < 2) return Frame::need();
      const std::size_t n = b[1];
      if (n == 0) return Frame::bad(Failure::NoMethods, 2);
      if (size < 2 + n) return Frame::need();
      return Frame::whole(2 + n);
    }
    case State::Auth: {
      // RFC 1929 §2: VER ULEN UNAME PLEN PASSWD.
      if (size < 1) return Frame::need();
      if (b[0] != 1) return Frame::bad(Failure::BadAuthVersion, 1);
      if (size < 2) return Frame::need();
      const std::size_t ulen = b[1];
      if (ulen == 0) return Frame::bad(Failure::EmptyUsername, 2);
      if (size < 3 + ulen) return Frame::need();
      const std::size_t total = 3 + ulen + b[2 + ulen];
      if (size < total) return Frame::need();
      return Frame::whole(total);
    }
    case State::Socks5Request: {
      // RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT. RSV is not checked.
      if (size < 1) return Frame::need();
      if (b[0] != 5) return Frame::bad(Failure::BadRequestVersion, 1);
      if (size < 2) return Frame::need();
      if (b[1] < 1 || b[1] > 3) return Frame::bad(Failure::UnknownCommand, 2);
      if (size < 4) return Frame::need();
      std::size_t total = 0;
      switch (b[3]) {
        case 1:
          total = 4 + 4 + 2;
          break;
        case 4:
          total = 4 + 16 + 2;
          break;
        case 3:
          if (size < 5) return Frame::need();
          if (b[4] == 0) return Frame::bad(Failure::EmptyName, 5);
          total = 5 + std::size_t{b[4]} + 2;
          break;
        default:
          return Frame::bad(Failure::UnknownAddressType, 4);
      }
      if (size < total) return Frame::need();
      return Frame::whole(total);
    }
    case State::Start:
    case State::AuthWait:
    case State::Done:
    case State::Failed:
      break;
  }
  return Frame::bad(Failure::InternalLimit, 0);
}

Step ServerHandshake::feed(std::span<const std::uint8_t> input) {
  switch (state_) {
    case State::Done:
      return Step{StepKind::Request, 0, {}, Failure::None};
    case State::Failed:
      return Step{StepKind::Malformed, 0, {}, failure_};
    case State::AuthWait:
      return Step{StepKind::Authenticate, 0, {}, Failure::None};
    default:
      break;
  }
  if (input.empty()) return Step{};
  if (state_ == State::Start) {
    // The first byte names the protocol; anything but 4 or 5 is not SOCKS
    // (often TLS or HTTP sent to the wrong port), so no reply is owed.
    if (input[0] == 4) {
      state_ = State::Socks4;
    } else if (input[0] == 5) {
      state_ = State::Greeting;
    } else {
      return fail(Failure::WrongVersion, 1);
    }
  }

  const std::span<const std::uint8_t> view = pending_.add(input);
  const std::size_t old = pending_.held_before();
  const Frame f = frame(view);
  switch (f.kind) {
    case Frame::Kind::NeedMore:
      // Framing refuses anything longer than kMaxMessage before this point,
      // so this only fails on a bug; fail closed then.
      if (!pending_.keep(input)) return fail(Failure::InternalLimit, input.size());
      return Step{StepKind::NeedMore, input.size(), {}, Failure::None};
    case Frame::Kind::Malformed: {
      pending_.clear();
      const std::size_t consumed = f.length > old ? std::min(f.length - old, input.size()) : 0;
      return fail(f.failure, consumed);
    }
    case Frame::Kind::Complete:
      break;
  }
  pending_.clear();
  return complete(view.first(f.length), f.length - old);
}

Step ServerHandshake::complete(std::span<const std::uint8_t> m, std::size_t consumed) {
  switch (state_) {
    case State::Socks4: {
      // A USERID proves nothing: where every client must authenticate,
      // SOCKS4 cannot be allowed at all (refused once the request is whole,
      // so the client reads the reply).
      if (!options_.allow_no_auth) return fail(Failure::Socks4NeedsNoAuth, consumed);
      request_ = Request{};
      request_.version = is_socks4a(m) ? Version::Socks4a : Version::Socks4;
      request_.command = m[1] == 1 ? Command::Connect : Command::Bind;
      request_.method = kMethodNone;
      const std::size_t uid_end = find_nul(m, kSocks4Header, kNulTerminated);
      request_.userid.assign(std::string_view(
          reinterpret_cast<const char*>(m.data()) + kSocks4Header, uid_end - kSocks4Header));
      Address& dst = request_.destination;
      dst.port = wire::get_port(m.data() + 2);
      if (request_.version == Version::Socks4a) {
        dst.type = AddressType::Domain;
        // The name runs from after the USERID's NUL to the final NUL.
        dst.name.assign(std::string_view(reinterpret_cast<const char*>(m.data()) + uid_end + 1,
                                         m.size() - uid_end - 2));
      } else {
        dst.type = AddressType::Ipv4;
        dst.ip.family = platform::Family::V4;
        std::memcpy(dst.ip.bytes.data(), m.data() + 4, 4);
      }
      state_ = State::Done;
      return Step{StepKind::Request, consumed, {}, Failure::None};
    }
    case State::Greeting: {
      bool offers_none = false;
      bool offers_user_pass = false;
      for (const std::uint8_t method : m.subspan(2)) {
        offers_none = offers_none || method == kMethodNone;
        offers_user_pass = offers_user_pass || method == kMethodUserPass;
      }
      const bool can_none = options_.allow_no_auth && offers_none;
      const bool can_user_pass = options_.allow_user_pass && offers_user_pass;
      std::uint8_t chosen = kMethodNoAcceptable;
      if (can_user_pass && (options_.prefer_user_pass || !can_none)) {
        chosen = kMethodUserPass;
      } else if (can_none) {
        chosen = kMethodNone;
      }
      if (chosen == kMethodNoAcceptable) return fail(Failure::NoAcceptableMethod, consumed);
      request_.method = chosen;
      state_ = chosen == kMethodUserPass ? State::Auth : State::Socks5Request;
      reply_[0] = 5;
      reply_[1] = chosen;
      return send(consumed, 2);
    }
    case State::Auth: {
      const std::size_t ulen = m[1];
      const auto* chars = reinterpret_cast<const char*>(m.data());
      username_.assign(std::string_view(chars + 2, ulen));
      password_.assign(std::string_view(chars + 3 + ulen, m[2 + ulen]));
      // The message came in pieces: its copy goes now, password_ at accept_auth.
      pending_.wipe();
      state_ = State::AuthWait;
      return Step{StepKind::Authenticate, consumed, {}, Failure::None};
    }
    case State::Socks5Request: {
      const wire::AddressParse a = wire::read_address(m.subspan(3));
      if (a.status != ParseStatus::Ok) {
        // Framing already vetted ATYP and the length; only a NUL is left.
        return fail(a.status == ParseStatus::Malformed ? a.failure : Failure::InternalLimit,
                    consumed);
      }
      const std::uint8_t method = request_.method;
      request_ = Request{};
      request_.version = Version::Socks5;
      request_.command = static_cast<Command>(m[1]);
      request_.destination = a.address;
      request_.method = method;
      if (method == kMethodUserPass) request_.username = username_;
      state_ = State::Done;
      return Step{StepKind::Request, consumed, {}, Failure::None};
    }
    case State::Start:
    case State::AuthWait:
    case State::Done:
    case State::Failed:
      break;
  }
  return fail(Failure::InternalLimit, consumed);
}

Step ServerHandshake::accept_auth(bool ok) {
  if (state_ == State::Done || state_ == State::Failed) return feed({});
  if (state_ != State::AuthWait) return fail(Failure::InternalLimit, 0);
  password_.wipe();
  if (!ok) return fail(Failure::AuthRejected, 0);
  state_ = State::Socks5Request;
  reply_[0] = 1;  // RFC 1929 §2: VER 1, STATUS 0 = success
  reply_[1] = 0;
  return send(0, 2);
}

void wipe_except(std::span<std::uint8_t> buffer, std::size_t keep_from, std::size_t keep_to) {
  if (keep_to > buffer.size() || keep_from >= keep_to) keep_from = keep_to = buffer.size();
  ::explicit_bzero(buffer.data(), keep_from);
  ::explicit_bzero(buffer.data() + keep_to, buffer.size() - keep_to);
}

Step ServerHandshake::send(std::size_t consumed, std::size_t reply_size) {
  reply_size_ = reply_size;
  return Step{StepKind::Send, consumed, std::span<const std::uint8_t>(reply_.data(), reply_size_),
              Failure::None};
}

Step ServerHandshake::fail(Failure f, std::size_t consumed) {
  reply_.fill(0);
  std::size_t size = 0;
  const bool v4 = is_socks4_failure(f) || (f == Failure::InternalLimit && state_ == State::Socks4);
  if (f == Failure::WrongVersion) {
    size = 0;
  } else if (v4) {
    reply_[1] = static_cast<std::uint8_t>(Socks4Reply::Rejected);  // VN 0, CD 91
    size = 8;
  } else if (f == Failure::NoMethods || f == Failure::NoAcceptableMethod ||
             (f == Failure::InternalLimit && state_ == State::Greeting)) {
    reply_[0] = 5;
    reply_[1] = kMethodNoAcceptable;
    size = 2;
  } else if (f == Failure::BadAuthVersion || f == Failure::EmptyUsername ||
             f == Failure::AuthRejected ||
             (f == Failure::InternalLimit &&
              (state_ == State::Auth || state_ == State::AuthWait))) {
    reply_[0] = 1;  // RFC 1929 §2: any non-zero STATUS is a failure
    reply_[1] = 1;
    size = 2;
  } else {
    // RFC 1928 §6 reply with BND 0.0.0.0:0.
    Socks5Reply rep = Socks5Reply::GeneralFailure;
    if (f == Failure::UnknownCommand) rep = Socks5Reply::CommandNotSupported;
    if (f == Failure::UnknownAddressType) rep = Socks5Reply::AddressTypeNotSupported;
    reply_[0] = 5;
    reply_[1] = static_cast<std::uint8_t>(rep);
    reply_[3] = static_cast<std::uint8_t>(AddressType::Ipv4);
    size = 10;
  }
  password_.wipe();
  if (state_ == State::Auth || state_ == State::AuthWait) pending_.wipe();
  failure_ = f;
  state_ = State::Failed;
  reply_size_ = size;
  return Step{StepKind::Malformed, consumed, std::span<const std::uint8_t>(reply_.data(), size), f};
}

}  // namespace diode::sockd::proto

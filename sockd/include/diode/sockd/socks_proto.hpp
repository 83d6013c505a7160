#pragma once
// The SOCKS 4, 4a and 5 wire protocol, sans-I/O: a server-side handshake
// state machine fed with whatever bytes arrived (one at a time is fine),
// reply builders, the RFC 1928 §7 UDP header, and client-side encoders and
// decoders. Nothing here reads a socket, allocates per byte or throws; the
// relay moves bytes and acts on the steps it gets back.
//
// What each malformation is answered with is listed in docs/socks-protocol.md.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "diode/platform/address.hpp"

namespace diode::sockd::proto {

/// Longest name or user field any SOCKS message can carry (one length byte).
inline constexpr std::size_t kMaxField = 255;
/// Largest message the server machine ever buffers: a SOCKS4a request with a
/// 255-byte USERID and a 255-byte name (8 + 256 + 256).
inline constexpr std::size_t kMaxMessage = 520;

/// A string of at most N bytes stored inline, so a parsed request needs no
/// heap. Holds raw protocol bytes (not necessarily UTF-8 or printable).
template <std::size_t N>
class BoundedString {
 public:
  // Only [0, size) is ever read: the rest is left as it is, not zeroed (a
  // handshake makes several of these per session, 255 bytes each).
  BoundedString() noexcept {}  // NOLINT(modernize-use-equals-default): not value-initialized
  BoundedString(const BoundedString& o) noexcept : size_(o.size_) {
    std::memcpy(data_.data(), o.data_.data(), size_);
  }
  BoundedString& operator=(const BoundedString& o) noexcept {
    if (this != &o) {
      std::memcpy(data_.data(), o.data_.data(), o.size_);
      size_ = o.size_;
    }
    return *this;
  }
  /// Copies `s`; false (and unchanged) if it is longer than N.
  bool assign(std::string_view s) {
    if (s.size() > N) return false;
    for (std::size_t i = 0; i < s.size(); ++i) data_[i] = s[i];
    size_ = s.size();
    return true;
  }
  std::string_view view() const { return {data_.data(), size_}; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  /// Overwrites the bytes, for secrets that should not linger in memory.
  void wipe() {
    volatile char* p = data_.data();
    for (std::size_t i = 0; i < N; ++i) p[i] = 0;
    size_ = 0;
  }
  friend bool operator==(const BoundedString& a, const BoundedString& b) {
    return a.view() == b.view();
  }

 private:
  std::array<char, N> data_;
  std::size_t size_ = 0;
};

using Name = BoundedString<kMaxField>;

enum class Version : std::uint8_t { Socks4, Socks4a, Socks5 };

/// The command codes of SOCKS4 (1, 2) and RFC 1928 §4 (1, 2, 3).
enum class Command : std::uint8_t { Connect = 1, Bind = 2, UdpAssociate = 3 };

/// RFC 1928 §5 ATYP values.
enum class AddressType : std::uint8_t { Ipv4 = 1, Domain = 3, Ipv6 = 4 };

/// RFC 1928 §3 method numbers the codec knows by name.
inline constexpr std::uint8_t kMethodNone = 0x00;
inline constexpr std::uint8_t kMethodGssapi = 0x01;
inline constexpr std::uint8_t kMethodUserPass = 0x02;
inline constexpr std::uint8_t kMethodNoAcceptable = 0xFF;

/// A SOCKS address: an IPv4 or IPv6 address or a domain name, plus a port.
struct Address {
  AddressType type = AddressType::Ipv4;
  platform::IpAddress ip;  // Ipv4, Ipv6
  Name name;               // Domain: raw bytes, 1–255, no NUL
  std::uint16_t port = 0;

  /// An IP address (the family picks ATYP 1 or 4) and port.
  static Address from_ip(const platform::IpAddress& ip, std::uint16_t port);
  static Address from_endpoint(const platform::Endpoint& ep) { return from_ip(ep.addr, ep.port); }
  /// A domain name; nullopt if empty, over 255 bytes, or containing NUL.
  static std::optional<Address> from_name(std::string_view name, std::uint16_t port);
  /// `a.b.c.d:port`, `[v6]:port` or `name:port` (name bytes as received).
  std::string to_string() const;
  /// Bytes this address takes on the wire: ATYP + ADDR + PORT (RFC 1928 §5).
  std::size_t wire_size() const;

  friend bool operator==(const Address&, const Address&) = default;
};

/// What the server machine hands over once the handshake is complete.
struct Request {
  Version version = Version::Socks5;
  Command command = Command::Connect;
  Address destination;
  Name userid;                        // SOCKS4/4a USERID (may be empty)
  Name username;                      // SOCKS5: the RFC 1929 user, if that method was used
  std::uint8_t method = kMethodNone;  // SOCKS5 method used; kMethodNone for SOCKS4
};

// ---------------------------------------------------------------------------
// Reply codes

/// The relay's reason for a reply, independent of protocol version.
enum class ReplyKind : std::uint8_t {
  Granted,
  GeneralFailure,
  NotAllowed,
  NetUnreachable,
  HostUnreachable,
  Refused,
  TtlExpired,
  CommandNotSupported,
  AddressTypeNotSupported,
  IdentUnreachable,  // SOCKS4 only (92)
  IdentMismatch,     // SOCKS4 only (93)
};

/// RFC 1928 §6 REP values.
enum class Socks5Reply : std::uint8_t {
  Succeeded = 0x00,
  GeneralFailure = 0x01,
  NotAllowed = 0x02,
  NetworkUnreachable = 0x03,
  HostUnreachable = 0x04,
  ConnectionRefused = 0x05,
  TtlExpired = 0x06,
  CommandNotSupported = 0x07,
  AddressTypeNotSupported = 0x08,
};

/// SOCKS4 CD values of a reply.
enum class Socks4Reply : std::uint8_t {
  Granted = 90,
  Rejected = 91,
  IdentUnreachable = 92,
  IdentMismatch = 93,
};

/// The SOCKS5 REP for a kind; the ident kinds, which v5 lacks, are NotAllowed.
Socks5Reply to_socks5(ReplyKind kind);
/// The SOCKS4 CD for a kind: 90, 92, 93 as named, every other failure 91.
Socks4Reply to_socks4(ReplyKind kind);
/// The reply kind for a failed connect(2)/bind(2)/getaddrinfo errno value;
/// GeneralFailure for anything without a better match.
ReplyKind reply_kind_from_errno(int err);
/// Short lower-case name of a kind, for logs (`granted`, `refused`, ...).
std::string_view to_string(ReplyKind kind);

/// A small encoded message, stored inline.
struct Encoded {
  std::array<std::uint8_t, kMaxMessage> bytes{};
  std::size_t size = 0;
  std::span<const std::uint8_t> view() const { return {bytes.data(), size}; }
};

/// SOCKS4 reply (VN 0, CD, DSTPORT, DSTIP): always 8 bytes. An IPv6 or name
/// address cannot be expressed in v4 and is sent as 0.0.0.0 with the port.
std::array<std::uint8_t, 8> encode_socks4_reply(ReplyKind kind, const Address& bound);
/// RFC 1928 §6 reply: VER 5, REP, RSV 0, ATYP, BND.ADDR, BND.PORT.
Encoded encode_socks5_reply(ReplyKind kind, const Address& bound);
/// The reply with a raw REP byte, for codes outside Socks5Reply (tests, chaining).
Encoded encode_socks5_reply_raw(std::uint8_t rep, const Address& bound);

// ---------------------------------------------------------------------------
// Server-side handshake

/// Which RFC 1928 §3 methods the server accepts.
struct HandshakeOptions {
  // Method 0x00. SOCKS4 and 4a have no authentication (a USERID is only a
  // claim), so without this they are refused too.
  bool allow_no_auth = true;
  bool allow_user_pass = false;  // method 0x02, RFC 1929
  // When a client offers both and both are allowed: true picks username/
  // password, false "no authentication" (sockd: whichever `methods` lists first).
  bool prefer_user_pass = true;
};

/// Why a handshake was refused. `to_string` gives the log reason.
enum class Failure : std::uint8_t {
  None,
  WrongVersion,         // first byte neither 4 nor 5: close, no reply
  Socks4BadCommand,     // CD not 1 or 2
  Socks4UseridTooLong,  // no NUL within 255 bytes
  Socks4EmptyName,      // SOCKS4a name of length 0
  Socks4NameTooLong,    // SOCKS4a name: no NUL within 255 bytes
  Socks4NeedsNoAuth,    // SOCKS4/4a while "no authentication" is not allowed
  NoMethods,            // NMETHODS 0
  NoAcceptableMethod,   // no offered method is allowed
  BadAuthVersion,       // RFC 1929 VER not 1
  EmptyUsername,        // RFC 1929 ULEN 0
  AuthRejected,         // the caller's accept_auth(false)
  BadRequestVersion,    // SOCKS5 request VER not 5
  UnknownCommand,       // SOCKS5 CMD not 1, 2, 3
  UnknownAddressType,   // ATYP not 1, 3, 4
  EmptyName,            // ATYP 3 with length 0
  NameHasNul,           // ATYP 3 name containing a NUL byte
  InternalLimit,        // cannot happen; kept so a bug fails closed
};

/// Stable lower-case reason text for logs, e.g. `wrong version`.
std::string_view to_string(Failure f);

enum class StepKind : std::uint8_t {
  NeedMore,      // everything consumed and buffered; feed more when it comes
  Send,          // send `reply`, then feed the rest of the input (from `consumed`)
  Authenticate,  // check credentials(), then call accept_auth()
  Request,       // request() is complete; bytes after `consumed` are the client's early data
  Malformed,     // send `reply` (may be empty), log `failure`, close
};

/// One result of feed() or accept_auth(). `reply` points into the machine
/// and stays valid until its next call.
struct Step {
  StepKind kind = StepKind::NeedMore;
  std::size_t consumed = 0;  // bytes of the given input this step used
  std::span<const std::uint8_t> reply;
  Failure failure = Failure::None;
};

namespace detail {

/// The start of a message that arrived in pieces, kept for a sans-I/O
/// parser fed by whatever each read returned. N: the longest message the
/// parser can still be undecided about.
template <std::size_t N>
class Reassembly {
 public:
  /// The bytes to parse: `input` itself when nothing is kept, else what is
  /// kept followed by as much of `input` as fits.
  std::span<const std::uint8_t> add(std::span<const std::uint8_t> input) {
    held_before_ = size_;
    taken_ = input.size();
    if (size_ == 0) return input;
    taken_ = std::min(input.size(), N - size_);
    std::copy_n(input.data(), taken_, buf_.data() + size_);
    size_ += taken_;
    return {buf_.data(), size_};
  }
  /// How many octets of the current message came with earlier calls.
  std::size_t held_before() const { return held_before_; }
  /// The message is not complete yet: keeps it for the next call. False if
  /// it does not fit, which the framing makes a bug (so: fail closed).
  bool keep(std::span<const std::uint8_t> input) {
    if (held_before_ == 0) {
      if (input.size() > N) return false;
      std::copy_n(input.data(), input.size(), buf_.data());
      size_ = input.size();
      return true;
    }
    return taken_ == input.size();
  }
  void clear() { size_ = 0; }
  /// clear(), and the bytes overwritten (they held a password).
  void wipe() {
    volatile std::uint8_t* p = buf_.data();
    for (std::size_t i = 0; i < N; ++i) p[i] = 0;
    size_ = 0;
  }

 private:
  std::array<std::uint8_t, N> buf_{};
  std::size_t size_ = 0;
  std::size_t held_before_ = 0;
  std::size_t taken_ = 0;
};

}  // namespace detail

/// The server side of a SOCKS4/4a/5 handshake up to the request (RFC 1928
/// §3–§5, RFC 1929 §2, SOCKS4 and 4a). Buffers at most kMaxMessage bytes and
/// rejects input as soon as it can no longer become valid.
class ServerHandshake {
 public:
  explicit ServerHandshake(HandshakeOptions options = {}) : options_(options) {}
  ServerHandshake(const ServerHandshake&) = default;
  ServerHandshake& operator=(const ServerHandshake&) = default;
  /// A password not checked yet (the client left during the check) is
  /// overwritten: the memory may be reused (sockd recycles it) rather than
  /// freed, and new strings are not zeroed.
  ~ServerHandshake() {
    if (!password_.empty()) password_.wipe();
    if (state_ == State::Auth || state_ == State::AuthWait) pending_.wipe();
  }

  /// Consumes bytes from `input` up to the end of the next message or step.
  /// The caller acts on the step and feeds the unconsumed rest again. After
  /// Request or Malformed, further calls return the same kind again,
  /// consuming nothing and with an empty reply (it was already handed out).
  Step feed(std::span<const std::uint8_t> input);

  /// After an Authenticate step: the caller's verdict on credentials().
  /// true → Send the RFC 1929 success status and continue with the request;
  /// false → Malformed(AuthRejected) with the failure status. Either way the
  /// password is wiped.
  Step accept_auth(bool ok);

  /// The RFC 1929 credentials, valid from the Authenticate step until
  /// accept_auth() (the password is wiped then).
  std::string_view username() const { return username_.view(); }
  std::string_view password() const { return password_.view(); }

  /// The parsed request, valid after a Request step.
  const Request& request() const { return request_; }

  /// True once a Request or Malformed step has been returned.
  bool finished() const { return state_ == State::Done || state_ == State::Failed; }

 private:
  enum class State : std::uint8_t {
    Start,
    Socks4,
    Greeting,
    Auth,
    AuthWait,
    Socks5Request,
    Done,
    Failed
  };
  struct Frame;

  Frame frame(std::span<const std::uint8_t> bytes) const;
  Step complete(std::span<const std::uint8_t> message, std::size_t consumed);
  Step fail(Failure f, std::size_t consumed);
  Step send(std::size_t consumed, std::size_t reply_size);

  HandshakeOptions options_;
  State state_ = State::Start;
  Failure failure_ = Failure::None;
  detail::Reassembly<kMaxMessage> pending_;
  std::array<std::uint8_t, 10> reply_{};
  std::size_t reply_size_ = 0;
  Name username_;
  Name password_;
  Request request_;
};

/// Zeroes `buffer` except [keep_from, keep_to) (the bytes not parsed yet),
/// with stores the compiler may not drop: for the caller's read buffer once
/// an Authenticate step has taken the RFC 1929 password out of it. An empty
/// or inverted range keeps nothing.
void wipe_except(std::span<std::uint8_t> buffer, std::size_t keep_from, std::size_t keep_to);

// ---------------------------------------------------------------------------
// RFC 1928 §7 UDP request header

/// Outcome of a client-side decoder or the UDP header parser.
enum class ParseStatus : std::uint8_t { Ok, NeedMore, Malformed };

struct UdpHeader {
  std::uint8_t frag = 0;  // 0: a whole datagram; else a fragment to drop
  Address destination;

  bool fragmented() const { return frag != 0; }
};

struct UdpParse {
  ParseStatus status = ParseStatus::Malformed;  // NeedMore means truncated
  UdpHeader header;
  std::size_t payload_offset = 0;  // DATA starts here in the datagram
};

/// Parses RSV RSV FRAG ATYP DST.ADDR DST.PORT at the start of a datagram
/// (RFC 1928 §7). RSV is not checked; FRAG is reported, not acted upon.
UdpParse parse_udp_header(std::span<const std::uint8_t> datagram);
/// Writes the header for `destination` into `out`; returns its length, or 0
/// if `out` is too small or the address invalid. Size: 3 + wire_size().
std::size_t encode_udp_header(const Address& destination, std::span<std::uint8_t> out,
                              std::uint8_t frag = 0);

// ---------------------------------------------------------------------------
// Client side (diode-socksify, chaining, tests)

/// RFC 1928 §3 greeting: VER 5, NMETHODS, METHODS; nullopt for 0 or >255 methods.
std::optional<Encoded> encode_greeting(std::span<const std::uint8_t> methods);
/// RFC 1929 §2 request: user 1–255 bytes, password 0–255 bytes.
std::optional<Encoded> encode_auth(std::string_view username, std::string_view password);
/// RFC 1928 §4 request.
std::optional<Encoded> encode_socks5_request(Command cmd, const Address& destination);
/// SOCKS4 request, or SOCKS4a when `destination` is a name; nullopt for
/// IPv6, UDP, a USERID over 255 bytes or containing NUL.
std::optional<Encoded> encode_socks4_request(Command cmd, const Address& destination,
                                             std::string_view userid);

template <class T>
struct Parsed {
  ParseStatus status = ParseStatus::NeedMore;
  T value{};
  std::size_t consumed = 0;  // bytes of the message when Ok
};

/// The server's method selection (VER 5, METHOD); Malformed if VER is not 5.
Parsed<std::uint8_t> parse_method_selection(std::span<const std::uint8_t> bytes);
/// RFC 1929 status (VER, STATUS): value true on STATUS 0. VER is not checked,
/// since servers in the field answer 1 or 5.
Parsed<bool> parse_auth_status(std::span<const std::uint8_t> bytes);

struct Socks5ReplyMessage {
  std::uint8_t rep = 0;  // raw REP; compare with Socks5Reply
  Address bound;
};
/// RFC 1928 §6 reply; Malformed on VER ≠ 5, unknown ATYP or empty name.
Parsed<Socks5ReplyMessage> parse_socks5_reply(std::span<const std::uint8_t> bytes);

struct Socks4ReplyMessage {
  std::uint8_t cd = 0;  // raw CD; compare with Socks4Reply
  Address bound;        // IPv4
};
/// SOCKS4 reply (8 bytes); Malformed if VN is not 0.
Parsed<Socks4ReplyMessage> parse_socks4_reply(std::span<const std::uint8_t> bytes);

}  // namespace diode::sockd::proto

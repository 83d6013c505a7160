#pragma once
// DNS wire-format basics shared by the codec: type, class and rcode numbers,
// the error codes of a malformed message, and the fixed 12-octet header
// (RFC 1035 §4.1.1, flags AD/CD from RFC 4035 §3.2).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace diode::resolver {

/// Resource record types the codec knows by name; any other value is valid
/// and handled as opaque data (RFC 3597).
namespace rrtype {
inline constexpr std::uint16_t kA = 1;
inline constexpr std::uint16_t kNS = 2;
inline constexpr std::uint16_t kMD = 3;
inline constexpr std::uint16_t kMF = 4;
inline constexpr std::uint16_t kCNAME = 5;
inline constexpr std::uint16_t kSOA = 6;
inline constexpr std::uint16_t kMB = 7;
inline constexpr std::uint16_t kMG = 8;
inline constexpr std::uint16_t kMR = 9;
inline constexpr std::uint16_t kNULL = 10;
inline constexpr std::uint16_t kWKS = 11;
inline constexpr std::uint16_t kPTR = 12;
inline constexpr std::uint16_t kHINFO = 13;
inline constexpr std::uint16_t kMINFO = 14;
inline constexpr std::uint16_t kMX = 15;
inline constexpr std::uint16_t kTXT = 16;
inline constexpr std::uint16_t kRP = 17;
inline constexpr std::uint16_t kAFSDB = 18;
inline constexpr std::uint16_t kRT = 21;
inline constexpr std::uint16_t kSIG = 24;
inline constexpr std::uint16_t kPX = 26;
inline constexpr std::uint16_t kAAAA = 28;
inline constexpr std::uint16_t kNXT = 30;
inline constexpr std::uint16_t kSRV = 33;
inline constexpr std::uint16_t kNAPTR = 35;
inline constexpr std::uint16_t kKX = 36;
inline constexpr std::uint16_t kDNAME = 39;
inline constexpr std::uint16_t kOPT = 41;
inline constexpr std::uint16_t kDS = 43;
inline constexpr std::uint16_t kRRSIG = 46;
inline constexpr std::uint16_t kNSEC = 47;
inline constexpr std::uint16_t kDNSKEY = 48;
inline constexpr std::uint16_t kNSEC3 = 50;
inline constexpr std::uint16_t kSVCB = 64;
inline constexpr std::uint16_t kHTTPS = 65;
inline constexpr std::uint16_t kANY = 255;
}  // namespace rrtype

namespace rrclass {
inline constexpr std::uint16_t kIN = 1;
inline constexpr std::uint16_t kCH = 3;
inline constexpr std::uint16_t kHS = 4;
inline constexpr std::uint16_t kANY = 255;
}  // namespace rrclass

namespace rcode {
inline constexpr std::uint16_t kNoError = 0;
inline constexpr std::uint16_t kFormErr = 1;
inline constexpr std::uint16_t kServFail = 2;
inline constexpr std::uint16_t kNxDomain = 3;
inline constexpr std::uint16_t kNotImp = 4;
inline constexpr std::uint16_t kRefused = 5;
inline constexpr std::uint16_t kYxDomain = 6;  // a DNAME substitution too long (RFC 6672 §2.2)
inline constexpr std::uint16_t kBadVers = 16;  // needs EDNS: 12-bit extended RCODE
}  // namespace rcode

/// The largest DNS message (a TCP length prefix is 16 bits; RFC 1035 §4.2.2).
inline constexpr std::size_t kMaxMessageSize = 65535;
inline constexpr std::size_t kHeaderSize = 12;
/// Plain-UDP limit without EDNS (RFC 1035 §4.2.1).
inline constexpr std::size_t kClassicUdpSize = 512;

/// Why a name or message was rejected. Every value has a fixed reason text.
enum class WireError : std::uint8_t {
  Ok,
  Truncated,           // the data ends inside a field
  TooLarge,            // more than 65535 octets
  BadLabelType,        // label type 0x40 (extended, retired by RFC 6891 §5) or 0x80 (reserved)
  NameTooLong,         // more than 255 octets once expanded (RFC 1035 §3.1)
  PointerOutOfRange,   // compression pointer beyond the message
  PointerForward,      // pointer to its own offset or later (RFC 1035 §4.1.4: prior occurrence)
  PointerLoop,         // pointer back into a part of the same name already read
  TooManyPointers,     // more than kMaxPointerJumps pointers followed for one name
  PointerNotAllowed,   // compression where none may occur (uncompressed input)
  MultipleQuestions,   // QDCOUNT > 1: no server answers that (RFC 9619)
  CountMismatch,       // the message ends at a record boundary before the counts are met
  TrailingData,        // octets after the last counted record
  RdataOverrun,        // RDLENGTH runs past the end of the message
  BadRdata,            // RDATA of a known type does not fit its RDLENGTH
  OptNotInAdditional,  // OPT in question, answer or authority (RFC 6891 §6.1.1)
  MultipleOpt,         // a second OPT record (RFC 6891 §6.1.1: FORMERR)
  OptBadOwner,         // OPT owner is not the root (RFC 6891 §6.1.2)
  BadOptOption,        // an EDNS option runs past the OPT RDATA (RFC 6891 §6.1.2)
};

/// A short lowercase reason for logs and FORMERR diagnostics.
std::string_view to_string(WireError e);

/// The fixed header (RFC 1035 §4.1.1). Counts are what the wire says.
struct Header {
  std::uint16_t id = 0;
  bool qr = false;
  std::uint8_t opcode = 0;  // 4 bits
  bool aa = false;
  bool tc = false;
  bool rd = false;
  bool ra = false;
  bool z = false;          // the reserved bit; must be zero but is kept as seen
  bool ad = false;         // RFC 4035 §3.2.3
  bool cd = false;         // RFC 4035 §3.2.2
  std::uint8_t rcode = 0;  // low 4 bits only; EDNS holds the upper 8
  std::uint16_t qdcount = 0;
  std::uint16_t ancount = 0;
  std::uint16_t nscount = 0;
  std::uint16_t arcount = 0;

  bool operator==(const Header&) const = default;
};

/// Decodes the first 12 octets; nullopt when fewer are given.
std::optional<Header> read_header(std::span<const std::uint8_t> wire);
/// Encodes `h` into out[0..12); out must hold at least 12 octets.
void write_header(const Header& h, std::span<std::uint8_t> out);

/// Mnemonic of a type ("A", "NS", ...) or "TYPE<n>" (RFC 3597 §5).
std::string type_to_text(std::uint16_t type);
/// Inverse of type_to_text, case-insensitive; accepts "TYPE<n>".
std::optional<std::uint16_t> type_from_text(std::string_view text);

/// The message sections, in wire order.
enum class Section : std::uint8_t { Question, Answer, Authority, Additional };

}  // namespace diode::resolver

#include "diode/resolver/wire.hpp"

#include <array>
#include <charconv>
#include <utility>

#include "rdata.hpp"

namespace diode::resolver {

std::string_view to_string(WireError e) {
  switch (e) {
    case WireError::Ok:
      return "ok";
    case WireError::Truncated:
      return "message truncated inside a field";
    case WireError::TooLarge:
      return "message longer than 65535 octets";
    case WireError::BadLabelType:
      return "reserved label type (0x40 or 0x80)";
    case WireError::NameTooLong:
      return "name longer than 255 octets";
    case WireError::PointerOutOfRange:
      return "compression pointer beyond the message";
    case WireError::PointerForward:
      return "compression pointer not to an earlier offset";
    case WireError::PointerLoop:
      return "compression pointer loop";
    case WireError::TooManyPointers:
      return "too many compression pointers in one name";
    case WireError::PointerNotAllowed:
      return "compression pointer in uncompressed data";
    case WireError::MultipleQuestions:
      return "more than one question";
    case WireError::CountMismatch:
      return "fewer records than the header counts";
    case WireError::TrailingData:
      return "octets after the last record";
    case WireError::RdataOverrun:
      return "RDLENGTH runs past the end of the message";
    case WireError::BadRdata:
      return "RDATA does not match its type's layout";
    case WireError::OptNotInAdditional:
      return "OPT outside the additional section";
    case WireError::MultipleOpt:
      return "more than one OPT record";
    case WireError::OptBadOwner:
      return "OPT owner is not the root";
    case WireError::BadOptOption:
      return "EDNS option runs past the OPT RDATA";
  }
  return "unknown";
}

std::optional<Header> read_header(std::span<const std::uint8_t> wire) {
  if (wire.size() < kHeaderSize) return std::nullopt;
  const std::uint8_t* p = wire.data();
  Header h;
  h.id = detail::get16(p);
  h.qr = (p[2] & 0x80) != 0;
  h.opcode = static_cast<std::uint8_t>((p[2] >> 3) & 0x0F);
  h.aa = (p[2] & 0x04) != 0;
  h.tc = (p[2] & 0x02) != 0;
  h.rd = (p[2] & 0x01) != 0;
  h.ra = (p[3] & 0x80) != 0;
  h.z = (p[3] & 0x40) != 0;
  h.ad = (p[3] & 0x20) != 0;
  h.cd = (p[3] & 0x10) != 0;
  h.rcode = static_cast<std::uint8_t>(p[3] & 0x0F);
  h.qdcount = detail::get16(p + 4);
  h.ancount = detail::get16(p + 6);
  h.nscount = detail::get16(p + 8);
  h.arcount = detail::get16(p + 10);
  return h;
}

void write_header(const Header& h, std::span<std::uint8_t> out) {
  std::uint8_t* p = out.data();
  detail::put16(p, h.id);
  p[2] = static_cast<std::uint8_t>((h.qr ? 0x80 : 0) | ((h.opcode & 0x0F) << 3) |
                                   (h.aa ? 0x04 : 0) | (h.tc ? 0x02 : 0) | (h.rd ? 0x01 : 0));
  p[3] = static_cast<std::uint8_t>((h.ra ? 0x80 : 0) | (h.z ? 0x40 : 0) | (h.ad ? 0x20 : 0) |
                                   (h.cd ? 0x10 : 0) | (h.rcode & 0x0F));
  detail::put16(p + 4, h.qdcount);
  detail::put16(p + 6, h.ancount);
  detail::put16(p + 8, h.nscount);
  detail::put16(p + 10, h.arcount);
}

namespace {

constexpr std::array<std::pair<std::uint16_t, std::string_view>, 35> kTypeNames{{
    {rrtype::kA, "A"},         {rrtype::kNS, "NS"},         {rrtype::kMD, "MD"},
    {rrtype::kMF, "MF"},       {rrtype::kCNAME, "CNAME"},   {rrtype::kSOA, "SOA"},
    {rrtype::kMB, "MB"},       {rrtype::kMG, "MG"},         {rrtype::kMR, "MR"},
    {rrtype::kNULL, "NULL"},   {rrtype::kWKS, "WKS"},       {rrtype::kPTR, "PTR"},
    {rrtype::kHINFO, "HINFO"}, {rrtype::kMINFO, "MINFO"},   {rrtype::kMX, "MX"},
    {rrtype::kTXT, "TXT"},     {rrtype::kRP, "RP"},         {rrtype::kAFSDB, "AFSDB"},
    {rrtype::kRT, "RT"},       {rrtype::kSIG, "SIG"},       {rrtype::kPX, "PX"},
    {rrtype::kAAAA, "AAAA"},   {rrtype::kNXT, "NXT"},       {rrtype::kSRV, "SRV"},
    {rrtype::kNAPTR, "NAPTR"}, {rrtype::kKX, "KX"},         {rrtype::kDNAME, "DNAME"},
    {rrtype::kOPT, "OPT"},     {rrtype::kDS, "DS"},         {rrtype::kRRSIG, "RRSIG"},
    {rrtype::kNSEC, "NSEC"},   {rrtype::kDNSKEY, "DNSKEY"}, {rrtype::kNSEC3, "NSEC3"},
    {rrtype::kSVCB, "SVCB"},   {rrtype::kHTTPS, "HTTPS"},
}};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lo = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lo(a[i]) != lo(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string type_to_text(std::uint16_t type) {
  if (type == rrtype::kANY) return "ANY";
  for (const auto& [v, n] : kTypeNames) {
    if (v == type) return std::string(n);
  }
  return "TYPE" + std::to_string(type);
}

std::optional<std::uint16_t> type_from_text(std::string_view text) {
  if (iequals(text, "ANY")) return rrtype::kANY;
  for (const auto& [v, n] : kTypeNames) {
    if (iequals(text, n)) return v;
  }
  if (text.size() > 4 && iequals(text.substr(0, 4), "TYPE")) {
    const std::string_view digits = text.substr(4);
    std::uint16_t v = 0;
    const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc{} && p == digits.data() + digits.size() && digits[0] != '+') return v;
  }
  return std::nullopt;
}

}  // namespace diode::resolver
